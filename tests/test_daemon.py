"""`flowmake daemon`: a real resident watcher on a real project, asked by real `flowmake run`s.

What must hold (docs/daemon.md): a no-op it answers is recorded and printed
as the fast path's own; any edit between runs is seen (it declines, and the
run takes the ordinary path); a dead daemon, a stale socket, another
version or a Flowfile it cannot vouch for change nothing but the speed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from conftest import Project, pid_alive, shortcut_test, wait_for

pytest.importorskip("inotify_simple")
pytestmark = [shortcut_test, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")]

from flowmake.daemon.client import ask, ask_run, socket_path  # noqa: E402

PIPELINE = """\
    [vars]
    greeting = "hello"

    [tasks.extract]
    inputs = ["data/raw/src.txt"]
    outputs = ["build/a.txt"]
    run = "cp {inputs} {outputs}"

    [tasks.tidy]
    inputs = ["build/a.txt"]
    outputs = ["build/deep/b.txt"]
    run = "tr a-z A-Z < {inputs} > {outputs}; echo {greeting} >> {outputs}"
"""


def age_all(root: Path, seconds: float = 30) -> None:
    """Backdate every project file, so the stat cache may trust it at once."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if ".flowmake" not in path.parts and path.is_file():
            os.utime(path, (past, past))


def settle(project: Project) -> None:
    """Age the files and make one all-fresh run, which leaves the snapshot."""
    age_all(project.root)
    result = project.json_run()
    assert result.returncode == 0, result
    assert project.exists(".flowmake/noop.snapshot")


def sock(project: Project) -> str:
    return socket_path(str(project.root / ".flowmake"))


def status(project: Project):
    reply = ask(sock(project), "status")
    return reply[1] if reply is not None and reply[0] == "status" else None


@pytest.fixture
def daemon(project: Project):
    project.flowfile(PIPELINE)
    project.write("data/raw/src.txt", "one\n")
    assert project.json_run().returncode == 0
    settle(project)
    started = project.run("daemon", "start", "--idle-exit", "120s")
    assert started.returncode == 0, started
    info = status(project)
    assert info is not None and info["proven"], info
    yield project
    project.run("daemon", "stop")
    if pid_alive(info["pid"]):
        os.kill(info["pid"], signal.SIGKILL)


def answered(project: Project) -> int:
    info = status(project)
    return info["answered"] if info else -1


def test_a_no_op_through_the_daemon_is_recorded_and_printed_as_the_fast_path_does(daemon: Project) -> None:
    alone = daemon.plain_run()  # the daemon's first answer
    assert answered(daemon) == 1
    assert alone.returncode == 0 and alone.stderr == ""
    daemon.run("daemon", "stop")
    without = daemon.plain_run()  # the fast path itself
    assert status(daemon) is None
    strip = lambda text: re.sub(r"\(run [^)]*\)|\([0-9.]+s\)", "", text)  # noqa: E731
    assert strip(alone.stdout) == strip(without.stdout)
    assert "nothing to do: 2 tasks fresh" in alone.stdout
    runs = json.loads(daemon.run("log", "--json").stdout)
    assert [r["result"] for r in runs[:2]] == ["success", "success"]
    assert daemon.run("audit", "verify").returncode == 0
    attempts = json.loads(daemon.run("log", runs[1]["id"], "--json").stdout)
    assert attempts["attempts"] == []


def test_json_events_through_the_daemon(daemon: Project) -> None:
    result = daemon.json_run()
    assert answered(daemon) == 1
    assert result.returncode == 0, result
    assert sorted(result.tasks_with("fresh")) == ["extract", "tidy"]
    assert result.one("run_finished")["result"] == "success"


def test_an_edited_input_is_never_missed(daemon: Project) -> None:
    src = daemon.path("data/raw/src.txt")
    before = src.stat()
    src.write_text("two\n")  # same size
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime: only the event tells
    result = daemon.json_run()
    assert sorted(result.ran) == ["extract", "tidy"], result
    assert daemon.read("build/deep/b.txt") == "TWO\nhello\n"
    assert answered(daemon) == 0


