"""status, the dry-run plan and the run cannot drift apart: one rebuilder answers all three.

For a table of edits to a built project, `status --json`, `run -n
--progress json` and the real run that follows must agree task by task:
the same state, the same reasons and the same `blocked_by`; a stale task
runs for exactly those reasons, a fresh one does not run, a blocked one runs
or is cut off early. Each edit is tried with the shortcuts (the no-op
snapshot, its cone, the fast path, the load cache) and without them
(FLOWMAKE_NO_SHORTCUTS=1).
"""

from __future__ import annotations

from typing import Callable, Dict

import pytest
from conftest import Project, status_json

FLOWFILE = """
[flow]
name = "agree"

[tasks.gen]
inputs = ["src/a.txt"]
outputs = ["build/a.out"]
run = "cp src/a.txt build/a.out"

[tasks.up]
inputs = ["build/a.out"]
outputs = ["build/b.out"]
run = "tr a-z A-Z < build/a.out > build/b.out"

[tasks.side]
inputs = ["src/s.txt"]
outputs = ["build/s.out"]
run = "cp src/s.txt build/s.out"

[tasks.join]
inputs = ["build/b.out", "build/s.out"]
outputs = ["build/j.out"]
run = "cat build/b.out build/s.out > build/j.out"

[tasks.all]
after = ["join"]
"""


def _edit_flowfile(project: Project) -> None:
    project.flowfile(FLOWFILE.replace("tr a-z A-Z <", "tr 'a-z' 'A-Z' <"))


EDITS: Dict[str, Callable[[Project], None]] = {
    "nothing": lambda p: None,
    "input content": lambda p: p.write("src/a.txt", "changed\n"),
    "input rewritten as it was": lambda p: p.write("src/a.txt", "abc\n"),
    "upstream rewrites its output byte for byte": lambda p: p.write("src/a.txt", "ABC\n"),
    "output deleted": lambda p: p.path("build/s.out").unlink(),
    "output modified by hand": lambda p: p.write("build/j.out", "tampered\n"),
    "command changed": _edit_flowfile,
    "side input": lambda p: p.write("src/s.txt", "side 2\n"),
}

SHORTCUTS = {"with shortcuts": {}, "without shortcuts": {"FLOWMAKE_NO_SHORTCUTS": "1"}}


def _built(project: Project, env: Dict[str, str]) -> None:
    project.flowfile(FLOWFILE)
    project.write("src/a.txt", "abc\n")
    project.write("src/s.txt", "side\n")
    first = project.json_run(env=env)
    assert first.returncode == 0, first
    again = project.json_run(env=env)  # leaves the snapshot a later run plans from (with shortcuts)
    assert again.returncode == 0 and set(again.statuses.values()) == {"fresh"}, again


@pytest.mark.parametrize("shortcuts", list(SHORTCUTS))
@pytest.mark.parametrize("edit", list(EDITS))
def test_status_plan_and_run_agree_task_by_task(project: Project, edit: str, shortcuts: str) -> None:
    env = SHORTCUTS[shortcuts]
    _built(project, env)
    EDITS[edit](project)

    status = project.run("status", "--json", env=env)
    assert status.returncode == 0, status
    told = status_json(status)
    dry = project.json_run("-n", env=env)
    assert dry.returncode == 0, dry
    plan = {row["task"]: row for row in dry.one("run_started")["plan"]}
    run = project.json_run(env=env)
    assert run.returncode == 0, run

    assert list(told) == list(plan), (status, dry)
    for task, row in plan.items():
        said = told[task]
        assert (said["state"], said["reasons"], said["blocked_by"]) == (
            row["state"], row["reasons"], row["blocked_by"]), (task, status, dry)
        outcome = run.statuses[task]
        if row["state"] == "stale":
            assert outcome == "ok", (task, run)
            assert run.reasons(task) == row["reasons"], (task, run, dry)
        elif row["state"] == "fresh":
            assert outcome == "fresh", (task, run)
        else:
            assert outcome in ("ok", "fresh") and row["reasons"] == [] and row["blocked_by"], (task, row, run)
    counts = dry.one("run_finished")["counts"]
    states = [row["state"] for row in plan.values()]
    assert counts == {s: states.count(s) for s in ("stale", "blocked", "fresh")}, dry

    if edit == "upstream rewrites its output byte for byte":
        # Blocked in the plan, fresh in the run: early cutoff.
        assert plan["join"]["state"] == "blocked" and run.statuses["join"] == "fresh", (dry, run)

    after = status_json(project.run("status", "--json", env=env))
    assert {row["state"] for row in after.values()} == {"fresh"}, after

