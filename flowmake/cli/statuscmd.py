"""`flowmake status` without typer, its snapshot's stat scan overlapped with loading.

At 100,000 tasks `status` was 4x the no-op: typer's import, a single-threaded
stat of every file the snapshot holds after the load, and rendering each row
through the general path. Here a well-formed `status` command line is parsed
without typer, as `run`'s is (fastpath.parse); as soon as the Flowfile is
found, a forked child starts the stat scan of the snapshot's files
(prescan.py) while this process loads the project from the load cache; the
preview then takes the proof from that scan (proof.proven_fresh) and plans
only the cone below what changed, and the rows are rendered as
show_status always renders them. Anything this parser does not take
(--help, another option, a bad value) goes to typer, which says so.

With FLOWMAKE_NO_SHORTCUTS set, status goes through typer, never through
this module: the tests compare the two (tests/test_cli_status_shortcuts.py).
"""

from __future__ import annotations

import os
from itertools import filterfalse, repeat
from typing import TYPE_CHECKING, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, TextIO, Tuple

from ..engine import prescan as prescans
from ..engine import snapshot as snapshots
from ..layout import STATE_DIR

if TYPE_CHECKING:  # names for type checkers only
    from ..engine.graph import Graph
    from ..model import Flowfile
    from ..events import PlannedTask
    from .commands import Project


class StatusArgs:
    """`flowmake [-f F] [-C D] status [--json] [--exit-code] [TARGET...]`, as given."""

    def __init__(self) -> None:
        self.file: Optional[str] = None
        self.directory: Optional[str] = None
        self.targets: List[str] = []
        self.as_json = False
        self.exit_code = False


def parse(argv: Sequence[str]) -> Optional[StatusArgs]:
    """The status command line as shorthand.expand made it (globals first), when well-formed; else None."""
    args = StatusArgs()
    items = list(argv)
    i = 0
    while i < len(items) and items[i] != "status":
        item = items[i]
        if item in ("-f", "--file", "-C", "--directory") and i + 1 < len(items):
            flag, value = item, items[i + 1]
            i += 1
        elif item.startswith(("--file=", "--directory=")):
            flag, value = item.split("=", 1)
        else:
            return None
        if not value:
            return None  # typer's Path("") would be ".": left to it
        if flag in ("-f", "--file"):
            args.file = value
        else:
            args.directory = value
        i += 1
    if i == len(items):
        return None
    only_targets = False
    for item in items[i + 1:]:
        if only_targets or not item.startswith("-"):
            args.targets.append(item)
        elif item == "--":
            only_targets = True
        elif item == "--json":
            args.as_json = True
        elif item == "--exit-code":
            args.exit_code = True
        else:
            return None  # -h, --help, anything else: typer's
    return args


_LEFT_FOR_EXIT: List[object] = []


def try_status(argv: Sequence[str], *, process_ends: bool = False) -> Optional[int]:
    """The exit code of `status`, or None for typer to take the command line.

    `process_ends`: os._exit follows (__main__._leave), so what was loaded is left to it.
    """
    if snapshots.shortcuts_off():
        return None
    args = parse(argv)
    if args is None:
        return None
    from .guard import exit_code_of

    code = exit_code_of(lambda: _status(args, _LEFT_FOR_EXIT if process_ends else None))
    return code if code is not None else 0


def _status(args: StatusArgs, keep: Optional[List[object]]) -> int:
    from pathlib import Path

    from ..layout import find_flowfile
    from .commands import Project, _enter

    path = find_flowfile(_enter(Path(args.directory) if args.directory is not None else None),
                         Path(args.file) if args.file is not None else None)
    scan = _start_scan(str(path.parent))
    try:
        if not args.targets:
            code = _all_proven(args, str(path), scan)
            if code is not None:
                return code
        project = Project.at(path)
        return show_status(project, args.targets, as_json=args.as_json, exit_code=args.exit_code, prescan=scan,
                           keep=keep)
    finally:
        if scan is not None:
            scan.close()


