"""Reading the history through the real CLI (issue 14 items 3, 8, 9, 11; issue 22 item 3).

Lineage of a directory output; paths given absolute (inside the project they
answer like their relative form, outside it they are exit 2 at once, never a
walk up to `/` that does not end); `log`, `lineage` and `audit` reading the
state when today's Flowfile does not load; portable log file names; and
`flowmake log RUN_ID TASK` / `--last TASK` printing one task's log.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Dict

import pytest
from blake3 import blake3
from conftest import Project, Result

# A path command that walks towards `/` forever must fail the test, fast.
PATH_TIMEOUT = 5.0

PARTS = """\
    [tasks.parts]
    inputs = ["seed.txt"]
    outputs = ["parts/"]
    run = "mkdir -p parts && cp seed.txt parts/a.txt && echo b > parts/b.txt"

    [tasks.count]
    inputs = ["parts/"]
    outputs = ["count.txt"]
    run = "ls parts > count.txt"
"""


def built_parts(project: Project) -> Result:
    project.flowfile(PARTS)
    project.write("seed.txt", "seed\n")
    run = project.json_run()
    assert run.returncode == 0 and run.ran == ["count", "parts"], run
    return run


def tree_hash(project: Project, rel: str) -> str:
    """The recorded hash of directory output `rel`, as the run's own record has it."""
    (attempt,) = [a for a in json.loads(project.run("log", "--last", "--json").stdout)["attempts"]
                  if rel in a["outputs"]]
    return attempt["outputs"][rel]


# -- lineage of a directory output (issue 14 item 3) -------------------------------------------


@pytest.mark.parametrize("spelled", ["parts/", "parts", "./parts/"])
def test_lineage_of_a_directory_output_names_its_task_run_and_hash(project: Project, spelled: str) -> None:
    run = built_parts(project)
    result = project.run("lineage", spelled, "--json")
    assert result.returncode == 0, result
    tree = json.loads(result.stdout)
    assert tree["path"] == "parts/"
    assert tree["produced_by"]["task"] == "parts" and tree["produced_by"]["run_id"] == run.run_id
    assert tree["hash"] == tree["current_hash"] == tree_hash(project, "parts/")
    assert [(n["path"], n["hash"], n["source"]) for n in tree["inputs"]] == [
        ("seed.txt", blake3(b"seed\n").hexdigest(), True)]

    text = project.run("lineage", spelled)
    assert text.returncode == 0, text
    assert text.lines[0].startswith("parts/ " + tree["hash"][:16]), text
    assert f"← parts in run {run.run_id}" in text.stdout and "seed.txt" in text.stdout, text


def test_lineage_sources_of_a_directory_output_and_of_a_file_read_from_it(project: Project) -> None:
    built_parts(project)
    sources = project.run("lineage", "parts/", "--sources")
    assert sources.returncode == 0, sources
    assert sources.lines == [f"{blake3(b'seed' + bytes([10])).hexdigest()}  seed.txt"], sources
    listed = project.run("lineage", "parts", "--sources", "--json")
    assert listed.returncode == 0, listed
    assert [s["path"] for s in json.loads(listed.stdout)] == ["seed.txt"]

    # count.txt read the directory as a whole: its lineage goes through parts/ to seed.txt.
    tree = json.loads(project.run("lineage", "count.txt", "--json").stdout)
    assert [n["path"] for n in tree["inputs"]] == ["parts/"]
    assert tree["inputs"][0]["produced_by"]["task"] == "parts"
    # A file inside the directory output is still answered by the directory's record.
    inner = json.loads(project.run("lineage", "parts/a.txt", "--json").stdout)
    assert inner["produced_by"]["task"] == "parts"
    assert "inside directory output parts/" in inner["note"]


def test_lineage_of_a_directory_output_deleted_since_says_missing_now(project: Project) -> None:
    run = built_parts(project)
    recorded = tree_hash(project, "parts/")
    shutil.rmtree(project.path("parts"))
    result = project.run("lineage", "parts", "--json")
    assert result.returncode == 0, result
    tree = json.loads(result.stdout)
    assert tree["path"] == "parts/" and tree["current_hash"] is None
    assert tree["hash"] == recorded and tree["produced_by"]["run_id"] == run.run_id


# -- absolute paths and paths outside the project (issue 22 item 3) -----------------------------


