"""Values from files: `{ glob = "books/{book}.txt" }`, as a matrix key's values or a list var's items.

The pattern is a project-relative glob in which one placeholder marks the
part of each matching file's path that becomes a value (as make's `%` in a
pattern rule, or Snakemake's `glob_wildcards`); text vars fill in the rest.
The values are sorted, each is a valid variant name (they name matrix
variants), and the first file of each is kept so that a bad one can be
named. Files are matched through the loader's `Disk`, so the load cache
re-checks the glob like any input glob and a new file is never left out.
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

from .paths import Disk, PathError, clean_path, glob_to_regex
from .templates import Ref, TemplateError, parse_template

VALUE_RE = re.compile(r"[A-Za-z0-9_.-]+")  # what a matrix value, part of a task name, may hold
VALUE_HINT = "matrix values become part of task names such as extract:S01"


class PatternError(Exception):
    """What is wrong, worded to follow the name of what the pattern is for ("matrix `book` ...")."""

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def values_from_files(pattern: str, *, key: Optional[str], scalars: Mapping[str, str], disk: Disk) -> Tuple[str, ...]:
    """The sorted values `pattern` finds; `key` is the placeholder marking them (None: its one placeholder
    that is not a text var). PatternError when the pattern is bad, a value is not a valid name, or no file matches."""
    head, tail = _split(pattern, key=key, scalars=scalars)
    try:
        searched = clean_path(head + "*" + tail)
    except PathError as exc:
        raise PatternError(f'glob "{pattern}" {exc}', hint="paths are relative to the project root") from None
    value_re = re.compile((glob_to_regex(head).pattern if head else "") + "([^/]+)"
                          + (glob_to_regex(tail).pattern if tail else ""), re.DOTALL)
    found: Dict[str, str] = {}  # value -> the first file (in sorted order) it came from
    for path in disk.glob(searched):
        match = value_re.fullmatch(path)
        if match is not None:
            found.setdefault(match.group(1), path)
    for value, path in found.items():
        if not VALUE_RE.fullmatch(value):
            raise PatternError(f'value "{value}" from file {path} may only use letters, digits, \'_\', \'.\' and \'-\'',
                               hint=f"{VALUE_HINT}: rename the file, or narrow the glob")
    if not found:
        raise PatternError(f'has no file matching "{pattern}"',
                           hint="the values come from existing files (paths relative to the project root): "
                           "add one, or check the pattern")
    return tuple(sorted(found))


def _split(pattern: str, *, key: Optional[str], scalars: Mapping[str, str]) -> Tuple[str, str]:
    """(glob before the marking placeholder, glob after it), text vars filled in."""
    try:
        template = parse_template(pattern)
    except TemplateError as exc:
        raise PatternError(f'glob "{pattern}": {exc.message}', hint=exc.hint) from None
    example = f'glob = "dir/{{{key or "name"}}}.txt"'
    parts: List[str] = [""]
    for seg in template:
        if isinstance(seg, str):
            parts[-1] += seg
        elif seg.group is not None or seg.item is not None:
            raise PatternError(f'glob "{pattern}" may not use {seg}', hint=example)
        elif key is not None and seg == Ref(key) or key is None and seg.name not in scalars:
            parts.append("")
        elif seg.name in scalars:
            parts[-1] += scalars[seg.name]
        else:
            raise PatternError(f'glob "{pattern}" may use only {{{key}}} and text vars, not {seg}', hint=example)
    if len(parts) != 2:
        what = f"{{{key}}}" if key is not None else "one placeholder that is not a text var"
        raise PatternError(f'glob "{pattern}" must use {what} exactly once, where the value is: '
                           f"uses {len(parts) - 1}", hint=example)
    return parts[0], parts[1]
