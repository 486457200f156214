"""`flowmake log`: the recorded runs, one run's attempts, a task's log as it was written; `log --prune`.

The readers of history answer a different question from the commands that
run the pipeline, asked later and by other people: what ran, on which
bytes, and is the record of it intact. So they read the state only, never
the Flowfile: they take the project root (commands.history_root) and keep
working when today's Flowfile does not load or is gone.
"""

from __future__ import annotations

import json
import os
import posixpath
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO

from ..errors import UsageError, did_you_mean
from ..events import iso_time
from ..layout import STATE_DIR, in_project
from ..removal import remove
from ..store.lock import lock_project
from ..store.state import State
from .lineage import output_keys, project_path


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _when(ts: Optional[float]) -> str:
    return iso_time(ts) if ts is not None else ""


def _find_run(state, run_id: str) -> str:
    return resolve_run_id(state.run_ids(), run_id)


def resolve_run_id(ids: Sequence[str], run_id: str) -> str:
    """The recorded run `run_id` names, whole or by a unique prefix (log, report); else a usage error."""
    if run_id in ids:
        return run_id
    matches = [i for i in ids if i.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    hint = "`flowmake log` lists the recorded runs"
    if matches:
        raise UsageError(f"run id '{run_id}' is ambiguous: {len(matches)} runs start with it", hint=hint)
    raise UsageError(f"no run with id '{run_id}' is recorded in this project", hint=hint)


def show_log(root: Path, run_id: Optional[str], task: Optional[str] = None, *, last: bool = False,
             as_json: bool, limit: int, out: TextIO = sys.stdout) -> int:
    """The runs; one run's attempts; or (with `task`) that task's log in the run.

    `last`: the newest run, and with a task (given where the run id goes,
    `flowmake log --last TASK`) the newest run in which that task ran.
    """
    if last:
        if task is not None:
            raise UsageError("--last takes the place of the run id",
                             hint=f"`flowmake log --last {task}`, or `flowmake log {run_id} {task}`")
        task, run_id = run_id, None
    state = State.open_for_reading(root)
    try:
        if last:
            run_id = _newest_run(state, root, task)
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
                             _targets_text(r.targets, TARGETS_COLUMN), f"{r.user}@{r.host}"))
            _table(rows, out)
            return 0
        rid = _find_run(state, run_id)
        (run,) = [r for r in state.runs() if r.id == rid]
        attempts = state.attempts(rid)
    finally:
        state.close()
    if task is not None:
        return _print_task_log(root, rid, _attempts_of(root, attempts, task, rid), as_json=as_json, out=out)
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
    out.write(f"  targets  {_targets_text(run.targets, TARGETS_LINE)}\n")
    out.write(f"  Flowfile {run.flowfile_hash}\n")
    if not attempts:
        out.write("\nno task ran\n")
    for a in attempts:
        took = _took(a.started, a.finished)
        code = "" if a.exit_code is None else f", exit {a.exit_code}"
        retry = f", attempt {a.attempt}" if a.attempt > 1 else ""
        out.write(f"\n{a.task}: {a.status}{code}{retry}, {took} ({_when(a.started)} to {_when(a.finished)})\n")
        if a.restored is not None:
            r = a.restored
            out.write(f"  restored    from cache {r.get('cache')}, entry {r.get('entry')}\n"
                      f"              produced by run {r.get('run')} on host {r.get('host')} ({r.get('user')})\n")
        elif a.message:
            out.write(f"  why failed  {a.message}\n")
        out.write("  reasons     " + ("; ".join(str(r) for r in a.reasons) or "-") + "\n")
        out.write(f"  command     {a.command}\n")
        if a.worker:
            out.write(f"  ran on      {a.worker}\n")
        for label, files in (("inputs", a.inputs), ("outputs", a.outputs)):
            out.write(f"  {label:<11} {'' if files else '-'}".rstrip() + "\n")
            for path, digest in sorted(files.items()):
                out.write(f"    {digest or '(missing)'}  {path}\n")
        if a.log:
            out.write(f"  log         {a.log} ({a.log_hash or 'no hash'})\n")
        elif a.exit_code is not None:
            out.write("  log         - (it printed nothing)\n")
    return 0


def _newest_run(state, root: Path, task: Optional[str]) -> str:
    """The newest run; with a task (or matrix task, or output path), the newest run in which it ran."""
    if task is None:
        ids = state.run_ids()
        if not ids:
            raise UsageError("no runs recorded yet", hint="`flowmake run` records one")
        return ids[0]
    newest = state.newest_run_by_task()
    found = [rid for name, rid in newest.items() if name == task or name.split(":", 1)[0] == task]
    if not found:
        rel = _log_path_arg(root, task)
        if rel is not None:
            found = [a.run_id for a in state.attempts_writing(output_keys(rel))]
    if not found:
        names = sorted(newest)
        raise UsageError(f"no recorded run ran a task '{task}'",
                         hint=did_you_mean(task, names + sorted({n.split(":", 1)[0] for n in names}))
                         or "`flowmake log` lists the runs, `flowmake log RUN_ID` the tasks each ran")
    return max(found)


def _log_path_arg(root: Path, arg: str) -> Optional[str]:
    """A TASK argument read as an output path, relative to the root; exit 2 for an absolute one outside."""
    if os.path.isabs(arg):
        return project_path(root, arg)
    if "/" in arg or "." in arg:
        return in_project(root, arg)
    return None


