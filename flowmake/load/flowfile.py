"""Load Flowfile.toml into a validated, fully expanded `model.Flowfile`.

This is the only module that reads the Flowfile, and the one the rest of
flowmake imports; the loading itself is done by the modules it orchestrates.
It parses the TOML, merges in the files `[flow] include` names (`includes`),
reads the top-level tables (`sections`), then makes two
passes over the tasks: the first checks each task table and expands its
vars, matrix variants, list vars and placeholders (`templates`) up to its
outputs (`drafts`); the second globs and checks inputs against every task's
outputs and the disk (`paths`), renders commands and resolves `after` names
(`producers`), so that every later module sees plain `TaskSpec`s holding
concrete paths and commands. A user mistake does not stop the check:
problems are collected across all tasks (`problems`), each with the file,
the line (found in the raw text by `locate`, because tomllib gives no
positions for values) and a hint, and raised together as one
`FlowfileErrors` for `flowmake check` to print. Only an unreadable file or a
TOML syntax error stops loading at once.

Templates are parsed once per task table and cached across tables, and the
filesystem is stat'ed and listed at most once per path, so that a Flowfile of
ten thousand tasks loads in a fraction of a second beyond TOML parsing.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

try:
    # tomli's compiled wheels parse ~2.7x faster than the standard library's tomllib (its pure-Python copy).
    import tomli as tomllib
except ModuleNotFoundError:  # pragma: no cover - installed without its dependencies
    import tomllib  # type: ignore[no-redef]

from ..errors import FlowfileError, FlowfileErrors
from ..layout import FLOWFILE_NAME, STATE_DIR, find_flowfile
from ..model import Flowfile
from ..store.hashing import hash_bytes
from . import document
from .drafts import TASK_KEYS as TASK_KEYS
from .drafts import Context, Draft, expand_table, read_table
from .durations import parse_duration
from .includes import gather
from .locate import LineIndex, syntax_error
from .paths import Disk, glob_to_regex
from .problems import Problems, check_keys, toml_type
from .producers import Producers, TaskNames, finish, resolve_default
from .sections import FLOW_KEYS as FLOW_KEYS
from .sections import HOOK_KEYS as HOOK_KEYS
from .sections import read_env, read_flow, read_hooks, read_vars

__all__ = [
    "FLOWFILE_NAME",
    "STATE_DIR",
    "find_flowfile",
    "glob_to_regex",
    "load",
    "load_with_problems",
    "parse_duration",
]


TOP_KEYS = ("flow", "vars", "env", "tasks", "hooks", "schedules")


# A parse the load cache made and found changed (document.relocated), for the full load that follows:
# path -> (hash of the bytes, document, text). Taken once, and only while the bytes are the same.
_parsed: Dict[str, Tuple[str, Dict[str, Any], str]] = {}


def hand_over(path: Path, parsed: Tuple[Dict[str, Any], str, str]) -> None:
    """Keep `read_toml(path)`'s answer for the next read of the same bytes (a 100,000-task parse is ~1 s)."""
    doc, text, digest = parsed
    _parsed.clear()
    _parsed[str(path)] = (digest, doc, text)


def read_toml(path: Path) -> Tuple[Dict[str, Any], str, str]:
    """The parsed document, its text and the BLAKE3 hash of its bytes; fatal errors raise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlowfileError(f"cannot read {path}: {exc.strerror or exc}", file=path) from None
    digest = hash_bytes(data)  # the same hash as every other file flowmake records
    handed = _parsed.pop(str(path), None)
    if handed is not None and handed[0] == digest:
        return handed[1], handed[2], digest
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FlowfileError("the Flowfile is not UTF-8 text", file=path, line=line) from None
    if text.startswith("\ufeff"):
        # A byte order mark, as some Windows editors save UTF-8: TOML does not allow it, but it says nothing.
        text = text[1:]
    try:
        return tomllib.loads(text), text, digest
    except tomllib.TOMLDecodeError as exc:
        raise syntax_error(exc, path=path, text=text) from None
    except RecursionError as exc:
        # tomli's own limits on hostile shapes (inline arrays/tables nested
        # hundreds deep, a dotted key of a thousand parts), raised without a
        # position: find the line ourselves.
        raise FlowfileError(f"too deep for a Flowfile: {exc}", file=path, line=_deepest_line(text),
                            hint="nest arrays and tables a few levels at most, and write keys of a few parts") from None


def _deepest_line(text: str) -> int:
    """The line where bracket nesting, or a key's dotted parts, first go past what a Flowfile needs.

    A rough scan for the error message only: it skips quoted strings and
    comments, which is enough to point at the line that is too deep.
    """
    depth = 0
    line = 1
    dots_on_line = 0
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\n":
            line += 1
            dots_on_line = 0
        elif quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif c in "[{":
            depth += 1
            if depth > 100:
                return line
        elif c in "]}":
            depth = max(depth - 1, 0)
        elif c == ".":
            dots_on_line += 1
            if dots_on_line > 100:
                return line
        i += 1
    return 1


def load(path: Path) -> Flowfile:
    """Read, validate and expand the Flowfile at `path`.

    Raises FlowfileError when the file cannot be read or is not TOML, and
    FlowfileErrors listing every problem found otherwise.
    """
    flowfile, problems = load_with_problems(path)
    if problems:
        raise FlowfileErrors(problems)
    return flowfile


def load_observed(path: Path) -> Tuple[Flowfile, Disk]:
    """Like `load`, also returning what was learnt from the disk (for the load cache)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        flowfile, problems, disk = _load(path)
    finally:
        if enabled:
            gc.enable()
    if problems:
        raise FlowfileErrors(problems)
    return flowfile, disk


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
        flowfile, problems, _disk = _load(path)
        return flowfile, problems
    finally:
        if enabled:
            gc.enable()


