"""The report's task table: a row per task, and each attempt's files, hashes and log folded under it."""

from __future__ import annotations

from typing import Mapping, Optional

from ..report.common import format_duration
from .markup import STATUS_WORDS, css_class, e, reasons_text

def task_table(run: Mapping, sid: str) -> str:
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
    why = reasons_text(last["reasons"]) if last else (t["note"] or "")
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
            + f'<br>Reasons: {e(reasons_text(a["reasons"]) or "-")}'
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
