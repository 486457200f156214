"""SPEC §2 through the real CLI: when a task runs, and the reason it gives.

Each reason is checked twice, as `flowmake status --json` previews it and as
the `task_started` event of the run reports it. Also: touching files, early cutoff, the no-op second run,
only-affected reruns, and the state directory (corrupt or deleted database).
"""

from __future__ import annotations

import os
import shutil
import time

from conftest import Project, kinds

CHAIN = """\
    [flow]
    name = "chain"

    [tasks.extract]
    inputs = ["src.txt"]
    outputs = ["build/a.txt"]
    run = "cp src.txt build/a.txt"

    [tasks.clean]
    inputs = ["build/a.txt"]
    outputs = ["build/b.txt"]
    run = "cat build/a.txt > build/b.txt"
"""


def chain(project: Project, src: str = "one\n") -> None:
    project.flowfile(CHAIN)
    project.write("src.txt", src)


def built_chain(project: Project) -> None:
    chain(project)
    first = project.json_run()
    assert first.returncode == 0, first
    assert first.ran == ["clean", "extract"]


def assert_reason(project: Project, task: str, kind: str, path: object = None, *, run_args=()):
    """status --json and then the run both give `task` this reason; returns (status rows, run result)."""
    rows = project.status()
    row = rows[task]
    assert row["state"] == "stale"
    matching = [r for r in row["reasons"] if r["kind"] == kind and r.get("path") == path]
    assert matching, f"status reasons of {task}: {row['reasons']}"
    result = project.json_run(*run_args)
    assert result.returncode == 0, result
    started = [r for r in result.reasons(task) if r["kind"] == kind and r.get("path") == path]
    assert started, f"task_started reasons of {task}: {result.reasons(task)}"
    assert result.statuses[task] == "ok"
    return rows, result


# -- the reasons -------------------------------------------------------------------


def test_never_run_is_the_reason_before_the_first_run(project: Project) -> None:
    chain(project)
    rows = project.status()
    assert rows["extract"]["state"] == "stale"
    assert kinds(rows["extract"]["reasons"]) == ["never run"]
    # clean has no record either: it will run whatever extract writes
    assert rows["clean"]["state"] != "fresh"
    assert "never run" in kinds(rows["clean"]["reasons"])
    result = project.json_run()
    assert result.returncode == 0, result
    assert kinds(result.reasons("extract")) == ["never run"]
    assert kinds(result.reasons("clean")) == ["never run"]
    assert project.read("build/b.txt") == "one\n"


def test_second_run_does_nothing(project: Project) -> None:
    built_chain(project)
    again = project.plain_run()
    assert again.returncode == 0, again
    assert again.lines[-1].startswith("nothing to do: 2 tasks fresh"), again
    assert not any(line.startswith(("start", "ok ")) for line in again.lines), again


def test_command_change_reruns_with_command_changed(project: Project) -> None:
    built_chain(project)
    project.flowfile(CHAIN.replace('run = "cp src.txt build/a.txt"', 'run = "cat src.txt > build/a.txt"'))
    assert_reason(project, "extract", "command changed")


def test_flow_env_change_reruns_every_task_with_env_changed_name(project: Project) -> None:
    text = CHAIN.replace('name = "chain"', 'name = "chain"\n\n    [env]\n    TZ = "UTC"')
    project.flowfile(text)
    project.write("src.txt", "one\n")
    assert project.json_run().returncode == 0
    project.flowfile(text.replace('TZ = "UTC"', 'TZ = "Europe/Paris"'))
    rows = project.status()
    # clean is stale on its own account whatever extract produces: status must say why
    for task in ("extract", "clean"):
        assert {"kind": "env changed", "path": "TZ"} in rows[task]["reasons"], rows
    result = project.json_run()
    assert result.ran == ["clean", "extract"]
    for task in ("extract", "clean"):
        assert {"kind": "env changed", "path": "TZ"} in result.reasons(task)


def test_task_env_change_reruns_only_that_task(project: Project) -> None:
    text = CHAIN.replace('outputs = ["build/a.txt"]\n    run = "cp src.txt build/a.txt"',
                         'outputs = ["build/a.txt", "build/mode.txt"]\n    env = { MODE = "fast" }\n'
                         '    run = "cp src.txt build/a.txt; printf %s \\"$MODE\\" > build/mode.txt"')
    project.flowfile(text)
    project.write("src.txt", "one\n")
    assert project.json_run().returncode == 0
    assert project.read("build/mode.txt") == "fast"  # the task's env reaches its command
    project.flowfile(text.replace('"fast"', '"slow"'))
    rows, result = assert_reason(project, "extract", "env changed", "MODE")
    assert rows["clean"]["state"] != "stale"
    assert result.started == ["extract"] and result.statuses["clean"] == "fresh"
    assert project.read("build/mode.txt") == "slow"


