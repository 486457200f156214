"""GitHub Actions and GitLab CI output (`--ci`, GITHUB_ACTIONS, GITLAB_CI; docs/ci.md).

The real flowmake runs with the services' variables set, as their runners
set them, and the log and the step summary are read back line by line.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import Project
from flowmake.report.ci import resolve

FLOWFILE = """
    [flow]
    name = "study"

    [tasks.extract]
    outputs = ["raw.csv"]
    run = "echo reading; echo id > raw.csv"

    [tasks.validate]
    matrix = { study = ["S01", "S02"] }
    inputs = ["raw.csv"]
    secrets = ["API_TOKEN"]
    run = "echo checking {study} with $API_TOKEN; echo '::error::forged by the task'; test {study} = S01"

    [tasks.package]
    after = ["validate"]
    run = "echo packaging"
"""


def github(project: Project, *args: str, summary: bool = True) -> tuple:
    env = {"GITHUB_ACTIONS": "true", "API_TOKEN": "s3cr3t-value"}
    path = project.root.parent / "step_summary.md"
    if summary:
        env["GITHUB_STEP_SUMMARY"] = str(path)
    return project.run("run", *args, env=env), path


def test_github_groups_each_tasks_output_and_fences_it_from_workflow_commands(project: Project) -> None:
    project.flowfile(FLOWFILE)
    result, _ = github(project, "-k")
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("::group::extract: ok after "))
    token = re.fullmatch(r"::stop-commands::([0-9a-f]{16})", lines[start + 1])
    assert token, lines[start + 1]
    assert lines[start + 2:start + 5] == ["reading", f"::{token.group(1)}::", "::endgroup::"]
    # The task's own `::error::` line is inside a fence: GitHub shows it as text.
    s02 = next(i for i, l in enumerate(lines) if l.startswith("::group::validate:S02: failed after "))
    fence = lines[s02 + 1].split("::")[2]
    assert lines[s02 + 2:s02 + 6] == ["checking S02 with ***", "::error::forged by the task", f"::{fence}::",
                                      "::endgroup::"]


def test_github_annotates_each_failed_task_at_its_table_and_masks_secrets(project: Project) -> None:
    project.flowfile(FLOWFILE)
    result, _ = github(project, "-k")
    errors = [l for l in result.stdout.splitlines() if l.startswith("::error ")]
    assert len(errors) == 1, result
    assert errors[0].startswith("::error file=Flowfile.toml,line=9,title=flowmake%3A task validate%3AS02 failed::"
                                "validate:S02 failed (exit code 1); log: .flowmake/logs/")
    assert errors[0].endswith("%0Achecking S02 with ***%0A::error::forged by the task")
    assert result.stdout.splitlines()[0] == "::add-mask::s3cr3t-value"
    assert "s3cr3t-value" not in result.stdout.replace("::add-mask::s3cr3t-value", "") + result.stderr


def test_github_fences_a_failed_tasks_tail_on_stderr_too(project: Project) -> None:
    project.flowfile(FLOWFILE)
    result, _ = github(project, "-k")
    err = result.stderr.splitlines()
    at = err.index("::error::forged by the task")
    fence = re.fullmatch(r"::stop-commands::([0-9a-f]{16})", err[at - 3])
    assert fence and err[at - 2].startswith("--- validate:S02 failed (exit code 1)"), err
    assert err[at + 1] == f"::{fence.group(1)}::"


def test_github_warnings_are_warning_commands(project: Project) -> None:
    project.flowfile("""
        [tasks.check]
        run = "true"
    """)
    result, _ = github(project)
    assert result.returncode == 0, result
    assert "::warning title=flowmake::task 'check' has the name of a command" in result.stdout


def test_github_step_summary_has_result_counts_a_table_and_the_failed_tails(project: Project) -> None:
    project.flowfile(FLOWFILE)
    result, path = github(project, "-k")
    text = path.read_text()
    assert text.startswith("### ❌ flowmake: study — failed\n\nfailed: 2 ok, 1 failed, 1 skipped in ")
    rows = [l for l in text.splitlines() if l.startswith("| `")]
    assert [r.split(" | ")[:2] for r in rows] == [
        ["| `extract`", "ok"], ["| `validate:S01`", "ok"], ["| `validate:S02`", "**failed** (exit code 1)"],
        ["| `package`", "skipped"]]
    assert rows[0].split(" | ")[2] == "never run"
    assert "<details open><summary>validate:S02: last lines of the log (.flowmake/logs/" in text
    assert "checking S02 with ***" in text and "s3cr3t" not in text
    # Appended, as GitHub expects of every step: a second run adds its own summary.
    github(project, "-k")
    assert path.read_text().count("### ❌ flowmake: study") == 2


def test_gitlab_folds_each_tasks_output_in_a_section_open_when_it_failed(project: Project) -> None:
    project.flowfile(FLOWFILE)
    result = project.run("run", "-k", env={"GITLAB_CI": "true", "API_TOKEN": "s3cr3t-value"})
    assert result.returncode == 1, result
    out = result.stdout  # read as text, so the \r after each marker reads as a line end
    ok = re.search(r"\x1b\[0Ksection_start:\d+:(flowmake_\d+_extract)\[collapsed=true\]\n\x1b\[0Kextract: ok after "
                   r"[^\n]*\nreading\n\x1b\[0Ksection_end:\d+:(flowmake_\d+_extract)\n\x1b\[0K\n", out)
    assert ok and ok.group(1) == ok.group(2), out
    assert re.search(r"section_start:\d+:flowmake_\d+_validate_S02\[collapsed=false\]", out), out
    assert "::group::" not in out


def test_auto_follows_the_services_variables_but_never_at_a_terminal() -> None:
    assert resolve("auto", {"GITHUB_ACTIONS": "true"}, terminal=False) == "github"
    assert resolve("auto", {"GITHUB_ACTIONS": "true"}, terminal=True) == "none"
    assert resolve("auto", {"GITLAB_CI": "true"}, terminal=False) == "gitlab"
    assert resolve("auto", {"GITHUB_ACTIONS": "false", "CI": "true"}, terminal=False) == "none"
    assert resolve("github", {}, terminal=True) == "github"  # asked for by name: given


def test_no_ci_output_with_ci_none_or_in_json(project: Project) -> None:
    project.flowfile(FLOWFILE)
    result, path = github(project, "-k", "--ci", "none")
    assert not any(line.startswith("::") for line in result.stdout.splitlines()) and not path.exists(), result
    result, path = github(project, "-k", "--progress", "json")
    assert all(line.startswith("{") for line in result.stdout.splitlines()), result
    assert path.exists()  # the summary is a file, not stdout: JSON runs get it too


def test_ci_github_works_outside_github_too(project: Project) -> None:
    project.flowfile("""
        [tasks.a]
        run = "echo hi"
    """)
    result = project.run("run", "--ci", "github")
    assert "::group::a: ok after " in result.stdout, result


def test_an_unknown_ci_value_is_exit_2_with_the_choices(project: Project) -> None:
    project.flowfile("""
        [tasks.a]
        outputs = ["ran.txt"]
        run = "touch ran.txt"
    """)
    result = project.run("run", "--ci", "jenkins")
    assert result.returncode == 2, result
    assert result.stderr == "error: unknown --ci value 'jenkins'\n  hint: use one of: auto, github, gitlab, none\n"
    assert not project.exists("ran.txt")


def test_a_no_op_under_github_still_writes_the_summary(project: Project) -> None:
    """The no-op fast path has no CI output, so it leaves CI runs to the full path."""
    project.flowfile("""
        [tasks.a]
        inputs = ["in.txt"]
        outputs = ["out.txt"]
        run = "cp in.txt out.txt"
    """)
    project.write("in.txt", "x\n")
    assert project.run("run").returncode == 0
    result, path = github(project)
    assert result.returncode == 0 and "nothing to do" in result.stdout, result
    assert "### ✅ flowmake:" in path.read_text() and Path(path).read_text().count("| `") == 0
