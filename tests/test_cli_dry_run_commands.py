"""`flowmake -n` prints the commands that would run, as make -n does: expanded,
secrets masked, beside the reasons, in the plain and tree plans and in JSON."""

from __future__ import annotations

import json

from conftest import Project
from test_cli_commands import run_in_pty, strip_ansi

TOKEN = "tok-7Hq2-SECRET-91xZ"

PIPELINE = """\
    [vars]
    build = "build"

    [tasks.gen]
    inputs = ["src.txt"]
    outputs = ["{build}/a.txt"]
    run = "cp {inputs} {outputs}"

    [tasks.package]
    inputs = ["{build}/a.txt"]
    outputs = ["dist/p.txt"]
    run = '''
    mkdir -p dist
    cat {inputs} > {outputs}
    '''

    [tasks.upload]
    inputs = ["dist/p.txt"]
    outputs = ["uploaded.txt"]
    secrets = ["API_TOKEN"]
    run = "echo curl -H 'token: %s' > uploaded.txt"

    [tasks.lonely]
    outputs = ["lonely.txt"]
    run = "echo alone > lonely.txt"

    [tasks.all]
    after = ["upload", "lonely"]
""" % TOKEN


def built_then_edited(project: Project) -> None:
    """Everything built once; then src.txt changes, so gen is stale and package and upload may run."""
    project.flowfile(PIPELINE)
    project.write("src.txt", "one\n")
    assert project.run("run", env={"API_TOKEN": TOKEN}).returncode == 0
    project.write("src.txt", "two\n")


def test_plain_dry_run_prints_each_command_below_its_reasons(project: Project) -> None:
    built_then_edited(project)
    result = project.run("-n", "--progress", "plain", env={"API_TOKEN": TOKEN})
    assert result.returncode == 0, result
    assert result.lines[1:] == [
        "run    gen              input changed: src.txt",
        "                        $ cp src.txt build/a.txt",
        "maybe  package          may run after: gen",
        "                        $ mkdir -p dist",
        "                          cat build/a.txt > dist/p.txt",
        "maybe  upload           may run after: package",
        "                        $ echo curl -H 'token: ***' > uploaded.txt",
        "maybe  all              may run after: upload",  # a group: nothing of its own to run
        "dry run: 1 to run, 3 may run after them, 1 fresh (nothing was run)",
    ]
    assert TOKEN not in result.stdout + result.stderr
    assert project.read("src.txt") == "two\n" and project.read("build/a.txt") == "one\n"  # nothing ran


def test_json_plan_carries_the_command_of_what_would_or_may_run(project: Project) -> None:
    built_then_edited(project)
    result = project.run("-n", "--progress", "json", env={"API_TOKEN": TOKEN})
    assert result.returncode == 0, result
    plan = {row["task"]: row for row in result.one("run_started")["plan"]}
    assert plan["gen"]["command"] == "cp src.txt build/a.txt"
    assert plan["package"]["command"] == "mkdir -p dist\ncat build/a.txt > dist/p.txt\n"
    assert plan["upload"]["command"] == "echo curl -H 'token: ***' > uploaded.txt"
    assert plan["lonely"]["command"] is None  # fresh: it will not run
    assert plan["all"]["command"] is None  # a group of tasks has no command of its own
    assert TOKEN not in result.stdout


def test_tree_dry_run_at_a_terminal_shows_the_commands(project: Project) -> None:
    built_then_edited(project)
    code, output = run_in_pty(project, "-n", env={"API_TOKEN": TOKEN})
    assert code == 0, output
    text = strip_ansi(output)
    lines = [line.rstrip() for line in text.replace("\r", "").splitlines()]
    assert "├── ▶ gen      input changed: src.txt" in lines, text
    assert "│   └── $ cp src.txt build/a.txt" in lines, text
    assert "│   └── $ echo curl -H 'token: ***' > uploaded.txt" in lines or \
        "    └── $ echo curl -H 'token: ***' > uploaded.txt" in lines, text
    assert TOKEN not in text


def test_never_run_project_dry_run_lists_every_command(project: Project) -> None:
    project.flowfile(PIPELINE)
    project.write("src.txt", "one\n")
    result = project.run("-n", "--progress", "json", env={"API_TOKEN": TOKEN})
    commands = {row["task"]: row["command"] for row in result.one("run_started")["plan"]}
    assert commands == {
        "gen": "cp src.txt build/a.txt",
        "package": "mkdir -p dist\ncat build/a.txt > dist/p.txt\n",
        "upload": "echo curl -H 'token: ***' > uploaded.txt",
        "lonely": "echo alone > lonely.txt",
        "all": None,
    }
    assert json.dumps(commands).count("***") == 1
