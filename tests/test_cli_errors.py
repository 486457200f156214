"""User mistakes through the real CLI (SPEC §1, §5): exit 2, one clear message.

Every error goes to stderr (stdout stays empty), names the Flowfile (and the
line, and for TOML syntax the column), carries no Python traceback, and
nothing runs: no task output and no log appears.
"""

from __future__ import annotations

import re

import pytest
from conftest import Project


def assert_user_error(project: Project, *args: str) -> str:
    """Run flowmake (default: `run`) and check the common shape of a user error; return stderr."""
    result = project.run(*(args or ("run", "--progress", "plain")))
    assert result.returncode == 2, result
    assert result.stdout == "", result
    assert "Traceback" not in result.stderr, result
    assert "Flowfile.toml" in result.stderr, result
    assert "error" in result.stderr
    assert not project.path(".flowmake/logs").exists() or not any(project.path(".flowmake/logs").iterdir())
    assert not project.exists("out.txt") and not project.exists("ran.txt")
    return result.stderr


def test_toml_syntax_error_gives_file_line_and_column(project: Project) -> None:
    project.flowfile("""\
        [tasks.ok]
        outputs = ["out.txt"]
        run = "echo > out.txt"

        [tasks.broken
        run = "touch ran.txt"
    """)
    err = assert_user_error(project)
    path = re.escape(str(project.path("Flowfile.toml")))
    assert re.search(rf"{path}:5:\d+", err), err


def test_unknown_task_key_suggests_the_closest_one(project: Project) -> None:
    project.flowfile("""\
        [tasks.a]
        outputs = ["out.txt"]
        run = "echo > out.txt"
        inptus = ["x.txt"]
    """)
    err = assert_user_error(project)
    assert "inptus" in err and "did you mean 'inputs'?" in err, err
    assert re.search(r"Flowfile\.toml:4", err), err


def test_unknown_top_level_table_suggests_the_closest_one(project: Project) -> None:
    project.flowfile("""\
        [flwo]
        name = "x"
        [tasks.a]
        outputs = ["out.txt"]
        run = "echo > out.txt"
    """)
    err = assert_user_error(project)
    assert "flwo" in err and "did you mean 'flow'?" in err, err


def test_wrong_type_is_an_error_naming_the_key(project: Project) -> None:
    project.flowfile("""\
        [tasks.a]
        outputs = "out.txt"
        run = "echo > out.txt"
    """)
    err = assert_user_error(project)
    assert "outputs" in err, err


def test_cycle_is_printed_as_a_path(project: Project) -> None:
    project.flowfile("""\
        [tasks.a]
        inputs = ["b.txt"]
        outputs = ["a.txt"]
        run = "touch ran.txt a.txt"

        [tasks.b]
        inputs = ["a.txt"]
        outputs = ["b.txt"]
        run = "touch ran.txt b.txt"
    """)
    err = assert_user_error(project)
    assert re.search(r"\ba -> b -> a\b|\bb -> a -> b\b", err), err


def test_cycle_through_after_is_printed_with_every_task(project: Project) -> None:
    project.flowfile("""\
        [tasks.a]
        after = ["c"]
        run = "touch ran.txt"
        [tasks.b]
        after = ["a"]
        run = "touch ran.txt"
        [tasks.c]
        after = ["b"]
        run = "touch ran.txt"
    """)
    err = assert_user_error(project)
    assert re.search(r"\b(a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)\b", err), err


def test_missing_input_names_the_task_and_path(project: Project) -> None:
    project.flowfile("""\
        [tasks.reader]
        inputs = ["data/missing.csv"]
        outputs = ["out.txt"]
        run = "cp data/missing.csv out.txt"
    """)
    err = assert_user_error(project)
    assert "reader" in err and "data/missing.csv" in err, err


def test_glob_matching_nothing_is_an_error(project: Project) -> None:
    project.flowfile("""\
        [tasks.reader]
        inputs = ["data/*.csv"]
        outputs = ["out.txt"]
        run = "cat data/*.csv > out.txt"
    """)
    err = assert_user_error(project)
    assert "reader" in err and "data/*.csv" in err, err


def test_duplicate_output_names_both_tasks(project: Project) -> None:
    project.flowfile("""\
        [tasks.one]
        outputs = ["out.txt"]
        run = "echo 1 > out.txt"
        [tasks.two]
        outputs = ["out.txt"]
        run = "echo 2 > out.txt"
    """)
    err = assert_user_error(project)
    assert "out.txt" in err and "one" in err and "two" in err, err


@pytest.mark.parametrize("path", ["sub/../../outside.txt", "/tmp/outside.txt"])
def test_path_escaping_the_root_is_an_error(project: Project, path: str) -> None:
    project.flowfile(f"""\
        [tasks.escape]
        outputs = ["{path}"]
        run = "touch ran.txt"
    """)
    err = assert_user_error(project)
    assert path in err and "escape" in err, err
    assert not (project.root.parent / "outside.txt").exists()


def test_input_escaping_the_root_is_an_error(project: Project) -> None:
    (project.root.parent / "secret.txt").write_text("x\n")
    project.flowfile("""\
        [tasks.peek]
        inputs = ["../secret.txt"]
        outputs = ["out.txt"]
        run = "cp ../secret.txt out.txt"
    """)
    err = assert_user_error(project)
    assert "../secret.txt" in err, err


