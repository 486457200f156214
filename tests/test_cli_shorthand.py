"""make's habits: `flowmake TARGET`, `flowmake -n`, `flowmake -j4 package`,
`flowmake -k -B` are `flowmake run ...`; a command's name wins over a task's;
`-f` and `-C` work after the command too; every command's help says so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Project, shortcut_test

from flowmake import __main__ as entry
from flowmake.cli import shorthand

PIPELINE = """\
    [flow]
    name = "habits"

    [tasks.gen]
    inputs = ["src.txt"]
    outputs = ["build/a.txt"]
    run = "cp src.txt build/a.txt"

    [tasks.package]
    inputs = ["build/a.txt"]
    outputs = ["dist/p.txt"]
    run = "cat build/a.txt > dist/p.txt"

    [tasks.broken]
    run = "exit 3"

    [tasks.after_broken]
    after = ["broken"]
    outputs = ["late.txt"]
    run = "echo late > late.txt"
"""

# A task named like a command: `flowmake check` must stay the command.
SHADOWING = """\
    [tasks.gen]
    outputs = ["a.txt"]
    run = "echo a > a.txt"

    [tasks.check]
    inputs = ["a.txt"]
    outputs = ["checked.txt"]
    run = "grep -q a a.txt && echo ok > checked.txt"
"""


def pipeline(project: Project) -> None:
    project.flowfile(PIPELINE)
    project.write("src.txt", "one\n")


def age(project: Project) -> None:
    """Backdate the project's files, so that the stat cache vouches for them (and a snapshot is written)."""
    for path in project.root.rglob("*"):
        if ".flowmake" not in path.parts and path.is_file():
            os.utime(path, (1_000_000_000, 1_000_000_000))


def events(stdout: str) -> list:
    return [json.loads(line) for line in stdout.splitlines()]


def test_a_bare_target_runs_it_and_what_it_needs(project: Project) -> None:
    pipeline(project)
    result = project.run("--progress", "json", "package")
    assert result.returncode == 0, result
    assert result.one("run_started")["targets"] == ["package"]
    assert result.ran == ["gen", "package"]
    assert project.read("dist/p.txt") == "one\n"


def test_several_bare_targets_and_a_matrix_free_output_path(project: Project) -> None:
    pipeline(project)
    result = project.run("gen", "dist/p.txt", "--progress", "json")
    assert result.returncode == 0, result
    assert result.ran == ["gen", "package"]


def test_dash_n_alone_is_a_dry_run(project: Project) -> None:
    pipeline(project)
    result = project.run("-n", "package")
    assert result.returncode == 0, result
    assert result.lines[0] == "flowmake: habits — dry run of 2 tasks"
    assert [line.split()[:2] for line in result.lines[1:] if line.startswith("run ")] == [
        ["run", "gen"], ["run", "package"]]
    assert not project.exists("build/a.txt")


def test_dash_j4_with_a_target_runs_four_at_a_time(project: Project) -> None:
    pipeline(project)
    result = project.run("-j4", "package", "--progress", "json")
    assert result.returncode == 0, result
    assert result.one("run_started")["jobs"] == 4
    assert result.ran == ["gen", "package"]


def test_dash_k_dash_b_keeps_going_and_forces_every_task(project: Project) -> None:
    pipeline(project)
    assert project.run("package").returncode == 0
    result = project.run("-k", "-B", "--progress", "json")
    assert result.returncode == 1, result
    assert result.statuses == {"gen": "ok", "package": "ok", "broken": "failed", "after_broken": "skipped"}
    assert result.reasons("gen")[0]["kind"] == "forced"


def test_bare_flowmake_still_runs_everything(project: Project) -> None:
    pipeline(project)
    result = project.run("-k")
    assert result.returncode == 1, result
    assert result.lines[-1].startswith("failed: 2 ok, 1 failed, 1 skipped")


def test_the_run_records_the_arguments_as_typed(project: Project) -> None:
    pipeline(project)
    assert project.run("-j4", "package").returncode == 0
    runs = json.loads(project.run("log", "--json", "--limit", "1").stdout)
    shown = json.loads(project.run("log", runs[0]["id"], "--json").stdout)
    assert shown["argv"] == ["-j4", "package"]


def test_a_misspelt_command_is_an_unknown_target_with_exit_2(project: Project) -> None:
    pipeline(project)
    result = project.run("stauts")
    assert result.returncode == 2, result
    assert result.err_lines[1:] == ["  hint: did you mean the command `flowmake status`? (a first word that is not a "
                                    "command is a target of `flowmake run`)"], result
    assert "unknown target 'stauts'" in result.err_lines[0]
    near_a_task = project.run("packge")  # a task's name is the better guess
    assert near_a_task.err_lines[1:] == ["  hint: did you mean 'package'?"], near_a_task


# -- a task named like a command ---------------------------------------------------


def test_a_command_wins_over_a_task_of_the_same_name_and_run_reaches_the_task(project: Project) -> None:
    project.flowfile(SHADOWING)
    warning = ("warning: task 'check' has the name of a command: `flowmake check` runs the command; "
               "`flowmake run check` runs the task (or rename it)")
    checked = project.run("check")
    assert checked.returncode == 0, checked
    assert checked.lines == ["ok: Flowfile.toml is valid: 2 tasks"]
    assert checked.err_lines == [warning]
    assert not project.exists("checked.txt")  # the command ran, not the task

    ran = project.run("run", "check", "--progress", "plain")
    assert ran.returncode == 0, ran
    assert project.read("checked.txt") == "ok\n"
    assert ran.err_lines == [warning]


