"""The report's data: one run (or several) as a plain JSON-able document.

Everything comes from the state: the run record, its attempts, the log files
they name, the audit chain and the lineage of the outputs. Only the shape of
the graph needs more than the attempts hold (which tasks were selected but
did not run, `after` edges, sensors): it is taken from the Flowfile when
today's Flowfile loads and describes the run (each of the run's targets and
attempted tasks is one of its tasks), else rebuilt from the recorded
attempts alone, where a task that ran depends on the task whose recorded
output it read. The document says which (`graph_source`), and the page shows
it. The renderers (page.py, markdown.py) read nothing but this document, so
`--format json` is exactly what the page is drawn from.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ..events import iso_time
from ..model import AttemptRecord, RunRecord
from ..report.common import clean_line

DOCUMENT_FORMAT = "flowmake-report"
DOCUMENT_VERSION = 1
LOG_LIMIT = 64 * 1024  # characters of a task's log kept in the page (its end: where failures are)
MAX_LINEAGE_OUTPUTS = 50  # final outputs traced back; a report of a 10,000-output run stays readable

# What happened to a task in a run, worst first: a group of matrix variants shows its worst. A task
# restored from the shared cache (docs/cache.md) did this run's work without running: after "ran".
STATUS_ORDER = ("failed", "interrupted", "skipped", "not run", "ran", "restored", "fresh")


@dataclass
class RunShape:
    """The tasks a run selected, in topological order, and their dependencies among them."""

    tasks: List[str]
    deps: Dict[str, List[str]]
    groups: Dict[str, str]  # task -> its matrix group (itself without a matrix)
    declared_outputs: Dict[str, List[str]] = field(default_factory=dict)
    source: str = "recorded"  # "flowfile", "flowfile-changed" or "recorded"


def shape_from_flowfile(flowfile, graph, run: RunRecord, attempts: Sequence[AttemptRecord]) -> Optional[RunShape]:
    """The run's tasks as today's Flowfile has them; None when it does not describe the run."""
    from ..engine.graph import closure

    known = graph.deps
    if any(t not in known for t in run.targets) or any(a.task not in known for a in attempts):
        return None
    selected = closure(graph, run.targets)
    chosen = set(selected)
    if any(a.task not in chosen for a in attempts):
        return None
    specs = flowfile.tasks
    return RunShape(
        tasks=list(selected),
        deps={t: [d for d in known[t] if d in chosen] for t in selected},
        groups={t: specs[t].group for t in selected},
        declared_outputs={t: list(specs[t].outputs) for t in selected},
        source="flowfile" if flowfile.source_hash == run.flowfile_hash else "flowfile-changed",
    )


def shape_from_attempts(run: RunRecord, attempts: Sequence[AttemptRecord]) -> RunShape:
    """The run's tasks as its records have them: file edges between the tasks that ran."""
    names = list(dict.fromkeys([a.task for a in attempts] + list(run.skipped or ()) + list(run.targets)))
    producers: Dict[str, str] = {}
    for a in attempts:
        for out in a.outputs:
            producers[out] = a.task
    deps: Dict[str, List[str]] = {n: [] for n in names}
    for a in attempts:
        for path in a.inputs:
            producer = _producer(producers, path)
            if producer is not None and producer != a.task and producer not in deps[a.task]:
                deps[a.task].append(producer)
    return RunShape(tasks=_topological(names, deps), deps=deps, groups={n: n.split(":", 1)[0] for n in names},
                    declared_outputs={})


def _producer(producers: Mapping[str, str], path: str) -> Optional[str]:
    if path in producers:
        return producers[path]
    parent = posixpath.dirname(path.rstrip("/"))
    while parent and parent != "/":
        if parent + "/" in producers:
            return producers[parent + "/"]
        parent = posixpath.dirname(parent)
    return None


def _topological(names: Sequence[str], deps: Mapping[str, Sequence[str]]) -> List[str]:
    order: List[str] = []
    done: Set[str] = set()
    for start in names:
        stack = [(start, iter(deps[start]))]
        if start in done:
            continue
        done.add(start)
        while stack:
            node, it = stack[-1]
            nxt = next((d for d in it if d not in done), None)
            if nxt is None:
                stack.pop()
                order.append(node)
            else:
                done.add(nxt)
                stack.append((nxt, iter(deps[nxt])))
    return order


# -- one run -------------------------------------------------------------------


