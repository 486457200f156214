"""`--executor dask` against a real cluster: `dask scheduler` and two `dask worker` processes on 127.0.0.1.

The same project run locally and on the cluster gives the same outputs,
states and audit records (with the worker of each attempt); the second run
is a no-op; output streams while a task runs; resources route a task to the
worker that has them; timeouts and retries behave as locally; Ctrl-C leaves
no process behind; a worker killed mid-task fails that attempt, naming the
worker, and the retry succeeds on the other; the scheduler going away ends
the run with a clear error; an unreachable scheduler is exit 2 at once; a
worker that does not see the project is named. Skipped, saying so, where
the `dask` extra (`distributed`) is not installed; .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest
from conftest import Project, pid_alive, rest_of_output, wait_for, wait_for_file

pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'flowmake[dask]')")

from dask_cluster import Cluster, free_port  # noqa: E402 - needs distributed, checked just above

pytestmark = pytest.mark.dask

FAN_OUT = """
    [vars]
    parts = ["a", "b", "c", "d"]

    [tasks.split]
    matrix = { part = "{parts}" }
    inputs = ["src/{part}.txt"]
    outputs = ["build/{part}.txt"]
    run = "tr a-z A-Z < {inputs} > {outputs}"

    [tasks.join]
    inputs = ["build/{parts}.txt"]
    outputs = ["dist/all.txt"]
    run = "cat {inputs} > {outputs}"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One scheduler, worker w0 with a `gpu` resource and worker w1 without; one thread each."""
    c = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        c.start_scheduler()
        c.start_worker("w0", "--resources", "gpu=1")
        c.start_worker("w1")
        c.wait_for_workers(["w0", "w1"])
        yield c
    finally:
        c.stop()


def _dask(cluster: Cluster) -> tuple:
    return ("--executor", "dask", "--scheduler-address", cluster.address)


def _sources(project: Project) -> None:
    for part in "abcd":
        project.write(f"src/{part}.txt", f"part {part}\n")


def _attempts(project: Project, run_id: str) -> list:
    result = project.run("log", run_id, "--json")
    assert result.returncode == 0, result
    return json.loads(result.stdout)["attempts"]


def test_fan_out_gives_what_a_local_run_gives(cluster: Cluster, tmp_path: Path) -> None:
    local, remote = Project(tmp_path / "local"), Project(tmp_path / "remote")
    for p in (local, remote):
        p.root.mkdir()
        p.flowfile(FAN_OUT)
        _sources(p)
    ran_locally = local.json_run()
    ran_remotely = remote.json_run(*_dask(cluster))
    assert ran_locally.returncode == ran_remotely.returncode == 0, ran_remotely
    assert remote.read("dist/all.txt") == local.read("dist/all.txt") == "PART A\nPART B\nPART C\nPART D\n"
    assert ran_remotely.statuses == ran_locally.statuses
    assert ran_remotely.one("run_started")["jobs"] == 2  # the cluster's two worker threads
    placed = {e["task"]: e["worker"] for e in ran_remotely.of_kind("task_placed")}
    assert set(placed) == set(ran_remotely.ran) and set(placed.values()) <= set(cluster.addresses.values())

    mine, theirs = _attempts(remote, ran_remotely.run_id), _attempts(local, ran_locally.run_id)
    assert sorted((a["task"], a["status"], a["outputs"], a["inputs"], a["log_hash"]) for a in mine) == \
           sorted((a["task"], a["status"], a["outputs"], a["inputs"], a["log_hash"]) for a in theirs)
    assert all(a["worker"] == placed[a["task"]] for a in mine)
    assert {a["worker"] for a in theirs} == {os.uname().nodename}
    assert remote.run("audit", "verify").returncode == 0
    lineage = remote.run("lineage", "dist/all.txt")
    assert f"on {placed['join']}" in lineage.stdout

    again = remote.json_run(*_dask(cluster))
    assert again.returncode == 0 and again.ran == [] and set(again.statuses.values()) == {"fresh"}
    # The Flowfile and the environment choose Dask as well as the options do.
    remote.flowfile('[flow]\nexecutor = "dask"\n' + FAN_OUT)
    remote.write("src/a.txt", "part A2\n")
    edited = remote.json_run(env={"DASK_SCHEDULER_ADDRESS": cluster.address})
    assert edited.returncode == 0 and sorted(edited.ran) == ["join", "split:a"]
    assert edited.of_kind("task_placed"), edited


def test_output_streams_into_the_log_and_the_view_while_the_task_runs(cluster: Cluster, project: Project) -> None:
    project.flowfile("""
        [tasks.slow]
        run = "echo halfway; sleep 1.5; echo end"
    """)
    result = project.json_run(*_dask(cluster))
    assert result.returncode == 0, result
    finished = result.finished_event("slow")
    outputs = [e for e in result.of_kind("task_output") if e["task"] == "slow"]
    assert outputs and outputs[0]["line"] == "halfway"
    # Event times are ISO text of one format: they compare as times.
    assert outputs[0]["time"] < finished["time"]
    gap = _seconds(finished["time"]) - _seconds(outputs[0]["time"])
    assert gap > 0.8, f"the line came {gap:.2f}s before the end: not while it ran"
    assert project.read(finished["log"]) == "halfway\nend\n"

    prefixed = project.plain_run("-B", "--output", "prefixed", *_dask(cluster))
    assert prefixed.returncode == 0 and "[slow] halfway" in prefixed.stdout and "[slow] end" in prefixed.stdout
    assert any(line.startswith("on ") and "slow" in line for line in prefixed.lines), prefixed.stdout


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_resources_route_a_task_to_the_worker_that_has_them(cluster: Cluster, project: Project) -> None:
    project.flowfile("""
        [tasks.train]
        matrix = { n = ["1", "2", "3"] }
        outputs = ["model/{n}.bin"]
        resources = { gpu = 1 }
        run = "echo {n} > {outputs}"

        [tasks.quantum]
        resources = { qpu = 2 }
        run = "true"
    """)
    result = project.json_run("-k", *_dask(cluster))
    assert result.returncode == 1, result
    placed = {e["task"]: e["worker"] for e in result.of_kind("task_placed")}
    assert placed == {f"train:{n}": cluster.addresses["w0"] for n in "123"}
    failed = result.finished_event("quantum")
    assert failed["status"] == "failed"
    assert "no Dask worker has resource qpu=2" in failed["message"]


def test_resources_are_checked_when_the_flowfile_loads(project: Project) -> None:
    project.flowfile("""
        [tasks.t]
        resources = { memory = "8 parsecs" }
        run = "true"
    """)
    result = project.run("check")
    assert result.returncode == 2
    assert "Flowfile.toml:3" in result.stderr and "resource `memory` must be a positive number" in result.stderr


def test_timeouts_and_retries_behave_as_locally(cluster: Cluster, project: Project) -> None:
    project.flowfile("""
        [tasks.hangs]
        timeout = "0.5s"
        run = "sleep 20"

        [tasks.flaky]
        retries = 1
        outputs = ["flaky.txt"]
        run = "if [ -e tried ]; then echo ok > flaky.txt; else touch tried; exit 3; fi"
    """)
    result = project.json_run("-k", *_dask(cluster))
    assert result.returncode == 1, result
    assert result.finished_event("hangs")["message"] == "timed out (limit 0.5s)"
    attempts = [e for e in result.of_kind("task_finished") if e["task"] == "flaky"]
    assert [(a["status"], a.get("attempt", 1)) for a in attempts] == [("failed", 1), ("ok", 2)]
    assert project.read("flaky.txt") == "ok\n"


def test_ctrl_c_cancels_and_leaves_no_process_on_the_workers(cluster: Cluster, project: Project) -> None:
    project.flowfile("""
        [tasks.long]
        run = "echo $$ > pid.txt; sleep 60 & wait"
    """)
    proc = project.popen("run", "--progress", "json", *_dask(cluster))
    pid = int(wait_for_file(project.path("pid.txt"), timeout=30, proc=proc))
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the task's shell to be gone")
    leftovers = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True).stdout.split()
    assert not [p for p in leftovers if _in_project(int(p), project)], "a sleep of the task outlived the run"
    attempts = _attempts(project, json.loads(out.splitlines()[0])["run_id"])
    assert [a["status"] for a in attempts] == ["interrupted"]


def _in_project(pid: int, project: Project) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/cwd") == str(project.root)
    except OSError:
        return False


def test_flowmake_killed_leaves_no_command_running_and_the_next_run_redoes_it(cluster: Cluster,
                                                                              project: Project) -> None:
    project.flowfile("""
        [tasks.long]
        outputs = ["out.txt"]
        run = "if [ -e killed ]; then echo x > out.txt; else echo $$ > pid.txt; sleep 60; fi"
    """)
    proc = project.popen("run", "--progress", "json", *_dask(cluster))
    pid = int(wait_for_file(project.path("pid.txt"), timeout=30, proc=proc))
    project.write("killed")
    proc.kill()
    proc.communicate()
    # Its client gone, the scheduler releases the future and the worker stops the command.
    wait_for(lambda: not pid_alive(pid), timeout=20, what="the dead run's command to be stopped")
    again = project.json_run(*_dask(cluster))
    assert again.returncode == 0 and again.ran == ["long"], again
    assert project.run("audit", "verify").returncode == 0


def test_jobs_follow_the_workers_that_join_during_a_run(cluster: Cluster, project: Project) -> None:
    project.flowfile("""
        [tasks.work]
        matrix = { n = ["1", "2", "3", "4", "5", "6"] }
        run = "touch started.{n}; while [ ! -e go ]; do sleep 0.05; done"
    """)
    proc = project.popen("run", "--progress", "json", *_dask(cluster))
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # run_started: the run is connected, its -j read
        cluster.start_worker("w2")
        cluster.wait_for_workers(["w2"])
        # Every task waits for `go`: a third one starts only if the run took the new thread.
        wait_for(lambda: len(list(project.root.glob("started.*"))) == 3, timeout=30, what="a third task")
        project.write("go")
        out, err = rest_of_output(proc)
    finally:
        cluster.kill("w2")
    assert proc.returncode == 0, err
    events = [first] + [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "run_started" and events[0]["jobs"] == 2
    running, most = 0, 0
    for e in events:
        running += {"task_started": 1, "task_finished": -1}.get(e["event"], 0)
        most = max(most, running)
    assert most == 3, "the third worker's thread was not used"
    assert any(e["event"] == "task_placed" and e["worker"] == cluster.addresses["w2"] for e in events)


def test_outputs_hashed_on_the_worker_are_not_read_again(tmp_path: Path) -> None:
    from flowmake.executors.dask.executor import DaskFiles
    from flowmake.executors.dask.remote import _outputs

    (tmp_path / "big.bin").write_bytes(os.urandom(1 << 20))
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.txt").write_text("a")
    report = _outputs(str(tmp_path), ["big.bin", "dir/", "gone.txt"])  # as the worker does it
    assert report["missing"] == ["gone.txt"]
    report = _outputs(str(tmp_path), ["big.bin", "dir/"])
    files = DaskFiles(tmp_path)
    hasher = files.hasher({})
    files.adopt(["big.bin", "dir/"], report)
    assert files.missing(["big.bin", "dir/"]) == []
    assert hasher.hash("big.bin") == report["hashes"]["big.bin"] and hasher.hash("dir/") == report["hashes"]["dir/"]
    assert hasher.reads == 0  # compared by stat only
    assert set(hasher.take_unsaved()) == {"big.bin", "dir/a.txt"}  # and saved to the state as if read here


def test_an_unreachable_scheduler_is_exit_2_within_seconds(project: Project) -> None:
    project.flowfile("""
        [tasks.t]
        run = "true"
    """)
    started = time.monotonic()
    result = project.run("run", "--executor", "dask", "--scheduler-address", f"tcp://127.0.0.1:{free_port()}")
    took = time.monotonic() - started
    assert result.returncode == 2, result
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
    assert took < 15, f"took {took:.1f}s"
    assert not project.exists(".flowmake/logs") or not any(project.path(".flowmake/logs").iterdir())


# -- faults that take a cluster down: a cluster of their own ----------------------------------------


@pytest.fixture
def fragile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("fragile"))
    try:
        c.start_scheduler()
        c.start_worker("f0")
        c.start_worker("f1")
        c.wait_for_workers(["f0", "f1"])
        yield c
    finally:
        c.stop()


def test_a_worker_killed_mid_task_fails_that_attempt_and_the_retry_runs_elsewhere(
        fragile: Cluster, project: Project) -> None:
    project.flowfile("""
        [tasks.victim]
        retries = 1
        outputs = ["done.txt"]
        run = "if [ -e first ]; then echo $$ > done.txt; else touch first; echo $$ $PPID > pids.txt; sleep 60; fi"
    """)
    proc = project.popen("run", "--progress", "json", "--executor", "dask", "--scheduler-address", fragile.address)
    shell, worker_pid = map(int, wait_for_file(project.path("pids.txt"), timeout=30, proc=proc).split())
    victim = next(name for name, p in fragile.workers.items() if p.pid == worker_pid)
    # Killed once the run has said where the task runs (its task_placed), as a user watching it would
    # see: before that the run cannot yet name the worker that died.
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if json.loads(line)["event"] == "task_placed":
            break
    fragile.kill(victim)
    out, err = rest_of_output(proc)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in [*seen, *out.splitlines()]]
    ends = [e for e in events if e["event"] == "task_finished"]
    assert ends[0]["status"] == "failed" and ends[0]["will_retry"]
    assert f"worker {fragile.addresses[victim]} died" in ends[0]["message"]
    assert ends[1]["status"] == "ok" and ends[1]["attempt"] == 2
    attempts = _attempts(project, events[0]["run_id"])
    survivor = next(a for n, a in fragile.addresses.items() if n != victim)
    assert [(a["status"], a["worker"]) for a in attempts] == [("failed", fragile.addresses[victim]),
                                                              ("ok", survivor)]
    # The dead worker's watchdog ended its command: nothing of it writes behind the retry's back.
    wait_for(lambda: not pid_alive(shell), timeout=10, what="the killed worker's command to be gone")


def test_the_scheduler_going_away_fails_the_running_tasks_and_ends_the_run(
        fragile: Cluster, project: Project) -> None:
    project.flowfile("""
        [tasks.long]
        outputs = ["out.txt"]
        run = "echo $$ > pid.txt; sleep 60; echo x > out.txt"

        [tasks.after]
        inputs = ["out.txt"]
        run = "true"
    """)
    proc = project.popen("run", "--progress", "json", "--executor", "dask", "--scheduler-address", fragile.address)
    pid = int(wait_for_file(project.path("pid.txt"), timeout=30, proc=proc))
    started = time.monotonic()
    fragile.kill("scheduler")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert time.monotonic() - started < 30
    events = [json.loads(line) for line in out.splitlines()]
    long_end = next(e for e in events if e["event"] == "task_finished" and e["task"] == "long")
    assert "the Dask scheduler at " in long_end["message"] and "went away" in long_end["message"]
    assert events[-1]["event"] == "run_finished" and events[-1]["result"] == "failed"
    assert project.run("audit", "verify").returncode == 0
    status = json.loads(project.run("status", "--json").stdout)
    assert {row["task"]: row["state"] for row in status}["long"] == "stale"
    # Its worker, cut off, closes and ends the command (the future is no longer wanted).
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the task's command to end with its worker")


def test_workers_that_do_not_see_the_project_are_named(tmp_path_factory: pytest.TempPathFactory,
                                                        project: Project) -> None:
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -m` (root, or a user namespace) to start a worker with a private /tmp")
    project.flowfile("""
        [tasks.t]
        run = "true"
    """)
    c = Cluster(tmp_path_factory.mktemp("blind"))
    try:
        c.start_scheduler()
        c.start_worker("sees")
        # This one has an empty file system where the project is: as a machine without the shared mount.
        hide = f"mount -t tmpfs none {project.root} && exec \"$0\" \"$@\""
        c.start_worker("blind", prefix=["unshare", "-m", "--propagation", "private", "sh", "-c", hide])
        c.wait_for_workers(["sees", "blind"])
        result = project.run("run", "--executor", "dask", "--scheduler-address", c.address)
    finally:
        c.stop()
    assert result.returncode == 2, result
    assert "1 of 2 Dask worker(s) do not see the project root" in result.stderr
    assert c.addresses["blind"] in result.stderr and c.addresses["sees"] not in result.stderr


def test_without_distributed_the_dask_executor_is_a_usage_error(project: Project, tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    # What Python does when the package is absent, for this one run.
    (hidden / "distributed.py").write_text("raise ImportError('No module named distributed')\n")
    project.flowfile("""
        [tasks.t]
        run = "true"
    """)
    result = project.run("run", "--executor", "dask", env={"PYTHONPATH": str(hidden)})
    assert result.returncode == 2, result
    assert "pip install 'flowmake[dask]'" in result.stderr and "Traceback" not in result.stderr