# -- every task proven fresh by the snapshot alone ------------------------------

ORDER_NAME = "status.order"
_ORDER_FORMAT = 1


def _order_key(flowfile_path: str, source_hash: str) -> tuple:
    from .. import __version__

    return (_ORDER_FORMAT, __version__, flowfile_path, source_hash)


def keep_order(flowfile: Flowfile, graph: Graph) -> None:
    """Keep every task's name in the graph's order, for the Flowfile as loaded: the order of status's rows.

    Called by run and status once the state directory is there. A Flowfile
    without globs loads the same from the same bytes (what the disk holds
    decides only whether it loads at all), so its hash is the key; only a
    Flowfile without globs gets a snapshot. Written again only when the key
    read back (a few bytes) is another.
    """
    import marshal

    from ..store.state import state_dir

    if flowfile.uses_globs or snapshots.shortcuts_off():
        return
    path = state_dir(flowfile.root) / ORDER_NAME
    key = _order_key(str(flowfile.path), flowfile.source_hash)
    try:
        with open(path, "rb") as f:
            if marshal.load(f) == key:
                return
    except (OSError, EOFError, ValueError, TypeError):
        pass
    names = "\0".join(graph.order)
    if names.count("\0") != max(len(graph.order) - 1, 0):
        return  # a name holding a NUL (a matrix value): not kept, status plans as ever
    tmp = path.with_name(f"{ORDER_NAME}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            marshal.dump(key, f)
            marshal.dump(names, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only project: status plans as ever


def _read_order(state_dir: str, snap: snapshots.Snapshot) -> Optional[List[str]]:
    """Every task of the snapshot's Flowfile in its graph's order, if kept for it (keep_order)."""
    import marshal

    try:
        with open(os.path.join(state_dir, ORDER_NAME), "rb") as f:
            if marshal.load(f) != _order_key(snap.flowfile, snap.flowfile_hash):
                return None
            names = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(names, str):
        return None
    return names.split("\0") if names else []


def _all_proven(args: StatusArgs, flowfile: str, scan: Optional[prescans.Prescan]) -> Optional[int]:
    """Print status from the snapshot alone when it proves every task fresh; None to load and plan.

    The checks are the no-op path's (fastpath.py): this flowmake, the
    Flowfile's stat and its includes', the env_inputs, the state database
    the proof was made against, and every file's stat, none a suspect;
    and the snapshot holds every task of the Flowfile (a run's selection
    may be fewer), whose order keep_order kept.
    """
    from .. import __version__

    root = os.path.dirname(flowfile)
    state_dir = os.path.join(root, STATE_DIR)
    snap = scan.snapshot if scan is not None else snapshots.read(state_dir)
    if (snap is None or snap.suspects
            or not snapshots.applies(snap, version=__version__, flowfile=flowfile, targets=snap.targets,
                                     environ=os.environ)
            or tuple(snap.flowfile_stat) != snapshots.stat_key(flowfile)
            or (snap.includes and not snapshots.includes_unchanged(snap))):
        return None
    order = _read_order(state_dir, snap)
    if order is None or len(order) != len(snap.tasks) or not _same_state(root, snap):
        return None
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Left running when a file changed: the preview that follows takes its answer (proof.py).
        if not (scan.unchanged(root_fd) if scan is not None else snapshots.files_unchanged(snap.files, root_fd)):
            return None
    finally:
        os.close(root_fd)
    import sys

    counts = {"fresh": len(order), "stale": 0, "blocked": 0}
    sys.stdout.write(_status_json(order, (), set()) if args.as_json
                     else _status_text(order, (), set(), counts, detailed=False))
    return 0


def _same_state(root: str, snap: snapshots.Snapshot) -> bool:
    """Whether the state database is there, sound to open and the one the snapshot was proven against."""
    from ..store.state import State, StateError

    try:
        state = State.open_existing(root)
    except StateError:
        return False  # missing or damaged: the full path sets it aside and says so
    try:
        return state.identity == snap.state_identity
    finally:
        state.close(last=True)


def _start_scan(root: str) -> Optional[prescans.Prescan]:
    """A forked scan of the snapshot's files, read as the child reads them; None when not worth one."""
    state_dir = os.path.join(root, STATE_DIR)
    stamp = snapshots.stat_key(snapshots.path_in(state_dir))
    if stamp is None or stamp[0] < prescans.SCAN_MIN_BYTES or prescans.cpus() < 2:
        return None
    scan = prescans.start_scan(state_dir, root, stamp)
    if scan is None:
        return None
    snap = snapshots.read(state_dir)
    # No lock is held: a run may replace the file meanwhile. The child reads
    # it only while it has this stat, and so do we, so both read the same one.
    if snap is None or snapshots.stat_key(snapshots.path_in(state_dir)) != stamp:
        scan.close()
        return None
    scan.scanning(snap.files)
    scan.snapshot, scan.stamp = snap, stamp
    return scan


# -- the command -----------------------------------------------------------------

FRESH_LINE = "fresh    "  # f"{'fresh':<8} ": a fresh row's text with no reasons, before its name
FRESH_JSON = ('  {\n    "task": ', ',\n    "state": "fresh",\n    "reasons": [],\n    "blocked_by": []\n  }')


def show_status(project: Project, names: Sequence[str], *, as_json: bool, exit_code: bool,
                out: Optional[TextIO] = None, prescan: Optional[prescans.Prescan] = None,
                keep: Optional[List[object]] = None) -> int:
    """Print each selected task's state as the preview decides it; 1 with `exit_code` if any is not fresh.

    `prescan`: a scan of the snapshot's files already under way (_start_scan).
    `keep`: where to leave what was loaded and planned, when the process ends next.
    """
    import sys

    from ..engine.graph import closure, resolve_targets
    from ..engine.plan import always_runs
    from ..engine.preview import preview
    from ..events import plan_counts
    from ..store.hashing import FileHasher
    from .commands import _save_quietly, open_state

    flowfile, graph = project.flowfile, project.graph
    shown = resolve_targets(flowfile, graph, names) if names else tuple(graph.order)
    selection = closure(graph, shown)
    state = open_state(project)
    try:
        keep_order(flowfile, graph)
        hasher = FileHasher(project.root, state.stat_cache())
        proven = _proven_fresh(project, state.identity, selection, prescan)
        # Only the tasks not proven are previewed: a task proven fresh is never stale, so
        # none of them blocks another, and a row of one says no more than its name.
        to_decide = tuple(filterfalse(proven.__contains__, selection)) if proven else selection
        pv = preview(flowfile, graph, to_decide, traces=state.traces(), hasher=hasher, forced=lambda name: False,
                     environ=os.environ, always_blocks=False)
        _save_quietly(project, state, hasher)
    finally:
        state.close()
    wanted = set(shown)
    all_shown = len(wanted) == len(selection)
    rows = selection if all_shown else tuple(name for name in selection if name in wanted)
    decided = pv.planned if all_shown else [p for p in pv.planned if p.name in wanted]  # in the rows' order
    # Tasks that run on every run are not work left undone: never part of the gate.
    always = {p.name for p in decided if always_runs(flowfile.tasks[p.name])}
    counts = plan_counts([p for p in decided if p.name not in always])
    counts["fresh"] += len(rows) - len(decided)
    at = list(_unproven_at(rows, proven)) if proven else range(len(rows))
    text = (_status_json(rows, zip(at, decided), always) if as_json
            else _status_text(rows, zip(at, decided), always, counts, detailed=bool(names)))
    (out if out is not None else sys.stdout).write(text)
    if keep is not None:
        keep.append((project, pv))  # freed by the process's end, not one by one here (~50 ms at 100,000)
    return 1 if exit_code and (counts["stale"] or counts["blocked"]) else 0


def _unproven_at(names: Sequence[str], proven: Mapping[str, str]) -> Iterator[int]:
    """The positions of the names not in `proven`, found by C loops (a few in 100,000)."""
    flags = bytes(map(proven.__contains__, names))  # 1 for a task proven fresh
    i = flags.find(0)
    while i >= 0:
        yield i
        i = flags.find(0, i + 1)


def _proven_fresh(project: Project, state_identity: str, selection: Sequence[str],
                  prescan: Optional[prescans.Prescan]) -> Mapping[str, str]:
    """What the last run's snapshot still proves fresh, as a run would plan from it (engine/proof.py):
    status then decides only the cone below what changed since, as that run would."""
    if snapshots.shortcuts_off():
        return {}
    from ..engine.proof import proven_fresh

    return proven_fresh(project.flowfile, project.graph, selection, state_identity=state_identity, target_names=(),
                        environ=os.environ, any_targets=True, prescan=prescan)[0]


def _plain(p: PlannedTask, always: Set[str]) -> bool:
    """A fresh row with nothing more to say: its text and JSON are its name's alone, as a proven one's."""
    return not p.will_run and not p.blocked_by and not p.reasons and p.name not in always


def _status_text(rows: Sequence[str], decided: Iterable[Tuple[int, PlannedTask]], always: Set[str],
                 counts: Mapping[str, int], *, detailed: bool) -> str:
    """The rows (task names) as text: each fresh with nothing to say but those `decided` (position, plan)."""
    from ..events import TaskState

    width = max(map(len, rows), default=0)
    lines = list(map(str.rstrip, map(FRESH_LINE.__add__, rows)))  # the padding below, stripped again
    for i, p in decided:
        if _plain(p, always):
            continue
        word = (TaskState.ALWAYS if p.name in always else p.state).value
        if p.blocked_by and not p.will_run:
            summary = "after " + ", ".join(p.blocked_by)
        else:
            summary = "; ".join(str(r) for r in p.reasons[:3]) + (
                f" (+{len(p.reasons) - 3} more)" if len(p.reasons) > 3 else "")
        text = [f"{word:<8} {p.name:<{width}}  {summary}".rstrip()]
        if detailed:
            for r in p.reasons:
                text.append(f"           {r}")
                if r.old is not None or r.new is not None:
                    text.append(f"             old: {r.old or '(none)'}\n             new: {r.new or '(none)'}")
        lines[i] = "\n".join(text)
    noun = "task" if len(rows) == 1 else "tasks"
    line = f"{len(rows)} {noun}: {counts['fresh']} fresh, {counts['stale']} stale, {counts['blocked']} blocked"
    lines.append(line + (f", {len(always)} always" if always else ""))
    lines.append("")
    return "\n".join(lines)


def _status_json(rows: Sequence[str], decided: Iterable[Tuple[int, PlannedTask]], always: Set[str]) -> str:
    """json.dumps(payload, indent=2) of the plan's shape of each task (docs/json.md), made without
    encoding 100,000 alike entries one by one: indented JSON has only the pure-Python encoder."""
    import json
    from json.encoder import encode_basestring_ascii as quoted  # json.dumps's own for a str

    from ..events import TaskState

    if not rows:
        return "[]\n"
    head, tail = FRESH_JSON
    entries = list(map("".join, zip(repeat(head), map(quoted, rows), repeat(tail))))
    for i, p in decided:
        if _plain(p, always):
            continue
        word = TaskState.ALWAYS if p.name in always else p.state
        entry = {"task": p.name, "state": word.value, "reasons": [r.to_json() for r in p.reasons],
                 "blocked_by": list(p.blocked_by)}
        # One level deeper in the list: each of its lines two spaces further in (strings hold no newline).
        entries[i] = "  " + json.dumps(entry, indent=2).replace("\n", "\n  ")
    return "[\n" + ",\n".join(entries) + "\n]\n"