def collect_run(run: RunRecord, attempts: Sequence[AttemptRecord], shape: RunShape, *, root: Path,
                lineage: Optional[dict] = None) -> dict:
    """One run's section of the document."""
    started = run.started
    by_task: Dict[str, List[AttemptRecord]] = {}
    for a in attempts:
        by_task.setdefault(a.task, []).append(a)
    ended = run.finished if run.finished is not None else max((a.finished for a in attempts), default=started)
    status = _statuses(shape, by_task, run.result, run.skipped)
    depth = _depths(shape)
    finish = {t: max(a.finished for a in atts) for t, atts in by_task.items()}
    first_start = {t: min(a.started for a in atts) for t, atts in by_task.items()}
    critical = _critical_path(shape, first_start, finish)
    on_critical = set(critical)
    dependents: Dict[str, List[str]] = {t: [] for t in shape.tasks}
    for t in shape.tasks:
        for d in shape.deps[t]:
            dependents[d].append(t)
    tasks = []
    for name in shape.tasks:
        atts = by_task.get(name, [])
        tasks.append({
            "name": name,
            "group": shape.groups.get(name, name),
            "status": status[name][0],
            "note": status[name][1],
            "retried": len(atts) > 1,
            "depth": depth[name],
            "deps": list(shape.deps[name]),
            "critical": name in on_critical,
            "duration": round(finish[name] - first_start[name], 3) if atts else None,
            "wait": _wait(atts, started),
            "attempts": [_attempt(a, started=started, root=root) for a in atts],
        })
    spans = sorted((a.started - started, a.finished - started) for a in attempts)
    idle = _idle(spans, ended - started)
    counts: Dict[str, int] = {}
    for t in tasks:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    return {
        "id": run.id,
        "result": run.result or "did not finish",
        "started": iso_time(started),
        "finished": iso_time(run.finished) if run.finished is not None else None,
        "duration": round(ended - started, 3),
        "user": run.user,
        "host": run.host,
        "version": run.version,
        "flowfile_hash": run.flowfile_hash,
        "argv": list(run.argv),
        "targets": list(run.targets),
        "graph_source": shape.source,
        "counts": counts,
        "attempt_count": len(attempts),
        "tasks": tasks,
        "edges": [[d, t] for t in shape.tasks for d in shape.deps[t]],
        "critical_path": critical,
        "idle": [[round(a, 3), round(b, 3)] for a, b in idle],
        "idle_seconds": round(sum(b - a for a, b in idle), 3),
        "max_parallel": _max_parallel(spans),
        "lineage": lineage if lineage is not None else {"outputs": [], "files": []},
    }


def _statuses(shape: RunShape, by_task: Mapping[str, List[AttemptRecord]], result: Optional[str],
              skipped: Optional[Mapping[str, str]]) -> Dict[str, Tuple[str, Optional[str]]]:
    """Each task's outcome and a note: the last attempt's, else why it did not run.

    A run that did not succeed records the tasks it did not start (`skipped`);
    every other task of it without an attempt was fresh. Without that record
    (a run that was killed, or one recorded by an older flowmake) a task below
    a failure was skipped, and one beside it cannot be told from a fresh one.
    """
    out: Dict[str, Tuple[str, Optional[str]]] = {}
    for name in shape.tasks:  # topological: a task's deps are decided first
        atts = by_task.get(name)
        if atts:
            last = atts[-1]
            word = {"ok": "ran", "failed": "failed", "interrupted": "interrupted"}.get(last.status, last.status)
            out[name] = (word, last.message)
            continue
        if skipped is not None:
            out[name] = ("skipped", skipped[name]) if name in skipped else ("fresh", None)
            continue
        blocked = next((d for d in shape.deps[name] if out[d][0] in ("failed", "interrupted", "skipped")), None)
        if blocked is not None:
            culprit = out[blocked][1] if out[blocked][0] == "skipped" else f"upstream failed: {blocked}"
            out[name] = ("skipped", culprit)
        elif result == "success":
            out[name] = ("fresh", None)
        else:
            out[name] = ("not run", "fresh, or not started once the run stopped")
    return out


def _depths(shape: RunShape) -> Dict[str, int]:
    depth: Dict[str, int] = {}
    for name in shape.tasks:
        depth[name] = 1 + max((depth[d] for d in shape.deps[name]), default=-1)
    return depth


def _wait(atts: Sequence[AttemptRecord], run_started: float) -> Optional[List[float]]:
    """[from, to] seconds into the run that a wait_for task waited for its files, as recorded."""
    waited = atts[0].waited if atts else None
    if not waited:
        return None
    return [round(waited[0] - run_started, 3), round(waited[1] - run_started, 3)]


