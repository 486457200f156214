"""`flowmake report` through the real CLI: the HTML page's structure, Markdown, JSON, --since.

One project is run twice so that its second run holds every kind of task
outcome: a matrix task's variants fresh (run before) and another's ran, a
task that failed once and was retried, a failed task with a secret in its
log, a task skipped below it, a fresh plain task, and a fan-in whose output
is the final one. The page is parsed with the standard library's HTML parser
and checked element by element; tests/test_report_browser.py opens the same
page in Chromium.
"""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from typing import Dict, List, Optional, Tuple

from conftest import Project

SECRET = "s3cr3t-value-42"

MIXED = """\
    [flow]
    name = "mixed"

    [vars]
    vs = ["a", "b", "c"]

    [tasks.prep]
    matrix = { v = "{vs}" }
    inputs = ["src/{v}.txt"]
    outputs = ["out/{v}.txt"]
    run = "cp {inputs} {outputs}"

    [tasks.check]
    matrix = { v = "{vs}" }
    inputs = ["out/{v}.txt"]
    outputs = ["out/{v}.ok"]
    run = "echo checked {v}; cp {inputs} {outputs}"

    [tasks.flaky]
    outputs = ["out/flaky.txt"]
    retries = 1
    run = "if [ -f tried ]; then echo second > out/flaky.txt; else touch tried; echo 'first try fails' >&2; exit 4; fi"

    [tasks.combine]
    inputs = ["out/{vs}.ok", "out/flaky.txt"]
    outputs = ["dist/all.txt"]
    run = "cat {inputs} > {outputs}"

    [tasks.fresh_one]
    inputs = ["src/a.txt"]
    outputs = ["out/fresh.txt"]
    run = "cp {inputs} {outputs}"

    [tasks.bad]
    inputs = ["src/a.txt"]
    outputs = ["out/bad.txt"]
    secrets = ["TOKEN"]
    run = "echo using token $TOKEN; echo broken >&2; exit 3"

    [tasks.after_bad]
    inputs = ["out/bad.txt"]
    outputs = ["dist/after.txt"]
    run = "cp {inputs} {outputs}"
"""
TASKS = 11  # 3 prep + 3 check + flaky, combine, fresh_one, bad, after_bad
GROUPS = 7
ATTEMPTS = 7  # in the second run: 3 check, 2 flaky, combine, bad


def make_mixed_project(project: Project) -> str:
    """Write MIXED, run it twice; the second run's id (it failed: `bad`)."""
    project.flowfile(MIXED)
    for v in "abc":
        project.write(f"src/{v}.txt", f"source {v}\n")
    first = project.run("run", "--progress", "plain", "prep", "fresh_one")
    assert first.returncode == 0, first
    second = project.json_run("-k", env={"TOKEN": SECRET})
    assert second.returncode == 1, second
    assert second.statuses["flaky"] == "ok" and second.statuses["bad"] == "failed", second
    return second.run_id


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text inside each element with an id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: List[Tuple[str, Dict[str, str]]] = []
        self.text: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **wanted: str) -> List[Dict[str, str]]:
        out = []
        for t, attrs in self.tags:
            if t != tag:
                continue
            if all(_has(attrs.get(k.rstrip("_").replace("_", "-")), v) for k, v in wanted.items()):
                out.append(attrs)
        return out

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def _has(value: Optional[str], wanted: str) -> bool:
    if value is None:
        return False
    return wanted in value.split() if " " not in wanted else value == wanted


def parse(text: str) -> Elements:
    parser = Elements()
    parser.feed(text)
    return parser


def _section(html: str, cls: str) -> str:
    """The markup of the first <div class="... cls ..."> block up to the next card."""
    start = html.index(f'class="scroll {cls}"')
    return html[start:html.index("</svg>", start)]