def test_lineage_of_an_absolute_path_inside_the_project_answers_like_the_relative_one(project: Project) -> None:
    built_parts(project)
    relative = project.run("lineage", "count.txt", "--json", timeout=PATH_TIMEOUT)
    absolute = project.run("lineage", str(project.path("count.txt")), "--json", timeout=PATH_TIMEOUT)
    assert relative.returncode == absolute.returncode == 0, absolute
    assert json.loads(absolute.stdout) == json.loads(relative.stdout)
    directory = project.run("lineage", str(project.path("parts")) + "/", "--sources", timeout=PATH_TIMEOUT)
    assert directory.returncode == 0 and directory.lines[0].endswith("  seed.txt"), directory
    # From a subdirectory (the root found upwards) the absolute form still names the same file.
    project.path("sub").mkdir()
    from_sub = project.run("lineage", str(project.path("count.txt")), "--json", cwd=project.path("sub"),
                           timeout=PATH_TIMEOUT)
    assert json.loads(from_sub.stdout) == json.loads(relative.stdout), from_sub


@pytest.mark.parametrize("outside", ["/etc/passwd", "/", "../elsewhere.txt", "OUTSIDE_DIR"])
def test_lineage_of_a_path_outside_the_project_is_exit_2_at_once(project: Project, outside: str) -> None:
    built_parts(project)
    if outside == "OUTSIDE_DIR":
        outside = str(project.root.parent)
    result = project.run("lineage", outside, timeout=PATH_TIMEOUT)
    assert result.returncode == 2, result
    assert "is not inside the project" in result.stderr and str(project.root) in result.stderr, result
    assert result.stdout == "" and "Traceback" not in result.stderr


def selected(result: Result) -> Any:
    """What a command chose for its targets: the tasks a run ran, else its output."""
    if result.args[0] == "run":
        if "-n" in result.args:
            return sorted(step["task"] for step in result.one("run_started")["plan"])
        return result.ran
    return result.stdout


@pytest.mark.parametrize("command", [["run", "-B", "--progress", "json"], ["run", "-n", "-B", "--progress", "json"],
                                     ["status"], ["clean", "-n"], ["graph"]])
def test_targets_given_as_absolute_paths_resolve_inside_the_project_and_refuse_outside(
        project: Project, command: list) -> None:
    built_parts(project)
    for rel, task in (("count.txt", "count"), ("parts", "parts"), ("parts/", "parts")):
        absolute = project.run(*command, str(project.path(rel.rstrip("/"))) + ("/" if rel.endswith("/") else ""),
                               timeout=PATH_TIMEOUT)
        relative = project.run(*command, rel, timeout=PATH_TIMEOUT)
        assert absolute.returncode == relative.returncode == 0, absolute
        assert selected(absolute) == selected(relative), absolute
        assert task in str(selected(absolute)), absolute
    for outside in ("/etc/passwd", "/", str(project.root.parent) + "/"):
        refused = project.run(*command, outside, timeout=PATH_TIMEOUT)
        assert refused.returncode == 2, refused
        assert f"target {outside} is not inside the project" in refused.stderr, refused
        assert refused.stdout == "" and "Traceback" not in refused.stderr


# -- the history when today's Flowfile does not load (issue 14 item 11) -------------------------

TWO_STEPS = """\
    [tasks.clean]
    inputs = ["raw/*.csv"]
    outputs = ["build/clean.csv"]
    run = "cat raw/*.csv > build/clean.csv; echo cleaned"

    [tasks.report]
    inputs = ["build/clean.csv"]
    outputs = ["dist/report.txt"]
    run = "wc -l < build/clean.csv > dist/report.txt"
"""


def break_flowfile(project: Project, how: str) -> None:
    """Make today's Flowfile fail to load, in one of the ways an edit or a clean-up does."""
    if how == "toml syntax error":
        with open(project.path("Flowfile.toml"), "a") as f:
            f.write("\n[tasks.half_written\nrun = \n")
    elif how == "raw input deleted":
        project.flowfile(TWO_STEPS.replace('"raw/*.csv"', '"raw/a.csv"'))
        project.path("raw/a.csv").unlink()
    elif how == "glob matches nothing":
        shutil.rmtree(project.path("raw"))
    elif how == "Flowfile deleted":
        project.path("Flowfile.toml").unlink()
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["toml syntax error", "raw input deleted", "glob matches nothing",
                                 "Flowfile deleted"])
