"""The report document as one self-contained HTML page.

The page is `template.html` (the CSS and the little JavaScript that sorts,
filters and folds) filled in with `string.Template`: the standard library
is enough for a handful of substitutions, and its `$name` placeholders do
not clash with the braces of the CSS and JS around them, as Jinja2's `{{ }}`
and a new dependency would. The markup is built from the document: the
page's frame, header and lineage here, the pictures in drawings.py, the task
table in tasks.py, every value through `markup.e` (html.escape). Nothing on the page refers to anything outside it, and its
Content-Security-Policy forbids the browser to fetch anything, so it opens
the same from a file:// URL, a CI artifact or a mail attachment.
"""

from __future__ import annotations

from importlib import resources
from string import Template
from typing import Mapping

from ..report.common import format_duration
from .drawings import graph, timeline, trend
from .lineage import sources_of
from .markup import STATUS_WORDS, css_class, e, section_id
from .tasks import task_table


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
            f'<tr><td><a href="#{section_id(run)}" class="mono">{e(run["id"])}</a></td>'
            f'<td><span class="badge {css_class(run["result"])}">{e(run["result"])}</span></td>'
            f'<td>{e(run["started"][:19].replace("T", " "))}</td><td class="num">{e(format_duration(run["duration"]))}</td>'
            f'<td class="num">{ran}</td><td class="num">{run["counts"].get("failed", 0)}</td>'
            f'<td class="num">{len(run["tasks"])}</td><td>{e(run["user"])}@{e(run["host"])}</td></tr>')
    return (f'<div class="card" id="overview"><h1>{e(doc["project"]["name"])}: {len(runs)} run(s) since '
            f'{e(doc["since"])}</h1><p class="subtitle">Each bar is a run (height: its duration; colour: its '
            'result); the line counts the tasks it ran. Click a run to jump to its section.</p>'
            f'{_audit_line(doc["audit"])}{trend(runs)}'
            '<table class="runs"><thead><tr><th>Run</th><th>Result</th><th>Started (UTC)</th><th>Took</th>'
            '<th>Ran</th><th>Failed</th><th>Tasks</th><th>By</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


# -- one run ---------------------------------------------------------------------


def _audit_line(audit: Mapping) -> str:
    if audit["ok"]:
        return (f'<p class="good">Audit chain verified: {audit["records"]} records intact, kept logs match their '
                f'hashes <span class="hash mono">(head {e(audit["head"][:16])})</span></p>')
    problems = [audit["problem"]] if audit.get("problem") else []
    problems += [f'log of {p["task"]} in run {p["run_id"]}: {p["problem"]}' for p in audit["log_problems"]]
    return '<p class="bad">Audit chain FAILED: ' + e("; ".join(problems)) + "</p>"


def _run_section(doc: Mapping, run: Mapping, *, index: int) -> str:
    sid = section_id(run)
    head = _header(doc, run, index=index)
    return (f'<section class="run" id="{sid}">{head}'
            f'<div class="card" id="{sid}-graph"><h2>Dependency graph</h2>{graph(run, sid)}</div>'
            f'<div class="card" id="{sid}-timeline"><h2>Timeline</h2>{timeline(run)}</div>'
            f'<div class="card" id="{sid}-tasks-card"><h2>Tasks</h2>{task_table(run, sid)}</div>'
            f'<div class="card" id="{sid}-lineage"><h2>Lineage of the final outputs</h2>{_lineage(run)}</div>'
            "</section>")


def _header(doc: Mapping, run: Mapping, *, index: int) -> str:
    sid = section_id(run)
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