def test_report_html_shows_every_outcome_of_a_run(project: Project) -> None:
    run_id = make_mixed_project(project)
    result = project.run("report", "-o", "report.html")
    assert result.returncode == 0, result
    assert result.lines == [f"wrote the report of run {run_id} to {project.path('report.html')}"], result
    html = project.read("report.html")
    page = parse(html)

    # Self-contained: no reference to anything outside the page, and a policy that forbids fetching.
    for tag, attrs in page.tags:
        for key in ("src", "href", "xlink:href", "action", "poster", "data"):
            value = attrs.get(key)
            if value is not None and key != "data":
                assert value.startswith("#") or value.startswith("data:"), (tag, attrs)
        assert not (tag == "link" or (tag == "script" and "src" in attrs)), (tag, attrs)
    csp = page.find("meta", http_equiv="Content-Security-Policy")
    assert csp and "default-src 'none'" in csp[0]["content"]

    # The header: who, when, where, what, result, version, Flowfile hash, audit chain.
    text = page.all_text
    log = json.loads(project.run("log", run_id, "--json").stdout)
    for fact in (run_id, log["user"], log["host"], log["version"], log["flowfile_hash"], str(project.root),
                 "flowmake run --progress json -k"):
        assert fact in text, fact
    assert "Audit chain verified" in text
    assert page.find("span", class_="badge failed")

    # The graph: folded by matrix group, and in full; nodes coloured by outcome; the critical path marked.
    full = parse(_section(html, "graph-full"))
    nodes = {n["data-task"]: n["class"].split() for n in full.find("g", class_="node")}
    assert len(nodes) == TASKS
    assert "st-failed" in nodes["bad"] and "st-skipped" in nodes["after_bad"]
    assert "st-fresh" in nodes["prep:a"] and "st-fresh" in nodes["fresh_one"]
    assert "st-ran" in nodes["check:b"] and "st-ran" in nodes["flaky"] and "st-ran" in nodes["combine"]
    assert "critical" in nodes["combine"] and "critical" not in nodes["fresh_one"]
    assert full.find("path", class_="edge critical")
    grouped = parse(_section(html, "graph-grouped"))
    groups = {n["data-task"]: n for n in grouped.find("g", class_="node")}
    assert len(groups) == GROUPS
    assert groups["check"]["data-members"] == "check:a check:b check:c"

    # The timeline: one bar per attempt, the retry and the failed first try among them.
    timeline = html[html.index('<svg class="timeline"'):]
    timeline = parse(timeline[:timeline.index("</svg>")])
    bars = timeline.find("g", class_="bar")
    assert len(bars) == ATTEMPTS
    flaky = [b for b in bars if b["data-members"] == "flaky"]
    assert sorted(b["data-status"] for b in flaky) == ["failed", "ok"]
    assert len(timeline.find("g", class_="retry")) == 1

    # The table: a row per task with its status, exit code and log, the secret masked.
    rows = {b["id"].split("-task-", 1)[1]: b for b in page.find("tbody", class_="row")}
    assert len(rows) == TASKS
    assert rows["bad"]["data-status"] == "failed" and rows["after_bad"]["data-status"] == "skipped"
    assert "upstream failed: bad" in rows["after_bad"]["data-text"]
    bad_row = html[html.index(f'id="{rows["bad"]["id"]}"'):]
    bad_row = bad_row[:bad_row.index("</tbody>")]
    assert 'data-v="3"' in bad_row and "exit code 3" in bad_row
    assert "using token ***" in bad_row and "broken" in bad_row
    assert SECRET not in html
    assert "first try fails" in html  # the failed attempt's log, under flaky

    # Lineage: the final output back to its source files, with hashes.
    assert "dist/all.txt" in text
    lineage = html[html.index("Lineage of the final outputs"):]
    for v in "abc":
        assert f"src/{v}.txt" in lineage