def test_env_inputs_change_in_callers_environment_reruns(project: Project) -> None:
    project.flowfile("""\
        [tasks.greet]
        outputs = ["out.txt"]
        env_inputs = ["GREETING"]
        run = "printf '%s' \\"$GREETING\\" > out.txt"
    """)
    first = project.json_run(env={"GREETING": "hello-7f9c2e"})
    assert first.returncode == 0, first
    assert project.read("out.txt") == "hello-7f9c2e"
    same = project.json_run(env={"GREETING": "hello-7f9c2e"})
    assert same.returncode == 0 and same.started == [], same
    row = project.status(env={"GREETING": "bonjour-5d1a0b"})["greet"]
    assert {"kind": "env changed", "path": "GREETING"} in row["reasons"]
    changed = project.json_run(env={"GREETING": "bonjour-5d1a0b"})
    assert {"kind": "env changed", "path": "GREETING"} in changed.reasons("greet")
    assert project.read("out.txt") == "bonjour-5d1a0b"
    # the values are part of the fingerprint, but stored hashed, never in clear
    for path in project.path(".flowmake").glob("state.db*"):
        data = path.read_bytes()
        assert b"hello-7f9c2e" not in data and b"bonjour-5d1a0b" not in data, path


def test_input_change_reruns_with_input_changed_path_and_hashes(project: Project) -> None:
    built_chain(project)
    project.write("src.txt", "two\n")  # same size, written right after hashing: the racy-timestamp case
    row = project.status()["extract"]
    assert row["state"] == "stale"
    (reason,) = row["reasons"]
    assert reason["kind"] == "input changed" and reason["path"] == "src.txt"
    assert reason["old"] and reason["new"] and reason["old"] != reason["new"]
    result = project.json_run()
    assert result.reasons("extract")[0]["path"] == "src.txt"
    assert kinds(result.reasons("extract")) == ["input changed"]
    assert result.reasons("clean") == [
        {"kind": "input changed", "path": "build/a.txt", "old": reason["old"], "new": reason["new"]}
    ]
    assert project.read("build/b.txt") == "two\n"


GLOB = """\
    [tasks.concat]
    inputs = ["parts/*.txt"]
    outputs = ["all.txt"]
    run = "cat parts/*.txt > all.txt"   # not {inputs}: the command itself must not change
"""


def test_glob_gaining_or_losing_a_file_reruns_with_inputs_added_removed(project: Project) -> None:
    project.flowfile(GLOB)
    project.write("parts/a.txt", "a\n")
    assert project.json_run().returncode == 0
    project.write("parts/b.txt", "b\n")  # the glob now matches a new file
    assert_reason(project, "concat", "inputs added/removed", "parts/b.txt")
    assert project.read("all.txt") == "a\nb\n"
    project.path("parts/a.txt").unlink()  # and now it lost one
    result = project.json_run()
    assert [(r["kind"], r.get("path")) for r in result.reasons("concat")] == [("inputs added/removed", "parts/a.txt")]
    assert project.read("all.txt") == "b\n"


def test_missing_or_modified_outputs_rerun_with_their_reasons(project: Project) -> None:
    built_chain(project)
    project.write("build/a.txt", "XXX\n")  # same size as what extract wrote
    project.path("build/b.txt").unlink()
    rows = project.status()
    assert rows["extract"]["state"] == "stale"
    (modified,) = rows["extract"]["reasons"]
    assert (modified["kind"], modified["path"]) == ("output modified", "build/a.txt")
    assert modified["old"] != modified["new"]
    assert {"kind": "output missing", "path": "build/b.txt"} in [
        {k: r[k] for k in ("kind", "path") if k in r} for r in rows["clean"]["reasons"]], rows
    result = project.json_run()
    assert result.returncode == 0, result
    assert [(r["kind"], r.get("path")) for r in result.reasons("extract")] == [("output modified", "build/a.txt")]
    assert [(r["kind"], r.get("path")) for r in result.reasons("clean")] == [("output missing", "build/b.txt")]
    assert project.read("build/a.txt") == "one\n" and project.read("build/b.txt") == "one\n"


def test_always_make_and_force_name_run_fresh_tasks_with_reason_forced(project: Project) -> None:
    built_chain(project)
    everything = project.json_run("-B")
    assert everything.returncode == 0, everything
    assert everything.ran == ["clean", "extract"]
    for task in ("extract", "clean"):
        assert "forced" in kinds(everything.reasons(task))
    one = project.json_run("--force", "extract")
    assert one.returncode == 0, one
    assert kinds(one.reasons("extract")) == ["forced"]
    # extract rewrote the same bytes: clean stays fresh (early cutoff)
    assert one.started == ["extract"]
    assert one.statuses["clean"] == "fresh"