def _attempts_of(root: Path, attempts: Sequence, task: str, run_id: str) -> List:
    """The attempts of `task` in a run: the task itself, a matrix task's variants, or an output's writer."""
    mine = [a for a in attempts if a.task == task]
    if not mine:
        mine = [a for a in attempts if ":" in a.task and a.task.split(":", 1)[0] == task]
    if not mine:
        rel = _log_path_arg(root, task)
        if rel is not None:
            keys = set(output_keys(posixpath.normpath(rel)))
            mine = [a for a in attempts if keys.intersection(a.outputs)]
    if not mine:
        names = sorted({a.task for a in attempts})
        groups = sorted({n.split(":", 1)[0] for n in names if ":" in n})
        ran = ("the tasks that ran in it: " + _shorten_names(names)) if names else "no task ran in that run"
        raise UsageError(f"task '{task}' did not run in run {run_id} (no attempt of it is recorded there)",
                         hint=did_you_mean(task, names + groups) or ran)
    return mine


def _shorten_names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … +{len(names) - limit} more" if len(names) > limit else "")


def _print_task_log(root: Path, run_id: str, attempts: Sequence, *, as_json: bool, out: TextIO) -> int:
    """Each attempt's log as it was written (secrets already masked); `==> ... <==` heads when several."""
    texts: List[Optional[bytes]] = []
    for a in attempts:
        try:
            texts.append((root / a.log).read_bytes() if a.log else b"")
        except OSError:
            texts.append(None)  # pruned or deleted: the record stays
    if as_json:
        payload = []
        for a, data in zip(attempts, texts):
            item = {"run_id": a.run_id, **_attempt_json(a)}
            item["text"] = None if data is None else data.decode("utf-8", "replace")
            payload.append(item)
        out.write(json.dumps(payload, indent=2) + "\n")
        return 0
    gone = [a for a, data in zip(attempts, texts) if data is None]
    if len(gone) == len(attempts):
        a = gone[0]
        raise UsageError(f"the log of {a.task} in run {run_id} ({a.log}) no longer exists",
                         hint="`flowmake log --prune` deletes old runs' logs; the record stays: "
                              f"`flowmake log {run_id}`")
    if len(attempts) == 1:
        a, data = attempts[0], texts[0]
        if not data:
            why = f"it never started: {a.message}" if a.log is None and a.message else "it printed nothing"
            print(f"note: {a.task} in run {run_id}: {why}", file=sys.stderr)
        _write_bytes(out, data or b"")
        return 0
    for i, (a, data) in enumerate(zip(attempts, texts)):
        code = "" if a.exit_code is None else f", exit {a.exit_code}"
        where = a.log or "no log"
        if data is None:
            where += ", which no longer exists"
        elif not data:
            where += ", empty" if a.log else ""
        out.write(("\n" if i else "") + f"==> {a.task}, attempt {a.attempt}: {a.status}{code} ({where}) <==\n")
        if data:
            _write_bytes(out, data if data.endswith(b"\n") else data + b"\n")
    return 0


def _write_bytes(out: TextIO, data: bytes) -> None:
    """A log's bytes unchanged where `out` has a binary side (the console); decoded where not."""
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        out.write(data.decode("utf-8", "replace"))
        return
    out.flush()
    buffer.write(data)
    buffer.flush()


def _run_json(r) -> dict:
    out = {"id": r.id, "started": _when(r.started), "finished": _when(r.finished) or None, "result": r.result,
           "targets": list(r.targets), "user": r.user, "host": r.host}
    if getattr(r, "trigger", None) is not None:  # started by a schedule (docs/schedules.md)
        out["trigger"] = dict(r.trigger)
    return out


def _attempt_json(a) -> dict:
    return {"task": a.task, "attempt": a.attempt, "status": a.status,
            "reasons": [r.to_json() for r in a.reasons], "command": a.command, "started": _when(a.started),
            "finished": _when(a.finished), "exit_code": a.exit_code, "message": a.message,
            "inputs": dict(a.inputs), "outputs": dict(a.outputs), "log": a.log, "log_hash": a.log_hash,
            "worker": a.worker, **({"restored_from": dict(a.restored)} if a.restored is not None else {})}


TARGETS_COLUMN = 40  # characters of the run table's TARGETS column
TARGETS_LINE = 400  # characters of one run's targets line


def _targets_text(targets: Sequence[str], width: int) -> str:
    """The targets as one line of at most about `width` characters.

    A run without named targets records the default, every task of a
    Flowfile without `flow.default`: thousands of names, which `--json` keeps.
    """
    text = " ".join(targets)
    if len(text) <= width:
        return text or "-"
    shown: List[str] = []
    used = 0
    for name in targets:
        if used + len(name) > width - 12 and shown:
            break
        shown.append(name)
        used += len(name) + 1
    return f"{' '.join(shown)} … +{len(targets) - len(shown)} more"


def _took(start: Optional[float], end: Optional[float]) -> str:
    if start is None or end is None:
        return "-"
    from ..report.common import format_duration

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


def prune_logs(root: Path, keep: int, *, wait: bool, out: TextIO = sys.stdout) -> int:
    import time

    if keep < 0:
        raise UsageError(f"--prune needs a number of runs to keep (0 or more), got {keep}")
    lock = lock_project(root, wait=wait)
    try:
        state = State.open(root, warn=_warn)
        try:
            old = state.run_ids()[keep:]
            logs = root / STATE_DIR / "logs"
            pruned = []
            for rid in old:
                if not (logs / rid).exists():
                    continue
                refused = remove(str(logs), rid, tree=True, boundary=f"{STATE_DIR}/logs")
                if refused is not None:
                    print(f"warning: {refused}", file=sys.stderr)
                    continue
                pruned.append(rid)
            if pruned:
                state.record_prune(pruned[0], pruned, when=time.time())
        finally:
            state.close()
    finally:
        lock.release()
    out.write(f"pruned the logs of {len(pruned)} run(s); kept the newest {keep}; the records stay\n")
    return 0