def test_edits_of_outputs_and_the_flowfile_are_never_missed(daemon: Project) -> None:
    daemon.write("build/deep/b.txt", "tampered\n")
    assert daemon.json_run().ran == ["tidy"]
    settle(daemon)
    assert daemon.json_run().ran == [] and answered(daemon) >= 1
    daemon.flowfile(PIPELINE.replace('"hello"', '"howdy"'))
    result = daemon.json_run()
    assert result.ran == ["tidy"], result
    assert daemon.read("build/deep/b.txt") == "ONE\nhowdy\n"
    os.remove(daemon.path("build/a.txt"))
    assert daemon.json_run().ran == ["extract"]  # the same bytes again: tidy is cut off


def test_a_replaced_directory_is_never_missed(daemon: Project) -> None:
    # Renaming an ancestor away and putting a changed copy in its place: no write under the old watch.
    os.rename(daemon.path("data"), daemon.path("data-old"))
    daemon.write("data/raw/src.txt", "six\n")
    age_all(daemon.root)
    result = daemon.json_run()
    assert sorted(result.ran) == ["extract", "tidy"], result


def test_the_daemon_answers_again_from_the_snapshot_a_run_left(daemon: Project) -> None:
    daemon.write("data/raw/src.txt", "three\n")
    assert sorted(daemon.json_run().ran) == ["extract", "tidy"]  # this run rewrites outputs and the snapshot
    settle(daemon)
    before = answered(daemon)
    result = daemon.json_run()
    assert result.ran == [] and answered(daemon) == before + 1
    assert daemon.read("build/deep/b.txt") == "THREE\nhello\n"


def test_a_killed_daemon_and_a_stale_socket_fall_back_silently(daemon: Project) -> None:
    pid = status(daemon)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the daemon to die")
    assert os.path.exists(sock(daemon))  # left behind
    result = daemon.plain_run()
    assert result.returncode == 0 and result.stderr == "" and "nothing to do" in result.stdout
    assert daemon.run("daemon", "status").returncode == 1
    daemon.write("data/raw/src.txt", "four\n")
    assert sorted(daemon.json_run().ran) == ["extract", "tidy"]
    restarted = daemon.run("daemon", "start")
    assert restarted.returncode == 0, restarted
    assert status(daemon)["pid"] != pid


def test_a_socket_no_one_listens_on_is_ignored(project: Project) -> None:
    project.flowfile(PIPELINE)
    project.write("data/raw/src.txt", "one\n")
    assert project.json_run().returncode == 0
    settle(project)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock(project))
    stale.close()
    result = project.plain_run()
    assert result.returncode == 0 and result.stderr == "" and "nothing to do" in result.stdout


def test_status_and_stop(daemon: Project) -> None:
    shown = daemon.run("daemon", "status")
    assert shown.returncode == 0 and "answering the no-op" in shown.stdout, shown
    pid = status(daemon)["pid"]
    stopped = daemon.run("daemon", "stop")
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert not pid_alive(pid) and not os.path.exists(sock(daemon))
    assert daemon.run("daemon", "status").returncode == 1


def test_the_daemon_ends_when_idle(project: Project) -> None:
    project.flowfile(PIPELINE)
    project.write("data/raw/src.txt", "one\n")
    assert project.json_run().returncode == 0
    assert project.run("daemon", "start", "--idle-exit", "1s").returncode == 0
    pid = status(project)["pid"]
    wait_for(lambda: not pid_alive(pid), timeout=20, what="the idle daemon to end")
    assert not os.path.exists(sock(project))
    assert "idle" in project.read(".flowmake/daemon.log")


def test_a_client_of_another_version_ends_it(daemon: Project) -> None:
    pid = status(daemon)["pid"]
    assert ask_run(sock(daemon), ["run"], ["run"], str(daemon.root / "Flowfile.toml"), version="0.0.0-other") is None
    wait_for(lambda: not pid_alive(pid), what="the daemon to end")
    assert daemon.plain_run().returncode == 0


