"""Sensors (`wait_for`), retries and timeouts through the real CLI (issue 3, items 2 and 3).

A sensor waits for a path to exist and to stop changing for one poll, while
other tasks keep running; it fails, naming the path, when `wait_timeout`
expires. A failed attempt is re-run up to `retries` times and every attempt is
recorded; `timeout` kills the task's whole process group.

Times are compared on the wall clock: the test's `time.time()` against what
the task's own `date +%s.%N` wrote, both on this machine.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List

from conftest import Project, Result, pid_alive, rest_of_output, wait_for


def read_until_waiting(proc, task: str) -> List[str]:
    """Read `--progress json` lines until `task` reports task_waiting; return them."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        event = json.loads(line)
        if event["event"] == "task_waiting" and event["task"] == task:
            return seen
    out, err = rest_of_output(proc)
    raise AssertionError(f"flowmake ended ({proc.returncode}) without waiting for {task}\n"
                         f"--- stdout ---\n{''.join(seen)}{out}\n--- stderr ---\n{err}")


def finish(proc, seen: List[str]) -> Result:
    out, err = rest_of_output(proc)
    return Result(list(proc.args[3:]), proc.returncode, "".join(seen) + out, err)


def attempts_of(project: Project, run_id: str, task: str) -> List[Dict[str, Any]]:
    shown = project.run("log", run_id, "--json")
    assert shown.returncode == 0, shown
    return [a for a in json.loads(shown.stdout)["attempts"] if a["task"] == task]


def index_of(result: Result, kind: str, task: str) -> int:
    for i, event in enumerate(result.events):
        if event["event"] == kind and event.get("task") == task:
            return i
    raise AssertionError(f"no {kind} event for {task}\n{result!r}")


# -- sensors ------------------------------------------------------------------------


def test_wait_for_path_that_appears_during_the_run_waits_then_runs_while_others_run(project: Project) -> None:
    project.flowfile("""\
        [tasks.sense]
        wait_for = ["incoming/x.csv"]
        wait_poll = "0.2s"
        wait_timeout = "30s"
        inputs = ["incoming/x.csv"]
        outputs = ["got.csv"]
        run = "date +%s.%N > sense.start; cp incoming/x.csv got.csv"

        [tasks.other]
        outputs = ["other.txt"]
        run = "echo other > other.txt"
    """)
    # -j 1: a task waiting on wait_for must not hold the only slot.
    t0 = time.monotonic()
    proc = project.popen("run", "--progress", "json", "-j", "1")
    seen = read_until_waiting(proc, "sense")
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
    assert proc.poll() is None, "flowmake did not wait for incoming/x.csv"
    project.write("incoming/x.csv", "arrived\n")
    written = time.time()
    result = finish(proc, seen)
    assert result.returncode == 0, result
    assert result.statuses == {"sense": "ok", "other": "ok"}
    waiting = [e for e in result.of_kind("task_waiting") if e["task"] == "sense"]
    assert waiting and waiting[0]["paths"] == ["incoming/x.csv"], result
    assert index_of(result, "task_waiting", "sense") < index_of(result, "task_started", "sense")
    assert index_of(result, "task_finished", "other") < index_of(result, "task_started", "sense")
    assert float(project.read("sense.start")) >= written - 0.05
    assert project.read("got.csv") == "arrived\n"


def test_a_file_still_being_appended_to_is_taken_only_after_it_stops_changing(project: Project) -> None:
    project.flowfile("""\
        [tasks.sense]
        wait_for = ["incoming/x.csv"]
        wait_poll = "0.5s"
        wait_timeout = "30s"
        inputs = ["incoming/x.csv"]
        outputs = ["got.csv"]
        run = "date +%s.%N > sense.start; cp incoming/x.csv got.csv"
    """)
    proc = project.popen("run", "--progress", "json")
    seen = read_until_waiting(proc, "sense")
    target = project.path("incoming/x.csv")
    target.parent.mkdir()
    lines = [f"row {i}\n" for i in range(8)]
    for line in lines:  # appends 0.1 s apart: every poll (0.5 s) sees the file change
        with open(target, "a") as f:
            f.write(line)
        last_append = time.time()
        time.sleep(0.1)
    result = finish(proc, seen)
    assert result.returncode == 0, result
    started = float(project.read("sense.start"))
    assert started >= last_append, (
        f"the sensor task started {last_append - started:.2f}s before the last append\n{result!r}")
    assert project.read("got.csv") == "".join(lines)


def test_wait_timeout_expiry_fails_naming_the_missing_path_and_saying_it_timed_out(project: Project) -> None:
    project.flowfile("""\
        [tasks.sense]
        wait_for = ["incoming/never.csv"]
        wait_poll = "0.2s"
        wait_timeout = "0.6s"
        outputs = ["got.csv"]
        run = "echo ran > ran.txt; touch got.csv"
    """)
    t0 = time.monotonic()
    result = project.json_run()
    elapsed = time.monotonic() - t0
    assert result.returncode == 1, result
    finished = result.finished_event("sense")
    assert finished["status"] == "failed"
    assert "timed out" in finished["message"] and "incoming/never.csv" in finished["message"], result
    assert result.one("run_finished")["failed"] == ["sense"]
    assert "sense" not in result.started
    assert not project.exists("ran.txt")
    assert elapsed < 15

    plain = project.plain_run()
    assert plain.returncode == 1, plain
    assert "timed out" in plain.stderr and "incoming/never.csv" in plain.stderr, plain
    waits = [line for line in plain.lines if line.split()[:2] == ["wait", "sense"]]
    assert waits and "incoming/never.csv" in waits[0], plain