def test_log_lineage_and_audit_read_the_state_when_the_flowfile_does_not_load(project: Project, how: str) -> None:
    project.flowfile(TWO_STEPS)
    project.write("raw/a.csv", "x\n")
    first = project.json_run()
    assert first.returncode == 0 and first.ran == ["clean", "report"], first
    lineage_before = json.loads(project.run("lineage", "dist/report.txt", "--json").stdout)
    break_flowfile(project, how)
    assert project.run("status").returncode == 2  # it does need the Flowfile

    listed = project.run("log", "--json")
    assert listed.returncode == 0, listed
    assert [r["id"] for r in json.loads(listed.stdout)] == [first.run_id]
    detail = project.run("log", first.run_id)
    assert detail.returncode == 0 and "clean: ok" in detail.stdout, detail
    task_log = project.run("log", first.run_id, "clean")
    assert task_log.returncode == 0 and task_log.stdout == "cleaned\n", task_log
    lineage = project.run("lineage", "dist/report.txt", "--json")
    assert lineage.returncode == 0, lineage
    assert json.loads(lineage.stdout)["produced_by"] == lineage_before["produced_by"]
    verify = project.run("audit", "verify")
    assert verify.returncode == 0 and "audit: ok" in verify.stdout, verify
    export = project.run("audit", "export")
    assert export.returncode == 0 and json.loads(export.stdout)["chain_ok"] is True, export
    pruned = project.run("log", "--prune", "5")
    assert pruned.returncode == 0, pruned
    # From a subdirectory, and with -C or -f, the root is found the same way.
    project.path("docs").mkdir(exist_ok=True)
    assert project.run("audit", "verify", cwd=project.path("docs")).returncode == 0
    assert project.run("-C", "docs", "log", first.run_id, "clean").stdout == "cleaned\n"
    assert project.run("-f", "Flowfile.toml", "audit", "verify").returncode == 0


def test_history_commands_outside_any_project_say_so(project: Project, tmp_path: Path) -> None:
    lost = tmp_path / "nowhere"
    lost.mkdir()
    for args in (["log"], ["lineage", "x.txt"], ["audit", "verify"], ["audit", "export"]):
        result = project.run(*args, cwd=lost)
        assert result.returncode == 2, result
        assert "no Flowfile.toml or .flowmake/" in result.stderr and "Traceback" not in result.stderr, result
    missing = project.run("-f", "gone.toml", "log", cwd=lost)
    assert missing.returncode == 2 and "gone.toml does not exist" in missing.stderr, missing


# -- portable log file names (issue 14 item 8) --------------------------------------------------

PORTABLE_NAME = re.compile(r"[A-Za-z0-9._-]+\.log")

CLASHING = """\
    [tasks.validate]
    matrix = { study = ["S01", "S02"] }
    run = "echo validate:{study}"

    [tasks."validate.S01"]
    run = "echo validate.S01"

    [tasks.Build]
    run = "echo Build"

    [tasks.build]
    run = "echo build"

    [tasks.con]
    run = "echo con"

    [tasks."hook.on_failure"]
    run = "echo hook.on_failure"

    [tasks.flaky]
    retries = 1
    run = "echo flaky; test -f .second || {{ touch .second; exit 1; }}"

    [tasks."flaky.attempt2"]
    run = "echo flaky.attempt2"
"""


def test_matrix_variant_logs_have_portable_names_that_log_maps_back_to_the_task(project: Project) -> None:
    project.flowfile("""\
        [tasks.validate]
        matrix = { study = ["S01", "S02"], site = ["EU"] }
        run = "echo checking {study} at {site}"
    """)
    run = project.json_run()
    assert run.returncode == 0, run
    names = sorted(p.name for p in project.path(f".flowmake/logs/{run.run_id}").iterdir())
    assert names == ["validate.S01.EU.log", "validate.S02.EU.log"]
    for event in run.of_kind("task_finished"):
        assert PORTABLE_NAME.fullmatch(Path(event["log"]).name), event
    detail = json.loads(project.run("log", run.run_id, "--json").stdout)
    by_task = {a["task"]: a["log"] for a in detail["attempts"]}
    assert by_task == {f"validate:{s}:EU": f".flowmake/logs/{run.run_id}/validate.{s}.EU.log" for s in ("S01", "S02")}
    text = project.run("log", run.run_id)
    assert f"validate:S01:EU: ok" in text.stdout and "validate.S01.EU.log" in text.stdout, text