def test_always_true_and_tasks_without_files_run_on_every_invocation(project: Project) -> None:
    project.flowfile("""\
        [tasks.stamp]
        inputs = ["src.txt"]
        outputs = ["out.txt"]
        always = true
        run = "cat src.txt >> out.txt"

        [tasks.ping]
        run = "echo ping >> pings.log"
    """)
    project.write("src.txt", "x\n")
    first = project.json_run()
    assert first.returncode == 0, first
    assert "always" in kinds(first.reasons("stamp"))
    assert "no inputs or outputs" in kinds(first.reasons("ping"))
    rows = project.status()
    # Shown as `always`, not `stale`: status --exit-code leaves them out (test_cli_status_gate.py).
    assert rows["stamp"]["state"] == "always" and kinds(rows["stamp"]["reasons"]) == ["always"]
    assert rows["ping"]["state"] == "always" and kinds(rows["ping"]["reasons"]) == ["no inputs or outputs"]
    second = project.json_run()
    assert second.returncode == 0, second
    assert kinds(second.reasons("stamp")) == ["always"]
    assert kinds(second.reasons("ping")) == ["no inputs or outputs"]
    assert project.read("out.txt") == "x\nx\n"
    assert project.read("pings.log") == "ping\nping\n"


def test_touching_files_without_changing_content_runs_nothing(project: Project) -> None:
    built_chain(project)
    later = time.time() + 60
    for rel in ("src.txt", "build/a.txt", "build/b.txt", "Flowfile.toml"):
        os.utime(project.path(rel), (later, later))
    assert all(row["state"] == "fresh" for row in project.status().values())
    result = project.json_run()
    assert result.started == []
    assert result.statuses == {"extract": "fresh", "clean": "fresh"}


def test_early_cutoff_downstream_stays_fresh_when_upstream_output_is_identical(project: Project) -> None:
    project.flowfile("""\
        [tasks.first_line]
        inputs = ["src.txt"]
        outputs = ["build/head.txt"]
        run = "head -n 1 src.txt > build/head.txt"

        [tasks.shout]
        inputs = ["build/head.txt"]
        outputs = ["build/shout.txt"]
        run = "tr a-z A-Z < build/head.txt > build/shout.txt"
    """)
    project.write("src.txt", "title\nbody\n")
    assert project.json_run().returncode == 0
    project.write("src.txt", "title\nother body\n")  # the first line is unchanged
    rows = project.status()
    assert rows["first_line"]["state"] == "stale"
    assert rows["shout"]["state"] == "blocked"
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.started == ["first_line"]
    assert result.statuses == {"first_line": "ok", "shout": "fresh"}
    assert result.one("run_finished")["counts"]["fresh"] == 1
    assert project.read("build/shout.txt") == "TITLE\n"


def test_editing_one_source_reruns_only_the_affected_tasks(project: Project) -> None:
    project.flowfile("""\
        [tasks.a1]
        inputs = ["a.txt"]
        outputs = ["build/a1.txt"]
        run = "cp a.txt build/a1.txt"
        [tasks.a2]
        inputs = ["build/a1.txt"]
        outputs = ["build/a2.txt"]
        run = "cp build/a1.txt build/a2.txt"
        [tasks.b1]
        inputs = ["b.txt"]
        outputs = ["build/b1.txt"]
        run = "cp b.txt build/b1.txt"
        [tasks.b2]
        inputs = ["build/b1.txt"]
        outputs = ["build/b2.txt"]
        run = "cp build/b1.txt build/b2.txt"
        [tasks.both]
        inputs = ["build/a2.txt", "build/b2.txt"]
        outputs = ["build/both.txt"]
        run = "cat {inputs} > build/both.txt"
    """)
    project.write("a.txt", "a\n")
    project.write("b.txt", "b\n")
    first = project.json_run()
    assert first.returncode == 0, first
    assert first.ran == ["a1", "a2", "b1", "b2", "both"]
    project.write("a.txt", "A!\n")
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.ran == ["a1", "a2", "both"]
    assert result.tasks_with("fresh") == ["b1", "b2"]
    assert project.read("build/both.txt") == "A!\nb\n"


# -- the state directory ---------------------------------------------------------


def test_corrupt_state_database_is_set_aside_with_a_warning_and_everything_runs(project: Project) -> None:
    built_chain(project)
    db = project.path(".flowmake/state.db")
    for extra in ("state.db-wal", "state.db-shm"):
        project.path(".flowmake/" + extra).unlink(missing_ok=True)
    garbage = b"this is not a sqlite database\x00" * 200
    db.write_bytes(garbage)
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.ran == ["clean", "extract"]
    assert "warning" in result.stderr and "state.db" in result.stderr, result
    aside = [p for p in project.path(".flowmake").iterdir()
             if p.name.startswith("state.db") and p.name not in ("state.db", "state.db-wal", "state.db-shm")]
    assert len(aside) == 1, list(project.path(".flowmake").iterdir())
    assert aside[0].read_bytes() == garbage  # kept for forensics, never deleted
    noop = project.json_run()  # the new database works
    assert noop.returncode == 0 and noop.started == [], noop


def test_deleting_the_state_directory_makes_everything_run_again(project: Project) -> None:
    built_chain(project)
    assert project.read(".flowmake/.gitignore").strip() == "*"
    shutil.rmtree(project.path(".flowmake"))
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.ran == ["clean", "extract"]
    assert kinds(result.reasons("extract")) == ["never run"]
