"""`flowmake report`: choose the runs, gather their document, write it as HTML, Markdown or JSON.

Reads only: no lock is taken and nothing is recorded, so a report can be
made while another run is going (it then shows that run as not finished).
Today's Flowfile is loaded only for the shape of the graph (collect.py says
when it is used); a Flowfile that does not load is a warning, not an error,
because an auditor asking what ran must not be stopped by today's edit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, TextIO

from ..errors import FlowError, UsageError
from ..history.log import resolve_run_id
from . import collect
from .lineage import flatten_lineage

FORMATS = ("html", "md", "json")
MAX_RUNS = 100  # runs in one --since report, the newest; a busy CI project makes hundreds a week


def write_report(root: Path, load_project: Callable[[], object], *, run_id: Optional[str], since: Optional[str],
                 fmt: str, output: Optional[Path], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    from ..store.state import State

    if fmt not in FORMATS:
        raise UsageError(f"unknown report format '{fmt}'", hint="use one of: " + ", ".join(FORMATS))
    if since is not None and run_id is not None:
        raise UsageError("give a run id or --since, not both",
                         hint="`flowmake report RUN_ID` reports one run, `flowmake report --since 7d` several")
    window = _window(since) if since is not None else None
    state = State.open(root, warn=lambda message: print(f"warning: {message}", file=err))
    try:
        runs = state.runs()
        if window is not None:
            chosen = [r for r in runs if r.started >= time.time() - window][:MAX_RUNS]
        else:
            if not runs:
                raise UsageError("no run is recorded in this project yet", hint="`flowmake run` records one")
            chosen = [_find_run(runs, run_id)] if run_id is not None else [runs[0]]
        project = _project_or_none(load_project, err) if chosen else None
        from ..history.audit import verify

        chain, log_problems = verify(state, root)
        sections = [_section(state, run, project, root=root) for run in chosen]
    finally:
        state.close()
    name = project.flowfile.name if project is not None else root.name
    doc = collect.document(sections, project=name, root=root, audit=collect.audit_summary(chain, log_problems),
                           window=since)
    if fmt == "json":
        text = json.dumps(doc, indent=2) + "\n"
    elif fmt == "md":
        from .markdown import render

        text = render(doc)
    else:
        from .page import render as render_page

        text = render_page(doc)
    if output is None or str(output) == "-":
        out.write(text)
    else:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the report to {output}: {exc.strerror}") from None
        what = f"run {chosen[0].id}" if window is None else f"{len(chosen)} run(s) since {since}"
        out.write(f"wrote the report of {what} to {output}\n")
    return 0


def _window(since: str) -> float:
    from ..load.durations import parse_duration

    try:
        return parse_duration(since, what="--since")
    except FlowError as exc:
        raise UsageError(exc.message, hint='e.g. --since 7d, --since 12h, --since 1d12h') from None


def _find_run(runs: List, run_id: str):
    chosen = resolve_run_id([r.id for r in runs], run_id)
    return next(r for r in runs if r.id == chosen)


def _project_or_none(load_project: Callable[[], object], err: TextIO):
    try:
        return load_project()
    except FlowError as exc:
        first = exc.render().splitlines()[0].replace("error: ", "", 1)
        print(f"warning: the Flowfile does not load ({first}); the report's graph is rebuilt from the recorded "
              "attempts", file=err)
        return None


def _section(state, run, project, *, root: Path) -> dict:
    attempts = state.attempts(run.id)
    shape = None
    if project is not None:
        shape = collect.shape_from_flowfile(project.flowfile, project.graph, run, attempts)
    if shape is None:
        shape = collect.shape_from_attempts(run, attempts)
    section = collect.collect_run(run, attempts, shape, root=root)
    statuses = {t["name"]: t["status"] for t in section["tasks"]}
    section["lineage"] = _lineage(state, root, collect.final_outputs(shape, attempts, statuses), attempts)
    return section


def _lineage(state, root: Path, outputs: List[str], attempts) -> dict:
    from ..history.lineage import lineage, lineage_of_content
    from ..store.hashing import FileHasher

    hasher = FileHasher(root, state.stat_cache())
    written = {}
    for a in attempts:
        if a.status == "ok":
            written.update(a.outputs)
    trees = []
    for path in outputs:
        recorded = written.get(path)
        # The bytes this run wrote, even if rebuilt since; a fresh task's output as it is now.
        trees.append(lineage_of_content(state, hasher, path, recorded) if recorded else lineage(state, hasher, path))
    return flatten_lineage(trees)