def test_tasks_whose_plain_log_names_would_clash_get_distinct_portable_files(project: Project) -> None:
    project.flowfile(CLASHING)
    run = project.json_run("-k")
    assert run.returncode == 0, run
    logs: Dict[str, list] = {}
    for event in run.of_kind("task_finished"):
        logs.setdefault(event["task"], []).append(event["log"])
    assert len(logs["flaky"]) == 2
    files = [log for paths in logs.values() for log in paths]
    assert len(files) == 10
    assert len({f.casefold() for f in files}) == len(files), files  # distinct on a case-insensitive disk too
    for path in files:
        name = Path(path).name
        assert PORTABLE_NAME.fullmatch(name), name
        assert name.split(".")[0].casefold() not in ("con", "prn", "aux", "nul"), name
        assert name.casefold() not in ("hook.on_failure.log", "hook.on_success.log"), name
    # Each file holds its own task's output, and `log RUN TASK` finds it.
    for task in ("validate:S01", "validate.S01", "Build", "build", "con", "hook.on_failure", "flaky.attempt2"):
        (path,) = logs[task]
        assert project.read(path) == task + "\n", (task, path)
        shown = project.run("log", run.run_id, task)
        assert shown.returncode == 0 and shown.stdout == task + "\n", shown
    assert logs["validate:S02"] == [f".flowmake/logs/{run.run_id}/validate.S02.log"]  # no clash: the plain form


# -- flowmake log RUN_ID TASK and --last TASK (issue 14 item 9) ---------------------------------

STEPS = """\
    [tasks.extract]
    inputs = ["raw.txt"]
    outputs = ["out/extract.txt"]
    run = "echo extracting; echo warn >&2; cp raw.txt out/extract.txt"

    [tasks.fit]
    matrix = { study = ["S01", "S02"] }
    inputs = ["out/extract.txt"]
    outputs = ["out/{study}.txt"]
    run = "echo fitting {study}; cp out/extract.txt out/{study}.txt"

    [tasks.flaky]
    retries = 2
    outputs = ["out/flaky.txt"]
    run = "echo try; test -f .second || {{ touch .second; exit 1; }}; touch out/flaky.txt"

    [tasks.quiet]
    outputs = ["out/quiet.txt"]
    run = "touch out/quiet.txt"
"""


@pytest.fixture
def steps(project: Project) -> Result:
    project.flowfile(STEPS)
    project.write("raw.txt", "one\n")
    run = project.json_run()
    assert run.returncode == 0, run
    return run


def test_log_run_task_prints_exactly_that_tasks_log(project: Project, steps: Result) -> None:
    shown = project.run("log", steps.run_id, "extract")
    assert shown.returncode == 0, shown
    assert shown.stdout == "extracting\nwarn\n" and shown.stderr == "", shown
    prefix = project.run("log", steps.run_id[:-2], "fit:S02")
    assert prefix.returncode == 0 and prefix.stdout == "fitting S02\n", prefix
    silent = project.run("log", steps.run_id, "quiet")
    assert silent.returncode == 0 and silent.stdout == "", silent
    assert "printed nothing" in silent.stderr, silent


def test_log_of_a_retried_task_prints_every_attempt_under_a_head(project: Project, steps: Result) -> None:
    shown = project.run("log", steps.run_id, "flaky")
    assert shown.returncode == 0, shown
    logs = [a["log"] for a in json.loads(project.run("log", steps.run_id, "--json").stdout)["attempts"]
            if a["task"] == "flaky"]
    assert shown.stdout == (f"==> flaky, attempt 1: failed, exit 1 ({logs[0]}) <==\ntry\n\n"
                            f"==> flaky, attempt 2: ok, exit 0 ({logs[1]}) <==\ntry\n"), shown
    listed = json.loads(project.run("log", steps.run_id, "flaky", "--json").stdout)
    assert [(a["attempt"], a["status"], a["text"]) for a in listed] == [(1, "failed", "try\n"), (2, "ok", "try\n")]


def test_log_of_a_matrix_task_or_an_output_path_prints_the_tasks_behind_it(project: Project, steps: Result) -> None:
    group = project.run("log", steps.run_id, "fit")
    assert group.returncode == 0, group
    assert [line for line in group.lines if line.startswith("==>")] == [
        line for line in group.lines if line.startswith("==> fit:S01") or line.startswith("==> fit:S02")]
    assert "fitting S01\n" in group.stdout and "fitting S02\n" in group.stdout, group
    by_path = project.run("log", steps.run_id, "out/S02.txt", timeout=PATH_TIMEOUT)
    assert by_path.returncode == 0 and by_path.stdout == "fitting S02\n", by_path
    absolute = project.run("log", steps.run_id, str(project.path("out/S02.txt")), timeout=PATH_TIMEOUT)
    assert absolute.returncode == 0 and absolute.stdout == "fitting S02\n", absolute
    last_abs = project.run("log", "--last", str(project.path("out/extract.txt")), timeout=PATH_TIMEOUT)
    assert last_abs.returncode == 0 and last_abs.stdout == "extracting\nwarn\n", last_abs
    for outside in ("/etc/passwd", "/"):
        for args in (["log", steps.run_id, outside], ["log", "--last", outside]):
            refused = project.run(*args, timeout=PATH_TIMEOUT)
            assert refused.returncode == 2 and "is not inside the project" in refused.stderr, refused