def test_report_json_is_the_data_of_the_page(project: Project) -> None:
    run_id = make_mixed_project(project)
    result = project.run("report", "--format", "json")
    assert result.returncode == 0, result
    doc = json.loads(result.stdout)
    assert doc["format"] == "flowmake-report" and doc["version"] == 1 and doc["since"] is None
    assert doc["audit"]["ok"] is True
    (run,) = doc["runs"]
    assert run["id"] == run_id and run["result"] == "failed" and run["graph_source"] == "flowfile"
    status = {t["name"]: t["status"] for t in run["tasks"]}
    assert status == {"prep:a": "fresh", "prep:b": "fresh", "prep:c": "fresh", "fresh_one": "fresh",
                      "check:a": "ran", "check:b": "ran", "check:c": "ran", "flaky": "ran", "combine": "ran",
                      "bad": "failed", "after_bad": "skipped"}
    assert run["counts"] == {"fresh": 4, "ran": 5, "failed": 1, "skipped": 1}
    tasks = {t["name"]: t for t in run["tasks"]}
    assert tasks["flaky"]["retried"] and [a["status"] for a in tasks["flaky"]["attempts"]] == ["failed", "ok"]
    assert tasks["flaky"]["attempts"][0]["exit_code"] == 4
    assert tasks["check:a"]["depth"] == 1 and tasks["combine"]["depth"] == 2
    assert sorted(tasks["combine"]["deps"]) == ["check:a", "check:b", "check:c", "flaky"]
    assert run["critical_path"][-1] == "combine"
    assert run["attempt_count"] == ATTEMPTS
    attempt = tasks["bad"]["attempts"][0]
    assert attempt["exit_code"] == 3 and "using token ***" in attempt["log_text"]
    assert attempt["inputs"]["src/a.txt"] and attempt["log_hash"]
    files = {f["key"]: f for f in run["lineage"]["files"]}
    (final,) = [files[k] for k in run["lineage"]["outputs"] if files[k]["path"] == "dist/all.txt"]
    assert final["produced_by"]["task"] == "combine" and final["produced_by"]["run_id"] == run_id
    assert SECRET not in result.stdout


def test_report_markdown_has_the_essentials_for_a_ci_summary(project: Project) -> None:
    run_id = make_mixed_project(project)
    result = project.run("report", run_id[:-1], "--format", "md")  # a unique prefix
    assert result.returncode == 0, result
    md = result.stdout
    assert md.startswith(f"# Run {run_id}: ❌ failed\n"), md
    assert "| **Audit** | verified" in md
    assert "## ❌ bad: exit code 3 (exit 3)" in md
    assert "using token ***" in md and SECRET not in md
    assert re.search(r"^\| `flaky` \| ✅ ran \(retried\) \| 2 \| 0 \|", md, re.M), md
    assert re.search(r"^\| `after_bad` \| ⏭ skipped \| 0 \| +\| +\| upstream failed: bad \|", md, re.M), md
    assert "- `dist/all.txt`" in md and "  - `src/b.txt`" in md


def test_report_works_when_todays_flowfile_does_not_load(project: Project) -> None:
    run_id = make_mixed_project(project)
    project.write("Flowfile.toml", project.read("Flowfile.toml") + "\n[tasks.broken\n")
    result = project.run("report", "--format", "json")
    assert result.returncode == 0, result
    assert "the Flowfile does not load" in result.stderr and "rebuilt from the recorded attempts" in result.stderr
    (run,) = json.loads(result.stdout)["runs"]
    assert run["id"] == run_id and run["graph_source"] == "recorded"
    tasks = {t["name"]: t for t in run["tasks"]}
    # Every task that ran is there, with the file edges its records show.
    assert {"check:a", "flaky", "combine", "bad"} <= set(tasks)
    assert sorted(tasks["combine"]["deps"]) == ["check:a", "check:b", "check:c", "flaky"]
    html = project.run("report", "-o", "r.html")
    assert html.returncode == 0, html
    assert "Graph rebuilt from the recorded attempts" in project.read("r.html")


