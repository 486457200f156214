"""SPEC §3 and §5 through the real CLI: parallel runs, targets, the project lock.

Parallelism is judged from the times the tasks themselves record (a clock
read inside each command), not from flowmake's own events alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import FLOWMAKE, Project, Result, pid_alive, shortcut_test, wait_for, wait_for_file

SLEEPERS = """\
    [tasks.left]
    outputs = ["left.txt"]
    run = "date +%s.%N > left.txt; sleep 0.4; date +%s.%N >> left.txt"

    [tasks.right]
    outputs = ["right.txt"]
    run = "date +%s.%N > right.txt; sleep 0.4; date +%s.%N >> right.txt"
"""


def spans(project: Project) -> list:
    out = []
    for name in ("left.txt", "right.txt"):
        start, end = (float(x) for x in project.read(name).split())
        out.append((start, end))
    return sorted(out)


def test_two_independent_tasks_overlap_with_j2(project: Project) -> None:
    project.flowfile(SLEEPERS)
    result = project.json_run("-j", "2")
    assert result.returncode == 0, result
    (s1, e1), (s2, e2) = spans(project)
    assert s2 < e1, "the second task started only after the first ended"
    starts = sorted(e["time"] for e in result.of_kind("task_started"))
    ends = sorted(e["time"] for e in result.of_kind("task_finished"))
    assert starts[-1] < ends[0]  # ISO-8601 UTC strings sort by time
    assert result.one("run_started")["jobs"] == 2


def test_two_independent_tasks_do_not_overlap_with_j1(project: Project) -> None:
    project.flowfile(SLEEPERS)
    result = project.json_run("-j", "1")
    assert result.returncode == 0, result
    (s1, e1), (s2, e2) = spans(project)
    assert s2 >= e1, "the second task started before the first ended"
    events = [e for e in result.events if e["event"] in ("task_started", "task_finished")]
    assert [e["event"] for e in events] == ["task_started", "task_finished"] * 2


def test_flow_jobs_is_the_default_for_j(project: Project) -> None:
    project.flowfile('[flow]\njobs = 1\n' + SLEEPERS.replace("0.4", "0.3"))
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.one("run_started")["jobs"] == 1
    (s1, e1), (s2, e2) = spans(project)
    assert s2 >= e1


def test_dependent_tasks_never_overlap_even_with_many_jobs(project: Project) -> None:
    project.flowfile("""\
        [tasks.first]
        outputs = ["a.txt"]
        run = "sleep 0.3; date +%s.%N > a.txt"
        [tasks.second]
        inputs = ["a.txt"]
        outputs = ["b.txt"]
        run = "date +%s.%N > b.txt"
        [tasks.third]
        after = ["second"]
        outputs = ["c.txt"]
        run = "date +%s.%N > c.txt"
    """)
    result = project.json_run("-j", "4")
    assert result.returncode == 0, result
    a, b, c = (float(project.read(n)) for n in ("a.txt", "b.txt", "c.txt"))
    assert a <= b <= c


# -- targets --------------------------------------------------------------------

TARGETS = """\
    [flow]
    default = ["report"]

    [tasks.extract]
    inputs = ["src.txt"]
    outputs = ["build/a.txt"]
    run = "cp src.txt build/a.txt"

    [tasks.clean]
    inputs = ["build/a.txt"]
    outputs = ["build/b.txt"]
    run = "cp build/a.txt build/b.txt"

    [tasks.report]
    inputs = ["build/b.txt"]
    outputs = ["report.txt"]
    run = "cp build/b.txt report.txt"

    [tasks.unrelated]
    outputs = ["unrelated.txt"]
    run = "echo u > unrelated.txt"
"""


def targets_project(project: Project) -> None:
    project.flowfile(TARGETS)
    project.write("src.txt", "s\n")


def test_naming_a_task_runs_only_it_and_what_it_needs(project: Project) -> None:
    targets_project(project)
    result = project.json_run("clean")
    assert result.returncode == 0, result
    assert result.started == ["extract", "clean"]
    assert set(result.statuses) == {"extract", "clean"}
    assert result.one("run_started")["targets"] == ["clean"]
    assert result.one("run_started")["task_count"] == 2
    assert not project.exists("report.txt") and not project.exists("unrelated.txt")


def test_a_declared_output_path_as_target_runs_its_producer(project: Project) -> None:
    targets_project(project)
    result = project.json_run("build/a.txt")
    assert result.returncode == 0, result
    assert result.started == ["extract"]
    assert project.read("build/a.txt") == "s\n"
    assert not project.exists("build/b.txt")


def test_flow_default_is_used_when_no_target_is_named(project: Project) -> None:
    targets_project(project)
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.started == ["extract", "clean", "report"]
    assert not project.exists("unrelated.txt")
    everything = project.json_run("unrelated", "report")
    assert everything.started == ["unrelated"]


def test_unknown_target_exits_2_with_did_you_mean_and_runs_nothing(project: Project) -> None:
    targets_project(project)
    result = project.run("run", "--progress", "plain", "claen")
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "claen" in result.stderr and "did you mean 'clean'?" in result.stderr, result
    assert "Traceback" not in result.stderr
    assert not project.exists("build")
    assert not project.path(".flowmake/logs").exists()


# -- the project lock ---------------------------------------------------------------

HOLD = """\
    [tasks.hold]
    outputs = ["held.txt"]
    run = "echo started > started.marker; i=0; while [ ! -e release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo ok > held.txt"
