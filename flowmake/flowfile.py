"""Load Flowfile.toml into a validated, fully expanded `model.Flowfile`.

This is the only module that reads the Flowfile. It parses the TOML, checks
the type and value of every key, expands vars, matrix variants, list vars,
placeholders and input globs, and resolves `after` names, so that every later
module sees plain `TaskSpec`s holding concrete paths and commands. Loading is
two passes: the first expands every task's outputs, the second its inputs
(globs match other tasks' declared outputs, and a plain input is valid when
some task produces it). A user mistake does not stop the check: problems are
collected across all tasks, each with the file, the line (found in the raw
text, because tomllib gives no positions for values) and a hint, and raised
together as one `FlowfileErrors` for `flowmake check` to print. Only an
unreadable file or a TOML syntax error stops loading at once.

Templates are parsed once per task table and cached across tables, and the
filesystem is stat'ed and listed at most once per path, so that a Flowfile of
ten thousand tasks loads in a fraction of a second beyond TOML parsing.
"""

from __future__ import annotations

import bisect
import functools
import gc
import hashlib
import itertools
import json
import os
import posixpath
import re
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

from .durations import parse_duration
from .errors import FlowfileError, FlowfileErrors, did_you_mean
from .model import DEFAULT_SHELL, Flowfile, Hooks, TaskSpec

__all__ = [
    "FLOWFILE_NAME",
    "STATE_DIR",
    "find_flowfile",
    "glob_to_regex",
    "load",
    "load_with_problems",
    "parse_duration",
]

FLOWFILE_NAME = "Flowfile.toml"
STATE_DIR = ".flowmake"

TOP_KEYS = ("flow", "vars", "env", "tasks", "hooks")
FLOW_KEYS = ("name", "default", "jobs", "shell")
HOOK_KEYS = ("on_failure", "on_success", "webhook")
TASK_KEYS = (
    "run",
    "inputs",
    "outputs",
    "after",
    "help",
    "env",
    "env_inputs",
    "always",
    "matrix",
    "wait_for",
    "wait_timeout",
    "wait_poll",
    "retries",
    "retry_delay",
    "timeout",
    "secrets",
    "shell",
)

_TASK_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_MATRIX_VALUE_RE = re.compile(r"[A-Za-z0-9_.-]+")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # env names, vars, matrix keys, groups
_LIST_VAR_REF_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GLOB_CHARS_RE = re.compile(r"[*?\[]")
_DRIVE_RE = re.compile(r"[A-Za-z]:")
_FILES = ("inputs", "outputs")  # the placeholder names that only `run` may use

_TASK_NAME_HINT = "task names use letters, digits, '_', '-' and '.', and start with a letter or '_'"
_BRACE_HINT = "write {{ and }} for literal braces (a shell ${HOME} becomes ${{HOME}})"


# --------------------------------------------------------------------------
# Finding and reading the file


def find_flowfile(cwd: Path, explicit: Optional[Path] = None) -> Path:
    """The Flowfile to use: `explicit` (-f, relative to cwd) or the nearest Flowfile.toml upwards."""
    cwd = Path(os.path.abspath(cwd))
    if explicit is not None:
        path = Path(os.path.abspath(cwd / explicit))
        if path.is_dir():
            raise FlowfileError(
                f"{path} is a directory, not a Flowfile",
                hint=f"pass -f {path / FLOWFILE_NAME}, or -C {path} to run there",
            )
        if not path.is_file():
            raise FlowfileError(f"Flowfile {path} does not exist", hint="check the -f path")
        return path
    for directory in (cwd, *cwd.parents):
        candidate = directory / FLOWFILE_NAME
        if candidate.is_file():
            return candidate
    raise FlowfileError(
        f"no {FLOWFILE_NAME} in {cwd} or any parent",
        hint="run `flowmake init` to write a starter one, or pass -f PATH",
    )


_TOML_POSITION_RE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_TOML_HINTS = {
    "Invalid value": 'strings need quotes: key = "value"',
    "Cannot overwrite a value": "a key or table is defined twice",
    "Cannot declare": "a table is defined twice",
    "Expected '=' after a key": "each line in a table is `key = value`",
}


def _read_toml(path: Path) -> Tuple[Dict[str, Any], str, str]:
    """The parsed document, its text and the sha256 of its bytes; fatal errors raise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlowfileError(f"cannot read {path}: {exc.strerror or exc}", file=path) from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FlowfileError("the Flowfile is not UTF-8 text", file=path, line=line) from None
    try:
        return tomllib.loads(text), text, digest
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(exc, path=path, text=text) from None


def _syntax_error(exc: Exception, *, path: Path, text: str) -> FlowfileError:
    # Python 3.14+ has .msg/.lineno/.colno; 3.9-3.13 only put them in the text.
    message = str(getattr(exc, "msg", None) or exc)
    line: Optional[int] = getattr(exc, "lineno", None)
    col: Optional[int] = getattr(exc, "colno", None)
    found = _TOML_POSITION_RE.search(message)
    if found:
        message = message[: found.start()]
        if found.group(1):
            line, col = int(found.group(1)), int(found.group(2))
        elif line is None:
            line = text.count("\n") + 1
    hint = next((h for start, h in _TOML_HINTS.items() if message.startswith(start)), None)
    return FlowfileError(f"invalid TOML: {message}", file=path, line=line, col=col, hint=hint)


# --------------------------------------------------------------------------
# Where things are written: one scan of the raw text


_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_DOTTED_KEY = rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*"
# At line starts, a [table] header or a `key =`. When the text holds
# multi-line strings, triple quotes anywhere too: there are no keys inside.
_LINE_START = (
    rf"^[ \t]*(?:(?P<header>\[\[?)[ \t]*(?P<table>{_DOTTED_KEY})[ \t]*\]\]?[ \t]*(?:\#[^\n]*)?$"
    rf"|(?P<key>{_DOTTED_KEY})[ \t]*=)"
)
_SCAN_RE = re.compile(_LINE_START, re.MULTILINE)
_SCAN_QUOTES_RE = re.compile(r"(?P<quote>\"\"\"|''')|" + _LINE_START, re.MULTILINE)
_KEY_PART_RE = re.compile(_KEY_PART)


def _split_key(dotted: str) -> Tuple[str, ...]:
    if '"' not in dotted and "'" not in dotted:
        return tuple(part.strip() for part in dotted.split(".")) if "." in dotted else (dotted,)
    parts = []
    for match in _KEY_PART_RE.finditer(dotted):
        part = match.group(0)
        if part.startswith('"'):
            try:
                part = json.loads(part)
            except ValueError:  # a TOML-only escape such as \e: close enough for locating
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


class LineIndex:
    """Line and column of each table header and `key =` in the raw text.

    Keys are paths such as ("tasks", "extract", "inputs"). Built in one
    regex pass, so that finding the line of any error costs a dict lookup
    even for a Flowfile of thousands of tasks.
    """

    def __init__(self, text: str) -> None:
        self._where: Dict[Tuple[str, ...], Tuple[int, int]] = {}
        where = self._where
        text = text.replace("\r\n", "\n")
        quotes = '"""' in text or "'''" in text
        table: Tuple[str, ...] = ()
        open_quote: Optional[str] = None  # inside a multi-line string
        line, counted = 1, 0
        for match in (_SCAN_QUOTES_RE if quotes else _SCAN_RE).finditer(text):
            if quotes:
                quote = match.group("quote")
                if quote is not None:
                    if open_quote is None:
                        open_quote = quote
                    elif quote == open_quote:
                        open_quote = None
                    continue
                if open_quote is not None:
                    continue
            pos = match.start()
            line += text.count("\n", counted, pos)
            counted = pos
            key = match.group("key")
            if key is None:
                table = _split_key(match.group("table"))
                self._note(table, start=0, line=line, col=match.start("header") - pos + 1)
            elif key.isidentifier():  # the common bare key: nothing to split, one entry
                where.setdefault(table + (key,), (line, match.start("key") - pos + 1))
            else:
                self._note(table + _split_key(key), start=len(table), line=line, col=match.start("key") - pos + 1)

    def _note(self, path: Tuple[str, ...], *, start: int, line: int, col: int) -> None:
        # Dotted keys and headers define their parents too: `tasks.x.run = ...`
        # is where task x is, when it has no header of its own.
        for end in range(start + 1, len(path) + 1):
            self._where.setdefault(path[:end], (line, col))

    def find(self, path: Sequence[str]) -> Tuple[Optional[int], Optional[int]]:
        """Position of `path`, else of its nearest written parent, else (None, None)."""
        for end in range(len(path), 0, -1):
            hit = self._where.get(tuple(path[:end]))
            if hit is not None:
                return hit
        return None, None


