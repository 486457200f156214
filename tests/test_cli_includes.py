"""`[flow] include` through the real CLI (issue 14, item 15).

Included files add vars, env and tasks as if written in the Flowfile; every
path is relative to the project root; a glob includes its sorted matches;
nested includes are read once each and a cycle is exit 2. A name declared in
two files is an error naming both files and lines, and every message names
the file it is about. The included files are part of the Flowfile: their
edits are seen by the load cache and by the no-op fast path, and the
Flowfile hash a run records covers them.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import Project, kinds, shortcut_test

from flowmake.cli.fastpath import try_noop

MAIN = """\
    [flow]
    include = ["config/studies.toml", "config/tasks.toml"]

    [env]
    LANG_OF_REPORT = "en"

    [tasks.package]
    inputs = ["build/{studies}.csv"]
    outputs = ["dist/all.csv"]
    run = "cat {inputs} > {outputs}; echo $SITE_NAME >> {outputs}"
"""
STUDIES = """\
    [vars]
    studies = ["S01", "S02"]
    prefix = "study"
"""
TASKS = """\
    [env]
    SITE_NAME = "lab"

    [tasks.extract]
    matrix = { study = "{studies}" }
    outputs = ["build/{study}.csv"]
    run = "echo {prefix} {study} > {outputs}"