def _task_tables(data: Dict[str, Any], problems: Problems) -> Dict[str, Any]:
    raw_tasks = data.get("tasks", {})
    if not isinstance(raw_tasks, dict):
        problems.add(
            f"`tasks` must be a table of tasks, got {toml_type(raw_tasks)}",
            at=("tasks",),
            hint="write [tasks.NAME] tables",
        )
        return {}
    if not raw_tasks and not problems.in_file_order():
        # Every command would succeed at doing nothing, hiding a wrong or truncated
        # file; a mistake already found (`[task.x]`) says more, and alone.
        problems.add(
            "the Flowfile defines no tasks",
            at=("tasks",),
            hint="add a [tasks.NAME] table with `run = \"...\"`; `flowmake init` writes a starter Flowfile",
        )
    return raw_tasks


def _load(path: Path) -> Tuple[Flowfile, List[FlowfileError], Disk]:
    path = Path(os.path.abspath(path))
    root = path.parent.resolve()
    data, text, digest = read_toml(path)
    documents = [(path.name, document.digest(data))]  # each part's parsed document, for Flowfile.document_hash

    def read_part(part: Path) -> Tuple[Dict[str, Any], str, str]:
        sub, sub_text, sub_digest = read_toml(part)
        documents.append((part.relative_to(root).as_posix(), document.digest(sub)))
        return sub, sub_text, sub_digest

    problems = Problems(path, LineIndex(text))
    check_keys(data, TOP_KEYS, problems=problems, at=(), label="top level: ")
    flow = read_flow(data.get("flow"), problems=problems)
    hooks = read_hooks(data.get("hooks"), problems=problems)
    disk = Disk(root)
    sources = gather(data, digest, root=root, disk=disk, problems=problems, read=read_part)
    document_hash = document.combined(documents)
    data = sources.data
    ctx = Context(
        root=root,
        problems=problems,
        vars=read_vars(data.get("vars"), problems=problems, disk=disk),
        flow_env=read_env(data.get("env"), problems=problems, at=("env",), label="[env]: "),
        flow_shell=flow.shell,
        disk=disk,
    )
    raw_tasks = _task_tables(data, problems)

    # Pass 1: every table, and every variant's outputs.
    drafts: List[Draft] = []
    broken: Set[str] = set()
    for name, raw in raw_tasks.items():
        # The parsed table is not needed once read: letting it go as we go lets the model reuse
        # its memory (a 100,000-task document takes ~300 MB).
        raw_tasks[name] = None
        table = read_table(name, raw, ctx=ctx)
        if table is None:
            broken.add(name)
        else:
            drafts.extend(expand_table(table, ctx=ctx))

    # Pass 2: inputs (which may be other tasks' outputs), commands, after.
    producers = Producers(drafts, problems=problems)
    groups: Dict[str, List[str]] = {}
    for draft in drafts:
        groups.setdefault(draft.table.name, []).append(draft.name)
    names = TaskNames({g: tuple(v) for g, v in groups.items()}, frozenset(d.name for d in drafts), frozenset(broken))
    tasks = {d.name: finish(d, producers=producers, disk=disk, names=names, ctx=ctx) for d in drafts}
    default = resolve_default(flow, names=names, producers=producers, problems=problems)
    schedules = {}
    if "schedules" in data:  # cron and zoneinfo are imported only by a Flowfile that has schedules
        from .schedules import read_schedules

        schedules = read_schedules(data["schedules"], names=names, producers=producers, problems=problems)
    flowfile = Flowfile(
        path=root / path.name,
        root=root,
        name=flow.name or root.name,
        default=default,
        jobs=flow.jobs,
        tasks=tasks,
        hooks=hooks,
        source_hash=sources.digest,
        uses_globs=disk.globbed,
        shell=flow.shell,
        file_values=tuple(ctx.file_values),
        includes=sources.includes,
        task_files=sources.task_files,
        output=flow.output,
        executor=flow.executor, scheduler=flow.scheduler,
        junit_xml=flow.junit_xml,
        schedules=schedules,
        cache=flow.cache,
        document_hash=document_hash,
    )
    return flowfile, problems.in_file_order(), disk