"""


def test_second_run_exits_3_at_once_naming_the_holder_pid(project: Project) -> None:
    project.flowfile(HOLD)
    holder = project.popen("run", "--progress", "plain")
    wait_for_file(project.path("started.marker"), proc=holder)
    t0 = time.monotonic()
    second = project.run("run", "--progress", "plain", timeout=20)
    elapsed = time.monotonic() - t0
    assert second.returncode == 3, second
    assert f"pid {holder.pid}" in second.stderr, second
    assert elapsed < 5, f"the second run waited {elapsed:.1f}s instead of exiting at once"
    assert holder.poll() is None  # the first run is untouched
    project.write("release", "")
    out, err = holder.communicate(timeout=30)
    assert holder.returncode == 0, (out, err)
    assert project.read("held.txt") == "ok\n"


def test_second_run_with_wait_queues_behind_the_first_and_succeeds(project: Project) -> None:
    project.flowfile(HOLD + """
    [tasks.next]
    inputs = ["held.txt"]
    outputs = ["next.txt"]
    run = "cp held.txt next.txt"
    """)
    holder = project.popen("run", "--progress", "plain", "hold")
    wait_for_file(project.path("started.marker"), proc=holder)
    waiter = project.popen("run", "--progress", "json", "--wait")
    time.sleep(0.5)
    assert waiter.poll() is None, "--wait returned while the lock was held"
    project.write("release", "")
    out, err = holder.communicate(timeout=30)
    assert holder.returncode == 0, (out, err)
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, (out, err)
    assert project.read("next.txt") == "ok\n"
    waited = Result(["run", "--wait"], waiter.returncode, out, err)
    # it worked only after the holder was done: hold was fresh by then
    assert waited.statuses == {"hold": "fresh", "next": "ok"}, waited


# Which descriptors are open, checked with fstat (which opens none) before
# the output file is opened.
FDS_PY = """\
import os


def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


found = [str(fd) for fd in range(1024) if is_open(fd)]
with open("fds.txt", "w") as out:
    out.write(" ".join(found))
