"""The Flowfile's parts: the main file and those its `[flow] include` names, merged into one document.

`[flow] include = ["config/studies.toml", "tasks/*.toml"]` adds the vars, env
and tasks of other TOML files, as make's `include`, go-task's `includes` and
just's `import` do. Every path, in an include entry as anywhere else, is
relative to the project root (the directory of the main Flowfile), so a task
reads the same wherever it is written. An entry may be a glob (its sorted
matches, none at all being fine), an included file may include others, and
each file is read once: a file reached again is skipped, but a file that
names one of the files including it is a cycle (exit 2; a glob matching
them is not). An included file
holds only `[vars]`, `[env]`, `[tasks.*]` and `[flow] include`; flow-wide
settings and hooks stay in the main file. A task, var or env name declared
in two files is an error naming both files and lines.

The merged document is what the rest of the loader reads, as if written in
one file; `Problems` remembers which file each task, var and env entry came
from, so that every message names the file and line it is about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from ..store.hashing import source_hash
from .locate import LineIndex
from .paths import Disk, PathError, clean_path, is_glob
from .problems import Problems, check_keys, describe, is_str_list, toml_type

INCLUDED_TOP_KEYS = ("flow", "vars", "env", "tasks")
MERGED = ("vars", "env", "tasks")  # the tables whose entries the parts add up
_WHAT = {"vars": "var", "env": "env", "tasks": "task"}

# Reads one TOML file: (document, text, BLAKE3 of its bytes); raises FlowfileError.
Reader = Callable[[Path], Tuple[Dict[str, Any], str, str]]


class Sources(NamedTuple):
    """The merged document and the files it was made of."""

    data: Dict[str, Any]
    includes: Tuple[str, ...]  # project-relative paths of the included files, in load order
    digest: str  # the hash of every part (hashing.source_hash)
    task_files: Dict[str, str]  # task table -> the included file declaring it (main-file tasks left out)


def gather(data: Dict[str, Any], digest: str, *, root: Path, disk: Disk, problems: Problems,
           read: Reader) -> Sources:
    """`data` (the main Flowfile's document) with every included file merged in."""
    flow = data.get("flow")
    if not isinstance(flow, dict) or "include" not in flow:
        return Sources(data, (), digest, {})  # the usual Flowfile: nothing to copy
    main_rel = problems.path.name  # the main Flowfile is at the root
    merged: Dict[str, Any] = {key: value for key, value in data.items() if key not in MERGED}
    tables: Dict[str, Dict[str, Any]] = {key: {} for key in MERGED}
    where: Dict[Tuple[str, str], Tuple[int, str]] = {}  # (table, name) -> (part, rel) of its first declaration
    included: List[Tuple[str, str]] = []  # (rel, digest) of each part after the main one
    task_files: Dict[str, str] = {}

    def add_part(doc: Dict[str, Any], part: int, rel: str) -> None:
        for key in MERGED:
            raw = doc.get(key)
            if raw is None:
                continue
            if not isinstance(raw, dict):
                if part == 0:
                    tables[key] = raw  # the readers report the main file's own mistakes as before
                else:
                    problems.add(f"[{key}] must be a table, got {toml_type(raw)}", at=(key,), part=part)
                continue
            table = tables[key]
            if not isinstance(table, dict):
                continue
            for name, value in raw.items():
                first = where.get((key, name))
                if first is not None:
                    first_part, first_rel = first
                    problems.add(
                        f"{_WHAT[key]} `{name}` is declared twice: in {first_rel}:"
                        f"{problems.line((key, name), part=first_part)} and in {rel}:"
                        f"{problems.line((key, name), part=part)}",
                        at=(key, name), part=part,
                        hint=f"a {_WHAT[key]} name is declared once across the Flowfile and the files it includes",
                    )
                    continue
                where[(key, name)] = (part, rel)
                table[name] = value
                if part:
                    problems.own((key, name), part)
                    if key == "tasks":
                        task_files[name] = rel

    def include(doc: Dict[str, Any], part: int, chain: Tuple[str, ...]) -> None:
        for rel, globbed in _entries(doc.get("flow"), part=part, disk=disk, problems=problems):
            if rel in chain and not globbed:  # a glob such as `*.toml` may match its own file: that is no cycle
                cycle = " -> ".join(chain[chain.index(rel):] + (rel,))
                problems.add(f"include cycle: {cycle}", at=("flow", "include"), part=part,
                             hint="a file cannot include a file that includes it")
                continue
            if rel in chain or rel == main_rel or any(rel == seen for seen, _ in included):
                continue  # read once: a second route to the same file adds nothing
            path = root / rel
            if not path.is_file():
                problems.add(
                    f"included file {rel} " + ("is not a file" if path.exists() else "does not exist"),
                    at=("flow", "include"), part=part,
                    hint=f"include paths are relative to the project root {root}",
                )
                continue
            sub, text, sub_digest = read(path)
            included.append((rel, sub_digest))
            sub_part = problems.add_file(path, LineIndex(text))
            _check_included(sub, part=sub_part, problems=problems)
            add_part(sub, sub_part, rel)
            include(sub, sub_part, chain + (rel,))

    add_part(data, 0, main_rel)
    include(data, 0, (main_rel,))
    merged.update((key, value) for key, value in tables.items() if value or key in data)
    parts = ((main_rel, digest), *included)
    return Sources(merged, tuple(rel for rel, _ in included), source_hash(parts), task_files)


def _entries(flow: object, *, part: int, disk: Disk, problems: Problems) -> List[Tuple[str, bool]]:
    """The project-relative files one `[flow] include` names, globs expanded, in order; each with
    whether a glob found it."""
    if not isinstance(flow, dict) or "include" not in flow:
        return []
    raw = flow["include"]
    if isinstance(raw, str):
        raw = [raw]
    if not is_str_list(raw):
        problems.add(f"[flow]: key `include` must be a list of paths, got {describe(raw)}",
                     at=("flow", "include"), part=part, hint='write include = ["config/studies.toml"]')
        return []
    out: List[Tuple[str, bool]] = []
    for entry in raw:
        try:
            rel = clean_path(entry)
        except PathError as exc:
            problems.add(f"[flow]: include {entry} {exc}", at=("flow", "include"), part=part,
                         hint="include paths are relative to the project root")
            continue
        if rel.endswith("/"):
            problems.add(f"[flow]: include {entry} is a directory", at=("flow", "include"), part=part,
                         hint=f'include the files in it: include = ["{rel}*.toml"]')
        elif is_glob(rel):
            out.extend((match, True) for match in disk.glob(rel))  # recorded: the load cache sees a file come or go
        else:
            out.append((rel, False))
    return out


def _check_included(doc: Dict[str, Any], *, part: int, problems: Problems) -> None:
    """An included file adds vars, env and tasks; the settings of the whole flow stay in the main file."""
    for key in doc:
        if key not in INCLUDED_TOP_KEYS:
            hint = ("hooks are set in the main Flowfile" if key == "hooks"
                    else f"an included file holds {', '.join(INCLUDED_TOP_KEYS)}")
            problems.add(f"top level: `{key}` is not allowed in an included file", at=(key,), part=part,
                         hint=hint, col=True)
    flow = doc.get("flow")
    if flow is None:
        return
    if not isinstance(flow, dict):
        problems.add(f"[flow] must be a table, got {toml_type(flow)}", at=("flow",), part=part)
        return
    for key in flow:
        if key != "include":
            problems.add(f"[flow]: key `{key}` can only be set in the main Flowfile", at=("flow", key), part=part,
                         hint="an included file's [flow] holds only `include`", col=True)