@shortcut_test
def test_the_shadowing_warning_survives_the_noop_fast_path(project: Project) -> None:
    project.flowfile(SHADOWING)
    assert project.run("run").returncode == 0
    age(project)
    assert project.run("run").returncode == 0
    assert project.exists(".flowmake/noop.snapshot")
    result = project.run("run", "--progress", "json")
    assert result.returncode == 0, result
    notices = [e["message"] for e in result.of_kind("notice")]
    assert notices == [shorthand.shadow_warning("check")]


def test_no_warning_when_no_task_is_named_like_a_command(project: Project) -> None:
    pipeline(project)
    assert project.run("check").stderr == ""
    assert project.run("package").stderr == ""


# -- global options after the command ------------------------------------------------


def test_directory_option_after_the_command(project: Project, tmp_path: Path) -> None:
    pipeline(project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    status = project.run("status", "-C", str(project.root), cwd=elsewhere)
    assert status.returncode == 0, status
    assert status.lines[-1] == "4 tasks: 0 fresh, 3 stale, 0 blocked, 1 always"
    ran = project.run("run", "package", "--directory", str(project.root), "--progress", "json", cwd=elsewhere)
    assert ran.returncode == 0, ran
    assert ran.ran == ["gen", "package"]
    graph = project.run("graph", "--format", "dot", f"--directory={project.root}", cwd=elsewhere)
    assert graph.returncode == 0, graph
    assert '"gen" -> "package";' in graph.stdout
    verify = project.run("audit", "verify", "-C", str(project.root), cwd=elsewhere)
    assert verify.returncode == 0, verify


def test_file_option_after_the_command(project: Project) -> None:
    project.write("other.toml", """\
        [tasks.only]
        outputs = ["only.txt"]
        run = "echo only > only.txt"
    """)
    result = project.run("run", "-f", "other.toml", "--progress", "json")
    assert result.returncode == 0, result
    assert result.ran == ["only"]
    listed = project.run("list", "--file", "other.toml")
    assert listed.lines == ["only"]
    bare = project.run("only", "-f", "other.toml", "-B")  # shorthand and the option after it
    assert bare.returncode == 0, bare


def test_a_global_option_after_dash_dash_is_a_target(project: Project) -> None:
    pipeline(project)
    result = project.run("run", "--", "-C")
    assert result.returncode == 2, result
    assert "unknown target '-C'" in result.stderr


def test_a_global_option_without_its_value_is_a_usage_error(project: Project) -> None:
    pipeline(project)
    result = project.run("status", "-C")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr


# -- help ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["run"], ["status"], ["list"], ["graph"], ["clean"], ["check"], ["init"],
                                     ["log"], ["lineage"], ["audit"], ["audit", "verify"], ["audit", "export"]])
def test_every_help_shows_the_make_style_shorthand(project: Project, command: list) -> None:
    result = project.run(*command, "--help", env={"COLUMNS": "400"})
    assert result.returncode == 0, result
    text = " ".join(result.stdout.split())
    assert "Make-style shorthand: `flowmake TARGET...`, `flowmake -n`, `flowmake -j4 package` mean" in text, text
    assert "-f FILE and -C DIR go before or after the command." in text


def test_shorthand_knows_every_command_of_the_cli() -> None:
    from flowmake.cli.app import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    assert names == shorthand.COMMANDS


# -- the rewrite itself -----------------------------------------------------------


@pytest.mark.parametrize("typed, expanded", [
    ([], []),
    (["package"], ["run", "package"]),
    (["-n"], ["run", "-n"]),
    (["-j4", "package"], ["run", "-j4", "package"]),
    (["-C", "d", "-k", "-B"], ["-C", "d", "run", "-k", "-B"]),
    (["-fF.toml", "x"], ["-fF.toml", "run", "x"]),
    (["status", "-C", "d", "x"], ["-C", "d", "status", "x"]),
    (["run", "-f", "x.toml", "-n"], ["-f", "x.toml", "run", "-n"]),
    (["audit", "export", "--directory=d", "-o", "o.json"], ["--directory=d", "audit", "export", "-o", "o.json"]),
    (["run", "--", "-C", "d"], ["run", "--", "-C", "d"]),
    (["status", "-C"], ["status", "-C"]),
    (["--help"], ["--help"]),
    (["-C", "d", "--version"], ["-C", "d", "--version"]),
    (["check"], ["check"]),
])
def test_expand(typed: list, expanded: list) -> None:
    assert shorthand.expand(typed) == expanded
    assert shorthand.expand(expanded) == expanded  # applying it twice changes nothing


# -- the no-op fast path serves the shorthand ----------------------------------------


@pytest.mark.parametrize("argv", [["--progress", "json"], ["--progress", "json", "package"]])
@shortcut_test
def test_bare_flowmake_and_a_bare_target_take_the_noop_fast_path(project: Project, monkeypatch, capsys,
                                                                   argv: list) -> None:
    project.flowfile(PIPELINE.split("    [tasks.broken]")[0])  # no task that always runs
    project.write("src.txt", "one\n")
    targets = argv[2:]
    assert project.run(*targets).returncode == 0
    age(project)
    assert project.run(*targets).returncode == 0  # all fresh, and trusted: leaves the snapshot
    assert project.exists(".flowmake/noop.snapshot")

    def full_path(*args: object, **kwargs: object) -> int:
        raise AssertionError("the full path ran")

    monkeypatch.setattr("flowmake.cli.commands.run_parsed", full_path)
    monkeypatch.setattr("flowmake.cli.app.main", full_path)
    monkeypatch.chdir(project.root)
    capsys.readouterr()
    assert entry.main(argv) == 0
    out = events(capsys.readouterr().out)
    assert out[-1]["event"] == "run_finished" and out[-1]["result"] == "success"
    assert {e["status"] for e in out if e["event"] == "task_finished"} == {"fresh"}