"""


def test_a_task_starts_in_the_project_root_with_default_signals_and_no_inherited_descriptors(
        project: Project) -> None:
    # Run from a subdirectory, with a descriptor of the caller's left open to
    # flowmake: the task must still start in the root, see only stdin, stdout
    # and stderr, and have SIGPIPE at its default (Python itself ignores it).
    project.flowfile("""\
        [tasks.probe]
        outputs = ["probe.txt"]
        run = "pwd -P > probe.txt; grep SigIgn /proc/$$/status >> probe.txt"
        [tasks.descriptors]
        inputs = ["fds.py"]
        outputs = ["fds.txt"]
        run = "exec {python} fds.py"
    """.format(python=sys.executable))
    project.write("fds.py", FDS_PY)
    sub = project.path("sub")
    sub.mkdir()
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(FLOWMAKE + ["run", "--progress", "plain"], cwd=str(sub), env=project.env(),
                                pass_fds=(write_end,), capture_output=True, text=True, timeout=60)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 0, result
    where, ignored = project.read("probe.txt").splitlines()
    assert where == os.path.realpath(project.root)
    # Checked by the process the shell execs, before it opens anything: a
    # shell's own pipes and saved descriptors would muddle a listing.
    assert project.read("fds.txt").split() == ["0", "1", "2"]
    mask = int(ignored.split()[1], 16)
    assert not mask & (1 << (signal.SIGPIPE - 1)), ignored


def test_an_in_process_run_leaves_the_callers_working_directory_as_it_was(project: Project, monkeypatch) -> None:
    from flowmake.__main__ import main

    project.flowfile("""\
        [tasks.hello]
        outputs = ["hello.txt"]
        run = "echo hi > hello.txt"
    """)
    sub = project.path("sub")
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert main(["run", "--progress", "plain"]) == 0
    assert os.getcwd() == str(sub)
    assert project.read("hello.txt") == "hi\n"


@shortcut_test
def test_an_edit_reads_the_edited_source_and_each_rewritten_output_once(project: Project, monkeypatch,
                                                                         capsys) -> None:
    # The tasks below the edit run anyway (their inputs change): their old
    # outputs only add reasons, and are not read again before they run.
    import json

    from flowmake.__main__ import main
    from flowmake.store import hashing

    project.flowfile("""\
        [tasks.b]
        inputs = ["a.txt"]
        outputs = ["b.txt"]
        run = "cat a.txt a.txt > b.txt"
        [tasks.c]
        inputs = ["b.txt"]
        outputs = ["c.txt"]
        run = "cat b.txt b.txt > c.txt"
        [tasks.d]
        inputs = ["c.txt"]
        outputs = ["d.txt"]
        run = "cat c.txt c.txt > d.txt"
    """)
    project.write("a.txt", "one\n")
    assert project.run("run").returncode == 0
    project.write("a.txt", "two\n")
    read: list = []
    real = hashing._hash_contents

    def spy(full: str, size: int) -> str:
        read.append(os.path.relpath(full, project.root))
        return real(full, size)

    monkeypatch.setattr(hashing, "_hash_contents", spy)
    monkeypatch.chdir(project.root)
    assert main(["run", "--progress", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    started = {e["task"]: [(r["kind"], r.get("path")) for r in e["reasons"]]
               for e in events if e["event"] == "task_started"}
    assert started == {"b": [("input changed", "a.txt")], "c": [("input changed", "b.txt")],
                       "d": [("input changed", "c.txt")]}
    # Each file once, and the Flowfile once as the snapshot is written. An
    # output hashed in the tick it was written in is read once more at the
    # run's end (settle), so that the next run can trust it.
    assert sorted(set(read)) == ["Flowfile.toml", "a.txt", "b.txt", "c.txt", "d.txt"], read
    assert read.count("a.txt") == read.count("Flowfile.toml") == 1, read
    assert all(read.count(out) <= 2 for out in ("b.txt", "c.txt", "d.txt")), read
    assert project.read("d.txt") == "two\n" * 8


def test_a_run_leaves_its_write_ahead_log_and_the_next_commands_read_all_it_recorded(project: Project) -> None:
    # flowmake's own process ends with os._exit right after a run, without
    # closing the database (no checkpoint, no fsync): like a kill -9 at the end.
    project.flowfile("""\
        [tasks.one]
        outputs = ["one.txt"]
        run = "echo 1 > one.txt"
        [tasks.two]
        inputs = ["one.txt"]
        outputs = ["two.txt"]
        run = "cat one.txt > two.txt"
    """)
    first = project.json_run()
    assert first.returncode == 0 and first.ran == ["one", "two"], first
    assert project.path(".flowmake/state.db-wal").stat().st_size > 0
    again = project.json_run()
    assert again.returncode == 0 and again.ran == [], again
    assert {t: row["state"] for t, row in project.status().items()} == {"one": "fresh", "two": "fresh"}
    import json

    attempts = json.loads(project.run("log", first.run_id, "--json").stdout)["attempts"]
    assert sorted(a["task"] for a in attempts) == ["one", "two"]
    assert project.run("audit", "verify").returncode == 0


def test_a_task_ends_with_its_own_process_and_its_leftover_children_are_killed(project: Project) -> None:
    # The background sleep holds the task's output pipe: waiting for the pipe's
    # end would hold the run for 30 s. The task is over when its shell exits.
    project.flowfile("""\
        [tasks.serve]
        outputs = ["out.txt"]
        run = "sleep 30 & echo $! > child.pid; echo hi > out.txt; echo said"

        [tasks.next]
        inputs = ["out.txt"]
        outputs = ["next.txt"]
        run = "cp out.txt next.txt"
    """)
    started = time.monotonic()
    result = project.json_run("-j2", timeout=20)
    assert result.returncode == 0, result
    assert time.monotonic() - started < 10, "the run waited for the background child"
    assert result.statuses == {"serve": "ok", "next": "ok"}
    child = int(project.read("child.pid"))
    project.track_pid(child)
    wait_for(lambda: not pid_alive(child), timeout=5, what="the leftover child to be killed")
    log = project.path(result.finished_event("serve")["log"])
    assert log.read_text() == "said\n"  # what it wrote before it ended is kept


def test_a_child_that_left_the_tasks_group_does_not_hold_the_run(project: Project) -> None:
    # A process in a session of its own is not the task's to kill; its open
    # copy of the output pipe must not keep the task running either.
    project.write("escape.py", "import os, sys, time\nos.setsid()\nprint(os.getpid(), flush=True)\ntime.sleep(30)\n")
    project.flowfile(f"""\
        [tasks.escape]
        outputs = ["out.txt"]
        run = "{sys.executable} escape.py > escape.pid & sleep 0.5; echo hi > out.txt"
    """)
    started = time.monotonic()
    result = project.json_run(timeout=20)
    assert result.returncode == 0, result
    assert time.monotonic() - started < 10, "the run waited for the escaped child"
    escaped = int(project.read("escape.pid"))
    project.track_pid(escaped)
    assert pid_alive(escaped)
