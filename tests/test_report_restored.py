"""`flowmake report` of a run that restored tasks from the shared cache: "restored" sorts and counts as its own."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_cache import clone
from test_cli_report import _section, parse

from flowmake.runreport.collect import STATUS_ORDER


def test_restored_tasks_are_counted_sorted_and_shown_in_the_report(tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    first = clone(tmp_path, "first").json_run("--cache", str(cache))
    assert first.returncode == 0, first
    proj = clone(tmp_path, "second")
    # One variant of the matrix run here before, without the cache: fresh in the next run, beside a restored one.
    assert proj.run("run", "--progress", "plain", "extract:S02").returncode == 0
    second = proj.json_run("--cache", str(cache))
    assert second.returncode == 0 and len(second.tasks_with("restored")) == 3, second

    doc = json.loads(proj.run("report", "--format", "json").stdout)
    (run,) = doc["runs"]
    status = {t["name"]: t["status"] for t in run["tasks"]}
    assert status == {"extract:S01": "restored", "extract:S02": "fresh", "tables": "restored", "tool": "restored",
                      "upload": "ran"}
    assert run["counts"] == {"restored": 3, "fresh": 1, "ran": 1}
    # The final output of the run (upload's) traced back through the restored tasks.
    files = {f["key"]: f for f in run["lineage"]["files"]}
    assert [files[k]["path"] for k in run["lineage"]["outputs"]] == ["dist/uploaded.txt"]

    assert STATUS_ORDER.index("ran") < STATUS_ORDER.index("restored") < STATUS_ORDER.index("fresh")
    result = proj.run("report", "-o", "report.html")
    assert result.returncode == 0, result
    html = proj.read("report.html")
    page = parse(html)
    assert [b for b in page.find("span", class_="badge restored")] and "3 restored" in page.all_text
    full = parse(_section(html, "graph-full"))
    nodes = {n["data-task"]: n["class"].split() for n in full.find("g", class_="node")}
    assert "st-restored" in nodes["tables"] and "st-fresh" in nodes["extract:S02"]
    grouped = parse(_section(html, "graph-grouped"))
    groups = {n["data-task"]: n["class"].split() for n in grouped.find("g", class_="node")}
    assert "st-restored" in groups["extract"], "a group of a restored and a fresh variant shows restored"
    rows = {b["id"].split("-task-", 1)[1]: b for b in page.find("tbody", class_="row")}
    assert rows["tool"]["data-status"] == "restored"
