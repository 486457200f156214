"""Commands that need no shell run without one (docs/flowfile.md), through the real CLI.

Each test pairs a command flowmake starts directly with one that needs
`sh -c`, and checks that the task cannot tell the difference, or that the
shell still handles what only it can (a script without #!, a missing
program, a redirect it cannot create).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import Project

needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/comm"), reason="reads /proc (Linux)")
SHELLS = {"sh", "dash", "bash", "ksh", "mksh", "zsh"}


def write_script(project: Project, name: str, body: str) -> None:
    """An executable #!/bin/sh script in the project root."""
    project.write(name, "#!/bin/sh\n" + body).chmod(0o755)


PARENT_REPORTER = 'cat /proc/$PPID/comm > "$1"\n'  # writes the name of the process that started it


def direct_and_shelled(project: Project, command: str, ext: str) -> None:
    """Tasks `direct` and `shelled` each run `command` ({out}: its output, NAME.EXT); `; true` makes shelled need sh."""
    text = ""
    for name, tail in (("direct", ""), ("shelled", "; true")):
        out = f"{name}.{ext}"
        text += f'[tasks.{name}]\noutputs = ["{out}"]\nrun = "{command.format(out=out)}{tail}"\n\n'
    project.flowfile(text)


@needs_proc
def test_a_plain_command_is_started_without_a_shell(project: Project) -> None:
    write_script(project, "parent.sh", PARENT_REPORTER)
    direct_and_shelled(project, "./parent.sh {out}", "txt")
    result = project.json_run()
    assert result.returncode == 0, result
    assert project.read("shelled.txt").strip() in SHELLS  # `;` needs the shell, which is its parent
    assert project.read("direct.txt").strip() not in SHELLS  # flowmake itself is


def test_the_redirect_is_opened_as_the_shell_opens_it(project: Project) -> None:
    project.write("a.txt", "a\n")
    project.write("b.txt", "b\n")
    project.write("out/c.txt", "stale, longer than what replaces it\n")
    project.flowfile("""
        [tasks.cat]
        inputs = ["a.txt", "b.txt"]
        outputs = ["out/c.txt", "out/new.txt"]
        run = "cat {inputs} > out/c.txt; cp out/c.txt out/new.txt"

        [tasks.plain]
        inputs = ["a.txt", "b.txt"]
        outputs = ["out/plain.txt"]
        run = "cat {inputs} > {outputs}"
    """)
    umask = os.umask(0)
    os.umask(umask)
    result = project.json_run()
    assert result.returncode == 0, result
    assert project.read("out/plain.txt") == project.read("out/new.txt") == "a\nb\n"
    mode = stat.S_IMODE(project.path("out/plain.txt").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(project.path("out/new.txt").stat().st_mode)
    assert project.json_run().ran == []  # recorded like any output


@pytest.mark.parametrize("start_in", ["subdirectory", "symlink"])
def test_a_direct_command_sees_the_environment_the_shell_gives(project: Project, tmp_path: Path,
                                                                start_in: str) -> None:
    direct_and_shelled(project, "env > {out}", "env")
    if start_in == "subdirectory":  # the caller's PWD is not the project root: sh resets it
        cwd = project.path("sub")
        cwd.mkdir()
    else:  # the caller's PWD names the root through a link: sh keeps it
        cwd = tmp_path / "link"
        cwd.symlink_to(project.root)
    result = project.json_run(cwd=cwd, env={"PWD": str(cwd)})
    assert result.returncode == 0, result

    def variables(name: str) -> set:
        # bash as sh adds _ and SHLVL itself (documented); the task's name differs by design
        skip = ("_=", "SHLVL=", "OLDPWD=", "FLOWMAKE_TASK=")
        return {line for line in project.read(name).splitlines() if not line.startswith(skip)}

    direct, shelled = variables("direct.env"), variables("shelled.env")
    assert direct == shelled
    expected_pwd = os.path.realpath(project.root) if start_in == "subdirectory" else str(cwd)
    assert f"PWD={expected_pwd}" in direct


def test_a_script_without_a_shebang_still_runs_through_the_shell(project: Project) -> None:
    script = project.write("job", "printf 'ran\\n' > job.out\n")  # exec fails with ENOEXEC: sh runs it
    script.chmod(0o755)
    project.flowfile("""
        [tasks.job]
        outputs = ["job.out"]
        run = "./job"
    """)
    result = project.json_run()
    assert result.returncode == 0, result
    assert project.read("job.out") == "ran\n"


def test_a_missing_program_is_reported_by_the_shell(project: Project) -> None:
    project.flowfile("""
        [tasks.missing]
        outputs = ["m.txt"]
        run = "no-such-program-4711 --flag > m.txt"
    """)
    result = project.json_run()
    assert result.returncode == 1, result
    finished = result.finished_event("missing")
    assert finished["exit_code"] == 127
    log = project.read(finished["log"])
    assert "no-such-program-4711" in log and "not found" in log


def test_a_redirect_the_shell_cannot_create_fails_the_task_as_before(project: Project) -> None:
    project.write("a.txt", "a\n")
    project.flowfile("""
        [tasks.nowhere]
        inputs = ["a.txt"]
        outputs = ["done.txt"]
        run = "cat a.txt > no-such-dir/x.txt"
    """)
    result = project.json_run()
    assert result.returncode == 1, result
    finished = result.finished_event("nowhere")
    assert finished["exit_code"] not in (None, 0)  # the shell's own verdict (2 from dash, 1 from bash)
    assert "no-such-dir/x.txt" in project.read(finished["log"])  # and its message
    assert not project.exists("done.txt")


def test_a_shell_builtin_keeps_its_shell_meaning(project: Project, tmp_path: Path) -> None:
    # sh's own pwd prints the logical directory (its PWD); GNU /usr/bin/pwd the physical one
    project.flowfile("""
        [tasks.builtin]
        outputs = ["where.txt"]
        run = "pwd > where.txt"
    """)
    link = tmp_path / "link"
    link.symlink_to(project.root)
    result = project.json_run(cwd=link, env={"PWD": str(link)})
    assert result.returncode == 0, result
    assert project.read("where.txt").strip() == str(link)


@needs_proc
def test_another_shell_is_always_used(project: Project) -> None:
    write_script(project, "parent.sh", PARENT_REPORTER)
    project.flowfile("""
        [tasks.named]
        shell = "/bin/sh -c"
        outputs = ["named.txt"]
        run = "./parent.sh named.txt"
    """)
    result = project.json_run()
    assert result.returncode == 0, result
    assert project.read("named.txt").strip() in SHELLS


@needs_proc
def test_a_direct_command_killed_by_a_signal_is_reported_by_its_name(project: Project) -> None:
    write_script(project, "die.sh", "kill -KILL $$\n")
    project.flowfile("""
        [tasks.die]
        outputs = ["never.txt"]
        run = "./die.sh"
    """)
    result = project.json_run()
    assert result.returncode == 1, result
    assert result.finished_event("die")["message"] == "killed by signal SIGKILL"
