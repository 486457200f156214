"""The process seam: ending the orphans of a killed run (identified by the run id in their environment), empty logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Iterator, List

import pytest
from conftest import pid_alive, wait_for

from flowmake.executors import local as runner_module
from flowmake.executors import stream as stream_module
from flowmake.executors.local import Completion, OutputLines, ProcessRunner, end_orphans


@pytest.fixture
def sessions() -> Iterator[List[subprocess.Popen]]:
    started: List[subprocess.Popen] = []
    yield started
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def start_task(sessions: List[subprocess.Popen], run_id: str, task: str) -> subprocess.Popen:
    """A task as flowmake starts one: its own session, the run and task named in its environment."""
    env = dict(os.environ, FLOWMAKE_RUN_ID=run_id, FLOWMAKE_TASK=task)
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & wait"], env=env, start_new_session=True)
    sessions.append(proc)
    return proc


def test_end_orphans_kills_the_groups_of_a_dead_runs_tasks_and_names_them(sessions) -> None:
    orphan = start_task(sessions, "run-dead", "extract")
    wait_for(lambda: len(_group_members(orphan.pid)) == 2, timeout=5, what="the task's sleep to start")
    members = _group_members(orphan.pid)
    assert end_orphans(["run-dead"]) == {orphan.pid: "extract"}
    orphan.wait(timeout=5)
    assert not any(pid_alive(pid) for pid in members)  # the shell and its child: the whole group


def test_end_orphans_leaves_processes_of_other_runs_and_without_a_run_id_alone(sessions) -> None:
    other = start_task(sessions, "run-other", "extract")
    plain = subprocess.Popen(["sleep", "30"], start_new_session=True)
    sessions.append(plain)
    assert end_orphans(["run-dead"]) == {}
    assert end_orphans([]) == {}
    assert pid_alive(other.pid) and pid_alive(plain.pid)


def _group_members(group: int) -> List[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == group and pid_alive(int(entry)):
                    members.append(int(entry))
            except ProcessLookupError:
                pass
    return members


def test_which_takes_the_first_executable_file_on_the_path(tmp_path) -> None:
    from flowmake.executors.spawn import _which

    not_executable, a_directory, executable, later = (tmp_path / d for d in ("a", "b", "c", "d"))
    for d in (not_executable, a_directory, executable, later):
        d.mkdir()
    (not_executable / "tool").write_text("#!/bin/sh\n")
    (a_directory / "tool").mkdir()
    for d in (executable, later):
        (d / "tool").write_text("#!/bin/sh\n")
        (d / "tool").chmod(0o755)
    path = os.pathsep.join(str(d) for d in (tmp_path / "missing", not_executable, a_directory, executable, later))
    assert _which("tool", path) == str(executable / "tool")
    assert _which("other", path) is None


def test_empty_logs_link_to_the_runs_first_and_start_afresh_when_it_is_gone(tmp_path) -> None:
    runner = ProcessRunner()
    logs = tmp_path / "logs" / "RUN"  # not there yet: made with the first log
    runner._write_empty_log(str(logs / "a.log"))
    runner._write_empty_log(str(logs / "b.log"))
    assert (logs / "a.log").read_bytes() == b"" and (logs / "a.log").stat().st_nlink == 2
    assert (logs / "a.log").stat().st_ino == (logs / "b.log").stat().st_ino
    (logs / "a.log").unlink()
    (logs / "b.log").unlink()  # the link source is gone (a pruned run, say): a new empty file takes its place
    runner._write_empty_log(str(logs / "c.log"))
    runner._write_empty_log(str(logs / "d.log"))
    assert (logs / "c.log").read_bytes() == b"" and (logs / "c.log").stat().st_nlink == 2
    assert (logs / "c.log").stat().st_ino == (logs / "d.log").stat().st_ino
    runner.close()


def _run_to_completion(runner: ProcessRunner, command: str, tmp_path, timeout: float = 10.0):
    runner.start("t", ["sh", "-c", command], cwd=str(tmp_path), env=dict(os.environ),
                 log_path=str(tmp_path / "t.log"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in runner.wait(0.5):
            if isinstance(message, Completion):
                return message
    raise AssertionError("no completion")


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polled"])
def test_a_task_that_closes_its_output_before_exiting_completes_once_it_exits(
        tmp_path, monkeypatch, pidfd) -> None:
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)  # as on macOS or Linux < 5.3
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd here")
    runner = ProcessRunner()
    try:
        started = time.monotonic()
        done = _run_to_completion(runner, "echo before; exec >&- 2>&-; sleep 0.3; exit 7", tmp_path)
        assert done.returncode == 7  # reaped after it exited, not when its output closed
        assert time.monotonic() - started >= 0.3
        assert done.tail == ["before"]
        assert (tmp_path / "t.log").read_text() == "before\n"
    finally:
        runner.close()


def test_a_timed_out_task_whose_output_stays_open_is_awaited_without_spinning(tmp_path) -> None:
    # A process that left the task's group keeps its output open after the kill:
    # the runner then waits for the end of that output, not in a busy loop.
    escape = f"{sys.executable} -c 'import os, time; os.setsid(); time.sleep(1.5)'"
    runner = ProcessRunner()
    try:
        runner.start("t", ["sh", "-c", f"{escape} & exec sleep 30"], cwd=str(tmp_path), env=dict(os.environ),
                     log_path=str(tmp_path / "t.log"), timeout=0.2)
        empty_waits, done = 0, None
        deadline = time.monotonic() + 10
        while done is None and time.monotonic() < deadline:
            messages = runner.wait(0.5)
            empty_waits += not messages
            done = next((m for m in messages if isinstance(m, Completion)), None)
        assert done is not None and done.timed_out
        assert empty_waits <= 6, f"{empty_waits} empty waits in ~1.5 s: spinning"
    finally:
        runner.close()


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polled"])
def test_a_task_completes_when_its_process_exits_though_a_child_holds_its_output(
        tmp_path, monkeypatch, pidfd) -> None:
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)  # as on macOS or Linux < 5.3
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd here")
    runner = ProcessRunner()
    try:
        started = time.monotonic()
        done = _run_to_completion(runner, "sleep 30 & echo $! > child.pid; echo before; exit 3", tmp_path)
        assert time.monotonic() - started < 5
        assert done.returncode == 3 and done.tail == ["before"]
        assert (tmp_path / "t.log").read_text() == "before\n"
        child = int((tmp_path / "child.pid").read_text())
        wait_for(lambda: not pid_alive(child), timeout=5, what="the leftover sleep to be killed")
        assert runner._streams == {}  # nothing of the task is left watched
    finally:
        runner.close()


def _lines_until_completion(runner: ProcessRunner, command: str, tmp_path, timeout: float = 20.0):
    """Every OutputLines message of one task (as (lines, omitted)), up to its Completion, which must follow them."""
    runner.start("t", ["sh", "-c", command], cwd=str(tmp_path), env=dict(os.environ),
                 log_path=str(tmp_path / "t.log"))
    handed: List = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in runner.wait(0.5):
            if isinstance(message, OutputLines):
                handed.append((message.lines, message.omitted))
            elif isinstance(message, Completion):
                return handed
    raise AssertionError("no completion")


def test_a_line_redrawn_with_carriage_returns_is_handed_over_once_per_interval_and_at_its_end(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner_module, "REDRAW_INTERVAL", 0.5)
    runner = ProcessRunner(lines="stream")
    try:
        started = time.monotonic()
        handed = _lines_until_completion(
            runner, "i=0; while [ $i -lt 30 ]; do i=$((i+1)); printf '\\rstep %d' $i; sleep 0.05; done; echo", tmp_path)
        elapsed = time.monotonic() - started
    finally:
        runner.close()
    lines = [line for batch, _ in handed for line in batch]
    assert lines[-1] == "step 30"  # its final state, when its line ended
    between = lines[:-1]
    assert 1 <= len(between) <= elapsed / 0.5 + 1, (between, elapsed)  # not one per redraw (30)
    numbers = [int(line.split()[1]) for line in between]
    assert numbers == sorted(set(numbers)) and numbers[-1] < 30, between


def test_a_group_block_keeps_its_last_lines_and_counts_those_left_out(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(stream_module, "BLOCK_LINES", 5)
    runner = ProcessRunner(lines="block")
    try:
        handed = _lines_until_completion(runner, "seq 1 12; sleep 0.3; echo end", tmp_path)
    finally:
        runner.close()
    assert handed == [(["9", "10", "11", "12", "end"], 8)]  # one block, at the end
    assert (tmp_path / "t.log").read_text().split() == [str(n) for n in range(1, 13)] + ["end"]
