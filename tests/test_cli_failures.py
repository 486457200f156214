"""SPEC §3 failure semantics through the real CLI.

A failing command, a command that exits 0 without its output, what happens
to the tasks below a failure and beside it (with and without -k), the log
files and the tail printed on stderr, and that a failed task runs again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import Project

FAIL_CHAIN = """\
    [tasks.bad]
    inputs = ["src.txt"]
    outputs = ["bad.txt"]
    run = "for i in $(seq 1 25); do echo line$i; done; echo oops >&2; exit 3"

    [tasks.down]
    inputs = ["bad.txt"]
    outputs = ["down.txt"]
    run = "cp bad.txt down.txt"

    [tasks.further]
    inputs = ["down.txt"]
    outputs = ["further.txt"]
    run = "cp down.txt further.txt"
"""


def test_failing_command_exits_1_and_skips_everything_downstream(project: Project) -> None:
    project.flowfile(FAIL_CHAIN)
    project.write("src.txt", "x\n")
    result = project.json_run()
    assert result.returncode == 1, result
    bad = result.finished_event("bad")
    assert bad["status"] == "failed"
    assert bad["exit_code"] == 3
    for task in ("down", "further"):
        finished = result.finished_event(task)
        assert finished["status"] == "skipped"
        assert "upstream failed: bad" in finished["message"]
    assert result.started == ["bad"]
    end = result.one("run_finished")
    assert end["result"] == "failed"
    assert end["failed"] == ["bad"]
    assert end["counts"]["failed"] == 1 and end["counts"]["skipped"] == 2
    assert not project.exists("down.txt")


def test_plain_output_reports_failure_and_skips_by_name(project: Project) -> None:
    project.flowfile(FAIL_CHAIN)
    project.write("src.txt", "x\n")
    result = project.plain_run()
    assert result.returncode == 1, result
    failed = [line for line in result.lines if line.startswith("FAILED")]
    assert len(failed) == 1 and failed[0].split()[1] == "bad", result
    skipped = {line.split()[1]: line for line in result.lines if line.startswith("skip")}
    assert set(skipped) == {"down", "further"}, result
    assert all(line.endswith("upstream failed: bad") for line in skipped.values()), result
    assert result.lines[-1].startswith("failed: 1 failed, 2 skipped"), result


def test_without_keep_going_no_task_starts_after_the_first_failure(project: Project) -> None:
    # Three independent tasks that all fail: with -j 1 only the first may start.
    project.flowfile("""\
        [tasks.one]
        run = "echo one >> ran.txt; exit 1"
        [tasks.two]
        run = "echo two >> ran.txt; exit 1"
        [tasks.three]
        run = "echo three >> ran.txt; exit 1"
    """)
    result = project.json_run("-j", "1")
    assert result.returncode == 1, result
    assert len(result.started) == 1, result
    assert len(project.read("ran.txt").splitlines()) == 1
    first = result.started[0]
    events = result.events
    failed_at = next(i for i, e in enumerate(events)
                     if e["event"] == "task_finished" and e["status"] == "failed")
    assert not [e for e in events[failed_at:] if e["event"] == "task_started"]
    others = set(result.statuses) - {first}
    assert others == {"one", "two", "three"} - {first}
    assert all(result.statuses[t] == "skipped" for t in others), result.statuses


def test_without_keep_going_running_tasks_still_finish(project: Project) -> None:
    # bad fails only once slow is running, and slow finishes only after bad failed.
    # (Bounded waits: a broken scheduler fails the test instead of hanging it.)
    project.flowfile("""\
        [tasks.slow]
        outputs = ["slow.txt"]
        run = "touch slow.started; i=0; while [ ! -e go ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done; echo done > slow.txt"
        [tasks.bad]
        run = "i=0; while [ ! -e slow.started ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done; touch go; exit 1"
    """)
    result = project.json_run("-j", "2")
    assert result.returncode == 1, result
    assert result.statuses == {"slow": "ok", "bad": "failed"}
    assert project.read("slow.txt") == "done\n"


def test_keep_going_runs_every_branch_not_downstream_of_the_failure(project: Project) -> None:
    project.flowfile(FAIL_CHAIN + """
    [tasks.other]
    inputs = ["src.txt"]
    outputs = ["other.txt"]
    run = "cp src.txt other.txt"

    [tasks.other_down]
    inputs = ["other.txt"]
    outputs = ["other_down.txt"]
    run = "cp other.txt other_down.txt"

    [tasks.also_bad]
    run = "exit 2"
    """)
    project.write("src.txt", "x\n")
    result = project.json_run("-k", "-j", "1")
    assert result.returncode == 1, result
    assert result.statuses == {
        "bad": "failed", "also_bad": "failed", "down": "skipped", "further": "skipped",
        "other": "ok", "other_down": "ok",
    }
    assert project.read("other_down.txt") == "x\n"
    assert sorted(result.one("run_finished")["failed"]) == ["also_bad", "bad"]


def test_exit_0_without_the_declared_output_is_a_failure(project: Project) -> None:
    project.flowfile("""\
        [tasks.lazy]
        outputs = ["made.txt", "forgotten.txt"]
        run = "echo hi > made.txt"
        [tasks.after_lazy]
        inputs = ["forgotten.txt"]
        outputs = ["final.txt"]
        run = "cp forgotten.txt final.txt"
    """)
    result = project.json_run()
    assert result.returncode == 1, result
    lazy = result.finished_event("lazy")
    assert lazy["status"] == "failed"
    assert "did not produce forgotten.txt" in lazy["message"]
    assert result.statuses["after_lazy"] == "skipped"
    plain = project.plain_run()
    assert plain.returncode == 1, plain
    assert "did not produce forgotten.txt" in plain.stdout + plain.stderr
    assert project.read("made.txt") == "hi\n"  # outputs are left in place


def test_failed_task_runs_again_next_time(project: Project) -> None:
    # The task writes its output and then fails: the output must not count as fresh.
    project.flowfile("""\
        [tasks.flaky]
        inputs = ["src.txt"]
        outputs = ["out.txt"]
        run = "cp src.txt out.txt; test -e fixed"
    """)
    project.write("src.txt", "x\n")
    first = project.json_run()
    assert first.returncode == 1, first
    assert project.exists("out.txt")
    assert project.status()["flaky"]["state"] == "stale"
    second = project.json_run()
    assert second.returncode == 1, second
    assert second.started == ["flaky"]
    project.write("fixed", "")  # not an input: nothing in the fingerprint changes
    third = project.json_run()
    assert third.returncode == 0, third
    assert third.started == ["flaky"]
    noop = project.json_run()
    assert noop.returncode == 0 and noop.started == [], noop


def test_failed_task_log_tail_and_path_go_to_stderr_not_stdout(project: Project) -> None:
    project.flowfile(FAIL_CHAIN)
    project.write("src.txt", "x\n")
    result = project.plain_run()
    assert result.returncode == 1, result
    err = result.err_lines
    # the last 20 lines of the log: line7..line25 and the stderr line "oops"
    assert [f"line{i}" for i in range(7, 26)] + ["oops"] == [
        line.strip() for line in err if line.strip().startswith(("line", "oops"))], result
    assert "line6" not in [line.strip() for line in err]
    assert any(".flowmake/logs/" in line and "bad.log" in line for line in err), result
    # stdout has the task's output as it came (`[bad] oops`, --output prefixed), never the tail
    for n in (7, 25):
        assert f"line{n}" not in result.lines
    assert "oops" not in result.lines and "[bad] oops" in result.lines


def test_each_task_log_is_in_flowmake_logs_run_id_task_log(project: Project) -> None:
    project.flowfile("""\
        [tasks.talk]
        outputs = ["out.txt"]
        run = "echo to-stdout; echo to-stderr >&2; echo x > out.txt"
        [tasks.fail]
        run = "echo before-failing; exit 4"
    """)
    result = project.json_run("-k")
    assert result.returncode == 1, result
    run_id = result.run_id
    talk_log = project.path(f".flowmake/logs/{run_id}/talk.log")
    fail_log = project.path(f".flowmake/logs/{run_id}/fail.log")
    assert sorted(talk_log.read_text().splitlines()) == ["to-stderr", "to-stdout"]
    assert fail_log.read_text() == "before-failing\n"
    assert result.finished_event("fail")["log"] == f".flowmake/logs/{run_id}/fail.log"
    assert result.finished_event("fail")["tail"] == ["before-failing"]
    # the task's own output is captured, never written raw to flowmake's streams
    assert result.events  # every stdout line is still JSON
    assert "to-stderr" not in result.stderr


def test_a_task_that_prints_nothing_gets_an_empty_log_on_record(project: Project) -> None:
    project.flowfile("""\
        [tasks.silent]
        matrix = { n = ["1", "2", "3"] }
        outputs = ["out{n}.txt"]
        run = "echo x > out{n}.txt"
        [tasks.mute_failure]
        run = "exit 3"
        [tasks.talker]
        run = "echo said"
    """)
    result = project.json_run("-k")
    assert result.returncode == 1, result
    attempts = json.loads(project.run("log", result.run_id, "--json").stdout)["attempts"]
    logs = {a["task"]: a["log"] for a in attempts}
    run_dir = f".flowmake/logs/{result.run_id}"
    assert logs == {**{f"silent:{n}": f"{run_dir}/silent.{n}.log" for n in "123"},
                    "mute_failure": f"{run_dir}/mute_failure.log", "talker": f"{run_dir}/talker.log"}
    for task, log in logs.items():
        assert result.finished_event(task)["log"] == log
        assert project.path(log).read_bytes() == (b"said\n" if task == "talker" else b"")
    empty = [project.path(log).stat() for task, log in logs.items() if task != "talker"]
    assert {(s.st_dev, s.st_ino) for s in empty} == {(empty[0].st_dev, empty[0].st_ino)}  # one file, linked
    assert project.path(logs["talker"]).stat().st_ino != empty[0].st_ino
    assert project.run("audit", "verify").returncode == 0
    plain = project.run("run", "--progress", "plain", "-k")
    assert "--- mute_failure failed (exit code 3), no output in .flowmake/logs/" in plain.stderr, plain


def test_a_task_that_prints_after_silent_ones_gets_its_own_log_and_theirs_stay_empty(project: Project) -> None:
    # Every log starts as a link to the run's shared empty file; printing must
    # never write through it, whichever task's path that file was made at.
    project.flowfile("""\
        [tasks.first]
        run = "echo one; echo two"
        [tasks.quiet1]
        after = ["first"]
        run = "true"
        [tasks.loud]
        after = ["quiet1"]
        run = "printf partial"
        [tasks.quiet2]
        after = ["loud"]
        run = "true"
    """)
    result = project.json_run("-j", "1")
    assert result.returncode == 0, result
    logs = {t: project.path(result.finished_event(t)["log"]) for t in ("first", "quiet1", "loud", "quiet2")}
    assert logs["first"].read_text() == "one\ntwo\n"
    assert logs["loud"].read_text() == "partial"
    assert logs["quiet1"].read_bytes() == logs["quiet2"].read_bytes() == b""
    assert project.run("audit", "verify").returncode == 0


def test_a_shell_that_does_not_exist_fails_the_task_saying_so(project: Project) -> None:
    project.flowfile("""\
        [tasks.by_name]
        shell = "no-such-shell-here -c"
        outputs = ["a.txt"]
        run = "echo a > a.txt"
        [tasks.by_path]
        shell = "/no/such/dir/sh -c"
        outputs = ["b.txt"]
        run = "echo b > b.txt"
    """)
    result = project.json_run("-k")
    assert result.returncode == 1, result
    assert result.finished_event("by_name")["message"] == "could not start 'no-such-shell-here': No such file or directory"
    assert result.finished_event("by_path")["message"] == "could not start '/no/such/dir/sh': No such file or directory"


def test_a_log_that_cannot_be_written_fails_the_task_saying_so_and_the_run_ends(project: Project) -> None:
    # .flowmake/logs is a file here, as a full disk or a permission would make
    # every log fail: the tasks fail with the reason, nothing hangs.
    project.flowfile("""\
        [tasks.silent]
        outputs = ["a.txt"]
        run = "echo x > a.txt"
        [tasks.talker]
        run = "echo said"
    """)
    project.path(".flowmake").mkdir()
    project.write(".flowmake/logs", "not a directory\n")
    result = project.json_run("-k")
    assert result.returncode == 1, result
    for task in ("silent", "talker"):
        finished = result.finished_event(task)
        assert finished["status"] == "failed"
        expected = f"could not write its log .flowmake/logs/{result.run_id}/{task}.log: "
        assert finished["message"].startswith(expected), finished
        assert "log" not in finished
    attempts = json.loads(project.run("log", result.run_id, "--json").stdout)["attempts"]
    assert {a["task"]: a["log"] for a in attempts} == {"silent": None, "talker": None}
    assert project.run("audit", "verify").returncode == 0


def test_a_bug_while_moving_task_output_ends_the_run_as_an_internal_error_not_a_hang(
        project: Project, monkeypatch, capsys) -> None:
    from flowmake.__main__ import main
    from flowmake.executors import local as runner

    project.flowfile("""\
        [tasks.a]
        run = "true"
    """)

    def broken(self, path):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(runner.ProcessRunner, "_write_empty_log", broken)
    monkeypatch.chdir(project.root)
    assert main(["run", "--progress", "plain"]) == 70
    err = capsys.readouterr().err
    assert "internal error" in err and "ZeroDivisionError: planted" in err, err
    crash = err.rsplit("traceback written to ", 1)[1].strip()
    assert "planted" in open(crash).read()
    assert Path(crash).parent == Path(os.environ["TMPDIR"])  # the test's own, not /tmp


def test_a_directory_where_a_file_output_was_declared_says_to_write_the_slash(project: Project) -> None:
    project.flowfile("""\
        [tasks.tables]
        outputs = ["outdir", "listing/"]
        run = "mkdir -p outdir && echo t > outdir/t.csv && echo l > listing"
    """)
    result = project.json_run()
    assert result.returncode == 1, result
    assert result.finished_event("tables")["message"] == (
        "did not produce a file outdir (it is a directory: write outdir/), "
        "a directory listing/ (it is a file: write listing)")
