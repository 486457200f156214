"""The report document as one self-contained HTML page.

The page is `template.html` (the CSS and the little JavaScript that sorts,
filters and folds) filled in with `string.Template`: the standard library
is enough for a handful of substitutions, and its `$name` placeholders do
not clash with the braces of the CSS and JS around them, as Jinja2's `{{ }}`
and a new dependency would. The markup itself (the graph and timeline as SVG,
the tables) is built here from the document, every value through
`html.escape`. Nothing on the page refers to anything outside it, and its
Content-Security-Policy forbids the browser to fetch anything, so it opens
the same from a file:// URL, a CI artifact or a mail attachment.
"""

from __future__ import annotations

import html
from importlib import resources
from string import Template
from typing import Dict, List, Mapping, Optional, Sequence

from ..report.common import format_duration
from .layout import (
    NODE_HEIGHT,
    NODE_WIDTH,
    GraphLayout,
    group_nodes,
    layout_graph,
    task_nodes,
    ticks,
    timeline_lanes,
)

STATUS_CLASS = {"not run": "notrun", "did not finish": "did-not-finish"}
STATUS_WORDS = ("ran", "fresh", "failed", "interrupted", "skipped", "not run")
LABEL_CHARS = 21  # of a task name in a graph node; the full name is its tooltip


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def css_class(status: str) -> str:
    return STATUS_CLASS.get(status, status)


def render(doc: Mapping) -> str:
    template = Template(resources.files(__package__).joinpath("template.html").read_text(encoding="utf-8"))
    runs = doc["runs"]
    project = doc["project"]["name"]
    if doc.get("since"):
        title = f"{project}: flowmake runs since {doc['since']}"
    else:
        title = f"{project}: flowmake run {runs[0]['id']}" if runs else f"{project}: flowmake report"
    parts = [_svg_defs()]
    if doc.get("since") is not None:
        parts.append(_overview(doc))
    for i, run in enumerate(runs):
        parts.append(_run_section(doc, run, index=i))
    if not runs:
        parts.append(f'<div class="card"><h1>{e(title)}</h1><p>No run was recorded in this window.</p></div>')
    return template.substitute(title=e(title), body="\n".join(parts), version=e(doc.get("flowmake_version", "")),
                               generated=e(doc["generated"]), root=e(doc["project"]["root"]))


def _svg_defs() -> str:
    # Shared by every timeline: the stripes of a sensor's wait.
    return ('<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
            '<pattern id="wait-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            '<rect width="6" height="6" fill="#d6edf7"/><line x1="0" y1="0" x2="0" y2="6" stroke="#2b8fb8" stroke-width="2"/>'
            '</pattern></defs></svg>')


# -- several runs ----------------------------------------------------------------