def test_list_var_in_wait_for_waits_for_each_item_and_the_timeout_names_only_the_missing_one(
        project: Project) -> None:
    project.flowfile("""\
        [vars]
        studies = ["S01", "S02"]

        [tasks.sense]
        wait_for = ["incoming/{studies}.csv"]
        wait_poll = "0.2s"
        wait_timeout = "1.5s"
        run = "echo ran > ran.txt"
    """)
    proc = project.popen("run", "--progress", "json")
    seen = read_until_waiting(proc, "sense")
    project.write("incoming/S01.csv", "one\n")
    result = finish(proc, seen)
    assert result.returncode == 1, result
    waiting = [e["paths"] for e in result.of_kind("task_waiting")]
    assert waiting[0] == ["incoming/S01.csv", "incoming/S02.csv"], result
    assert waiting[-1] == ["incoming/S02.csv"], result
    message = result.finished_event("sense")["message"]
    assert "timed out" in message and "incoming/S02.csv" in message, result
    assert "incoming/S01.csv" not in message, result
    assert not project.exists("ran.txt")


# -- retries ---------------------------------------------------------------------------

FLAKY = """\
    [tasks.flaky]
    retries = 1
    outputs = ["flaky.txt"]
    run = "if [ -e seen ]; then echo ok > flaky.txt; else touch seen; echo first try fails; exit 7; fi"
"""


def test_a_command_failing_once_then_succeeding_with_retries_1_exits_0_and_records_two_attempts(
        project: Project) -> None:
    project.flowfile(FLAKY)
    result = project.json_run()
    assert result.returncode == 0, result
    assert [e["attempt"] for e in result.of_kind("task_started")] == [1, 2]
    first, last = result.of_kind("task_finished")
    assert first["status"] == "failed" and first["will_retry"] is True and first["attempt"] == 1
    assert last["status"] == "ok" and last.get("will_retry") in (None, False)
    assert project.read("flaky.txt") == "ok\n"

    attempts = attempts_of(project, result.run_id, "flaky")
    assert [(a["attempt"], a["status"], a["exit_code"]) for a in attempts] == [(1, "failed", 7), (2, "ok", 0)]
    assert attempts[1]["outputs"] and "flaky.txt" in attempts[1]["outputs"]
    assert attempts[0]["log"] != attempts[1]["log"]


def test_retries_exhausted_exit_1_after_retries_plus_one_attempts(project: Project) -> None:
    project.flowfile("""\
        [tasks.bad]
        retries = 2
        run = "echo try >> tries.txt; exit 5"
    """)
    result = project.json_run()
    assert result.returncode == 1, result
    assert [e["attempt"] for e in result.of_kind("task_started")] == [1, 2, 3]
    final = result.finished_event("bad")
    assert final["status"] == "failed" and final["exit_code"] == 5 and final["attempt"] == 3
    assert final.get("will_retry") is False
    assert project.read("tries.txt") == "try\n" * 3

    attempts = attempts_of(project, result.run_id, "bad")
    assert [(a["attempt"], a["status"], a["exit_code"]) for a in attempts] == [
        (1, "failed", 5), (2, "failed", 5), (3, "failed", 5)]


def test_retry_delay_pauses_between_attempts(project: Project) -> None:
    project.flowfile("""\
        [tasks.bad]
        retries = 1
        retry_delay = "0.6s"
        run = "date +%s.%N >> tries.txt; exit 1"
    """)
    result = project.json_run()
    assert result.returncode == 1, result
    first, second = (float(x) for x in project.read("tries.txt").split())
    assert second - first >= 0.6


# -- timeout -------------------------------------------------------------------------------


def test_timeout_kills_the_whole_process_group_and_says_it_timed_out(project: Project) -> None:
    project.flowfile("""\
        [tasks.slow]
        timeout = "1s"
        run = "sleep 30 & echo $! > child.pid; sleep 30"
    """)
    t0 = time.monotonic()
    result = project.json_run()
    elapsed = time.monotonic() - t0
    child = int(project.read("child.pid"))
    project.track_pid(child)
    assert result.returncode == 1, result
    assert elapsed < 10, f"a 1s timeout took {elapsed:.1f}s"
    finished = result.finished_event("slow")
    assert finished["status"] == "failed"
    assert "timed out" in finished["message"], result
    assert finished["exit_code"] is None
    wait_for(lambda: not pid_alive(child), timeout=3, what=f"background child {child} to be gone")

    attempts = attempts_of(project, result.run_id, "slow")
    assert len(attempts) == 1 and attempts[0]["status"] == "failed"
    assert "timed out" in (attempts[0]["message"] or "")


def test_a_timed_out_attempt_is_retried_and_every_attempt_is_recorded(project: Project) -> None:
    project.flowfile("""\
        [tasks.slow]
        timeout = "0.3s"
        retries = 1
        run = "echo try >> tries.txt; sleep 5"
    """)
    result = project.json_run()
    assert result.returncode == 1, result
    assert project.read("tries.txt") == "try\ntry\n"
    attempts = attempts_of(project, result.run_id, "slow")
    assert [(a["attempt"], a["status"], a["exit_code"]) for a in attempts] == [(1, "failed", None), (2, "failed", None)]
    assert all("timed out" in (a["message"] or "") for a in attempts), attempts
