"""SPEC §3 interruption and crash recovery through the real CLI.

The long task writes its shell's pid and the pid of its child `sleep`, then
waits on the child. The tests signal flowmake (never the task) and check what
became of those processes and of the state.

Each task command has a fast path, taken when a `fast` marker file exists;
the marker is not an input, so it does not change the task's fingerprint and
a later run of the same task finishes at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from conftest import Project, pid_alive, wait_for, wait_for_file

LONG_TASK = """\
    [tasks.quick]
    outputs = ["quick.txt"]
    run = "echo q > quick.txt"

    [tasks.long]
    inputs = ["quick.txt"]
    outputs = ["long.txt"]
    run = '''
    if [ -e fast ]; then sh ./probe.sh > orphan_at_start.txt; echo done > long.txt; exit 0; fi
    echo partial > long.txt
    echo $$ > sh.pid
    sleep 30 &
    echo $! > child.pid
    wait
    '''
"""

# Run by the fast path of the next run: was the previous run's sleep still alive when it began?
PROBE = """\
    pid=$(cat child.pid)
    if [ -r /proc/$pid/stat ] && ! grep -q ') [ZX] ' /proc/$pid/stat; then echo alive; else echo dead; fi
"""


def start_long_run(project: Project, *args: str):
    project.flowfile(LONG_TASK)
    project.write("probe.sh", PROBE)
    proc = project.popen("run", "--progress", "json", "-j", "1", *args)
    child = int(wait_for_file(project.path("child.pid"), proc=proc))
    shell = int(project.read("sh.pid").strip())
    project.track_pid(shell)
    project.track_pid(child)
    assert pid_alive(child) and pid_alive(shell)
    return proc, shell, child


def events_of(stdout: str) -> list:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_exits_with_its_code_and_kills_the_task_process_group(project: Project, signum: int,
                                                                     code: int) -> None:
    proc, shell, child = start_long_run(project)
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("flowmake did not exit within 15 s of the signal")
    assert proc.returncode == code, (out, err)
    wait_for(lambda: not pid_alive(child) and not pid_alive(shell), timeout=5,
             what="the task's processes to end")
    events = events_of(out)
    finished = [e for e in events if e["event"] == "run_finished"]
    assert finished and finished[-1]["result"] == "interrupted", out


def test_interrupted_task_is_not_recorded_as_done(project: Project) -> None:
    proc, shell, child = start_long_run(project)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, (out, err)
    assert project.read("long.txt") == "partial\n"  # the output exists but is not trusted
    assert project.status()["long"]["state"] == "stale"
    project.write("fast", "")
    again = project.json_run()
    assert again.returncode == 0, again
    assert again.started == ["long"]  # quick finished before the interrupt and stays done
    assert again.statuses["quick"] == "fresh"
    assert project.read("long.txt") == "done\n"


def test_sigkill_of_flowmake_then_next_run_ends_the_orphans_and_reruns_the_task(project: Project) -> None:
    proc, shell, child = start_long_run(project)
    # A quick task's success is committed within moments while the next runs,
    # not held back until that one ends.
    wait_for(lambda: project.status()["quick"]["state"] == "fresh", timeout=5,
             what="quick's success to be committed while long runs")
    proc.kill()
    proc.communicate(timeout=10)
    # the task runs in its own session: it survives its killed parent for now
    assert pid_alive(child) and pid_alive(shell)
    project.write("fast", "")
    result = project.json_run()  # exit 3 here would mean the killed run still held the lock
    assert result.returncode == 0, result
    assert result.started == ["long"]
    assert result.statuses["quick"] == "fresh"  # a committed success survives the crash
    assert project.read("orphan_at_start.txt") == "dead\n", "the orphan was alive when the task started again"
    assert not pid_alive(child) and not pid_alive(shell)
    # the state is readable and consistent afterwards
    rows = project.status()
    assert {t: r["state"] for t, r in rows.items()} == {"quick": "fresh", "long": "fresh"}
    noop = project.json_run()
    assert noop.returncode == 0 and noop.started == [], noop


def test_second_sigint_kills_at_once(project: Project) -> None:
    # The task ignores SIGTERM, so the first Ctrl-C alone would wait out the grace period.
    project.flowfile("""\
        [tasks.stubborn]
        run = "trap '' TERM; echo $$ > sh.pid; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"
    """)
    proc = project.popen("run", "--progress", "plain")
    shell = int(wait_for_file(project.path("sh.pid"), proc=proc))
    project.track_pid(shell)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None, "flowmake exited before the grace period although the task ignores SIGTERM"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 3, "the second Ctrl-C did not kill at once"
    assert proc.returncode == 130, (out, err)
    wait_for(lambda: not pid_alive(shell), timeout=5, what="the stubborn task to die")


def test_a_dry_run_beside_a_working_run_neither_waits_nor_ends_its_tasks(project: Project) -> None:
    proc, shell, child = start_long_run(project)
    dry = project.run("run", "-n", "--progress", "plain")
    assert dry.returncode == 0, dry  # no exit 3: a dry run only looks, without the lock
    assert "long" in dry.stdout
    assert pid_alive(child) and pid_alive(shell), "the dry run ended the working run's task"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=15)
