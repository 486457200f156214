"""The report document as Markdown: the essentials, for CI summaries and pull-request comments.

GitHub-flavoured tables, no HTML beyond a `<details>` fold for log tails
(which GitHub, GitLab and most viewers render and the rest show as text).
Long tables are cut so a comment stays under the hosts' size limits; the
HTML page and `--format json` carry everything.
"""

from __future__ import annotations

from typing import List, Mapping

from ..report.common import format_duration
from .lineage import sources_of
from .markup import reasons_text

MAX_TASK_ROWS = 100  # rows of the task table; the rest are counted
TAIL_LINES = 20  # of a failed task's log, as `flowmake run` prints them

ICONS = {"ran": "✅", "fresh": "⚪", "failed": "❌", "interrupted": "⏹", "skipped": "⏭", "not run": "▫️",
         "success": "✅", "did not finish": "⚠️"}


def cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")


def render(doc: Mapping) -> str:
    out: List[str] = []
    project = doc["project"]["name"]
    runs = doc["runs"]
    if doc.get("since") is not None:
        out.append(f"# {project}: {len(runs)} run(s) since {doc['since']}\n")
        out.append(_audit(doc["audit"]) + "\n")
        if runs:
            out.append("| Run | Result | Started (UTC) | Took | Ran | Failed | Tasks |")
            out.append("|---|---|---|--:|--:|--:|--:|")
            for r in runs:
                out.append(f"| {r['id']} | {ICONS.get(r['result'], '')} {r['result']} | "
                           f"{r['started'][:19].replace('T', ' ')} | {format_duration(r['duration'])} | "
                           f"{r['counts'].get('ran', 0)} | {r['counts'].get('failed', 0)} | {len(r['tasks'])} |")
            out.append("")
        else:
            out.append("No run was recorded in this window.\n")
    for r in runs:
        out.extend(_run(doc, r, level=2 if doc.get("since") is not None else 1))
    return "\n".join(out).rstrip() + "\n"


def _audit(audit: Mapping) -> str:
    if audit["ok"]:
        return f"**Audit chain:** verified, {audit['records']} records intact (head `{audit['head'][:16]}`)"
    problems = [audit["problem"]] if audit.get("problem") else []
    problems += [f"log of {p['task']} in run {p['run_id']}: {p['problem']}" for p in audit["log_problems"]]
    return "**Audit chain: FAILED** — " + "; ".join(problems)


def _run(doc: Mapping, r: Mapping, *, level: int) -> List[str]:
    h = "#" * level
    counts = ", ".join(f"{n} {s}" for s, n in r["counts"].items())
    out = [f"{h} Run {r['id']}: {ICONS.get(r['result'], '')} {r['result']}", ""]
    out.append("| | |")
    out.append("|---|---|")
    facts = [("Project", doc["project"]["name"]), ("Started", r["started"]),
             ("Finished", r["finished"] or "did not finish"), ("Duration", format_duration(r["duration"])),
             ("By", f"{r['user']}@{r['host']}"), ("Where", f"`{doc['project']['root']}`"),
             ("Command", f"`flowmake {' '.join(r['argv'])}`".replace("`flowmake `", "`flowmake`")),
             ("Targets", ", ".join(r["targets"][:20]) + (f" … +{len(r['targets']) - 20} more" if len(r["targets"]) > 20 else "")),
             ("flowmake", r["version"]), ("Flowfile hash", f"`{r['flowfile_hash']}`"),
             ("Tasks", counts or "none"), ("Audit", _audit(doc["audit"]).split(":** ", 1)[-1])]
    out.extend(f"| **{k}** | {cell(v)} |" for k, v in facts)
    out.append("")
    if r["critical_path"]:
        out.append(f"**Critical path:** {' → '.join(r['critical_path'])}")
        out.append("")
    failed = [t for t in r["tasks"] if t["status"] in ("failed", "interrupted")]
    for t in failed:
        a = t["attempts"][-1]
        code = "" if a["exit_code"] is None else f" (exit {a['exit_code']})"
        out.append(f"{h}# ❌ {t['name']}: {a.get('message') or t['status']}{code}")
        out.append("")
        out.append(f"`{a['command']}`")
        tail = (a.get("log_text") or "").rstrip("\n").split("\n")[-TAIL_LINES:] if a.get("log_text") else []
        if tail:
            out.append("")
            out.append(f"<details><summary>last {len(tail)} lines of {a['log']}</summary>")
            out.append("")
            out.append("```text")
            out.extend(line.replace("```", "`\u200b``") for line in tail)
            out.append("```")
            out.append("</details>")
        out.append("")
    out.append(f"{h}# Tasks")
    out.append("")
    out.append("| Task | Status | Attempts | Exit | Duration | Reasons / why |")
    out.append("|---|---|--:|--:|--:|---|")
    for t in r["tasks"][:MAX_TASK_ROWS]:
        last = t["attempts"][-1] if t["attempts"] else None
        why = reasons_text(last["reasons"]) if last else (t["note"] or "")
        if last and last.get("message"):
            why = f"{last['message']}; {why}" if why else last["message"]
        exit_code = "" if last is None or last["exit_code"] is None else last["exit_code"]
        took = format_duration(t["duration"]) if t["duration"] is not None else ""
        status = t["status"] + (" (retried)" if t["retried"] else "")
        out.append(f"| `{cell(t['name'])}` | {ICONS.get(t['status'], '')} {status} | {len(t['attempts'])} | "
                   f"{exit_code} | {took} | {cell(why)} |")
    if len(r["tasks"]) > MAX_TASK_ROWS:
        out.append(f"\n… and {len(r['tasks']) - MAX_TASK_ROWS} more tasks (the HTML report and --format json list all).")
    out.append("")
    out.extend(_lineage(r, level=level))
    return out


def _lineage(r: Mapping, *, level: int) -> List[str]:
    lineage = r["lineage"]
    if not lineage["outputs"]:
        return []
    files = {f["key"]: f for f in lineage["files"]}
    out = [f"{'#' * level}# Lineage", ""]
    for key in lineage["outputs"]:
        f = files[key]
        by = f" ← {f['produced_by']['task']} (run {f['produced_by']['run_id']})" if f.get("produced_by") else ""
        out.append(f"- `{f['path']}` `{(f['hash'] or '?')[:16]}`{by}; sources:")
        for src in sources_of(files, key):
            out.append(f"  - `{src['path']}` `{(src['hash'] or '?')[:16]}`")
    out.append("")
    return out