def _overview(doc: Mapping) -> str:
    runs = list(reversed(doc["runs"]))  # oldest first, left to right
    rows = []
    for run in doc["runs"]:
        ran = run["counts"].get("ran", 0)
        rows.append(
            f'<tr><td><a href="#{_section_id(run)}" class="mono">{e(run["id"])}</a></td>'
            f'<td><span class="badge {css_class(run["result"])}">{e(run["result"])}</span></td>'
            f'<td>{e(run["started"][:19].replace("T", " "))}</td><td class="num">{e(format_duration(run["duration"]))}</td>'
            f'<td class="num">{ran}</td><td class="num">{run["counts"].get("failed", 0)}</td>'
            f'<td class="num">{len(run["tasks"])}</td><td>{e(run["user"])}@{e(run["host"])}</td></tr>')
    return (f'<div class="card" id="overview"><h1>{e(doc["project"]["name"])}: {len(runs)} run(s) since '
            f'{e(doc["since"])}</h1><p class="subtitle">Each bar is a run (height: its duration; colour: its '
            'result); the line counts the tasks it ran. Click a run to jump to its section.</p>'
            f'{_audit_line(doc["audit"])}{_trend(runs)}'
            '<table class="runs"><thead><tr><th>Run</th><th>Result</th><th>Started (UTC)</th><th>Took</th>'
            '<th>Ran</th><th>Failed</th><th>Tasks</th><th>By</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def _trend(runs: Sequence[Mapping]) -> str:
    if not runs:
        return ""
    width, height, left, bottom = 960, 150, 48, 22
    longest = max(max(r["duration"] for r in runs), 0.001)
    most = max(max(r["counts"].get("ran", 0) for r in runs), 1)
    step = (width - left - 10) / len(runs)
    bar = max(min(step * 0.7, 40), 2)
    colours = {"success": "var(--ran)", "failed": "var(--failed)", "interrupted": "var(--interrupted)"}
    out = [f'<svg class="trend" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'aria-label="durations and tasks run per run">']
    plot = height - bottom - 10
    for t in ticks(longest, count=3):
        y = height - bottom - t / longest * plot
        out.append(f'<g class="axis"><line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{e(format_duration(t))}</text></g>')
    points = []
    for i, r in enumerate(runs):
        x = left + i * step + (step - bar) / 2
        h = max(r["duration"] / longest * plot, 1)
        out.append(f'<a href="#{_section_id(r)}" class="bar"><rect x="{x:.1f}" y="{height - bottom - h:.1f}" '
                   f'width="{bar:.1f}" height="{h:.1f}" rx="2" fill="{colours.get(r["result"], "var(--notrun)")}">'
                   f'<title>{e(r["id"])}: {e(r["result"])}, {e(format_duration(r["duration"]))}, '
                   f'{r["counts"].get("ran", 0)} ran</title></rect></a>')
        points.append(f'{x + bar / 2:.1f},{height - bottom - r["counts"].get("ran", 0) / most * plot:.1f}')
    out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#1f4fd1" stroke-width="1.5"/>')
    out.append(f'<text x="{left}" y="{height - 6}" class="note" font-size="11" fill="#5d6675">oldest</text>'
               f'<text x="{width - 4}" y="{height - 6}" text-anchor="end" font-size="11" fill="#5d6675">newest</text>')
    out.append("</svg>")
    return "".join(out)


# -- one run ---------------------------------------------------------------------


def _section_id(run: Mapping) -> str:
    return f"run-{run['id']}"


def _audit_line(audit: Mapping) -> str:
    if audit["ok"]:
        return (f'<p class="good">Audit chain verified: {audit["records"]} records intact, kept logs match their '
                f'hashes <span class="hash mono">(head {e(audit["head"][:16])})</span></p>')
    problems = [audit["problem"]] if audit.get("problem") else []
    problems += [f'log of {p["task"]} in run {p["run_id"]}: {p["problem"]}' for p in audit["log_problems"]]
    return '<p class="bad">Audit chain FAILED: ' + e("; ".join(problems)) + "</p>"


GRAPH_NOTES = {
    "flowfile": "Graph from the Flowfile the run used.",
    "flowfile-changed": "Graph from today's Flowfile, which has changed since this run (its hash differs).",
    "recorded": "Graph rebuilt from the recorded attempts (today's Flowfile does not load or does not describe "
                "this run): tasks that did not run and ordering-only (after) edges are not shown.",
}


def _run_section(doc: Mapping, run: Mapping, *, index: int) -> str:
    sid = _section_id(run)
    head = _header(doc, run, index=index)
    return (f'<section class="run" id="{sid}">{head}'
            f'<div class="card" id="{sid}-graph"><h2>Dependency graph</h2>{_graph(run, sid)}</div>'
            f'<div class="card" id="{sid}-timeline"><h2>Timeline</h2>{_timeline(run)}</div>'
            f'<div class="card" id="{sid}-tasks-card"><h2>Tasks</h2>{_table(run, sid)}</div>'
            f'<div class="card" id="{sid}-lineage"><h2>Lineage of the final outputs</h2>{_lineage(run)}</div>'
            "</section>")


def _header(doc: Mapping, run: Mapping, *, index: int) -> str:
    sid = _section_id(run)
    result = run["result"]
    counts = run["counts"]
    chips = "".join(f'<span class="badge {css_class(s)}">{counts[s]} {e(s)}</span>'
                    for s in STATUS_WORDS if counts.get(s))
    retried = sum(1 for t in run["tasks"] if t["retried"])
    if retried:
        chips += f'<span class="badge skipped">{retried} retried</span>'
    finished = run["finished"] or "did not finish (flowmake was killed or is still running)"
    facts = [
        ("Started", run["started"].replace("T", " ")), ("Finished", (finished or "").replace("T", " ")),
        ("Duration", format_duration(run["duration"])), ("By", f'{run["user"]}@{run["host"]}'),
        ("Where", doc["project"]["root"]), ("flowmake", run["version"]),
        ("Command", "flowmake " + " ".join(run["argv"])), ("Flowfile hash", run["flowfile_hash"]),
    ]
    targets = run["targets"]
    shown = " ".join(targets[:12]) + (f" … +{len(targets) - 12} more" if len(targets) > 12 else "")
    facts.append(("Targets", shown or "-"))
    facts.append(("Busy", f'{format_duration(run["duration"] - run["idle_seconds"])} of '
                          f'{format_duration(run["duration"])}; up to {run["max_parallel"]} task(s) at once'))
    mono = ' class="mono"'
    dl = "".join(f"<dt>{e(k)}</dt><dd{mono if k in ('Command', 'Flowfile hash') else ''}>{e(v)}</dd>"
                 for k, v in facts)
    title = f'{e(doc["project"]["name"])}: run <span class="mono">{e(run["id"])}</span>'
    back = ' · <a href="#overview">all runs</a>' if doc.get("since") is not None else ""
    toc = (f'<nav class="toc"><a href="#{sid}-graph">Graph</a><a href="#{sid}-timeline">Timeline</a>'
           f'<a href="#{sid}-tasks-card">Tasks</a><a href="#{sid}-lineage">Lineage</a>{back}</nav>')
    return (f'<div class="card"><h1>{title} <span class="badge {css_class(result)}">{e(result)}</span></h1>'
            f'<p class="subtitle">{len(run["tasks"])} task(s) selected, {run["attempt_count"]} attempt(s) recorded</p>'
            f'<dl class="facts">{dl}</dl>{_audit_line(doc["audit"])}<div class="chips">{chips}</div>{toc}</div>')


# -- graph -------------------------------------------------------------------------


def _graph(run: Mapping, sid: str) -> str:
    tasks = run["tasks"]
    if not tasks:
        return '<p class="note">No task was selected.</p>'
    full = layout_graph(*task_nodes(tasks), run["critical_path"])
    grouped_nodes, grouped_edges = group_nodes(tasks)
    has_groups = len(grouped_nodes) < len(tasks)
    legend = "".join(f'<span><i class="st-{css_class(s)}" style="{_swatch(s)}"></i>{e(s)}</span>' for s in STATUS_WORDS)
    legend += ('<span><i style="border-color:var(--critical);border-width:3px"></i>critical path</span>')
    note = f'<p class="note">{e(GRAPH_NOTES.get(run["graph_source"], ""))} Click a task to see it in the table.</p>'
    if has_groups:
        grouped = layout_graph(grouped_nodes, grouped_edges, run["critical_path"])
        button = (f'<button class="toggle-graph" data-for="{sid}-graphs" data-expand-label="Show every matrix variant '
                  f'({len(tasks)} tasks)" data-group-label="Group matrix variants ({len(grouped_nodes)} nodes)">'
                  f'Show every matrix variant ({len(tasks)} tasks)</button>')
        body = (f'<div id="{sid}-graphs"><div class="scroll graph-grouped">{_graph_svg(grouped)}</div>'
                f'<div class="scroll graph-full" hidden>{_graph_svg(full)}</div></div>')
    else:
        button = ""
        body = f'<div id="{sid}-graphs"><div class="scroll graph-full">{_graph_svg(full)}</div></div>'
    return f'<div class="toolbar">{button}<div class="legend">{legend}</div></div>{note}{body}'


def _swatch(status: str) -> str:
    var = {"not run": "notrun"}.get(status, status)
    dash = "border-style:dashed;" if status == "not run" else ""
    return f"background:var(--{var}-bg);border-color:var(--{var});{dash}"


def _graph_svg(layout: GraphLayout) -> str:
    where = {n.id: n for n in layout.nodes}
    out = [f'<svg class="graph" width="{layout.width:.0f}" height="{layout.height:.0f}" '
           f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" role="img" aria-label="dependency graph">']
    for a, b, critical in sorted(layout.edges, key=lambda edge: edge[2]):  # critical edges drawn on top
        s, t = where[a], where[b]
        x1, y1 = s.x + NODE_WIDTH, s.y + NODE_HEIGHT / 2
        x2, y2 = t.x, t.y + NODE_HEIGHT / 2
        if x2 <= x1:  # a back edge (folded groups in a cycle): loop under
            path = f"M{x1:.1f},{y1:.1f} C{x1 + 40:.1f},{y1 + 60:.1f} {x2 - 40:.1f},{y2 + 60:.1f} {x2:.1f},{y2:.1f}"
        else:
            mid = (x1 + x2) / 2
            path = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        out.append(f'<path class="edge{" critical" if critical else ""}" d="{path}"/>')
    for n in layout.nodes:
        label = n.label if len(n.label) <= LABEL_CHARS else n.label[: LABEL_CHARS - 1] + "…"
        counts = ", ".join(f"{c} {s}" for s, c in n.counts.items())
        tip = n.id if len(n.members) == 1 else f"{n.id}: {len(n.members)} variants"
        tip += f" ({counts})" + (", on the critical path" if n.critical else "")
        klass = f"node st-{css_class(n.status)}" + (" critical" if n.critical else "")
        sub = ""
        if len(n.members) > 1:
            sub = ("<text class=\"sub\" x=\"{x:.1f}\" y=\"{y:.1f}\" text-anchor=\"end\">{t}</text>"
                   .format(x=n.x + NODE_WIDTH - 6, y=n.y + NODE_HEIGHT / 2 + 4,
                           t=e(" · ".join(f"{c} {s}" for s, c in n.counts.items()))))
        stack = ""
        if len(n.members) > 1:  # a folded group reads as a stack of cards
            stack = (f'<rect class="stack" x="{n.x + 4:.1f}" y="{n.y - 4:.1f}" width="{NODE_WIDTH}" '
                     f'height="{NODE_HEIGHT}" rx="5"/>')
        out.append(
            f'<g class="{klass}" data-task="{e(n.id)}" data-members="{e(" ".join(n.members))}">'
            f'<title>{e(tip)}</title>{stack}<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{NODE_WIDTH}" '
            f'height="{NODE_HEIGHT}" rx="5"/>'
            f'<text x="{n.x + 8:.1f}" y="{n.y + NODE_HEIGHT / 2 + 4:.1f}">{e(label)}</text>{sub}</g>')
    out.append("</svg>")
    return "".join(out)


# -- timeline -------------------------------------------------------------------


def _timeline(run: Mapping) -> str:
    bars, lanes = timeline_lanes(run["tasks"])
    length = max(run["duration"], max((b.end for b in bars), default=0.0), 0.001)
    idle_share = run["idle_seconds"] / length if length else 0.0
    summary = (f'<p class="note">{len([b for b in bars if not b.wait])} attempt(s) on {lanes} lane(s): a lane is a '
               f'slot in which one task ran (or a sensor waited) at a time, so the bars at a moment are the parallelism. '
               f'Up to {run["max_parallel"]} at once; no task was running for '
               f'{format_duration(run["idle_seconds"])} ({idle_share:.0%}) of the run (grey).</p>')
    legend = ('<div class="legend"><span><i style="background:var(--ran-bg);border-color:var(--ran)"></i>ran</span>'
              '<span><i style="background:var(--failed-bg);border-color:var(--failed)"></i>failed attempt</span>'
              '<span><i style="background:var(--ran-bg);border-color:var(--ran);border-style:dashed"></i>retry</span>'
              '<span><i style="background:#d6edf7;border-color:var(--wait)"></i>sensor wait (wait_for)</span>'
              '<span><i style="background:var(--idle);border-color:var(--idle)"></i>idle: no task running</span>'
              '</div>')
    if not bars:
        return summary + '<p class="note">No task ran in this run: everything selected was fresh or never started.</p>'
    left, width, lane_h, top, axis = 26, 1100, 24, 6, 24
    height = top + max(lanes, 1) * lane_h + axis
    scale = (width - left * 2) / length

    def x(t: float) -> float:
        return left + max(t, 0.0) * scale

    out = [f'<svg class="timeline" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="timeline of '
           'the task attempts">']
    for a, b in run["idle"]:
        out.append(f'<rect class="idle" x="{x(a):.1f}" y="{top}" width="{max((b - a) * scale, 0.5):.1f}" '
                   f'height="{lanes * lane_h}"><title>idle {e(format_duration(b - a))}</title></rect>')
    out.append('<g class="axis">')
    for t in ticks(length):
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{top + lanes * lane_h + 4}"/>'
                   f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="middle">{e(tick_label(t, length))}</text>')
    out.append("</g>")
    for b in bars:
        bx, bw = x(b.start), max((b.end - b.start) * scale, 2.0)
        y = top + b.lane * lane_h + 3
        what = "waited for its files" if b.wait else f"attempt {b.attempt}: {b.status}"
        tip = f"{b.task}: {what}, {format_duration(b.end - b.start)} (from {format_duration(b.start)})"
        klass = "wait" if b.wait else "bar" + (" retry" if b.retry else "")
        status = "wait" if b.wait else css_class(b.status)
        text = b.task + (f" #{b.attempt}" if b.retry else "")
        fits = max(int((bw - 8) / 6.4), 0)
        label = text if len(text) <= fits else (text[: fits - 1] + "…" if fits > 3 else "")
        out.append(
            f'<g class="{klass}" data-members="{e(b.task)}" data-status="{e(status)}"><title>{e(tip)}</title>'
            f'<rect class="st-{status}" x="{bx:.1f}" y="{y}" width="{bw:.1f}" height="{lane_h - 6}" rx="3"/>'
            + (f'<text x="{bx + 4:.1f}" y="{y + lane_h - 11}">{e(label)}</text>' if label else "") + "</g>")
    out.append("</svg>")
    return summary + legend + "".join(out)


def tick_label(t: float, length: float) -> str:
    """An axis label: seconds as written ('0.05s', '90s') in a short run, else '2m05s'."""
    if length < 120:
        return f"{t:.3f}".rstrip("0").rstrip(".") + "s"
    return format_duration(t)


# -- tasks ------------------------------------------------------------------------


def _reasons(reasons: Sequence[Mapping]) -> str:
    return "; ".join(r["kind"] + (f": {r['path']}" if r.get("path") else "") for r in reasons)


def _table(run: Mapping, sid: str) -> str:
    options = "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in STATUS_WORDS if run["counts"].get(s))
    filters = (f'<div class="toolbar filters" data-table="{sid}-tasks"><input type="search" placeholder="Filter by '
               f'name, reason, file…" aria-label="filter tasks"><select aria-label="status"><option value="">every '
               f'status</option>{options}</select><span class="note count"></span>'
               '<span class="note">Click a column to sort; open a task for its attempts, files and log.</span></div>')
    head = ('<thead><tr><th>Task</th><th>Status</th><th class="num">Attempts</th><th class="num">Exit</th>'
            '<th class="num">Duration</th><th class="num">Started</th><th>Reasons / why</th></tr></thead>')
    bodies = [_task_body(t, sid) for t in run["tasks"]]
    return filters + f'<div class="scroll"><table class="tasks" id="{sid}-tasks">{head}{"".join(bodies)}</table></div>'


def _task_body(t: Mapping, sid: str) -> str:
    attempts = t["attempts"]
    last = attempts[-1] if attempts else None
    why = _reasons(last["reasons"]) if last else (t["note"] or "")
    if last and last.get("message"):
        why = f'{last["message"]}; reasons: {why}' if why else last["message"]
    exit_code = "" if last is None or last["exit_code"] is None else str(last["exit_code"])
    duration = t["duration"]
    started = attempts[0]["start"] if attempts else None
    files = " ".join(list(last["inputs"]) + list(last["outputs"])) if last else ""
    text = " ".join([t["name"], t["status"], why, files]).lower()
    status = t["status"] + (" (retried)" if t["retried"] else "")
    critical = (' <span class="badge" title="on the critical path" style="border-color:var(--critical);'
                'color:var(--critical)">critical</span>' if t["critical"] else "")
    row = (f'<tr><td class="mono" data-v="{e(t["name"])}">{e(t["name"])}{critical}</td>'
           f'<td data-v="{e(t["status"])}"><span class="badge {css_class(t["status"])}">{e(status)}</span></td>'
           f'<td class="num" data-v="{len(attempts)}">{len(attempts)}</td>'
           f'<td class="num" data-v="{e(exit_code or -1)}">{e(exit_code)}</td>'
           f'<td class="num" data-v="{duration if duration is not None else -1}">'
           f'{e(format_duration(duration)) if duration is not None else ""}</td>'
           f'<td class="num" data-v="{started if started is not None else -1}">'
           f'{"+" + format_duration(started) if started is not None else ""}</td>'
           f'<td>{e(why)}</td></tr>')
    detail = _task_detail(t)
    return (f'<tbody class="row" id="{sid}-task-{e(t["name"])}" data-status="{e(t["status"])}" data-text="{e(text)}">'
            f'{row}<tr class="detail"><td colspan="7">{detail}</td></tr></tbody>')


def _task_detail(t: Mapping) -> str:
    attempts = t["attempts"]
    if not attempts:
        deps = ", ".join(t["deps"]) or "none"
        return (f'<details><summary>not run in this run ({e(t["note"] or t["status"])})</summary>'
                f'<p class="note">Depends on: {e(deps)}</p></details>')
    parts = []
    for a in attempts:
        code = "no exit code" if a["exit_code"] is None else f"exit {a['exit_code']}"
        parts.append(
            f'<div class="attempt {e(a["status"])}"><b>Attempt {a["attempt"]}</b>: {e(a["status"])}, {e(code)}, '
            f'{e(format_duration(a["duration"]))} (from +{e(format_duration(a["start"]))})'
            + (f'<br><span class="bad">{e(a["message"])}</span>' if a.get("message") else "")
            + f'<br>Reasons: {e(_reasons(a["reasons"]) or "-")}'
            + f'<br>Command: <code>{e(a["command"] or "-")}</code>'
            + _files("Inputs", a["inputs"]) + _files("Outputs", a["outputs"]) + _log(a) + "</div>")
    label = f'{len(attempts)} attempt(s): files, hashes and log'
    return f'<details><summary>{e(label)}</summary>{"".join(parts)}</details>'


def _files(title: str, files: Mapping[str, Optional[str]]) -> str:
    if not files:
        return f"<br>{e(title)}: -"
    rows = "".join(f'<tr><td class="mono hash">{e(h or "(missing)")}</td><td class="mono">{e(p)}</td></tr>'
                   for p, h in files.items())
    return f'<br>{e(title)}:<table class="files">{rows}</table>'


def _log(a: Mapping) -> str:
    if not a.get("log"):
        return '<br><span class="note">It printed nothing (no log).</span>'
    if a.get("log_missing"):
        return f'<br><span class="warn">Log {e(a["log"])} is gone (pruned or deleted).</span>'
    cut = " (only its end: the log is longer)" if a.get("log_truncated") else ""
    return (f'<details><summary>Log {e(a["log"])}{e(cut)} <span class="hash mono">{e((a["log_hash"] or "")[:16])}'
            f'</span></summary><pre class="log">{e(a["log_text"])}</pre></details>')


# -- lineage -----------------------------------------------------------------------


def _lineage(run: Mapping) -> str:
    lineage = run["lineage"]
    if not lineage["outputs"]:
        return '<p class="note">No final output: no task at the end of the graph wrote a file.</p>'
    files = {f["key"]: f for f in lineage["files"]}
    blocks = []
    for i, key in enumerate(lineage["outputs"]):
        f = files[key]
        sources = sources_of(files, key)
        by = f' ← <b>{e(f["produced_by"]["task"])}</b>' if f.get("produced_by") else ' <span class="src">source</span>'
        rows = "".join(f'<tr><td class="mono hash" title="{e(src["hash"])}">{e((src["hash"] or "?")[:16])}</td>'
                       f'<td class="mono">{e(src["path"])}</td><td>{_drift(src)}</td></tr>' for src in sources)
        blocks.append(
            f'<details class="lineage"{" open" if i == 0 else ""}><summary><span class="path mono">{e(f["path"])}'
            f'</span> <span class="hash mono" title="{e(f["hash"])}">{e((f["hash"] or "?")[:16])}</span>{_drift(f)}'
            f'{by} <span class="note">from {len(sources)} source file(s)</span></summary>'
            f'<table class="files">{rows}</table>'
            f'<details><summary>the whole chain: each file, the task and run that wrote it, its inputs</summary>'
            f'<ul class="lineage">{_chain(files, key, set())}</ul></details></details>')
    return ('<p class="note">For each final output: the source files it was made from, and the chain of tasks in '
            'between, following the recorded bytes (BLAKE3 hashes, shortened; hover for the full hash).</p>'
            + "".join(blocks))


def sources_of(files: Mapping[str, Mapping], key: str) -> List[Mapping]:
    """The source files (read, never produced) behind `key`, sorted by path."""
    seen: set = set()
    found: Dict[str, Mapping] = {}
    stack = [key]
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        f = files[k]
        if f["source"] and k != key:
            found[k] = f
        stack.extend(f["inputs"])
    return sorted(found.values(), key=lambda f: (f["path"], f["hash"] or ""))


def _drift(f: Mapping) -> str:
    if f["current_hash"] is None:
        return ' <span class="warn">(missing now)</span>'
    if f["hash"] and f["current_hash"] != f["hash"]:
        return f' <span class="warn">(changed since: now {e(f["current_hash"][:16])})</span>'
    return ""


def _chain(files: Mapping[str, Mapping], key: str, shown: set) -> str:
    f = files[key]
    head = (f'<span class="path mono">{e(f["path"])}</span> <span class="hash mono" title="{e(f["hash"])}">'
            f'{e((f["hash"] or "?")[:16])}</span>{_drift(f)}')
    if f["source"]:
        return f'<li>{head} <span class="src">source</span></li>'
    p = f["produced_by"]
    by = f' ← <b>{e(p["task"])}</b> <span class="note">run {e(p["run_id"])}</span>'
    note = f' <span class="note">{e(f["note"])}</span>' if f.get("note") else ""
    if key in shown:
        return f'<li>{head}{by} <span class="note">(its inputs are shown above)</span></li>'
    shown.add(key)
    return f'<li>{head}{by}{note}<ul>{"".join(_chain(files, k, shown) for k in f["inputs"])}</ul></li>'