def test_unknown_placeholder_lists_the_names_that_exist(project: Project) -> None:
    project.flowfile("""\
        [vars]
        raw = "data"
        [tasks.a]
        outputs = ["out.txt"]
        run = "cp {rwa}/x out.txt"
    """)
    err = assert_user_error(project)
    assert "{rwa}" in err, err
    for known in ("raw", "inputs", "outputs"):
        assert known in err, err
    assert "did you mean 'raw'?" in err


def test_bad_task_name_is_an_error(project: Project) -> None:
    project.flowfile("""\
        [tasks."9lives"]
        outputs = ["out.txt"]
        run = "echo > out.txt"
    """)
    err = assert_user_error(project)
    assert "9lives" in err, err


def test_missing_flowfile_is_a_usage_error_with_a_hint(project: Project) -> None:
    result = project.run("run")
    assert result.returncode == 2, result
    assert "Flowfile.toml" in result.stderr and "init" in result.stderr, result
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_bad_option_values_are_usage_errors(project: Project) -> None:
    project.flowfile('[tasks.a]\nrun = "touch ran.txt"\n')
    for args in (("run", "--progress", "fancy"), ("run", "-j", "0"), ("run", "--no-such-option")):
        result = project.run(*args)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr and result.stderr.strip(), result
    assert not project.exists("ran.txt")


def test_check_prints_problems_of_every_kind_together(project: Project) -> None:
    # A key typo, a placeholder, a duplicate output, a missing input and a
    # cycle: independent mistakes, so `check` must report all of them at once.
    project.flowfile("""\
        [tasks.a]
        outputs = ["out.txt"]
        run = "echo {nope} > out.txt"
        [tasks.b]
        outputs = ["out.txt"]
        run = "touch ran.txt"
        [tasks.c]
        inputs = ["absent.txt"]
        run = "touch ran.txt"
        [tasks.d]
        inputs = ["e.txt"]
        outputs = ["d.txt"]
        run = "touch ran.txt d.txt"
        [tasks.e]
        inputs = ["d.txt"]
        outputs = ["e.txt"]
        hlep = "typo"
        run = "touch ran.txt e.txt"
    """)
    err = assert_user_error(project, "check")
    assert "{nope}" in err, err
    assert "hlep" in err, err
    assert "declared by both" in err or ("task a" in err and "task b" in err), err
    assert "absent.txt" in err, err
    assert re.search(r"\b(d -> e -> d|e -> d -> e)\b", err), err


@pytest.mark.parametrize("text", ["", "# nothing yet\n", '[flow]\nname = "x"\n', "[tasks]\n"],
                         ids=["empty", "comment", "flow-only", "empty-tasks-table"])
@pytest.mark.parametrize("command", [["check"], ["run", "--progress", "plain"], ["status"], []])
def test_a_flowfile_without_tasks_says_so(project: Project, text: str, command: list) -> None:
    project.write("Flowfile.toml", text, dedent=False)
    result = project.run(*command)
    assert result.returncode == 2, result
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert "error: the Flowfile defines no tasks" in result.stderr, result
    assert "flowmake init" in result.stderr


def test_a_flowfile_saved_with_a_byte_order_mark_loads(project: Project) -> None:
    project.path("Flowfile.toml").write_bytes(
        b'\xef\xbb\xbf[tasks.hello]\noutputs = ["out.txt"]\nrun = "echo hi > out.txt"\noops = 1\n')
    err = assert_user_error(project, "check")
    assert re.search(r"Flowfile\.toml:4:1: error: task hello: unknown key `oops`", err), err  # lines as written
    project.path("Flowfile.toml").write_bytes(b'\xef\xbb\xbf[tasks.hello]\noutputs = ["out.txt"]\n'
                                              b'run = "echo hi > out.txt"\n')
    assert project.run("check").returncode == 0
    result = project.run("run", "--progress", "plain")
    assert result.returncode == 0, result
    assert project.read("out.txt") == "hi\n"


FORCED = """\
    [flow]
    default = ["report"]

    [tasks.extract]
    outputs = ["data.txt"]
    run = "echo data > data.txt"

    [tasks.report]
    inputs = ["data.txt"]
    outputs = ["report.txt"]
    run = "cp data.txt report.txt"

    [tasks.other]
    outputs = ["other.txt"]
    run = "echo other > other.txt"
"""


@pytest.mark.parametrize("targets, where", [(["report"], "the targets: report"),
                                            ([], "the [flow] default targets: report")])
def test_force_of_a_task_the_targets_do_not_select_is_a_usage_error(
        project: Project, targets: list, where: str) -> None:
    project.flowfile(FORCED)
    result = project.run("run", "--progress", "plain", *targets, "--force", "other")
    assert result.returncode == 2, result
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert f"error: --force other: other is not among the tasks this run selects ({where})" in result.stderr
    assert "hint: add it as a target as well: `flowmake run report other --force other`" in result.stderr
    assert not project.exists("other.txt") and not project.exists("report.txt")


def test_force_of_a_task_the_targets_need_runs_it_again(project: Project) -> None:
    project.flowfile(FORCED)
    assert project.json_run("report").returncode == 0
    again = project.json_run("report", "--force", "extract")
    assert again.returncode == 0, again
    assert [r["kind"] for r in again.reasons("extract")] == ["forced"]
    assert project.json_run("report", "other", "--force", "other").started == ["other"]