def test_deleting_the_state_directory_ends_it(daemon: Project) -> None:
    pid = status(daemon)["pid"]
    import shutil

    shutil.rmtree(daemon.path(".flowmake"), ignore_errors=True)  # the daemon removes its socket meanwhile
    shutil.rmtree(daemon.path(".flowmake"), ignore_errors=True)
    wait_for(lambda: not pid_alive(pid), what="the daemon to end")
    assert sorted(daemon.json_run().ran) == ["extract", "tidy"]


def test_without_shortcuts_the_daemon_is_not_asked(daemon: Project) -> None:
    daemon.json_run(env={"FLOWMAKE_NO_SHORTCUTS": "1"})
    assert status(daemon)["requests"] == 0


def test_hooks_and_symbolic_links_keep_it_from_answering(daemon: Project) -> None:
    daemon.flowfile(PIPELINE + '\n[hooks]\non_success = "echo hooked"\n')
    assert daemon.json_run().returncode == 0
    settle(daemon)
    assert daemon.plain_run().returncode == 0 and answered(daemon) == 0
    assert "hooks" in status(daemon)["why_not"]
    daemon.flowfile(PIPELINE)
    os.rename(daemon.path("data/raw/src.txt"), daemon.path("real.txt"))
    os.symlink(daemon.path("real.txt"), daemon.path("data/raw/src.txt"))
    assert daemon.json_run().returncode == 0
    settle(daemon)
    assert daemon.json_run().ran == [] and answered(daemon) == 0
    assert "regular file" in status(daemon)["why_not"]
    daemon.write("real.txt", "five\n")  # the link's target: outside every watch
    assert sorted(daemon.json_run().ran) == ["extract", "tidy"]


def test_without_the_extra_the_daemon_says_what_is_missing(project: Project, tmp_path: Path) -> None:
    project.flowfile(PIPELINE)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "inotify_simple.py").write_text("raise ImportError('not installed')\n")
    result = project.run("daemon", "start", env={"PYTHONPATH": str(blocker)})
    assert result.returncode == 2
    assert "daemon" in result.stderr and "pip install" in result.stderr and "Traceback" not in result.stderr


_PROBE = ("import json, sys\nfrom flowmake.__main__ import main\nmain(sys.argv[2:])\n"
          "open(sys.argv[1], 'w').write(json.dumps(sorted(m for m in sys.modules if m.startswith('flowmake.'))))\n")


def test_without_a_daemon_the_no_op_imports_nothing_of_it(project: Project, tmp_path: Path) -> None:
    # The client's cost when no daemon runs: one stat of the socket's path, no import.
    import subprocess

    project.flowfile(PIPELINE)
    project.write("data/raw/src.txt", "one\n")
    assert project.json_run().returncode == 0
    settle(project)
    out = tmp_path / "imported.json"
    done = subprocess.run([sys.executable, "-c", _PROBE, str(out), "run", "--progress", "plain"], cwd=project.root,
                          capture_output=True, text=True, timeout=60, env=project.env())
    assert done.returncode == 0 and "nothing to do" in done.stdout, done
    imported = json.loads(out.read_text())
    assert "flowmake.cli.fastpath" in imported and not [m for m in imported if m.startswith("flowmake.daemon")]


def test_events_lost_in_a_queue_overflow_are_never_missed(daemon: Project) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip("the kernel's inotify queue is too long to fill here")
    pid = status(daemon)["pid"]
    os.kill(pid, signal.SIGSTOP)  # it reads nothing while the queue fills
    try:
        noise = [daemon.write(f"data/raw/noise{i}") for i in range(2)]
        for i in range(limit + 100):  # each a distinct event: the kernel merges only identical neighbours
            os.utime(noise[i % 2], ns=(i, i))
        daemon.write("data/raw/src.txt", "lost\n")  # its event no longer fits in the queue
    finally:
        os.kill(pid, signal.SIGCONT)
    result = daemon.json_run()
    assert sorted(result.ran) == ["extract", "tidy"], result
    assert daemon.read("build/deep/b.txt") == "LOST\nhello\n"