class _Problems:
    """Every problem found, deduplicated (matrix variants repeat a table's mistakes)."""

    def __init__(self, path: Path, index: LineIndex) -> None:
        self.path = path
        self.index = index
        self._errors: List[FlowfileError] = []
        self._seen: Set[Tuple[str, Optional[int]]] = set()

    def add(self, message: str, *, at: Sequence[str] = (), hint: Optional[str] = None, col: bool = False) -> None:
        line, column = self.index.find(at)
        self.add_error(FlowfileError(message, file=self.path, line=line, col=column if col else None, hint=hint))

    def add_error(self, error: FlowfileError) -> None:
        key = (error.message, error.location.line)
        if key not in self._seen:
            self._seen.add(key)
            self._errors.append(error)

    def line(self, at: Sequence[str]) -> Optional[int]:
        return self.index.find(at)[0]

    def in_file_order(self) -> List[FlowfileError]:
        # File order reads best; errors with no line go last.
        return sorted(self._errors, key=lambda e: (e.location.line is None, e.location.line or 0))


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    names = {int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return next((n for t, n in names.items() if isinstance(value, t)), "date/time")


def _describe(value: object) -> str:
    """A type description that names the offending item of an array."""
    if isinstance(value, list):
        bad = next((v for v in value if not isinstance(v, str)), None)
        if bad is not None:
            kind = _toml_type(bad)
            return f"an array holding {'an' if kind[0] in 'aei' else 'a'} {kind}"
    return _toml_type(value)


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _unique(paths: Sequence[str]) -> Tuple[str, ...]:
    """Declaration order, the first of any duplicate kept."""
    return tuple(paths) if len(paths) < 2 else tuple(dict.fromkeys(paths))


def _check_keys(
    table: Mapping[str, Any], valid: Sequence[str], *, problems: _Problems, at: Tuple[str, ...], label: str
) -> None:
    for key in table:
        if key not in valid:
            hint = did_you_mean(key, valid) or f"valid keys: {', '.join(sorted(valid))}"
            problems.add(f"{label}unknown key `{key}`", at=at + (key,), hint=hint, col=True)


# --------------------------------------------------------------------------
# Placeholders


class _Ref(NamedTuple):
    """One `{...}` placeholder: a name, maybe a group (`.bam`) and an index (`[0]`).

    A NamedTuple rather than a dataclass: templates are cache keys, and tuple
    hashing stays in C.
    """

    name: str
    group: Optional[str] = None
    item: Optional[int] = None  # `[N]`; not `index`, which tuple already has

    def __str__(self) -> str:
        group = f".{self.group}" if self.group is not None else ""
        index = f"[{self.item}]" if self.item is not None else ""
        return "{" + self.name + group + index + "}"


_Segment = Union[str, _Ref]
_Template = Tuple[_Segment, ...]
# A template with the list vars it uses, found once per task table.
_Entry = Tuple[str, _Template, Tuple[str, ...]]
# `run` as literal text and words holding placeholders (a word is what a list var repeats).
_RunPiece = Union[str, Tuple[_Template, Tuple[str, ...]]]


class _TemplateError(Exception):
    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


_BRACE_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_REF_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?(?:\[(\d+)\])?")
_WHITESPACE_RE = re.compile(r"(\s+)")


@functools.lru_cache(maxsize=65536)
def _parse_template(text: str) -> _Template:
    """Literal text and placeholders; cached because tables repeat the same entries."""
    if "{" not in text and "}" not in text:
        return (text,) if text else ()
    segments: List[_Segment] = []
    literal: List[str] = []
    pos = 0
    for match in _BRACE_RE.finditer(text):
        literal.append(text[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        inner = match.group(1)
        ref = _REF_RE.fullmatch(inner) if inner is not None else None
        if ref is None:
            if inner is None:
                raise _TemplateError(f"unmatched `{token}`", hint=_BRACE_HINT)
            raise _TemplateError(
                f"`{token}` is not a placeholder",
                hint="placeholders look like {name}, {inputs}, {inputs[0]} or {inputs.GROUP}; " + _BRACE_HINT,
            )
        if any(literal):
            segments.append("".join(literal))
        literal = []
        index = int(ref.group(3)) if ref.group(3) is not None else None
        segments.append(_Ref(ref.group(1), ref.group(2), index))
    literal.append(text[pos:])
    if any(literal):
        segments.append("".join(literal))
    return tuple(segments)


@functools.lru_cache(maxsize=65536)
def _list_refs(template: _Template, lists: FrozenSet[str]) -> Tuple[str, ...]:
    """The list vars a template uses, in order of first use."""
    return tuple(dict.fromkeys(s.name for s in template if isinstance(s, _Ref) and s.name in lists))


@functools.lru_cache(maxsize=4096)
def _run_words(text: str) -> Tuple[Union[str, _Template], ...]:
    """`run` split into words (templates) and the whitespace between them (str)."""
    words: List[Union[str, _Template]] = []
    current: List[_Segment] = []
    for segment in _parse_template(text):
        if isinstance(segment, _Ref):
            current.append(segment)
            continue
        for i, piece in enumerate(_WHITESPACE_RE.split(segment)):
            if i % 2 == 1:
                if current:
                    words.append(tuple(current))
                    current = []
                words.append(piece)
            elif piece:
                current.append(piece)
    if current:
        words.append(tuple(current))
    return tuple(words)


@dataclass(frozen=True)
class _Names:
    """The placeholder names one task table may use."""

    scalars: FrozenSet[str]  # text vars and matrix keys: one value per variant
    lists: FrozenSet[str]  # list vars

    def known(self, *, in_run: bool) -> Tuple[str, ...]:
        return tuple(sorted(set(self.scalars) | set(self.lists) | (set(_FILES) if in_run else set())))


@dataclass(frozen=True)
class _Groups:
    """Group names of `inputs` and `outputs`; None when that key is a plain list."""

    inputs: Optional[Tuple[str, ...]] = None
    outputs: Optional[Tuple[str, ...]] = None


def _check_refs(template: _Template, *, names: _Names, key: str, groups: _Groups = _Groups()) -> None:
    """Raise _TemplateError for the first placeholder `key` may not use."""
    in_run = key == "run"
    for ref in template:
        if ref.__class__ is str:
            continue
        assert isinstance(ref, _Ref)
        if ref.name in _FILES:
            if not in_run:
                raise _TemplateError(
                    f"{ref} cannot be used in `{key}`", hint="only `run` can name the task's inputs and outputs"
                )
            _check_group(ref, groups.inputs if ref.name == "inputs" else groups.outputs)
        elif ref.name in names.scalars or ref.name in names.lists:
            if ref.group is not None or ref.item is not None:
                raise _TemplateError(f"{ref}: only {{inputs}} and {{outputs}} take [N] or .GROUP")
        else:
            known = names.known(in_run=in_run)
            raise _TemplateError(
                f"unknown placeholder {ref} in `{key}` (known: {', '.join(known) or '(none)'})",
                hint=did_you_mean(ref.name, known) or _BRACE_HINT,
            )


def _check_group(ref: _Ref, groups: Optional[Tuple[str, ...]]) -> None:
    if ref.group is None:
        return
    if groups is None:
        raise _TemplateError(
            f"`run` uses {ref} but `{ref.name}` is a plain list, not a table of named lists",
            hint=f'write {ref.name} = {{ {ref.group} = ["..."] }}',
        )
    if ref.group not in groups:
        raise _TemplateError(
            f"`run` uses {ref} but `{ref.name}` has no group `{ref.group}` (groups: {', '.join(groups) or '(none)'})",
            hint=did_you_mean(ref.group, groups),
        )


def _expand_entry(entry: _Entry, *, values: Mapping[str, str], lists: Mapping[str, Tuple[str, ...]]) -> List[str]:
    """One string per combination of the entry's list vars (their product, in order)."""
    _, template, list_names = entry
    if not list_names:
        if len(template) == 1 and template[0].__class__ is str:
            return [template[0]]
        return ["".join(s if s.__class__ is str else values[s.name] for s in template)]  # type: ignore[union-attr]
    out = []
    for combo in itertools.product(*(lists[n] for n in list_names)):
        chosen = dict(zip(list_names, combo))
        out.append(
            "".join(
                s if isinstance(s, str) else chosen[s.name] if s.name in chosen else values[s.name] for s in template
            )
        )
    return out


@dataclass(frozen=True)
class _Files:
    """A variant's final inputs and outputs, for {inputs...} and {outputs...} in `run`."""

    inputs: Tuple[str, ...]
    input_groups: Mapping[str, Tuple[str, ...]]
    outputs: Tuple[str, ...]
    output_groups: Mapping[str, Tuple[str, ...]]

    def text(self, ref: _Ref) -> str:
        if ref.name == "inputs":
            paths = self.inputs if ref.group is None else self.input_groups[ref.group]
        else:
            paths = self.outputs if ref.group is None else self.output_groups[ref.group]
        if ref.item is None:
            return " ".join(shlex.quote(p) for p in paths)
        if ref.item >= len(paths):
            count = f"is only 1 {ref.name[:-1]}" if len(paths) == 1 else f"are {len(paths) or 'no'} {ref.name}"
            where = "" if ref.group is None else f" in group `{ref.group}`"
            raise _TemplateError(f"`run` uses {ref} but there {count}{where}")
        return shlex.quote(paths[ref.item])


def _fill_word(template: _Template, *, values: Mapping[str, str], files: _Files) -> str:
    parts = []
    for seg in template:
        if isinstance(seg, str):
            parts.append(seg)
        elif seg.name in _FILES:
            parts.append(files.text(seg))
        else:
            parts.append(values[seg.name])
    return "".join(parts)


def _render_run(
    pieces: Sequence[_RunPiece], *, values: Mapping[str, str], lists: Mapping[str, Tuple[str, ...]], files: _Files
) -> str:
    """Expand `run`: var values raw, file lists shell-quoted, list vars as brace expansion."""
    out: List[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        template, list_names = piece
        if not list_names:
            out.append(_fill_word(template, values=values, files=files))
            continue
        expansions = []
        for combo in itertools.product(*(lists[n] for n in list_names)):
            chosen = {**values, **dict(zip(list_names, combo))}
            expansions.append(_fill_word(template, values=chosen, files=files))
        out.append(" ".join(expansions))
    return "".join(out)


# --------------------------------------------------------------------------
# Paths and globs


class _PathError(Exception):
    pass


@functools.lru_cache(maxsize=65536)
def _clean_path(raw: str) -> str:
    """The normalized project-relative path, or _PathError saying what is wrong."""
    if not raw.strip():
        raise _PathError("is empty")
    if "\\" in raw:
        raise _PathError("uses '\\'; write paths with '/'")
    if raw.startswith("/") or _DRIVE_RE.match(raw):
        raise _PathError("is absolute")
    if raw.startswith("~"):
        raise _PathError("starts with '~', which is not expanded")
    norm = posixpath.normpath(raw)
    if norm == ".." or norm.startswith("../"):
        raise _PathError("escapes the project root")
    if norm == ".":
        raise _PathError("is the project root itself")
    if norm == STATE_DIR or norm.startswith(STATE_DIR + "/"):
        raise _PathError(f"is inside {STATE_DIR}/, which belongs to flowmake")
    return norm + "/" if raw.endswith("/") else norm


def _is_glob(path: str) -> bool:
    return _GLOB_CHARS_RE.search(path) is not None


@functools.lru_cache(maxsize=4096)
def glob_to_regex(pattern: str) -> "re.Pattern[str]":
    """Compile a path glob: `*`, `?` and `[..]` stay within one directory, `**` spans any."""
    out: List[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            at_segment_start = i == 0 or pattern[i - 1] == "/"
            if at_segment_start and pattern.startswith("/", i + 2):
                out.append("(?:.*/)?")  # `a/**/b` also matches `a/b`
                i += 3
            else:
                out.append(".*")
                i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and _class_end(pattern, i) > 0:
            end = _class_end(pattern, i)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^/" + body[1:] + "]" if body[0] in "!^" else "(?!/)[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _class_end(pattern: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start`, or -1 (then `[` is literal)."""
    j = start + 1
    if j < len(pattern) and pattern[j] in "!^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1  # a leading `]` is a member, as in fnmatch
    return pattern.find("]", j)


def _literal_dir(pattern: str) -> str:
    """The directory part before the first glob character: where matches can be."""
    found = _GLOB_CHARS_RE.search(pattern)
    head = pattern[: found.start()] if found else pattern
    return head[: head.rfind("/") + 1]


class _Disk:
    """The project tree as the loader sees it: stats, listings and glob matches, each done once."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._kinds: Dict[str, Optional[str]] = {}
        self._listings: Dict[Tuple[str, bool], Tuple[List[str], List[str]]] = {}
        self._globs: Dict[str, Tuple[str, ...]] = {}

    def kind(self, rel: str) -> Optional[str]:
        """ "dir", "file" or None (missing) for a project-relative path."""
        if rel not in self._kinds:
            try:
                mode = os.stat(os.path.join(self.root, rel)).st_mode
                self._kinds[rel] = "dir" if stat.S_ISDIR(mode) else "file"
            except (OSError, ValueError):
                self._kinds[rel] = None
        return self._kinds[rel]

    def glob(self, pattern: str) -> Tuple[str, ...]:
        """Existing files matching `pattern` (never under .git/ or .flowmake/), sorted."""
        hit = self._globs.get(pattern)
        if hit is None:
            regex = glob_to_regex(pattern)
            base = _literal_dir(pattern)
            # Without `**` a match lies a fixed number of directories below base,
            # so the walk stops there; with `**` it does not follow directory
            # symlinks, which could loop.
            depth = None if "**" in pattern else pattern.count("/") - base.count("/")
            hit = tuple(sorted(p for p in self._walk(base, depth) if regex.fullmatch(p)))
            self._globs[pattern] = hit
        return hit

    def _walk(self, base: str, depth: Optional[int]) -> Iterator[str]:
        files, dirs = self._list(base, follow=depth is not None)
        yield from files
        if depth is None or depth > 0:
            for sub in dirs:
                yield from self._walk(sub, None if depth is None else depth - 1)

    def _list(self, base: str, *, follow: bool) -> Tuple[List[str], List[str]]:
        key = (base, follow)
        hit = self._listings.get(key)
        if hit is None:
            files: List[str] = []
            dirs: List[str] = []
            try:
                with os.scandir(os.path.join(self.root, base)) as entries:
                    for entry in entries:
                        if entry.name == ".git" or (not base and entry.name == STATE_DIR):
                            continue
                        try:
                            if entry.is_dir(follow_symlinks=follow):
                                dirs.append(f"{base}{entry.name}/")
                            elif entry.is_file():
                                files.append(base + entry.name)
                        except OSError:
                            continue
            except OSError:  # missing or unreadable directory: nothing matches there
                pass
            hit = self._listings[key] = (files, dirs)
        return hit


# --------------------------------------------------------------------------
# Vars and flow-level tables


@dataclass(frozen=True)
class _Vars:
    scalars: Mapping[str, str]
    lists: Mapping[str, Tuple[str, ...]]


def _read_vars(raw: object, *, problems: _Problems) -> _Vars:
    """Text and list vars; a var may use text vars ({raw}/x), resolved in any order."""
    if not isinstance(raw, dict):
        if raw is not None:
            problems.add(f"[vars] must be a table, got {_toml_type(raw)}", at=("vars",))
        return _Vars({}, {})
    texts: Dict[str, str] = {}
    lists: Dict[str, List[str]] = {}
    for name, value in raw.items():
        if not _IDENT_RE.fullmatch(name) or name in _FILES:
            why = "is reserved" if name in _FILES else "must be letters, digits and '_', not starting with a digit"
            problems.add(f"var name `{name}` {why}", at=("vars", name), col=True)
        elif isinstance(value, str):
            texts[name] = value
        elif _is_str_list(value):
            lists[name] = value
        else:
            problems.add(
                f"var `{name}` must be a string or a list of strings, got {_describe(value)}",
                at=("vars", name),
                hint=f'write {name} = "..." or {name} = ["...", "..."]',
            )
    resolver = _VarResolver(texts, lists, problems=problems)
    scalars = {name: resolver.text(name, ()) for name in texts}
    resolved_lists = {
        name: tuple(resolver.substitute(name, item, (name,)) for item in items) for name, items in lists.items()
    }
    return _Vars(scalars, resolved_lists)


class _VarResolver:
    """Substitutes text vars inside vars, in any declaration order, catching cycles."""

    def __init__(self, texts: Mapping[str, str], lists: Mapping[str, Sequence[str]], *, problems: _Problems) -> None:
        self.texts = texts
        self.lists = lists
        self.problems = problems
        self.done: Dict[str, str] = {}

    def text(self, name: str, chain: Tuple[str, ...]) -> str:
        if name in self.done:
            return self.done[name]
        if name in chain:
            cycle = " -> ".join(chain[chain.index(name) :] + (name,))
            self.problems.add(f"var `{name}` refers to itself: {cycle}", at=("vars", name))
            return ""
        value = self.substitute(name, self.texts[name], chain + (name,))
        self.done[name] = value
        return value

    def substitute(self, name: str, text: str, chain: Tuple[str, ...]) -> str:
        try:
            template = _parse_template(text)
        except _TemplateError as exc:
            self.problems.add(f"var `{name}`: {exc.message}", at=("vars", name), hint=exc.hint)
            return text
        parts = []
        for seg in template:
            if isinstance(seg, str):
                parts.append(seg)
            elif seg.name in self.texts and seg.group is None and seg.item is None:
                parts.append(self.text(seg.name, chain))
            elif seg.name in self.lists:
                self.problems.add(
                    f"var `{name}` uses list var {seg}; list vars expand only in tasks", at=("vars", name)
                )
            else:
                known = ", ".join(sorted(self.texts)) or "(none)"
                self.problems.add(
                    f"var `{name}` uses unknown placeholder {seg} (known text vars: {known})",
                    at=("vars", name),
                    hint=did_you_mean(seg.name, self.texts) or _BRACE_HINT,
                )
        return "".join(parts)


def _read_env(raw: object, *, problems: _Problems, at: Tuple[str, ...], label: str) -> Dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(
            f"{label}`env` must be a table of strings, got {_toml_type(raw)}",
            at=at,
            hint='write env = { NAME = "value" }',
        )
        return {}
    env: Dict[str, str] = {}
    for name, value in raw.items():
        if not _IDENT_RE.fullmatch(name):
            problems.add(f"{label}env name `{name}` is not a valid variable name", at=at + (name,), col=True)
        elif not isinstance(value, str):
            shown = json.dumps(value) if isinstance(value, (int, float, bool)) else "..."
            problems.add(
                f"{label}env `{name}` must be a string, got {_toml_type(value)}",
                at=at + (name,),
                hint=f'quote it: {name} = "{shown}"',
            )
        else:
            env[name] = value
    return env


def _read_shell(raw: object, *, problems: _Problems, at: Tuple[str, ...], label: str) -> Optional[Tuple[str, ...]]:
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.add(
            f"{label}key `shell` must be a string, got {_toml_type(raw)}",
            at=at,
            hint='write shell = "bash -euo pipefail -c"',
        )
        return None
    try:
        words = tuple(shlex.split(raw))
    except ValueError as exc:
        problems.add(f"{label}`shell` cannot be split into words: {exc}", at=at)
        return None
    if not words:
        problems.add(f"{label}`shell` is empty", at=at, hint='leave it out for the default "sh -c"')
        return None
    return words


@dataclass(frozen=True)
class _Flow:
    name: Optional[str] = None
    default: Optional[Tuple[str, ...]] = None
    jobs: Optional[int] = None
    shell: Tuple[str, ...] = DEFAULT_SHELL


def _read_flow(raw: object, *, problems: _Problems) -> _Flow:
    if raw is None:
        return _Flow()
    if not isinstance(raw, dict):
        problems.add(f"[flow] must be a table, got {_toml_type(raw)}", at=("flow",))
        return _Flow()
    _check_keys(raw, FLOW_KEYS, problems=problems, at=("flow",), label="[flow]: ")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        problems.add(f"[flow]: key `name` must be a string, got {_toml_type(name)}", at=("flow", "name"))
        name = None
    default = raw.get("default")
    if isinstance(default, str):
        default = [default]
    if default is not None and not _is_str_list(default):
        problems.add(
            f"[flow]: key `default` must be a list of task names, got {_describe(default)}",
            at=("flow", "default"),
            hint='write default = ["package"]',
        )
        default = None
    jobs = raw.get("jobs")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        problems.add(f"[flow]: key `jobs` must be an integer of at least 1, got {jobs!r}", at=("flow", "jobs"))
        jobs = None
    shell = _read_shell(raw.get("shell"), problems=problems, at=("flow", "shell"), label="[flow]: ")
    return _Flow(name, tuple(default) if default is not None else None, jobs, shell or DEFAULT_SHELL)


def _read_hooks(raw: object, *, problems: _Problems) -> Hooks:
    if raw is None:
        return Hooks()
    if not isinstance(raw, dict):
        problems.add(f"[hooks] must be a table, got {_toml_type(raw)}", at=("hooks",))
        return Hooks()
    _check_keys(raw, HOOK_KEYS, problems=problems, at=("hooks",), label="[hooks]: ")
    values: Dict[str, Optional[str]] = {}
    for key in HOOK_KEYS:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            problems.add(f"[hooks]: key `{key}` must be a string, got {_toml_type(value)}", at=("hooks", key))
            value = None
        values[key] = value
    webhook = values["webhook"]
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        problems.add(
            f"[hooks]: webhook `{webhook}` is not an http:// or https:// URL",
            at=("hooks", "webhook"),
            hint='write webhook = "https://hooks.example.org/..."',
        )
        values["webhook"] = None
    return Hooks(on_failure=values["on_failure"], on_success=values["on_success"], webhook=values["webhook"])


# --------------------------------------------------------------------------
# Pass 1: each task table, then its variants up to their outputs


@dataclass
class _Context:
    """What every task table is read against."""

    root: Path
    problems: _Problems
    vars: _Vars
    flow_env: Mapping[str, str]
    flow_shell: Tuple[str, ...]

    def __post_init__(self) -> None:
        self.flow_env_items = tuple(sorted(self.flow_env.items()))
        self.var_lists = frozenset(self.vars.lists)
        self._names: Dict[FrozenSet[str], _Names] = {}

    def names(self, matrix_keys: FrozenSet[str]) -> _Names:
        """Names for a table with these matrix keys (shared between tables alike)."""
        hit = self._names.get(matrix_keys)
        if hit is None:
            hit = _Names(frozenset(self.vars.scalars) | matrix_keys, self.var_lists - matrix_keys)
            self._names[matrix_keys] = hit
        return hit


_EntryGroups = Dict[str, List[_Entry]]  # group ("" for a plain list) -> its entries


@dataclass
class _Table:
    """One [tasks.NAME] table, checked, with templates parsed once for all its variants."""

    name: str
    matrix: List[Tuple[str, Tuple[str, ...]]]
    inputs: _EntryGroups
    outputs: _EntryGroups
    wait_for: List[_Entry]
    after: List[_Entry]
    run: Optional[Tuple[_RunPiece, ...]]
    common: Dict[str, Any]  # TaskSpec fields shared by every variant


@dataclass
class _Draft:
    """A task variant between the passes: outputs final, inputs not yet globbed."""

    name: str
    table: _Table
    matrix: Tuple[Tuple[str, str], ...]
    values: Mapping[str, str]
    outputs: Tuple[str, ...] = ()
    output_groups: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    inputs: Dict[str, List[str]] = field(default_factory=dict)
    wait_for: Tuple[str, ...] = ()
    after: List[str] = field(default_factory=list)


class _TaskReader:
    """Reads one task table's keys, reporting problems against the task and key."""

    def __init__(self, name: str, table: Mapping[str, Any], *, ctx: _Context) -> None:
        self.name = name
        self.table = table
        self.ctx = ctx
        self.problems = ctx.problems

    def at(self, key: str) -> Tuple[str, ...]:
        return ("tasks", self.name, key)

    def error(self, key: str, message: str, *, hint: Optional[str] = None) -> None:
        self.problems.add(f"task {self.name}: {message}", at=self.at(key), hint=hint)

    def typed(
        self, key: str, ok: Callable[[Any], bool], expected: str, *, default: Any = None, hint: Optional[str] = None
    ) -> Any:
        value = self.table.get(key)
        if value is None:
            return default
        if not ok(value):
            self.error(key, f"key `{key}` must be {expected}, got {_describe(value)}", hint=hint)
            return default
        return value

    def names_list(self, key: str) -> Tuple[str, ...]:
        values = self.typed(key, _is_str_list, "a list of variable names", default=[], hint=f'write {key} = ["NAME"]')
        for value in values:
            if not _IDENT_RE.fullmatch(value):
                self.error(key, f"`{key}` entry `{value}` is not a valid environment variable name")
        return tuple(dict.fromkeys(v for v in values if _IDENT_RE.fullmatch(v)))

    def duration(self, key: str, *, positive: bool) -> Optional[float]:
        line = self.problems.line(self.at(key))
        try:
            seconds = parse_duration(
                self.table[key], file=self.problems.path, line=line, what=f"task {self.name}: `{key}`"
            )
        except FlowfileError as exc:
            self.problems.add_error(exc)
            return None
        if positive and seconds <= 0:
            self.error(key, f"`{key}` must be more than zero")
            return None
        return seconds


def _read_table(name: str, raw: object, *, ctx: _Context) -> Optional[_Table]:
    """Check one task table; None when it cannot be expanded (bad name, shape or matrix)."""
    problems = ctx.problems
    if not _TASK_NAME_RE.fullmatch(name):
        problems.add(f"task name `{name}` is not valid", at=("tasks", name), hint=_TASK_NAME_HINT)
        return None
    if not isinstance(raw, dict):
        problems.add(
            f"task {name} must be a table, got {_toml_type(raw)}",
            at=("tasks", name),
            hint=f"write [tasks.{name}] and its keys below it",
        )
        return None
    _check_keys(raw, TASK_KEYS, problems=problems, at=("tasks", name), label=f"task {name}: ")
    reader = _TaskReader(name, raw, ctx=ctx)
    matrix = _read_matrix(reader)
    # Even when the matrix is broken its keys are known names, so the rest of
    # the table is still checked without "unknown placeholder" noise.
    raw_matrix = raw.get("matrix")
    names = ctx.names(frozenset(raw_matrix) if isinstance(raw_matrix, dict) else frozenset())
    inputs, input_groups = _read_entries(reader, "inputs")
    outputs, output_groups = _read_entries(reader, "outputs")
    wait_for = reader.typed("wait_for", _is_str_list, "a list of paths", default=[], hint='write wait_for = ["path"]')
    after = reader.typed("after", _is_str_list, "a list of task names", default=[], hint='write after = ["task"]')
    table = _Table(
        name=name,
        matrix=matrix or [],
        inputs={g: _parse_entries(reader, "inputs", e, names=names) for g, e in inputs.items()},
        outputs={g: _parse_entries(reader, "outputs", e, names=names) for g, e in outputs.items()},
        wait_for=_parse_entries(reader, "wait_for", wait_for, names=names),
        after=_parse_entries(reader, "after", after, names=names),
        run=_read_run(
            reader,
            names=names,
            groups=_Groups(input_groups, output_groups),
            grouping=bool(after),
            producing=any(outputs.values()),
        ),
        common=_read_common(reader),
    )
    return table if matrix is not None else None


def _read_matrix(reader: _TaskReader) -> Optional[List[Tuple[str, Tuple[str, ...]]]]:
    raw = reader.table.get("matrix")
    if raw is None:
        return []
    if not isinstance(raw, dict) or not raw:
        got = "an empty table" if raw == {} else _toml_type(raw)
        reader.error(
            "matrix", f"`matrix` must be a table of lists, got {got}", hint='write matrix = { study = ["S01", "S02"] }'
        )
        return None
    matrix = [(key, _matrix_values(reader, key, spec)) for key, spec in raw.items()]
    if any(values is None for _, values in matrix):
        return None
    return matrix  # type: ignore[return-value]


def _matrix_values(reader: _TaskReader, key: str, spec: object) -> Optional[Tuple[str, ...]]:
    vars = reader.ctx.vars
    if not _IDENT_RE.fullmatch(key) or key in _FILES:
        reader.error(
            "matrix", f"matrix key `{key}` is not a usable placeholder name", hint="use letters, digits and '_'"
        )
        return None
    if key in vars.scalars or key in vars.lists:
        reader.error(
            "matrix", f"matrix key `{key}` shadows the var of the same name", hint="rename the matrix key or the var"
        )
        return None
    if isinstance(spec, str):
        values = _matrix_list_var(reader, key, spec)
        if values is None:
            return None
        empty = f"matrix `{key}` uses list var `{spec[1:-1]}`, which is empty"
    elif _is_str_list(spec):
        values = tuple(spec)  # type: ignore[arg-type]
        empty = f"matrix `{key}` is an empty list"
    else:
        reader.error("matrix", f"matrix `{key}` must be a list of strings, got {_describe(spec)}")
        return None
    if not values:
        reader.error("matrix", empty, hint="a matrix key needs at least one value")
        return None
    bad = [v for v in values if not _MATRIX_VALUE_RE.fullmatch(v)]
    if bad:
        reader.error(
            "matrix",
            f"matrix `{key}` value {json.dumps(bad[0])} may only use letters, digits, '_', '.' and '-'",
            hint="matrix values become part of task names such as extract:S01",
        )
        return None
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        reader.error("matrix", f"matrix `{key}` lists `{repeated[0]}` twice")
        return None
    return values


def _matrix_list_var(reader: _TaskReader, key: str, spec: str) -> Optional[Tuple[str, ...]]:
    """The values of `matrix = { key = "{LISTVAR}" }`."""
    vars = reader.ctx.vars
    ref = _LIST_VAR_REF_RE.fullmatch(spec)
    if ref is None:
        reader.error("matrix", f'matrix `{key}` must be a list of values or "{{LISTVAR}}", got "{spec}"')
        return None
    var = ref.group(1)
    if var in vars.scalars:
        reader.error(
            "matrix",
            f"matrix `{key}` uses {{{var}}}, which is a text var, not a list var",
            hint=f'write {var} = ["...", "..."] in [vars]',
        )
        return None
    if var not in vars.lists:
        known = ", ".join(sorted(vars.lists)) or "(none)"
        reader.error(
            "matrix",
            f"matrix `{key}` uses unknown list var {{{var}}} (list vars: {known})",
            hint=did_you_mean(var, vars.lists),
        )
        return None
    return tuple(vars.lists[var])


def _read_entries(reader: _TaskReader, key: str) -> Tuple[Dict[str, List[str]], Optional[Tuple[str, ...]]]:
    """inputs/outputs as group -> entries ("" for a plain list), and the group names of a table."""
    raw = reader.table.get(key)
    if raw is None:
        return {}, None
    if _is_str_list(raw):
        return {"": raw}, None
    if isinstance(raw, dict) and all(_is_str_list(v) for v in raw.values()):
        groups: Dict[str, List[str]] = {}
        for group, entries in raw.items():
            if _IDENT_RE.fullmatch(group):
                groups[group] = entries
            else:
                reader.error(key, f"`{key}` group name `{group}` must be letters, digits and '_'")
        return groups, tuple(groups)
    got = _describe(raw)
    if isinstance(raw, dict):
        got = next(f"a table whose `{g}` is {_describe(v)}" for g, v in raw.items() if not _is_str_list(v))
    reader.error(
        key,
        f"key `{key}` must be a list of strings or a table of lists, got {got}",
        hint=f'write {key} = ["path", ...]',
    )
    return {}, None


def _parse_entries(reader: _TaskReader, key: str, texts: Sequence[str], *, names: _Names) -> List[_Entry]:
    """Each entry's template and list vars; an entry with a bad placeholder is reported and dropped."""
    entries: List[_Entry] = []
    for text in texts:
        try:
            entries.append(_compile_entry(text, names, key))
        except _TemplateError as exc:
            reader.error(key, f'`{key}` entry "{text}": {exc.message}', hint=exc.hint)
    return entries


@functools.lru_cache(maxsize=65536)
def _compile_entry(text: str, names: _Names, key: str) -> _Entry:
    if "{" not in text and "}" not in text:
        return text, (text,), ()
    template = _parse_template(text)
    _check_refs(template, names=names, key=key)
    return text, template, _list_refs(template, names.lists)


def _read_run(
    reader: _TaskReader, *, names: _Names, groups: _Groups, grouping: bool, producing: bool
) -> Optional[Tuple[_RunPiece, ...]]:
    """`run` ready to render: literal runs of text merged, each placeholder word with its list vars."""
    run = reader.typed("run", lambda v: isinstance(v, str), "a string")
    if run is None:
        if "run" not in reader.table:
            if producing:
                reader.error("run", "declares outputs but has no `run` to produce them")
            elif not grouping:
                reader.error(
                    "run", "has no `run`", hint='add run = "..." (or after = [...] for a task that only groups others)'
                )
        return None
    try:
        return _compile_run(run, names, groups)
    except _TemplateError as exc:
        reader.error("run", exc.message, hint=exc.hint)
        return None


@functools.lru_cache(maxsize=4096)
def _compile_run(run: str, names: _Names, groups: _Groups) -> Tuple[_RunPiece, ...]:
    """Checked once per distinct command text: generated Flowfiles repeat them."""
    pieces: List[_RunPiece] = []
    literal: List[str] = []
    for word in _run_words(run):
        if isinstance(word, str) or all(isinstance(s, str) for s in word):
            literal.append(word if isinstance(word, str) else "".join(word))  # type: ignore[arg-type]
            continue
        _check_refs(word, names=names, key="run", groups=groups)
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append((word, _list_refs(word, names.lists)))
    if literal:
        pieces.append("".join(literal))
    return tuple(pieces)


def _read_common(reader: _TaskReader) -> Dict[str, Any]:
    """The TaskSpec fields that do not depend on the matrix variant (absent keys keep the model's defaults)."""
    ctx = reader.ctx
    common: Dict[str, Any] = {
        "shell": ctx.flow_shell,
        "env": ctx.flow_env_items,
        "line": reader.problems.line(("tasks", reader.name)),
    }
    for key in reader.table:
        read = _COMMON_READERS.get(key)
        if read is not None:
            value = read(reader)
            if value is not None:
                common[key] = value
    return common


def _read_task_env(reader: _TaskReader) -> Tuple[Tuple[str, str], ...]:
    env = dict(reader.ctx.flow_env)
    env.update(
        _read_env(reader.table["env"], problems=reader.problems, at=reader.at("env"), label=f"task {reader.name}: ")
    )
    return tuple(sorted(env.items()))


def _read_retries(reader: _TaskReader) -> Optional[int]:
    retries: Optional[int] = reader.typed(
        "retries", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"
    )
    if retries is not None and retries < 0:
        reader.error(
            "retries", f"`retries` must be 0 or more, got {retries}", hint="retries = 2 re-runs a failed attempt twice"
        )
        return None
    return retries


_COMMON_READERS: Dict[str, Callable[[_TaskReader], Any]] = {
    "help": lambda r: r.typed("help", lambda v: isinstance(v, str), "a string"),
    "env": _read_task_env,
    "env_inputs": lambda r: r.names_list("env_inputs"),
    "secrets": lambda r: r.names_list("secrets"),
    "always": lambda r: r.typed("always", lambda v: isinstance(v, bool), "true or false"),
    "retries": _read_retries,
    "retry_delay": lambda r: r.duration("retry_delay", positive=False),
    "timeout": lambda r: r.duration("timeout", positive=True),
    "wait_timeout": lambda r: r.duration("wait_timeout", positive=True),
    "wait_poll": lambda r: r.duration("wait_poll", positive=True),
    "shell": lambda r: _read_shell(r.table["shell"], problems=r.problems, at=r.at("shell"), label=f"task {r.name}: "),
}


def _expand_table(table: _Table, *, ctx: _Context) -> List[_Draft]:
    """One draft per matrix combination, in product order, with outputs expanded."""
    keys = [k for k, _ in table.matrix]
    drafts = []
    for combo in itertools.product(*(values for _, values in table.matrix)):
        if keys:
            values: Mapping[str, str] = {**ctx.vars.scalars, **dict(zip(keys, combo))}
            name = ":".join((table.name,) + combo)
        else:
            values, name = ctx.vars.scalars, table.name
        draft = _Draft(name=name, table=table, matrix=tuple(zip(keys, combo)), values=values)
        output_groups = {
            g: _unique(_expand_paths(draft, "outputs", entries, ctx=ctx)) for g, entries in table.outputs.items()
        }
        draft.outputs = _merge(output_groups.values())
        draft.output_groups = {g: v for g, v in output_groups.items() if g}
        draft.inputs = {g: _expand_paths(draft, "inputs", entries, ctx=ctx) for g, entries in table.inputs.items()}
        if table.wait_for:
            draft.wait_for = tuple(_expand_paths(draft, "wait_for", table.wait_for, ctx=ctx))
        for entry in table.after:
            draft.after.extend(_expand_entry(entry, values=values, lists=ctx.vars.lists))
        drafts.append(draft)
    return drafts


def _expand_paths(draft: _Draft, key: str, entries: Sequence[_Entry], *, ctx: _Context) -> List[str]:
    """Placeholders and list vars expanded, each path checked and normalized."""
    out: List[str] = []
    for entry in entries:
        for path in _expand_entry(entry, values=draft.values, lists=ctx.vars.lists):
            try:
                clean = _clean_path(path)
            except _PathError as exc:
                _path_problem(
                    draft, key, path, f"{exc}", hint=f"paths are relative to the project root {ctx.root}", ctx=ctx
                )
                continue
            if key != "inputs" and _is_glob(clean):
                _path_problem(
                    draft,
                    key,
                    path,
                    "is a glob; only inputs may be globs",
                    hint="list the paths, or use a directory output ending in '/'",
                    ctx=ctx,
                )
                continue
            out.append(clean)
    return out


def _path_problem(draft: _Draft, key: str, path: str, what: str, *, hint: str, ctx: _Context) -> None:
    kind = {"inputs": "input", "outputs": "output"}.get(key, key)
    ctx.problems.add(f"{kind} {path} of task {draft.table.name} {what}", at=("tasks", draft.table.name, key), hint=hint)


def _merge(groups: Iterable[Sequence[str]]) -> Tuple[str, ...]:
    """All groups' paths in declaration order, the first of any duplicate kept."""
    merged: List[str] = []
    for paths in groups:
        merged.extend(paths)
    return _unique(merged)


# --------------------------------------------------------------------------
# Between the passes: who produces what


class _Producers:
    """Every declared output and its task; reports duplicates and nesting."""

    def __init__(self, drafts: Sequence[_Draft], *, problems: _Problems) -> None:
        self.files: Dict[str, str] = {}
        self.dirs: Dict[str, str] = {}
        for draft in drafts:
            for path in draft.outputs:
                owners = self.dirs if path.endswith("/") else self.files
                other = owners.setdefault(path, draft.name)
                if other != draft.name:
                    problems.add(
                        f"output {path} is declared by both task {other} and task {draft.name}",
                        at=("tasks", draft.table.name, "outputs"),
                        hint="each output has exactly one producer",
                    )
        if self.dirs:
            for path, owner in itertools.chain(self.files.items(), self.dirs.items()):
                outer = self.enclosing_dir(path)
                if outer is not None and outer[1] != owner:
                    problems.add(
                        f"output {path} of task {owner} lies inside directory output {outer[0]} of task {outer[1]}",
                        at=("tasks", owner.split(":")[0], "outputs"),
                        hint="a directory output belongs wholly to one task",
                    )
        self.sorted_files = sorted(self.files)

    def enclosing_dir(self, path: str) -> Optional[Tuple[str, str]]:
        """(directory output, owner) strictly containing `path`, if any."""
        if not self.dirs:
            return None
        i = path.find("/")
        while 0 <= i < len(path) - 1:
            owner = self.dirs.get(path[: i + 1])
            if owner is not None:
                return path[: i + 1], owner
            i = path.find("/", i + 1)
        return None

    def produces(self, path: str) -> bool:
        """Whether a task declares `path` (a directory ends in '/'), or a directory output holding it."""
        return path in self.files or path in self.dirs or self.enclosing_dir(path) is not None

    def glob(self, pattern: str) -> Iterator[Tuple[str, str]]:
        """(file output, owner) matching pattern; only the sorted range under its literal directory."""
        regex = glob_to_regex(pattern)
        base = _literal_dir(pattern)
        for i in range(bisect.bisect_left(self.sorted_files, base), len(self.sorted_files)):
            path = self.sorted_files[i]
            if not path.startswith(base):
                break
            if regex.fullmatch(path):
                yield path, self.files[path]


@dataclass(frozen=True)
class _TaskNames:
    groups: Mapping[str, Tuple[str, ...]]
    variants: FrozenSet[str]
    broken: FrozenSet[str]  # tables that could not be expanded: no cascade of "unknown task"

    def resolve(self, name: str) -> Optional[Tuple[str, ...]]:
        if name in self.groups:
            return self.groups[name]
        if name in self.variants:
            return (name,)
        if name in self.broken or name.split(":")[0] in self.broken:
            return ()
        return None

    def choices(self) -> List[str]:
        return list(self.groups) + sorted(self.variants - set(self.groups))


# --------------------------------------------------------------------------
# Pass 2: inputs, command, after


def _finish(draft: _Draft, *, producers: _Producers, disk: _Disk, names: _TaskNames, ctx: _Context) -> TaskSpec:
    table = draft.table
    groups = {
        g: _resolve_inputs(draft, paths, producers=producers, disk=disk, ctx=ctx) for g, paths in draft.inputs.items()
    }
    inputs = _merge(groups.values())
    input_groups = {g: v for g, v in groups.items() if g}
    command = None
    if table.run is not None:
        files = _Files(inputs, input_groups, draft.outputs, draft.output_groups)
        try:
            command = _render_run(table.run, values=draft.values, lists=ctx.vars.lists, files=files)
        except _TemplateError as exc:
            ctx.problems.add(f"task {draft.name}: {exc.message}", at=("tasks", table.name, "run"), hint=exc.hint)
    return TaskSpec(
        name=draft.name,
        group=table.name,
        command=command,
        inputs=inputs,
        input_groups=input_groups,
        outputs=draft.outputs,
        output_groups=draft.output_groups,
        after=_resolve_after(draft, names=names, problems=ctx.problems) if draft.after else (),
        matrix=draft.matrix,
        wait_for=draft.wait_for,
        **table.common,
    )


def _resolve_inputs(
    draft: _Draft, paths: Sequence[str], *, producers: _Producers, disk: _Disk, ctx: _Context
) -> Tuple[str, ...]:
    """Globs replaced by their sorted matches; every plain input checked to exist or be produced."""
    out: List[str] = []
    for path in paths:
        if _is_glob(path):
            matches = _glob_input(path, draft=draft, producers=producers, disk=disk)
            if not matches:
                ctx.problems.add(
                    f"input glob {path} of task {draft.name} matches no file",
                    at=("tasks", draft.table.name, "inputs"),
                    hint="globs match existing files and the outputs of other tasks",
                )
            out.extend(matches)
        else:
            problem = _plain_input_problem(path, draft=draft, producers=producers, disk=disk)
            if problem is None:
                out.append(path)
            else:
                message, hint = problem
                ctx.problems.add(
                    f"input {path} of task {draft.name} {message}", at=("tasks", draft.table.name, "inputs"), hint=hint
                )
    return _unique(out)


def _plain_input_problem(path: str, *, draft: _Draft, producers: _Producers, disk: _Disk) -> Optional[Tuple[str, str]]:
    """(what is wrong, hint) for an input that is neither produced nor on disk as written."""
    as_dir = path.rstrip("/") + "/"
    if not path.endswith("/") and as_dir in producers.dirs:
        return (
            f"is the directory output of task {producers.dirs[as_dir]}",
            f"write {as_dir} to depend on its whole tree",
        )
    if producers.produces(path) or path in draft.wait_for:
        return None
    kind = disk.kind(path)
    if kind is None:
        return "does not exist and no task produces it", (
            f"paths are relative to the project root {disk.root}; "
            "check the spelling, or declare the task that writes it"
        )
    if kind == "dir" and not path.endswith("/"):
        return "is a directory", f"write {as_dir} to depend on its whole tree"
    if kind == "file" and path.endswith("/"):
        return "is a file, not a directory", f"write {path.rstrip('/')} without the trailing '/'"
    return None


def _glob_input(pattern: str, *, draft: _Draft, producers: _Producers, disk: _Disk) -> List[str]:
    """Sorted matches among existing files and other tasks' outputs, never the task's own outputs."""
    own_files = set(draft.outputs)
    own_dirs = tuple(p for p in draft.outputs if p.endswith("/"))
    found = {p for p in disk.glob(pattern) if p not in own_files and not p.startswith(own_dirs)}
    found.update(p for p, owner in producers.glob(pattern) if owner != draft.name)
    return sorted(found)


def _resolve_after(draft: _Draft, *, names: _TaskNames, problems: _Problems) -> Tuple[str, ...]:
    at = ("tasks", draft.table.name, "after")
    out: List[str] = []
    for name in draft.after:
        resolved = names.resolve(name)
        if resolved is None:
            problems.add(
                f"task {draft.table.name}: `after` names unknown task `{name}`",
                at=at,
                hint=did_you_mean(name, names.choices()) or "run `flowmake list` to see the tasks",
            )
        elif draft.name in resolved:
            problems.add(f"task {draft.name} lists itself in `after`", at=at, hint=f"remove `{name}` from `after`")
        else:
            out.extend(resolved)
    return _unique(out)


def _resolve_default(
    flow: _Flow, *, names: _TaskNames, producers: _Producers, problems: _Problems
) -> Optional[Tuple[str, ...]]:
    """`flow.default` as written, after checking each names a task, a variant or an output."""
    if flow.default is None:
        return None
    for target in flow.default:
        if names.resolve(target) is None and not producers.produces(target):
            problems.add(
                f"[flow]: default target `{target}` is not a task, a variant or a declared output",
                at=("flow", "default"),
                hint=did_you_mean(target, names.choices()),
            )
    return flow.default


# --------------------------------------------------------------------------
# The whole file


def load(path: Path) -> Flowfile:
    """Read, validate and expand the Flowfile at `path`.

    Raises FlowfileError when the file cannot be read or is not TOML, and
    FlowfileErrors listing every problem found otherwise.
    """
    flowfile, problems = load_with_problems(path)
    if problems:
        raise FlowfileErrors(problems)
    return flowfile


def load_with_problems(path: Path) -> Tuple[Flowfile, List[FlowfileError]]:
    """The best-effort Flowfile and every problem found, in file order.

    For `flowmake check`, which also wants the graph's problems (cycles) of
    an otherwise broken file: the Flowfile holds every task that could be
    expanded, with the parts that were wrong left out. Only an unreadable
    file or a TOML syntax error still raises (FlowfileError).
    """
    # Loading allocates many small, acyclic objects; the cyclic collector
    # would rescan them all again and again (a third of the time for 10,000
    # tasks) and can find nothing to free, so it waits until we are done.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(path)
    finally:
        if enabled:
            gc.enable()


def _load(path: Path) -> Tuple[Flowfile, List[FlowfileError]]:
    path = Path(os.path.abspath(path))
    root = path.parent.resolve()
    data, text, digest = _read_toml(path)
    problems = _Problems(path, LineIndex(text))
    _check_keys(data, TOP_KEYS, problems=problems, at=(), label="top level: ")
    flow = _read_flow(data.get("flow"), problems=problems)
    hooks = _read_hooks(data.get("hooks"), problems=problems)
    ctx = _Context(
        root=root,
        problems=problems,
        vars=_read_vars(data.get("vars"), problems=problems),
        flow_env=_read_env(data.get("env"), problems=problems, at=("env",), label="[env]: "),
        flow_shell=flow.shell,
    )
    raw_tasks = data.get("tasks", {})
    if not isinstance(raw_tasks, dict):
        problems.add(
            f"`tasks` must be a table of tasks, got {_toml_type(raw_tasks)}",
            at=("tasks",),
            hint="write [tasks.NAME] tables",
        )
        raw_tasks = {}

    # Pass 1: every table, and every variant's outputs.
    drafts: List[_Draft] = []
    broken: Set[str] = set()
    for name, raw in raw_tasks.items():
        table = _read_table(name, raw, ctx=ctx)
        if table is None:
            broken.add(name)
        else:
            drafts.extend(_expand_table(table, ctx=ctx))

    # Pass 2: inputs (which may be other tasks' outputs), commands, after.
    producers = _Producers(drafts, problems=problems)
    groups: Dict[str, List[str]] = {}
    for draft in drafts:
        groups.setdefault(draft.table.name, []).append(draft.name)
    names = _TaskNames({g: tuple(v) for g, v in groups.items()}, frozenset(d.name for d in drafts), frozenset(broken))
    disk = _Disk(root)
    tasks = {d.name: _finish(d, producers=producers, disk=disk, names=names, ctx=ctx) for d in drafts}
    default = _resolve_default(flow, names=names, producers=producers, problems=problems)
    flowfile = Flowfile(
        path=root / path.name,
        root=root,
        name=flow.name or root.name,
        default=default,
        jobs=flow.jobs,
        tasks=tasks,
        hooks=hooks,
        source_hash=digest,
    )
    return flowfile, problems.in_file_order()
