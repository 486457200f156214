"""The report's pictures as inline SVG: the dependency graph, the timeline, the trend of several runs.

Geometry comes from layout.py; this module only draws it, every value
through `e`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

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
from .markup import STATUS_WORDS, css_class, e, section_id

LABEL_CHARS = 21  # of a task name in a graph node; the full name is its tooltip

GRAPH_NOTES = {
    "flowfile": "Graph from the Flowfile the run used.",
    "flowfile-changed": "Graph from today's Flowfile, which has changed since this run (its hash differs).",
    "recorded": "Graph rebuilt from the recorded attempts (today's Flowfile does not load or does not describe "
                "this run): tasks that did not run and ordering-only (after) edges are not shown.",
}


# -- graph -------------------------------------------------------------------------


def graph(run: Mapping, sid: str) -> str:
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


def timeline(run: Mapping) -> str:
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


# -- several runs ---------------------------------------------------------------


def trend(runs: Sequence[Mapping]) -> str:
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
        out.append(f'<a href="#{section_id(r)}" class="bar"><rect x="{x:.1f}" y="{height - bottom - h:.1f}" '
                   f'width="{bar:.1f}" height="{h:.1f}" rx="2" fill="{colours.get(r["result"], "var(--notrun)")}">'
                   f'<title>{e(r["id"])}: {e(r["result"])}, {e(format_duration(r["duration"]))}, '
                   f'{r["counts"].get("ran", 0)} ran</title></rect></a>')
        points.append(f'{x + bar / 2:.1f},{height - bottom - r["counts"].get("ran", 0) / most * plot:.1f}')
    out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#1f4fd1" stroke-width="1.5"/>')
    out.append(f'<text x="{left}" y="{height - 6}" class="note" font-size="11" fill="#5d6675">oldest</text>'
               f'<text x="{width - 4}" y="{height - 6}" text-anchor="end" font-size="11" fill="#5d6675">newest</text>')
    out.append("</svg>")
    return "".join(out)
