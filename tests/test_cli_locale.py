"""Any locale: paths are bytes on POSIX, the Flowfile is UTF-8, and flowmake never crashes printing.

The Latin-1 tests need the locale on the machine (`.ci/run` makes it with
localedef); names on disk that are not UTF-8 are tested in the suite's own
C.UTF-8 locale.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import Project

LATIN1 = "en_US.ISO-8859-1"


def _have_latin1() -> bool:
    listed = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.lower().split()
    return "en_us.iso88591" in listed


needs_latin1 = pytest.mark.skipif(not _have_latin1(), reason=(
    f"locale {LATIN1} is not installed (make it with `localedef -i en_US -f ISO-8859-1 {LATIN1}`, as .ci/run does)"))


def latin1(project: Project, *args: str):
    """flowmake under the Latin-1 locale, as a user's terminal would run it (its streams read as Latin-1)."""
    env = {k: v for k, v in project.env().items() if k != "PYTHONIOENCODING"}
    env["LC_ALL"] = LATIN1
    done = subprocess.run([sys.executable, "-m", "flowmake", *args], cwd=project.root, env=env,
                          capture_output=True, timeout=60)
    result = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("latin-1"),
                                         done.stderr.decode("latin-1"))
    for stream in (result.stdout, result.stderr):
        assert "Traceback" not in stream and "internal error" not in stream, result
    return result


def utf8_named_project(project: Project, *, fail: bool = False) -> None:
    project.flowfile(f"""
        [tasks.summary]
        inputs = ["données.csv"]
        outputs = ["résumé.txt"]
        run = "cat données.csv > résumé.txt; echo 'café — ☕'{'; exit 3' if fail else ''}"
    """)
    project.write("données.csv", "étude,S01\n")


@needs_latin1
def test_under_a_latin1_locale_inputs_with_utf8_names_are_found_and_the_run_succeeds(project: Project) -> None:
    utf8_named_project(project)
    result = latin1(project, "run", "--progress", "plain")
    assert result.returncode == 0, result
    assert project.read("résumé.txt") == "étude,S01\n"
    again = latin1(project, "run", "--progress", "plain")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again
    status = latin1(project, "status", "--exit-code")
    assert status.returncode == 0, status


@needs_latin1
def test_under_a_latin1_locale_output_is_in_the_terminals_encoding_with_the_rest_replaced(project: Project) -> None:
    utf8_named_project(project)
    assert latin1(project, "run").returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONIOENCODING"}
    env["LC_ALL"] = LATIN1
    lineage = subprocess.run([sys.executable, "-m", "flowmake", "lineage", "résumé.txt"], cwd=project.root,
                             capture_output=True, env=env)
    assert lineage.returncode == 0, lineage
    assert "résumé.txt".encode("latin-1") in lineage.stdout, lineage  # é as the terminal shows it
    assert b"\xc3" not in lineage.stdout and b"\xe2" not in lineage.stdout, lineage  # no UTF-8 bytes
    assert b"?" in lineage.stdout  # the tree's lines, which Latin-1 lacks, replaced


@needs_latin1
@pytest.mark.parametrize("command", [["log"], ["lineage", "résumé.txt"], ["audit", "verify"], ["list"],
                                     ["graph"], ["check"], ["status"]])
def test_under_a_latin1_locale_every_command_answers_without_a_crash(project: Project, command) -> None:
    utf8_named_project(project)
    assert latin1(project, "run").returncode == 0
    result = latin1(project, *command)
    assert result.returncode == 0, result


@needs_latin1
def test_under_a_latin1_locale_a_failed_task_is_exit_1_and_nothing_else(project: Project) -> None:
    utf8_named_project(project, fail=True)
    result = latin1(project, "run", "--progress", "plain")
    assert result.returncode == 1, result
    assert "exit code 3" in result.stderr, result


def test_a_glob_matching_a_file_name_that_is_not_utf8_is_exit_2_naming_it(project: Project) -> None:
    project.flowfile("""
        [tasks.all]
        inputs = ["raw/*.csv"]
        outputs = ["all.txt"]
        run = "cat raw/*.csv > all.txt"
    """)
    project.write("raw/ok.csv", "a\n")
    (project.root / "raw").joinpath(os.fsdecode(b"caf\xe9.csv")).write_bytes(b"latin\n")
    for command in ("check", "run", "status"):
        result = project.run(command)
        assert result.returncode == 2, result
        assert "Flowfile.toml:3: error: input glob raw/*.csv of task all matches raw/caf\\xe9.csv, " \
               "whose name is not UTF-8" in result.stderr, result
        assert "hint: flowmake records every path as UTF-8 text" in result.stderr, result


def test_a_directory_input_holding_a_file_name_that_is_not_utf8_runs_and_notices_its_change(
        project: Project) -> None:
    project.flowfile("""
        [tasks.count]
        inputs = ["raw/"]
        outputs = ["count.txt"]
        run = "cat raw/* > count.txt"
    """)
    project.write("raw/ok.csv", "a\n")
    odd = (project.root / "raw").joinpath(os.fsdecode(b"caf\xe9.csv"))
    odd.write_bytes(b"one\n")
    first = project.json_run()
    assert first.returncode == 0 and first.ran == ["count"], first
    assert project.json_run().started == []
    odd.write_bytes(b"two, longer\n")
    changed = project.json_run()
    assert changed.returncode == 0 and changed.ran == ["count"], changed
    assert sorted(project.read("count.txt").splitlines()) == ["a", "two, longer"]
    lineage = project.run("lineage", "count.txt", "--json")
    assert lineage.returncode == 0 and '"raw/"' in lineage.stdout, lineage


def test_an_internal_error_is_reported_even_when_the_terminal_cannot_show_its_text(tmp_path) -> None:
    code = ("import sys; from flowmake.cli.guard import exit_code_of\n"
            "def boom():\n    raise ValueError('caf\\u00e9 \\u2014 \\u2615')\n"
            "sys.exit(exit_code_of(boom))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 70, done
    assert b"internal error" in done.stderr and b"Traceback" not in done.stderr, done
    report = done.stderr.split(b"traceback written to ")[1].strip().decode()
    with open(report, encoding="utf-8") as f:
        assert "ValueError: café — ☕" in f.read()