def test_report_since_lists_the_runs_with_links_to_their_sections(project: Project) -> None:
    first_id = make_mixed_project(project)
    third = project.run("run", "--progress", "plain", "combine")
    assert third.returncode == 0, third
    result = project.run("report", "--since", "1h", "-o", "trend.html")
    assert result.returncode == 0, result
    assert result.lines[0].startswith("wrote the report of 3 run(s) since 1h to "), result
    html = project.read("trend.html")
    page = parse(html)
    sections = [s["id"] for s in page.find("section", class_="run")]
    assert len(sections) == 3 and f"run-{first_id}" in sections
    links = {a["href"] for a in page.find("a") if a.get("href", "").startswith("#run-")}
    assert {f"#{s}" for s in sections} <= links
    trend = html[html.index('<svg class="trend"'):]
    assert trend[:trend.index("</svg>")].count("<rect") == 3
    md = project.run("report", "--since", "1d", "--format", "md")
    assert md.returncode == 0 and md.stdout.startswith("# mixed: 3 run(s) since 1d"), md
    doc = json.loads(project.run("report", "--since", "1d", "--format", "json").stdout)
    assert doc["since"] == "1d" and [r["result"] for r in doc["runs"]] == ["success", "failed", "success"]


def test_report_records_and_shows_a_sensors_wait(project: Project) -> None:
    project.flowfile("""\
        [tasks.drop]
        outputs = ["drop.done"]
        run = "sleep 0.6; mkdir -p incoming; echo x > incoming/x.csv; touch drop.done"

        [tasks.sense]
        wait_for = ["incoming/x.csv"]
        wait_poll = "0.2s"
        outputs = ["sensed.txt"]
        run = "cp incoming/x.csv sensed.txt"
    """)
    result = project.json_run("-j", "2")
    assert result.returncode == 0, result
    doc = json.loads(project.run("report", "--format", "json").stdout)
    tasks = {t["name"]: t for t in doc["runs"][0]["tasks"]}
    start, end = tasks["sense"]["wait"]
    assert end - start >= 0.5, tasks["sense"]
    assert tasks["sense"]["attempts"][0]["start"] >= end - 0.01
    assert tasks["drop"]["wait"] is None
    page = project.run("report", "-o", "r.html")
    assert page.returncode == 0, page
    html = project.read("r.html")
    assert len(parse(html).find("g", class_="wait")) == 1


def test_report_of_a_no_op_run_shows_every_task_fresh(project: Project) -> None:
    project.flowfile(MIXED.replace('secrets = ["TOKEN"]\n', "").replace("exit 3", "true").replace(
        "; echo broken >&2", "; touch out/bad.txt"))
    for v in "abc":
        project.write(f"src/{v}.txt", f"source {v}\n")
    for _ in range(3):  # flaky fails once, then the no-op path answers
        project.run("run", "--progress", "plain")
    doc = json.loads(project.run("report", "--format", "json").stdout)
    (run,) = doc["runs"]
    assert run["result"] == "success" and run["counts"] == {"fresh": TASKS}, run["counts"]
    assert run["attempt_count"] == 0 and run["critical_path"] == []


def test_report_refuses_bad_usage_with_one_message(project: Project) -> None:
    project.flowfile("""\
        [tasks.a]
        outputs = ["a.txt"]
        run = "echo a > a.txt"
    """)
    none_yet = project.run("report")
    assert none_yet.returncode == 2 and "no run is recorded in this project yet" in none_yet.stderr, none_yet
    assert project.run("run", "--progress", "plain").returncode == 0
    cases = [
        (["report", "nosuchrun"], "no run with id 'nosuchrun'"),
        (["report", "--format", "pdf"], "unknown report format 'pdf'"),
        (["report", "--since", "7 days"], "--since is not a duration"),
        (["report", "--since", "7d", "2026"], "give a run id or --since, not both"),
    ]
    for args, message in cases:
        result = project.run(*args)
        assert result.returncode == 2, result
        assert message in result.stderr and "Traceback" not in result.stderr, result
        assert result.stderr.count("error:") == 1, result
