"""What each command does, without the command-line parsing.

`cli.py` parses arguments and renders errors; this module turns a parsed
command into work: it loads the project (Flowfile + graph), takes the lock
when the command writes, opens the state and calls the build loop or
prints a report. Kept apart from `cli.py` so typer stays off every path but
argument parsing, and so tests can call commands directly.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO

from .errors import FlowError, FlowfileError, FlowfileErrors, LockHeldError, UsageError
from .graph import Graph, build_graph, closure, default_targets, resolve_targets
from .model import Flowfile

STARTER = '''\
# Flowfile.toml: the tasks of this project, for flowmake.
# Every path is relative to this file's directory. See `flowmake --help`.

[flow]
name = {name}
# default = ["report"]    # targets when none are named (default: every task)

[vars]
build = "build"

[env]
TZ = "UTC"

[tasks.hello]
help = "An example step: replace it with your first real one"
outputs = ["{{build}}/hello.txt"]
run = "echo 'hello from flowmake' > {{outputs[0]}}"

# [tasks.summarise]
# help = "Count the lines of the hello file"
# inputs = ["{{build}}/hello.txt"]
# outputs = ["{{build}}/summary.txt"]
# run = "wc -l {{inputs}} > {{outputs[0]}}"
'''


@dataclass
class Project:
    flowfile: Flowfile
    graph: Graph

    @classmethod
    def load(cls, *, file: Optional[Path], directory: Optional[Path]) -> "Project":
        from .flowfile import find_flowfile
        from .loadcache import load_cached
        from .state import state_dir

        path = find_flowfile(_enter(directory), file)
        flowfile = load_cached(path, state_dir(path.parent))
        return cls(flowfile, build_graph(flowfile))

    @property
    def root(self) -> Path:
        return self.flowfile.root

    def targets(self, names: Sequence[str]) -> tuple:
        if names:
            return resolve_targets(self.flowfile, self.graph, names)
        return default_targets(self.flowfile, self.graph)


def _enter(directory: Optional[Path]) -> Path:
    if directory is not None:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise UsageError(f"cannot change to directory {directory}: {exc.strerror}") from None
    return Path.cwd()


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _open_state(project: Project):
    from .state import State

    return State.open(project.root, warn=_warn)


def _lock(project: Project, *, wait: bool):
    from .lock import ProjectLock
    from .state import ensure_state_dir

    lock = ProjectLock(ensure_state_dir(project.root) / "lock")
    lock.acquire(wait=wait)
    return lock


# -- run -----------------------------------------------------------------------


def run_build(
    project: Project,
    target_names: Sequence[str],
    *,
    jobs: Optional[int],
    dry_run: bool,
    keep_going: bool,
    always_make: bool,
    force: Sequence[str],
    progress: str,
    wait: bool,
    quiet: bool,
    verbose: bool,
    argv: Sequence[str],
) -> int:
    from .build import Build, BuildOptions
    from .report import make_reporter

    roots = project.targets(target_names)
    forced = frozenset(resolve_targets(project.flowfile, project.graph, force)) if force else frozenset()
    if jobs is None:
        jobs = project.flowfile.jobs or os.cpu_count() or 1
    if progress == "auto":
        progress = "tree" if sys.stdout.isatty() else "plain"
    # A dry run only looks, so it neither waits for nor blocks a real run.
    lock = None if dry_run else _lock(project, wait=wait)
    try:
        state = _open_state(project)
        try:
            reporter = make_reporter(progress, out=sys.stdout, err=sys.stderr, quiet=quiet, verbose=verbose)
            options = BuildOptions(
                roots=roots, jobs=jobs, keep_going=keep_going, dry_run=dry_run, always_make=always_make,
                forced=forced, argv=tuple(argv), target_names=tuple(target_names),
            )
            build = Build(project.flowfile, project.graph, state, options, emit=_survive_closed_pipe(reporter),
                          selection=closure(project.graph, roots))
            try:
                code = build.run()
            finally:
                reporter.close()
            if dry_run and hasattr(build, "hasher"):
                _save_quietly(project, state, build.hasher)
            return code
        finally:
            state.close()
    finally:
        if lock is not None:
            lock.release()


def _survive_closed_pipe(reporter):
    """Wrap a reporter so a reader that goes away (`| head`) doesn't stop the run.

    The tasks still finish and are recorded; only the progress output is lost.
    """
    closed = False

    def emit(event) -> None:
        nonlocal closed
        if closed:
            return
        try:
            reporter.handle(event)
        except BrokenPipeError:
            closed = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit can't fail either
            os.close(devnull)

    return emit


# -- status --------------------------------------------------------------------


def show_status(project: Project, names: Sequence[str], *, as_json: bool, exit_code: bool,
                out: TextIO = sys.stdout) -> int:
    from .build import preview
    from .hashing import FileHasher

    flowfile, graph = project.flowfile, project.graph
    detailed = bool(names)
    shown = resolve_targets(flowfile, graph, names) if names else tuple(graph.order)
    selection = closure(graph, shown)
    state = _open_state(project)
    try:
        hasher = FileHasher(project.root, state.stat_cache())
        pv = preview(flowfile, graph, selection, traces=state.traces(), hasher=hasher,
                     forced=lambda name: False, environ=os.environ)
        _save_quietly(project, state, hasher)
    finally:
        state.close()
    wanted = set(shown)
    rows = [p for p in pv.planned if p.name in wanted]
    anything_stale = any(p.will_run or p.blocked_by for p in rows)
    if as_json:
        payload = [_status_json(p) for p in rows]
        out.write(json.dumps(payload, indent=2) + "\n")
    else:
        width = max((len(p.name) for p in rows), default=0)
        for p in rows:
            word = _state_word(p)
            if p.blocked_by and not p.will_run:
                summary = "after " + ", ".join(p.blocked_by)
            else:
                summary = "; ".join(str(r) for r in p.reasons[:3]) + (
                    f" (+{len(p.reasons) - 3} more)" if len(p.reasons) > 3 else "")
            out.write(f"{word:<8} {p.name:<{width}}  {summary}".rstrip() + "\n")
            if detailed:
                for r in p.reasons:
                    out.write(f"           {r}\n")
                    if r.old is not None or r.new is not None:
                        out.write(f"             old: {r.old or '(none)'}\n             new: {r.new or '(none)'}\n")
        stale = sum(1 for p in rows if p.will_run)
        blocked = sum(1 for p in rows if p.blocked_by and not p.will_run)
        noun = "task" if len(rows) == 1 else "tasks"
        out.write(f"{len(rows)} {noun}: {len(rows) - stale - blocked} fresh, {stale} stale, {blocked} blocked\n")
    return 1 if exit_code and anything_stale else 0


def _status_json(p) -> dict:
    out = {"task": p.name, "state": _state_word(p), "reasons": [r.to_json() for r in p.reasons]}
    if p.blocked_by:
        out["blocked_by"] = list(p.blocked_by)
    return out


def _state_word(p) -> str:
    if p.will_run:
        return "stale"
    return "blocked" if p.blocked_by else "fresh"


def _save_quietly(project: Project, state, hasher) -> None:
    """Keep what hashing learnt, unless a run holds the project (it owns the cache then)."""
    try:
        lock = _lock(project, wait=False)
    except LockHeldError:
        return
    try:
        state.save_stat_entries(hasher.take_unsaved())
    finally:
        lock.release()


# -- list and graph ------------------------------------------------------------


def show_list(project: Project, out: TextIO = sys.stdout) -> int:
    flowfile = project.flowfile
    groups = flowfile.groups()
    width = max((len(g) for g in groups), default=0)
    for group, variants in groups.items():
        spec = flowfile.tasks[variants[0]]
        text = spec.help
        if len(variants) > 1 or variants[0] != group:
            text = (text + "  " if text else "") + f"[{len(variants)} variants: {_shorten(variants)}]"
        out.write(f"{group:<{width}}  {text}".rstrip() + "\n")
    return 0


def _shorten(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … +{len(names) - limit}" if len(names) > limit else "")


def show_graph(project: Project, names: Sequence[str], *, fmt: str, out: TextIO = sys.stdout) -> int:
    graph = project.graph
    tasks = closure(graph, resolve_targets(project.flowfile, graph, names)) if names else graph.order
    selected = set(tasks)
    edges = [(dep, name) for name in tasks for dep in graph.deps[name] if dep in selected]
    linked = {n for e in edges for n in e}
    lone = [n for n in tasks if n not in linked]
    if fmt == "dot":
        out.write("digraph flowmake {\n  rankdir=LR;\n  node [shape=box];\n")
        for n in lone:
            out.write(f"  {_dot_id(n)};\n")
        for a, b in edges:
            out.write(f"  {_dot_id(a)} -> {_dot_id(b)};\n")
        out.write("}\n")
    elif fmt == "mermaid":
        ids = {n: f"t{i}" for i, n in enumerate(tasks)}
        out.write("graph LR\n")
        for n in tasks:
            label = n.replace('"', "#quot;")
            out.write(f'  {ids[n]}["{label}"]\n')
        for a, b in edges:
            out.write(f"  {ids[a]} --> {ids[b]}\n")
    else:
        for n in lone:
            out.write(f"{n}\n")
        for a, b in edges:
            out.write(f"{a} -> {b}\n")
    return 0


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- clean ---------------------------------------------------------------------


def clean_outputs(project: Project, names: Sequence[str], *, dry_run: bool, wait: bool,
                  out: TextIO = sys.stdout) -> int:
    flowfile = project.flowfile
    tasks = resolve_targets(flowfile, project.graph, names) if names else tuple(flowfile.tasks)
    paths = [o for t in tasks for o in flowfile.tasks[t].outputs]
    lock = None if dry_run else _lock(project, wait=wait)
    try:
        removed = 0
        for rel in paths:
            full = project.root / rel.rstrip("/")
            if not (full.exists() or full.is_symlink()):
                continue
            removed += 1
            if dry_run:
                out.write(f"would remove {rel}\n")
                continue
            if rel.endswith("/") and full.is_dir() and not full.is_symlink():
                shutil.rmtree(full)
            else:
                full.unlink()
            out.write(f"removed {rel}\n")
        if not dry_run:
            from . import snapshot as snapshots
            from .state import state_dir

            snapshots.remove(state_dir(project.root))
            state = _open_state(project)
            try:
                state.forget_tasks(tasks, paths)
            finally:
                state.close()
        verb = "would remove" if dry_run else "removed"
        out.write(f"{verb} {removed} of {len(paths)} declared outputs of {len(tasks)} tasks\n")
    finally:
        if lock is not None:
            lock.release()
    return 0


# -- check and init ------------------------------------------------------------


def check_flowfile(*, file: Optional[Path], directory: Optional[Path], out: TextIO = sys.stdout) -> int:
    from .flowfile import find_flowfile, load_with_problems

    path = find_flowfile(_enter(directory), file)
    flowfile, problems = load_with_problems(path)
    errors: List[FlowError] = list(problems)
    try:
        graph = build_graph(flowfile)
    except FlowfileErrors as exc:
        errors.extend(exc.errors)
        graph = None
    if graph is not None and flowfile.default is not None:
        for name in flowfile.default:
            try:
                resolve_targets(flowfile, graph, [name])
            except UsageError as exc:
                errors.append(FlowfileError(f"[flow] default: {exc.message}", file=flowfile.path, hint=exc.hint))
    if errors:
        unique = list({e.render(): e for e in errors}.values())
        unique.sort(key=lambda e: e.location.line or 0)
        raise FlowfileErrors(unique)
    groups = flowfile.groups()
    out.write(f"ok: {flowfile.path.name} is valid: {len(flowfile.tasks)} tasks"
              + (f" in {len(groups)} groups" if len(groups) != len(flowfile.tasks) else "") + "\n")
    return 0


def write_starter(*, directory: Optional[Path], overwrite: bool, out: TextIO = sys.stdout) -> int:
    cwd = _enter(directory)
    path = cwd / "Flowfile.toml"
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists", hint="edit it, or pass --force to replace it with the starter")
    path.write_text(STARTER.format(name=json.dumps(cwd.name or "project")))
    out.write(f"wrote {path}: try `flowmake run`, then `flowmake status`\n")
    return 0


# -- history: log, lineage, audit ---------------------------------------------


def _when(ts: Optional[float]) -> str:
    from .events import iso_time

    return iso_time(ts) if ts is not None else ""


def _find_run(state, run_id: str) -> str:
    ids = state.run_ids()
    if run_id in ids:
        return run_id
    matches = [i for i in ids if i.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    hint = "`flowmake log` lists the recorded runs"
    if matches:
        raise UsageError(f"run id '{run_id}' is ambiguous: {len(matches)} runs start with it", hint=hint)
    raise UsageError(f"no run with id '{run_id}' is recorded in this project", hint=hint)


def show_log(project: Project, run_id: Optional[str], *, as_json: bool, limit: int,
             out: TextIO = sys.stdout) -> int:
    state = _open_state(project)
    try:
        if run_id is None:
            runs = state.runs(limit)
            if as_json:
                out.write(json.dumps([_run_json(r) for r in runs], indent=2) + "\n")
                return 0
            if not runs:
                out.write("no runs recorded yet\n")
                return 0
            rows = [("RUN", "STARTED", "TOOK", "RESULT", "TASKS", "TARGETS", "BY")]
            for r in runs:
                attempts = state.attempts(r.id)
                rows.append((r.id, _when(r.started)[:19].replace("T", " "),
                             _took(r.started, r.finished), r.result or "(died)", _attempt_counts(attempts),
                             " ".join(r.targets) or "-", f"{r.user}@{r.host}"))
            _table(rows, out)
            return 0
        rid = _find_run(state, run_id)
        (run,) = [r for r in state.runs() if r.id == rid]
        attempts = state.attempts(rid)
    finally:
        state.close()
    if as_json:
        payload = _run_json(run)
        payload["argv"] = list(run.argv)
        payload["version"] = run.version
        payload["flowfile_hash"] = run.flowfile_hash
        payload["attempts"] = [_attempt_json(a) for a in attempts]
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    out.write(f"run {run.id}: {run.result or 'did not finish (flowmake was killed)'}\n")
    out.write(f"  started  {_when(run.started)}   took {_took(run.started, run.finished)}\n")
    out.write(f"  by       {run.user}@{run.host}, flowmake {run.version}\n")
    out.write(f"  command  flowmake {' '.join(run.argv)}\n")
    out.write(f"  targets  {' '.join(run.targets) or '-'}\n")
    out.write(f"  Flowfile {run.flowfile_hash}\n")
    if not attempts:
        out.write("\nno task ran\n")
    for a in attempts:
        took = _took(a.started, a.finished)
        code = "" if a.exit_code is None else f", exit {a.exit_code}"
        retry = f", attempt {a.attempt}" if a.attempt > 1 else ""
        out.write(f"\n{a.task}: {a.status}{code}{retry}, {took} ({_when(a.started)} to {_when(a.finished)})\n")
        if a.message:
            out.write(f"  why failed  {a.message}\n")
        out.write("  reasons     " + ("; ".join(str(r) for r in a.reasons) or "-") + "\n")
        out.write(f"  command     {a.command}\n")
        for label, files in (("inputs", a.inputs), ("outputs", a.outputs)):
            out.write(f"  {label:<11} {'' if files else '-'}".rstrip() + "\n")
            for path, digest in sorted(files.items()):
                out.write(f"    {digest or '(missing)'}  {path}\n")
        if a.log:
            out.write(f"  log         {a.log} ({a.log_hash or 'no hash'})\n")
    return 0


def _run_json(r) -> dict:
    return {"id": r.id, "started": _when(r.started), "finished": _when(r.finished) or None, "result": r.result,
            "targets": list(r.targets), "user": r.user, "host": r.host}


def _attempt_json(a) -> dict:
    return {"task": a.task, "attempt": a.attempt, "status": a.status,
            "reasons": [r.to_json() for r in a.reasons], "command": a.command, "started": _when(a.started),
            "finished": _when(a.finished), "exit_code": a.exit_code, "message": a.message,
            "inputs": dict(a.inputs), "outputs": dict(a.outputs), "log": a.log, "log_hash": a.log_hash}


def _took(start: Optional[float], end: Optional[float]) -> str:
    if start is None or end is None:
        return "-"
    from .report.common import format_duration

    return format_duration(end - start)


def _attempt_counts(attempts) -> str:
    counts: Dict[str, int] = {}
    for a in attempts:
        counts[a.status] = counts.get(a.status, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none ran"


def _table(rows: List[tuple], out: TextIO) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")


def prune_logs(project: Project, keep: int, *, wait: bool, out: TextIO = sys.stdout) -> int:
    import time

    from .state import STATE_DIR

    if keep < 0:
        raise UsageError(f"--prune needs a number of runs to keep (0 or more), got {keep}")
    lock = _lock(project, wait=wait)
    try:
        state = _open_state(project)
        try:
            old = state.run_ids()[keep:]
            logs = project.root / STATE_DIR / "logs"
            pruned = [rid for rid in old if (logs / rid).exists()]
            for rid in pruned:
                shutil.rmtree(logs / rid)
            if pruned:
                state.record_prune(pruned[0], pruned, when=time.time())
        finally:
            state.close()
    finally:
        lock.release()
    out.write(f"pruned the logs of {len(pruned)} run(s); kept the newest {keep}; the records stay\n")
    return 0


def _sources(node) -> List[dict]:
    """The source files (read, never produced) behind a lineage tree, sorted by path."""
    found: Dict[tuple, dict] = {}
    stack = [node]
    seen: set = set()
    while stack:
        n = stack.pop()
        key = (n.path, n.recorded_hash)
        if key in seen:
            continue
        seen.add(key)
        if n.producer is None and n is not node:
            found[key] = {"path": n.path, "hash": n.recorded_hash, "current_hash": n.current_hash}
        stack.extend(n.inputs)
    return sorted(found.values(), key=lambda d: (d["path"], d["hash"] or ""))


def show_lineage(project: Project, path: str, *, as_json: bool, sources_only: bool = False,
                 out: TextIO = sys.stdout) -> int:
    from .audit import lineage
    from .hashing import FileHasher

    state = _open_state(project)
    try:
        node = lineage(state, FileHasher(project.root, state.stat_cache()), path)
    finally:
        state.close()
    if node.producer is None and node.current_hash is None:
        raise UsageError(f"{path} does not exist and no recorded run wrote it",
                         hint="give a path relative to the project root, e.g. dist/report.md")
    if as_json and not sources_only:
        out.write(json.dumps(node.to_json(), indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    def label(n) -> str:
        short = (n.recorded_hash or "?")[:16]
        state_note = ""
        if n.current_hash is None:
            state_note = " [yellow](missing now)[/]"
        elif n.recorded_hash and n.current_hash != n.recorded_hash:
            state_note = f" [yellow](changed since: now {n.current_hash[:16]})[/]"
        head = f"[bold]{escape(n.path)}[/] [dim]{short}[/]{state_note}"
        if n.producer is None:
            return head + " [cyan]source[/]"
        p = n.producer
        text = f"{head}\n[green]← {escape(p.task)}[/] in run {p.run_id} at {_when(p.finished)}"
        if n.note:
            text += f"\n[dim]{escape(n.note)}[/]"
        return text

    shown: set = set()

    def grow(tree, n) -> None:
        # Each produced file is expanded once; later mentions point back to it,
        # so a deliverable built from many studies stays readable.
        for child in n.inputs:
            key = (child.path, child.recorded_hash)
            if child.producer is not None and key in shown:
                tree.add(label(child).split("\n")[0] + " [dim](inputs shown above)[/]")
                continue
            shown.add(key)
            grow(tree.add(label(child)), child)

    if sources_only:
        if not node.matches_disk and node.producer is not None:
            now = "is missing" if node.current_hash is None else "holds bytes no recorded run wrote"
            print(f"warning: {path} {now}; these are the sources of the latest recorded version "
                  f"({(node.recorded_hash or '?')[:16]})", file=sys.stderr)
        leaves = _sources(node)
        if as_json:
            out.write(json.dumps(leaves, indent=2) + "\n")
            return 0
        for leaf in leaves:
            flag = "" if leaf["current_hash"] == leaf["hash"] else (
                "  (missing now)" if leaf["current_hash"] is None else "  (changed since)")
            out.write(f"{leaf['hash']}  {leaf['path']}{flag}\n")
        return 0
    root = Tree(label(node))
    shown.add((node.path, node.recorded_hash))
    grow(root, node)
    # Not a terminal: never crop a hash or a timestamp to fit 80 columns.
    width = None if out.isatty() else 1000
    console = Console(file=out, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, width=width)
    console.print(root)
    return 0


def audit_verify(project: Project, out: TextIO = sys.stdout) -> int:
    from .audit import verify

    state = _open_state(project)
    try:
        report, log_problems = verify(state, project.root)
    finally:
        state.close()
    if not report.ok:
        bad = report.bad
        assert bad is not None
        what = f"{bad.kind} record #{bad.seq} (run {bad.run_id}" + (f", task {bad.task})" if bad.task else ")")
        print(f"audit: FAILED at {what}: {report.problem}", file=sys.stderr)
        print(f"audit: the {report.count - 1} records before it are intact (head {report.head})", file=sys.stderr)
        return 1
    for p in log_problems:
        print(f"audit: FAILED: log of {p.task} in run {p.run_id} ({p.log}): {p.problem}", file=sys.stderr)
    if log_problems:
        return 1
    out.write(f"audit: ok: {report.count} records, hash chain intact, kept logs match their hashes\n")
    out.write(f"audit: head {report.head}\n")
    return 0


def audit_export(project: Project, *, fmt: str, output: Optional[Path], out: TextIO = sys.stdout) -> int:
    import csv
    import io

    state = _open_state(project)
    try:
        entries = state.journal()
        report = state.verify_journal()
    finally:
        state.close()
    records = []
    for e in entries:
        try:
            body = json.loads(e.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"unreadable_body": e.body}  # exported as found; verify names it
        records.append({"seq": e.seq, "kind": e.kind, "run_id": e.run_id, "task": e.task, "hash": e.hash,
                        "prev_hash": e.prev_hash, "record": body})
    if fmt == "json":
        text = json.dumps({"chain_ok": report.ok, "head": report.head, "records": records}, indent=2) + "\n"
    else:
        buffer = io.StringIO()
        fields = ["seq", "kind", "run_id", "task", "hash", "prev_hash"]
        extra: List[str] = []
        for r in records:
            for k in r["record"]:
                if k not in extra and k not in fields:
                    extra.append(k)
        writer = csv.DictWriter(buffer, fieldnames=fields + extra, lineterminator="\n")
        writer.writeheader()
        for r in records:
            row = {k: r[k] for k in fields}
            for k, v in r["record"].items():
                if k in fields:
                    continue
                row[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
            writer.writerow(row)
        text = buffer.getvalue()
    if output is None:
        out.write(text)
    else:
        output.write_text(text)
        out.write(f"wrote {len(records)} records to {output}\n")
    if not report.ok:
        bad = report.bad
        print(f"audit: warning: the exported trail is broken at record #{bad.seq}: {report.problem} "
              "(see `flowmake audit verify`)", file=sys.stderr)
        return 1
    return 0
