"""docs/json.md is the reference of every JSON shape: each field in its tables must appear in real output.

One project is run through every JSON-printing command (a run with a
failure, a retry, a sensor and long output; a dry run; status, list, graph,
log, lineage, audit export, report; an interrupted run), and every field
that each table of docs/json.md documents is looked for in the objects that
table describes. A field documented but never produced, or a table this
test does not know, fails it.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

from conftest import Project, wait_for_file

DOC = Path(__file__).resolve().parent.parent / "docs" / "json.md"

Table = Tuple[str, int]  # (heading, which field table under it: 0, 1, ...)


def documented() -> Dict[Table, List[str]]:
    """Every field table of docs/json.md: (heading, ordinal) -> the field names in its first column."""
    tables: Dict[Table, List[str]] = {}
    heading, ordinal, current = "", 0, None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            heading, ordinal, current = line.lstrip("#").strip(), 0, None
        elif line.startswith("| field |"):
            current = []
            tables[(heading, ordinal)] = current
            ordinal += 1
        elif current is not None and line.startswith("| `"):
            current.extend(re.findall(r"`([^`]+)`", line.split("|")[1]))
        elif not line.startswith("|"):
            current = None
    return tables


FLOWFILE = """
    [flow]
    name = "docs"

    [vars]
    studies = ["S01", "S02"]

    [tasks.extract]
    help = "Copy the raw files"
    matrix = { study = "{studies}" }
    inputs = ["raw/{study}.csv"]
    outputs = ["build/{study}.csv"]
    # The pause keeps it running past the output throttle, so a task_output is sent even on a busy machine.
    run = "cp {inputs} {outputs}; seq 10050; sleep 0.5; touch late.txt"

    [tasks.sensor]
    wait_for = ["late.txt"]
    wait_poll = "0.1s"
    run = "echo sensed"

    [tasks.flaky]
    after = ["extract"]
    retries = 1
    run = "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; [ $n -ge 1 ]"

    [tasks.broken]
    inputs = ["build/S01.csv"]
    run = "echo bad; exit 1"

    [tasks.package]
    inputs = ["build/{studies}.csv"]
    outputs = ["dist/"]
    run = "mkdir -p dist/parts; cat {inputs} > dist/parts/all.csv"

    [tasks.check]
    run = "true"
"""

INTERRUPTED = """
    [tasks.long]
    run = "echo started > started.txt; sleep 30"
"""


def walk(node: Any) -> Iterator[Dict[str, Any]]:
    """Every object inside a JSON value, itself included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def lineage_nodes(node: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    yield node
    for child in node.get("inputs", []):
        yield from lineage_nodes(child)


def produce(project: Project) -> Dict[Table, List[Dict[str, Any]]]:
    """Run every JSON command; return the objects each documented table describes."""
    project.flowfile(FLOWFILE)
    project.write("raw/S01.csv", "a\n")
    project.write("raw/S02.csv", "b\n")

    def json_out(*args: str) -> Any:
        result = project.run(*args)
        assert result.returncode in (0, 1), result
        return json.loads(result.stdout)

    first = project.json_run("-k", "--output", "group")
    assert first.returncode == 1, first
    project.write("raw/S01.csv", "changed\n")
    dry = project.json_run("-n")
    second = project.json_run("-k")
    events = first.events + dry.events + second.events

    project.write("sub/Flowfile.toml", INTERRUPTED)
    proc = project.popen("-C", "sub", "run", "--progress", "json")
    wait_for_file(project.path("sub/started.txt"), proc=proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    events += [json.loads(line) for line in out.splitlines()]

    project.write("dist/parts/all.csv", "edited by hand\n")
    runs = json_out("log", "--json")
    run_detail = json_out("log", first.run_id, "--json")
    task_attempts = json_out("log", first.run_id, "flaky", "--json")
    lineage = json_out("lineage", "dist/parts/all.csv", "--json")
    lineage_dir = json_out("lineage", "build/S01.csv", "--json")
    audit = json_out("audit", "export")
    report = json_out("report", "--format", "json")
    graph = json_out("graph", "--format", "json")
    plan = [entry for e in dry.events if e["event"] == "run_started" for entry in e["plan"]]
    reasons = [r for e in events for r in e.get("reasons", [])] + [r for p in plan for r in p["reasons"]]

    def kind(name: str) -> List[Dict[str, Any]]:
        return [e for e in events if e["event"] == name]

    report_runs = report["runs"]
    return {
        ("Events: `run --progress json`", 0): events,
        **{(f"`{name}`", 0): kind(name) for name in (
            "run_started", "task_started", "task_waiting", "task_output", "task_lines", "task_finished",
            "run_interrupted", "notice", "run_finished")},
        ("Reasons", 0): reasons,
        ("The dry-run plan", 0): plan,
        ("`status --json`", 0): json_out("status", "--json"),
        ("`list --json`", 0): json_out("list", "--json"),
        ("`graph --format json`", 0): [graph],
        ("`graph --format json`", 1): graph["nodes"],
        ("`graph --format json`", 2): graph["edges"],
        ("`log --json`", 0): runs,
        ("`log --json`", 1): [run_detail],
        ("`log --json`", 2): run_detail["attempts"],
        ("`log --json`", 3): task_attempts,
        ("`lineage --json`", 0): [*lineage_nodes(lineage), *lineage_nodes(lineage_dir)],
        ("`audit export`", 0): [audit],
        ("`audit export`", 1): audit["records"],
        ("`report --format json`", 0): [report],
        ("`report --format json`", 1): report_runs,
        ("`report --format json`", 2): [t for r in report_runs for t in r["tasks"]],
        ("`report --format json`", 3): [f for r in report_runs for f in r["lineage"]["files"]],
    }


def test_every_documented_field_appears_in_real_output(project: Project) -> None:
    tables = documented()
    produced = produce(project)
    assert set(tables) == set(produced), (
        f"tables in docs/json.md this test does not produce: {sorted(set(tables) - set(produced))}; "
        f"produced but not in the page: {sorted(set(produced) - set(tables))}")
    missing = {}
    for table, fields in tables.items():
        objects = produced[table]
        assert objects, f"no output for {table}"
        keys = {key for obj in objects for key in obj}
        absent = [f for f in fields if f not in keys]
        if absent:
            missing[table] = absent
    assert not missing, f"documented in docs/json.md but never seen in output: {missing}"


def test_the_doc_parser_reads_the_tables() -> None:
    """The check above is only as good as the parser: it must find the fields of a known table."""
    tables = documented()
    assert tables[("`task_finished`", 0)][:4] == ["task", "status", "duration", "exit_code"]
    assert tables[("`list --json`", 0)][0] == "name"
    assert len(tables) >= 20
