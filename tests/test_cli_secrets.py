"""Secrets through the real CLI (issue 3, item 5).

A task lists `secrets = ["API_TOKEN"]`: the value reaches the task through its
environment, and is masked as `***` in its captured log, live output, failure
tail (JSON and stderr) and the audit trail. Nothing under `.flowmake/` (the
database and its WAL included) may hold the value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, List

from conftest import Project, wait_for

TOKEN = "tok-7Hq2-SECRET-91xZ"
ENV = {"API_TOKEN": TOKEN}

# Both variants print the token on stdout and stderr and write it to a file
# outside .flowmake/; leak:S02 then fails.
LEAK = """\
    [tasks.leak]
    matrix = { study = ["S01", "S02"] }
    secrets = ["API_TOKEN"]
    outputs = ["out/{study}.txt"]
    run = "echo token=$API_TOKEN; echo \\"$API_TOKEN\\" > out/{study}.txt; echo err $API_TOKEN >&2; [ {study} = S01 ]"
"""


def leak_project(project: Project) -> None:
    project.flowfile(LEAK)


def json_of(result) -> Any:
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def files_holding(root: Path, needle: str) -> List[str]:
    """Every file under root whose bytes contain needle (UTF-8 or UTF-16)."""
    forms = [needle.encode(), needle.encode("utf-16-le"), needle.encode("utf-16-be")]
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            data = path.read_bytes()
            if any(form in data for form in forms):
                found.append(str(path.relative_to(root)))
    return found


def all_flowmake_files(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_secret_value_appears_nowhere_under_dot_flowmake(project: Project) -> None:
    leak_project(project)
    result = project.plain_run("-k", env=ENV)
    assert result.returncode == 1, result

    dot = project.path(".flowmake")
    names = all_flowmake_files(dot)
    assert "state.db" in names, names
    assert any(name.startswith("logs/") for name in names), names
    assert files_holding(dot, TOKEN) == [], f"the secret's value is stored in clear; files: {names}"
    assert sorted(files_holding(project.root, TOKEN)) == ["out/S01.txt", "out/S02.txt"]  # the search works


def test_secret_value_appears_nowhere_under_dot_flowmake_while_a_task_runs(project: Project) -> None:
    # With the run still going, the WAL and the open log are on disk as well.
    project.flowfile("""\
        [tasks.first]
        secrets = ["API_TOKEN"]
        outputs = ["first.txt"]
        run = "echo $API_TOKEN; echo ok > first.txt"

        [tasks.hold]
        secrets = ["API_TOKEN"]
        inputs = ["first.txt"]
        outputs = ["held.txt"]
        run = "echo $API_TOKEN; touch hold.marker; i=0; while [ ! -e release ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo ok > held.txt"
    """)
    proc = project.popen("run", "--progress", "json", env=ENV)
    wait_for(lambda: project.exists("hold.marker") or proc.poll() is not None, what="hold.marker")
    dot = project.path(".flowmake")
    during = files_holding(dot, TOKEN)
    names = all_flowmake_files(dot)
    project.write("release", "")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert during == [], f"the secret's value is on disk during the run; files: {names}"
    assert "state.db" in names and any(name.startswith("logs/") for name in names), names
    assert TOKEN not in out and TOKEN not in err


def test_secret_value_is_masked_in_json_progress_and_the_log_shows_stars(project: Project) -> None:
    leak_project(project)
    result = project.json_run("-k", env=ENV)
    assert result.returncode == 1, result
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    lines = [e["line"] for e in result.of_kind("task_output")]
    assert all(TOKEN not in line for line in lines)
    failed = result.finished_event("leak:S02")
    assert failed["status"] == "failed"
    assert "token=***" in failed["tail"] and "err ***" in failed["tail"], failed
    for task in ("leak:S01", "leak:S02"):
        log = project.read(result.finished_event(task)["log"])
        assert log.splitlines() == ["token=***", "err ***"], log

    shown = project.run("log", result.run_id, "--json")
    assert shown.returncode == 0 and TOKEN not in shown.stdout, shown
    export = project.run("audit", "export")
    assert export.returncode == 0 and TOKEN not in export.stdout, export


def test_secret_value_is_masked_in_the_stderr_tail_of_a_failing_variant(project: Project) -> None:
    leak_project(project)
    result = project.plain_run("-k", env=ENV)
    assert result.returncode == 1, result
    assert TOKEN not in result.stderr and TOKEN not in result.stdout, result
    tail_start = next(i for i, line in enumerate(result.err_lines) if line.startswith("--- leak:S02 failed"))
    tail = result.err_lines[tail_start + 1:]
    assert "token=***" in tail and "err ***" in tail, result


def test_secret_is_passed_to_the_task(project: Project) -> None:
    leak_project(project)
    result = project.json_run("-k", env=ENV)
    assert result.returncode == 1, result
    assert result.statuses["leak:S01"] == "ok"
    assert project.read("out/S01.txt") == TOKEN + "\n"
    assert project.read("out/S02.txt") == TOKEN + "\n"


def test_a_secret_that_is_not_set_fails_the_task_with_a_message_naming_it(project: Project) -> None:
    project.flowfile("""\
        [tasks.upload]
        secrets = ["API_TOKEN"]
        outputs = ["sent.txt"]
        run = "echo sent > sent.txt"
    """)
    result = project.json_run(env={"API_TOKEN": None})
    assert result.returncode == 1, result
    finished = result.finished_event("upload")
    assert finished["status"] == "failed"
    assert "API_TOKEN" in finished["message"], finished
    assert not project.exists("sent.txt")

    plain = project.plain_run(env={"API_TOKEN": None})
    assert plain.returncode == 1, plain
    assert "API_TOKEN" in plain.stderr, plain
    assert "Traceback" not in plain.stderr


def test_secret_value_put_into_the_command_by_a_var_is_masked_in_events_and_the_journal(
        project: Project) -> None:
    project.write("Flowfile.toml", f"""\
[vars]
token = "{TOKEN}"

[tasks.call]
secrets = ["API_TOKEN"]
outputs = ["called.txt"]
run = "echo {{token}} > called.txt"
""", dedent=False)
    result = project.json_run(env=ENV)
    assert result.returncode == 0, result
    assert result.started_event("call")["command"] == "echo *** > called.txt"
    assert TOKEN not in result.stdout
    assert project.read("called.txt") == TOKEN + "\n"
    attempts = json_of(project.run("log", result.run_id, "--json"))["attempts"]
    assert attempts[0]["command"] == "echo *** > called.txt"
    assert files_holding(project.path(".flowmake"), TOKEN) == []


def test_changing_a_secret_value_does_not_rerun_the_task(project: Project) -> None:
    project.flowfile("""\
        [tasks.call]
        secrets = ["API_TOKEN"]
        outputs = ["called.txt"]
        run = "echo called > called.txt"
    """)
    assert project.json_run(env=ENV).returncode == 0
    again = project.json_run(env={"API_TOKEN": "another-value"})
    assert again.returncode == 0, again
    assert again.statuses == {"call": "fresh"}
