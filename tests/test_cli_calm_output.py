"""What a person at a terminal sees when nothing is to do, and after Ctrl-C.

A no-op prints one calm line, not a tree of fresh tasks (`-v` still lists
them). After Ctrl-C the tree says what it is doing during the grace period,
and tasks cut short read as interrupted, not as failures with log tails; in
plain output as well. The tree is driven under a real pseudo-terminal whose
Ctrl-C (a \\x03 typed at it) reaches flowmake as a terminal's would.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from typing import List, Tuple

from conftest import FLOWMAKE, Project, wait_for_file
from test_cli_commands import run_in_pty, strip_ansi

SMALL = """\
    [tasks.gen]
    inputs = ["src.txt"]
    outputs = ["a.txt"]
    run = "cp src.txt a.txt"

    [tasks.use]
    inputs = ["a.txt"]
    outputs = ["b.txt"]
    run = "cat a.txt > b.txt"
"""

# `slow1` and `slow2` take a second to stop after SIGTERM, long enough for the
# tree to show the grace period; `after` needs slow1; `quick` is done first.
STOPPABLE = """\
    [flow]
    name = "stoppable"

    [tasks.quick]
    outputs = ["quick.txt"]
    run = "echo q > quick.txt"

    [tasks.slow1]
    inputs = ["quick.txt"]
    outputs = ["s1.txt"]
    run = "trap 'sleep 1; exit 1' TERM; echo going; sleep 30 & echo $$ > s1.pid; wait"

    [tasks.slow2]
    inputs = ["quick.txt"]
    outputs = ["s2.txt"]
    run = "trap 'sleep 1; exit 1' TERM; echo going; sleep 30 & echo $$ > s2.pid; wait"

    [tasks.after]
    inputs = ["s1.txt"]
    outputs = ["after.txt"]
    run = "cp s1.txt after.txt"