def test_log_last_task_reads_the_newest_run_in_which_that_task_ran(project: Project, steps: Result) -> None:
    project.write("raw.txt", "two\n")
    project.path(".second").unlink()
    second = project.json_run("extract")  # extract runs again; fit and flaky do not
    assert second.returncode == 0 and second.ran == ["extract"], second
    fresh = project.json_run()
    assert fresh.returncode == 0, fresh
    assert project.run("log", "--last", "extract").stdout == "extracting\nwarn\n"
    newest = json.loads(project.run("log", "--last", "extract", "--json").stdout)
    assert {a["run_id"] for a in newest} == {second.run_id}
    fit = json.loads(project.run("log", "--last", "fit:S01", "--json").stdout)
    assert [a["run_id"] for a in fit] == [fresh.run_id]  # fit:S01 ran again after extract changed
    flaky = json.loads(project.run("log", "--last", "flaky", "--json").stdout)
    assert {a["run_id"] for a in flaky} == {steps.run_id} and len(flaky) == 2
    newest_run = json.loads(project.run("log", "--last", "--json").stdout)
    assert newest_run["id"] == fresh.run_id


def test_log_of_an_unknown_task_or_run_is_exit_2_with_a_suggestion(project: Project, steps: Result) -> None:
    typo = project.run("log", steps.run_id, "extrct")
    assert typo.returncode == 2 and typo.stdout == "", typo
    assert f"task 'extrct' did not run in run {steps.run_id}" in typo.stderr, typo
    assert "did you mean 'extract'?" in typo.stderr and "Traceback" not in typo.stderr, typo
    other = project.run("log", steps.run_id, "package")
    assert other.returncode == 2 and "the tasks that ran in it: extract" in other.stderr, other
    last = project.run("log", "--last", "fitt")
    assert last.returncode == 2 and "no recorded run ran a task 'fitt'" in last.stderr, last
    assert "did you mean 'fit'?" in last.stderr, last
    run = project.run("log", "19990101T000000000Z-dead", "extract")
    assert run.returncode == 2 and "no run with id '19990101T000000000Z-dead'" in run.stderr, run
    both = project.run("log", "--last", steps.run_id, "extract")
    assert both.returncode == 2 and "--last takes the place of the run id" in both.stderr, both


def test_log_of_a_task_whose_log_was_pruned_says_so(project: Project, steps: Result) -> None:
    again = project.json_run("-B", "extract")
    assert again.returncode == 0, again
    assert project.run("log", "--prune", "1").returncode == 0
    gone = project.run("log", steps.run_id, "extract")
    assert gone.returncode == 2 and "no longer exists" in gone.stderr and "--prune" in gone.stderr, gone
    assert project.run("log", again.run_id, "extract").stdout == "extracting\nwarn\n"


def test_log_of_a_task_shows_its_secret_masked(project: Project) -> None:
    project.flowfile("""\
        [tasks.upload]
        secrets = ["TOKEN"]
        run = "echo token=$TOKEN"
    """)
    run = project.json_run(env={"TOKEN": "s3cr3t-value"})
    assert run.returncode == 0, run
    shown = project.run("log", "--last", "upload")
    assert shown.returncode == 0 and shown.stdout == "token=***\n", shown


def test_on_failure_hook_is_told_each_failed_tasks_log_file(project: Project) -> None:
    project.write("hooks/record.sh", '#!/bin/sh\nprintf "%s\\n%s\\n" "$FLOWMAKE_FAILED" "$FLOWMAKE_FAILED_LOGS" > hook.txt\n')
    project.flowfile("""\
        [hooks]
        on_failure = "sh hooks/record.sh"

        [tasks.check]
        matrix = { study = ["S01", "S02"] }
        retries = 1
        run = "echo checked {study}; test {study} = S01"

        [tasks.upload]
        secrets = ["NOT_SET_ANYWHERE"]
        run = "echo never"
    """)
    run = project.json_run("-k")
    assert run.returncode == 1, run
    failed, logs = project.read("hook.txt").splitlines()
    pairs = dict(zip(failed.split(), logs.split()))
    assert pairs == {"check:S02": "check.S02.attempt2.log", "upload": "-"}, project.read("hook.txt")
    log_dir = project.path(f".flowmake/logs/{run.run_id}")
    assert (log_dir / pairs["check:S02"]).read_text() == "checked S02\n"
