"""Directory inputs and a task's own outputs, through the real CLI (issue 14, items 1 and 2).

A directory input ("src/") stands for every file under it, so it waits for
each task that declares an output inside it, as a glob input does, and for
a directory output that holds it or that it holds. A task whose input is,
holds or lies inside its own output can never be fresh: loading refuses it
(exit 2) in every command, naming the task, the path and the line.
"""

from __future__ import annotations

import re

import pytest
from conftest import Project


def write_counting_project(project: Project) -> None:
    # gen is slow and declared first: run at once with count (-j2), count would list src/ before gen.txt exists.
    project.write("src/a.txt", "a\n")
    project.flowfile("""\
        [tasks.gen]
        outputs = ["src/gen.txt"]
        run = "sleep 0.5; echo hi > src/gen.txt"

        [tasks.count]
        inputs = ["src/"]
        outputs = ["count.txt"]
        run = "ls src > count.txt"
    """)


def test_a_directory_input_waits_for_the_task_writing_inside_it(project: Project) -> None:
    write_counting_project(project)
    assert project.run("check").returncode == 0
    graph = project.run("graph")
    assert graph.returncode == 0, graph
    assert graph.lines == ["gen -> count"], graph
    first = project.json_run("-j2")
    assert first.returncode == 0, first
    assert first.started == ["gen", "count"], first
    assert project.read("count.txt").split() == ["a.txt", "gen.txt"]
    assert project.status()["count"]["state"] == "fresh"


def test_a_directory_input_that_only_tasks_fill_need_not_exist_yet(project: Project) -> None:
    project.flowfile("""\
        [tasks.gen]
        outputs = ["src/gen.txt"]
        run = "mkdir -p src && echo hi > src/gen.txt"

        [tasks.count]
        inputs = ["src/"]
        outputs = ["count.txt"]
        run = "ls src > count.txt"
    """)
    result = project.json_run("-j2")
    assert result.returncode == 0, result
    assert project.read("count.txt").split() == ["gen.txt"]


@pytest.mark.parametrize("inputs, outputs", [
    (["build/"], ["build/parts/"]),  # the input holds the other task's directory output
    (["build/parts/"], ["build/"]),  # the input lies inside the other task's directory output
])
def test_a_directory_input_waits_for_a_directory_output_it_holds_or_lies_in(
        project: Project, inputs: list, outputs: list) -> None:
    made = outputs[0]
    project.flowfile(f"""\
        [tasks.parts]
        outputs = {outputs!r}
        run = "sleep 0.5; mkdir -p build/parts && echo p > build/parts/p.txt"

        [tasks.list]
        inputs = {inputs!r}
        outputs = ["list.txt"]
        run = "find {inputs[0]} -type f | sort > list.txt"
    """.replace("'", '"'))
    assert project.run("graph").lines == ["parts -> list"], made
    result = project.json_run("-j2")
    assert result.returncode == 0, result
    assert result.started == ["parts", "list"]
    assert "build/parts/p.txt" in project.read("list.txt")


# -- a task's own outputs ------------------------------------------------------

OWN_OUTPUT_CASES = [
    pytest.param(["data.csv"], ["data.csv"], "input data.csv of task grow is also its own output", id="same-file"),
    pytest.param(["data/"], ["data/summary.txt"], "input data/ of task grow holds its own output data/summary.txt",
                 id="directory-holds-output"),
    pytest.param(["out/seed.txt"], ["out/"], "input out/seed.txt of task grow lies inside its own directory output out/",
                 id="input-inside-directory-output"),
    pytest.param(["out/"], ["out/"], "input out/ of task grow is also its own output", id="same-directory"),
]


@pytest.mark.parametrize("inputs, outputs, message", OWN_OUTPUT_CASES)
@pytest.mark.parametrize("command", [["check"], ["run", "--progress", "plain"], ["status"]])
def test_a_task_reading_its_own_output_is_refused_by_every_command(
        project: Project, inputs: list, outputs: list, message: str, command: list) -> None:
    project.write("data.csv", "header\n")
    project.write("data/raw.txt", "r\n")
    project.write("out/seed.txt", "s\n")
    project.flowfile(f"""\
        [tasks.ok]
        outputs = ["ok.txt"]
        run = "echo ok > ok.txt"

        [tasks.grow]
        inputs = {inputs!r}
        outputs = {outputs!r}
        run = "echo row >> data.csv"
    """.replace("'", '"'))
    result = project.run(*command)
    assert result.returncode == 2, result
    assert result.stdout == ""
    path = re.escape(str(project.path("Flowfile.toml")))
    assert re.search(rf"^{path}:6: error: {re.escape(message)}$", result.stderr, re.M), result
    assert "hint: a task that reads its own output is stale again after every run" in result.stderr
    assert "Traceback" not in result.stderr
    assert project.read("data.csv") == "header\n" and not project.exists("ok.txt")


def test_a_glob_input_leaves_the_tasks_own_outputs_out(project: Project) -> None:
    project.write("parts/a.txt", "a\n")
    project.write("parts/b.txt", "b\n")
    project.flowfile("""\
        [tasks.join]
        inputs = ["parts/*.txt"]
        outputs = ["parts/all.txt"]
        run = "cat {inputs} > parts/all.txt"
    """)
    first = project.json_run()
    assert first.returncode == 0, first
    assert project.read("parts/all.txt") == "a\nb\n"
    again = project.json_run()
    assert again.returncode == 0 and again.started == [], again  # parts/all.txt is not an input of its own
    assert project.read("parts/all.txt") == "a\nb\n"