"""


def lines_of(output: str) -> List[str]:
    return [line.rstrip() for line in strip_ansi(output).replace("\r", "\n").splitlines() if line.strip()]


def test_a_noop_at_a_terminal_prints_one_calm_line(project: Project) -> None:
    project.flowfile(SMALL)
    project.write("src.txt", "one\n")
    code, first = run_in_pty(project, "run")
    assert code == 0, first
    code, again = run_in_pty(project)
    assert code == 0, again
    shown = lines_of(again)
    assert len(shown) == 1 and re.fullmatch(r"✓ nothing to do: 2 tasks fresh \([0-9.]+s\)", shown[0]), shown
    assert "○" not in again


def test_a_verbose_noop_at_a_terminal_still_lists_the_fresh_tasks(project: Project) -> None:
    project.flowfile(SMALL)
    project.write("src.txt", "one\n")
    assert run_in_pty(project, "run")[0] == 0
    code, verbose = run_in_pty(project, "-v")
    assert code == 0, verbose
    text = "\n".join(lines_of(verbose))
    assert "○ gen" in text and "○ use" in text, text
    assert re.search(r"✓ nothing to do: 2 tasks fresh", text), text


def test_a_run_with_work_at_a_terminal_still_shows_the_tree(project: Project) -> None:
    project.flowfile(SMALL)
    project.write("src.txt", "one\n")
    code, output = run_in_pty(project)
    assert code == 0, output
    text = "\n".join(lines_of(output))
    assert "✓ gen" in text and "✓ use" in text, text


def interrupt_in_pty(project: Project, *args: str, timeout: float = 30.0) -> Tuple[int, str]:
    """Run flowmake on a 120x40 pty that is its controlling terminal; type Ctrl-C once s1.pid and s2.pid exist."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def own_terminal() -> None:  # runs in the child after setsid: the pty becomes its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(FLOWMAKE + list(args), cwd=str(project.root), env=project.env({"TERM": "xterm-256color"}),
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True, start_new_session=True,
                            preexec_fn=own_terminal)
    os.close(slave)
    chunks: List[bytes] = []
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not typed and project.exists("s1.pid") and project.exists("s2.pid"):
                wait_for_file(project.path("s1.pid"))
                wait_for_file(project.path("s2.pid"))
                time.sleep(0.3)  # a frame or two of the running tree
                os.write(master, b"\x03")  # Ctrl-C, as typed
                typed = True
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"flowmake under a pty did not finish in {timeout}s")
        proc.wait(timeout=10)
    finally:
        os.close(master)
        for name in ("s1.pid", "s2.pid"):
            if project.exists(name):
                try:
                    os.killpg(int(project.read(name)), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_after_ctrl_c_the_tree_says_it_is_stopping_and_shows_tasks_as_interrupted(project: Project) -> None:
    project.flowfile(STOPPABLE)
    code, output = interrupt_in_pty(project, "run", "-j", "3")
    assert code == 130, output
    text = strip_ansi(output)
    assert "interrupted: stopping 2 tasks, SIGKILL in 5 s" in text, text
    final = lines_of(output)
    assert re.fullmatch(r"✗ interrupted: 1 ok, 2 interrupted, 1 skipped in [0-9.]+s", final[-1]), final
    for task in ("slow1", "slow2"):
        assert any(re.search(rf"■ {task}\s+interrupted \(exit code 1\) after [0-9.]+s", line) for line in final), final
    assert not any("✗ slow" in line for line in final), final
    assert "--- slow" not in text and "last line" not in text, text  # no log tails
    assert not project.exists("s1.txt") and not project.exists("after.txt")


def test_after_ctrl_c_plain_output_says_it_is_stopping_and_shows_tasks_as_interrupted(project: Project) -> None:
    project.flowfile(STOPPABLE)
    proc = project.popen("run", "-j", "3", "--progress", "plain")
    wait_for_file(project.path("s1.pid"), proc=proc)
    wait_for_file(project.path("s2.pid"), proc=proc)
    for name in ("s1.pid", "s2.pid"):
        project.track_pid(int(project.read(name)))
    time.sleep(0.3)  # both shells in their `wait`, where the trap runs at once
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    lines = out.splitlines()
    assert "interrupted: stopping 2 tasks, SIGKILL in 5 s" in lines, out
    stopped = sorted(line for line in lines if line.startswith("stop "))
    assert len(stopped) == 2, out
    for line, task in zip(stopped, ("slow1", "slow2")):
        assert re.fullmatch(rf"stop   {task} +interrupted \(exit code 1\) after [0-9.]+s — log: \.flowmake/logs/"
                            rf"\S+/{task}\S*\.log", line), line
    assert "skip   after            not started: the run was interrupted" in lines, out
    assert re.fullmatch(r"interrupted: 1 ok, 2 interrupted, 1 skipped in [0-9.]+s", lines[-1]), out
    assert not any(line.startswith("FAILED") for line in lines), out
    assert err == "", err  # no log tails on stderr


def test_after_ctrl_c_json_events_say_interrupted(project: Project) -> None:
    project.flowfile(STOPPABLE)
    proc = project.popen("run", "-j", "3", "--progress", "json")
    wait_for_file(project.path("s1.pid"), proc=proc)
    wait_for_file(project.path("s2.pid"), proc=proc)
    for name in ("s1.pid", "s2.pid"):
        project.track_pid(int(project.read(name)))
    time.sleep(0.3)  # both shells in their `wait`, where the trap runs at once
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    events = [json.loads(line) for line in out.splitlines()]
    stopping = [e for e in events if e["event"] == "run_interrupted"]
    assert len(stopping) == 1, out
    assert stopping[0]["signal"] == "SIGINT" and sorted(stopping[0]["tasks"]) == ["slow1", "slow2"]
    assert stopping[0]["kill_in"] == 5.0
    statuses = {e["task"]: e["status"] for e in events if e["event"] == "task_finished"}
    assert statuses == {"quick": "ok", "slow1": "interrupted", "slow2": "interrupted", "after": "skipped"}
    finished = events[-1]
    assert finished["event"] == "run_finished" and finished["result"] == "interrupted"
    assert finished["counts"]["interrupted"] == 2 and finished["counts"]["failed"] == 0
    assert finished["failed"] == []
    assert all("tail" not in e for e in events if e.get("status") == "interrupted")