def _critical_path(shape: RunShape, first_start: Mapping[str, float], finish: Mapping[str, float]) -> List[str]:
    """The chain that set the run's length: from the task that finished last, each
    step back to the dependency that finished last before it (what it waited for)."""
    if not finish:
        return []
    node: Optional[str] = max(finish, key=lambda t: finish[t])
    chain: List[str] = []
    while node is not None:
        chain.append(node)
        ran = [d for d in shape.deps.get(node, ()) if d in finish]
        node = max(ran, key=lambda t: finish[t]) if ran else None
    return chain[::-1]


def _idle(spans: Sequence[Tuple[float, float]], length: float) -> List[Tuple[float, float]]:
    """Intervals of [0, length] in which no task attempt was running."""
    gaps: List[Tuple[float, float]] = []
    reached = 0.0
    for start, end in spans:  # sorted by start
        if start > reached:
            gaps.append((reached, start))
        reached = max(reached, end)
    if length > reached:
        gaps.append((reached, length))
    return [(a, b) for a, b in gaps if b - a > 0.0005]


def _max_parallel(spans: Iterable[Tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1]))
    best = running = 0
    for _, delta in points:
        running += delta
        best = max(best, running)
    return best


def _attempt(a: AttemptRecord, *, started: float, root: Path) -> dict:
    text, truncated, missing = _log_text(root, a.log)
    return {
        "attempt": a.attempt,
        "status": a.status,
        "start": round(a.started - started, 3),
        "end": round(a.finished - started, 3),
        "duration": round(a.finished - a.started, 3),
        "exit_code": a.exit_code,
        "message": a.message,
        "reasons": [r.to_json() for r in a.reasons],
        "command": a.command,
        "inputs": dict(sorted(a.inputs.items())),
        "outputs": dict(sorted(a.outputs.items())),
        "log": a.log,
        "log_hash": a.log_hash,
        "log_text": text,
        "log_truncated": truncated,
        "log_missing": missing,
    }


def _log_text(root: Path, log: Optional[str]) -> Tuple[Optional[str], bool, bool]:
    """The log as the page shows it (already masked when written), its end if long."""
    if not log:
        return None, False, False
    try:
        raw = (root / log).read_bytes()
    except OSError:
        return None, False, True  # pruned (`log --prune`) or deleted
    text = raw.decode("utf-8", errors="replace")
    truncated = len(text) > LOG_LIMIT
    if truncated:
        text = text[-LOG_LIMIT:].split("\n", 1)[-1]
    return "\n".join(clean_line(line) if "\x1b" in line or "\r" in line else line.rstrip("\n")
                     for line in text.split("\n")), truncated, False


# -- lineage -------------------------------------------------------------------


def final_outputs(shape: RunShape, attempts: Sequence[AttemptRecord], statuses: Mapping[str, str]) -> List[str]:
    """The run's end products: outputs of its succeeded, restored or fresh tasks that no selected task depends on."""
    recorded: Dict[str, List[str]] = {}
    for a in attempts:
        if a.status in ("ok", "restored"):
            recorded[a.task] = list(a.outputs)
    consumers = {d for t in shape.tasks for d in shape.deps[t]}
    finals: Dict[str, None] = {}
    for name in shape.tasks:
        if statuses.get(name) in ("ran", "restored", "fresh") and name not in consumers:
            for out in recorded.get(name) or shape.declared_outputs.get(name, []):
                finals[out] = None
    return list(finals)[:MAX_LINEAGE_OUTPUTS]


# -- the document --------------------------------------------------------------


def document(runs: List[dict], *, project: str, root: Path, audit: dict, window: Optional[str] = None) -> dict:
    from .. import __version__

    return {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "generated": iso_time(time.time()),
        "flowmake_version": __version__,
        "project": {"name": project, "root": str(root)},
        "since": window,
        "audit": audit,
        "runs": runs,
    }


def audit_summary(report, log_problems: Sequence[object]) -> dict:
    """The audit chain's verification (state.ChainReport and audit.LogProblem) as data."""
    bad = report.bad
    return {
        "ok": bool(report.ok and not log_problems),
        "chain_ok": report.ok,
        "records": report.records,
        "head": report.head,
        "problem": None if report.ok else f"record #{bad.seq} ({bad.kind}, run {bad.run_id}): {report.problem}",
        "log_problems": [{"run_id": p.run_id, "task": p.task, "log": p.log, "problem": p.problem}
                         for p in log_problems],
    }