"""


def included_project(project: Project) -> None:
    project.flowfile(MAIN)
    project.write("config/studies.toml", STUDIES)
    project.write("config/tasks.toml", TASKS)


def where(project: Project, rel: str, line: int) -> str:
    return f"{project.path(rel)}:{line}:"


def test_included_vars_env_and_tasks_work_as_if_written_in_the_flowfile(project: Project) -> None:
    included_project(project)
    result = project.json_run("-j", "1")
    assert result.returncode == 0, result
    assert result.started == ["extract:S01", "extract:S02", "package"]
    assert project.read("dist/all.csv") == "study S01\nstudy S02\nlab\n"
    check = project.run("check")
    assert check.lines == ["ok: Flowfile.toml is valid: 3 tasks in 2 groups",
                           "  includes config/studies.toml, config/tasks.toml"]


def test_a_task_declared_in_two_files_is_exit_2_naming_both_files_and_lines(project: Project) -> None:
    included_project(project)
    project.write("config/tasks.toml", TASKS + """
        [tasks.package]
        run = "true"
    """)
    for command in ("check", "run"):
        result = project.run(command)
        assert result.returncode == 2, result
        assert result.err_lines[0] == (
            f"{where(project, 'config/tasks.toml', 9)} error: task `package` is declared twice: "
            "in Flowfile.toml:7 and in config/tasks.toml:9")


def test_a_var_or_env_declared_in_two_files_is_exit_2_naming_both(project: Project) -> None:
    included_project(project)
    project.write("config/tasks.toml", "[vars]\nprefix = \"again\"\n\n"
                  + TASKS.replace('SITE_NAME = "lab"', 'SITE_NAME = "lab"\n    LANG_OF_REPORT = "fr"'))
    result = project.run("check")
    assert result.returncode == 2, result
    assert [line for line in result.err_lines if "error" in line] == [
        f"{where(project, 'config/tasks.toml', 2)} error: var `prefix` is declared twice: "
        "in config/studies.toml:3 and in config/tasks.toml:2",
        f"{where(project, 'config/tasks.toml', 6)} error: env `LANG_OF_REPORT` is declared twice: "
        "in Flowfile.toml:5 and in config/tasks.toml:6",
    ]


def test_every_error_names_the_file_it_is_in(project: Project) -> None:
    included_project(project)
    project.write("config/tasks.toml", TASKS + """\
    timeout = "5 parsecs"
    colour = "red"
    """)
    result = project.run("check")
    assert result.returncode == 2, result
    errors = [line for line in result.err_lines if not line.startswith("  hint")]
    assert errors == [
        f"{where(project, 'config/tasks.toml', 8)} error: task extract: `timeout` is not a duration: \"5 parsecs\"",
        f"{where(project, 'config/tasks.toml', 9)}1: error: task extract: unknown key `colour`",
    ]
    project.write("config/tasks.toml", TASKS + """\

    [tasks.loop_a]
    inputs = ["loop/b.txt"]
    outputs = ["loop/a.txt"]
    run = "cp {inputs} {outputs}"

    [tasks.loop_b]
    inputs = ["loop/a.txt"]
    outputs = ["loop/b.txt"]
    run = "cp {inputs} {outputs}"
    """)
    result = project.run("check")
    assert result.returncode == 2, result
    assert result.err_lines[0] == (f"{where(project, 'config/tasks.toml', 9)} error: dependency cycle: "
                                   "loop_a -> loop_b -> loop_a")
    project.write("config/studies.toml", 'studies = ["S01"\n')
    result = project.run("run")
    assert result.returncode == 2, result
    assert result.err_lines[0] == f"{where(project, 'config/studies.toml', 2)}1: error: invalid TOML: Unclosed array"
    assert "Traceback" not in result.stderr


def test_an_include_cycle_is_exit_2_naming_the_chain(project: Project) -> None:
    project.flowfile("""\
        [flow]
        include = ["a.toml"]

        [tasks.t]
        run = "true"
    """)
    project.write("a.toml", '[flow]\ninclude = ["b.toml"]\n')
    project.write("b.toml", '[flow]\ninclude = ["Flowfile.toml", "a.toml"]\n')
    result = project.run("check")
    assert result.returncode == 2, result
    assert [line for line in result.err_lines if "error" in line] == [
        f"{where(project, 'b.toml', 2)} error: include cycle: Flowfile.toml -> a.toml -> b.toml -> Flowfile.toml",
        f"{where(project, 'b.toml', 2)} error: include cycle: a.toml -> b.toml -> a.toml",
    ]


def test_nested_includes_are_relative_to_the_root_and_a_file_reached_twice_is_read_once(project: Project) -> None:
    project.flowfile("""\
        [flow]
        include = ["config/all.toml", "config/common.toml"]

        [tasks.t]
        outputs = ["t.txt"]
        run = "echo {greeting} {who} > t.txt"
    """)
    project.write("config/all.toml", '[flow]\ninclude = ["config/common.toml", "config/who.toml"]\n')
    project.write("config/common.toml", '[vars]\ngreeting = "hello"\n')
    project.write("config/who.toml", '[vars]\nwho = "world"\n')
    result = project.json_run()
    assert result.returncode == 0, result
    assert project.read("t.txt") == "hello world\n"
    assert project.run("check").lines[1] == "  includes config/all.toml, config/common.toml, config/who.toml"


def test_an_include_glob_matching_its_own_file_or_an_includer_skips_it(project: Project) -> None:
    project.flowfile("""\
        [flow]
        include = ["*.toml"]

        [tasks.t]
        outputs = ["t.txt"]
        run = "echo {who} > t.txt"
    """)
    project.write("who.toml", '[flow]\ninclude = ["*.toml"]\n\n[vars]\nwho = "me"\n')
    result = project.json_run()
    assert result.returncode == 0, result
    assert project.read("t.txt") == "me\n"
    assert project.run("check").lines[1] == "  includes who.toml"


def test_a_missing_include_is_exit_2_at_the_line_that_names_it(project: Project) -> None:
    project.flowfile("""\
        [flow]
        name = "x"
        include = ["config/studies.toml"]

        [tasks.t]
        run = "true"
    """)
    result = project.run("run")
    assert result.returncode == 2, result
    assert result.err_lines[0] == (f"{where(project, 'Flowfile.toml', 3)} error: included file "
                                   "config/studies.toml does not exist")
    assert result.err_lines[1] == f"  hint: include paths are relative to the project root {project.root}"


def test_an_included_file_holds_no_flow_settings_or_hooks(project: Project) -> None:
    included_project(project)
    project.write("config/studies.toml", STUDIES + '\n[flow]\njobs = 3\n\n[hooks]\non_failure = "x"\n')
    result = project.run("check")
    assert result.returncode == 2, result
    assert [line for line in result.err_lines if "error" in line] == [
        f"{where(project, 'config/studies.toml', 6)}1: error: [flow]: key `jobs` can only be set in the main Flowfile",
        f"{where(project, 'config/studies.toml', 8)}1: error: top level: `hooks` is not allowed in an included file",
    ]


def test_an_include_glob_takes_its_sorted_matches_and_sees_a_new_file(project: Project) -> None:
    project.flowfile("""\
        [flow]
        include = ["studies/*.toml"]

        [tasks.package]
        after = ["copy"]
        outputs = ["all.txt"]
        run = "cat out/*.txt > all.txt"
    """)
    for study in ("S02", "S01"):
        project.write(f"studies/{study}.toml", f"""\
            [tasks.copy_{study}]
            outputs = ["out/{study}.txt"]
            run = "echo {study} > out/{study}.txt"
        """)
    project.write("studies/copy.toml", '[tasks.copy]\nafter = ["copy_S01", "copy_S02"]\n')
    assert project.json_run().returncode == 0
    assert project.run("check").lines[1] == "  includes studies/S01.toml, studies/S02.toml, studies/copy.toml"
    assert set(project.status()) == {"package", "copy_S01", "copy_S02", "copy"}  # leaves the load cache behind
    project.write("studies/S03.toml", '[tasks.copy_S03]\noutputs = ["out/S03.txt"]\nrun = "echo S03 > out/S03.txt"\n')
    status = project.status()
    assert status["copy_S03"]["state"] == "stale"


@shortcut_test
def test_an_edit_of_an_include_is_seen_through_the_load_cache(project: Project) -> None:
    included_project(project)
    assert project.json_run().returncode == 0
    # With a target status loads the project (all fresh, it would answer from the snapshot alone).
    assert project.status("package")["package"]["state"] == "fresh"
    assert project.exists(".flowmake/flowfile.cache")
    project.write("config/studies.toml", STUDIES.replace('"S02"]', '"S02", "S03"]'))
    status = project.status()
    assert status["extract:S03"]["state"] == "stale"
    assert kinds(status["package"]["reasons"]) == ["command changed"]


def _aged(project: Project) -> None:
    import time

    past = time.time() - 30
    for path in project.root.rglob("*"):
        if ".flowmake" not in path.parts and path.is_file():
            os.utime(path, (past, past))


def _noop(project: Project, capsys: pytest.CaptureFixture):
    code = try_noop(["-C", str(project.root), "run", "--progress", "json"])
    capsys.readouterr()
    return code


@shortcut_test
def test_the_no_op_fast_path_serves_a_flowfile_with_includes_and_notices_an_edit_of_one(
        project: Project, capsys: pytest.CaptureFixture) -> None:
    included_project(project)
    assert project.json_run().returncode == 0
    _aged(project)
    assert project.json_run().returncode == 0
    assert project.exists(".flowmake/noop.snapshot")
    assert _noop(project, capsys) == 0  # unchanged: answered from stats alone

    # The same size: only the content and the mtime differ, and the Flowfile itself is untouched.
    path = project.path("config/tasks.toml")
    before = path.stat()
    project.write("config/tasks.toml", TASKS.replace("echo {prefix} {study}", "echo {prefix}:{study}"))
    # The same size, inode and (put back) mtime: only the ctime tells, as for any file (issue 22.1).
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (before.st_size, before.st_ino, before.st_mtime_ns)
    assert _noop(project, capsys) is None
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.ran == ["extract:S01", "extract:S02", "package"]
    assert kinds(result.reasons("extract:S01")) == ["command changed"]


def test_the_recorded_flowfile_hash_covers_the_included_files(project: Project) -> None:
    included_project(project)
    first = project.json_run()
    project.write("config/studies.toml", STUDIES.replace('"study"', '"trial"'))
    second = project.json_run()
    assert second.returncode == 0, second
    hashes = [json.loads(project.run("log", run.run_id, "--json").stdout)["flowfile_hash"] for run in (first, second)]
    assert hashes[0] != hashes[1]
    assert project.run("audit", "verify").returncode == 0
