"""Shell completion (flowmake/cli/completion.py): the real entry point, the scripts, the option table, speed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Set

import pytest
import typer

from conftest import FLOWMAKE, Project
from flowmake.cli import completion
from flowmake.cli.app import app

FLOWFILE = """
    [tasks.extract]
    matrix = { study = ["S01", "S02"] }
    outputs = ["build/{study}.csv"]
    run = "echo x > {outputs}"

    [tasks.report]
    inputs = ["build/S01.csv"]
    outputs = ["dist/report.md"]
    run = "cp {inputs} {outputs}"
"""


def complete(project: Project, *args: str) -> List[str]:
    result = project.run("__complete", *args)
    assert result.returncode == 0 and result.stderr == "", result
    return result.stdout.splitlines()


def test_the_entry_point_completes_commands_tasks_variants_and_outputs(project: Project) -> None:
    project.flowfile(FLOWFILE)
    # the task `report` has the name of a command: offered once
    assert complete(project, "zsh", "") == [*completion.COMMANDS, "extract", "extract:S01", "extract:S02",
                                            "build/S01.csv", "build/S02.csv", "dist/report.md"]
    assert complete(project, "zsh", "run", "ext") == ["extract", "extract:S01", "extract:S02"]
    assert complete(project, "fish", "status", "extract:") == ["extract:S01", "extract:S02"]
    # bash splits words at ':', so it is given what follows the colon
    assert complete(project, "bash", "flowmake run extract:S", " \t\n\"'><=;|&(:") == ["S01", "S02"]
    assert complete(project, "bash", "flowmake lineage di", ":=") == ["dist/report.md"]
    assert complete(project, "zsh", "-C", ".", "r") == ["report", "run"]  # the command and the task: once
    assert complete(project, "zsh", "run", "--force", "rep") == ["report"]


def test_options_and_their_values(project: Project) -> None:
    project.flowfile(FLOWFILE)
    assert complete(project, "zsh", "run", "--pro") == ["--progress"]
    assert complete(project, "zsh", "run", "--ci", "") == ["auto", "github", "gitlab", "none"]
    assert complete(project, "zsh", "graph", "--format", "") == ["text", "dot", "mermaid", "json"]
    assert complete(project, "zsh", "audit", "") == ["verify", "export"]
    assert complete(project, "zsh", "completion", "") == ["bash", "zsh", "fish"]
    assert complete(project, "zsh", "run", "--junit-xml", "") == []  # a path: the shell completes files


def test_a_broken_flowfile_never_prints_an_error_into_the_prompt(project: Project) -> None:
    project.flowfile("[tasks.t\nrun = ")
    assert complete(project, "bash", "flowmake ", ":=") == list(completion.COMMANDS)
    project.flowfile('[tasks.t]\nrun = "x"\nbogus = 1\n')
    assert complete(project, "zsh", "run", "") == []
    assert complete(project, "zsh", "st") == ["status"]


def test_completing_task_names_is_fast_at_1000_tasks(project: Project, tmp_path: Path) -> None:
    studies = ", ".join(f'"S{i:03d}"' for i in range(100))
    text = f"[vars]\nstudies = [{studies}]\n"
    for g in range(10):
        text += (f'[tasks.step{g}]\nmatrix = {{ study = "{{studies}}" }}\noutputs = ["build/{g}/{{study}}.txt"]\n'
                 + (f'inputs = ["build/{g - 1}/{{study}}.txt"]\n' if g else "") + 'run = "echo x > {outputs}"\n')
    project.write("Flowfile.toml", text, dedent=False)
    assert project.run("list").returncode == 0
    project.path(".flowmake").mkdir(exist_ok=True)
    assert project.run("list").returncode == 0  # now the model is cached
    os.chdir(project.root)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        found = completion.complete(["run", "step3:S0"])
        timings.append(time.perf_counter() - start)
    assert found == [f"step3:S{i:03d}" for i in range(100)]
    assert min(timings) < 0.1, timings  # the work itself; the process adds Python's start-up (docs/cli.md)
    start = time.perf_counter()
    assert len(complete(project, "bash", "flowmake run step9:", ":=")) == 100
    assert time.perf_counter() - start < 1.0  # the whole process, on a machine that may be busy


def _typer_options() -> Dict[str, Set[str]]:
    group = typer.main.get_command(app)
    found: Dict[str, Set[str]] = {}

    def walk(command, name: str) -> None:
        opts = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
        found[name] = opts - {"-h", "--help"}
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{name} {sub_name}".strip())

    walk(group, "")
    return found


def test_the_option_table_matches_the_cli() -> None:
    real = _typer_options()
    assert set(completion.GLOBAL) - {"-h", "--help"} == real.pop("")
    assert {name: set(opts) for name, opts in completion.OPTIONS.items()} == real


def test_the_bash_script_completes_in_a_real_bash(project: Project) -> None:
    project.flowfile(FLOWFILE)
    script = project.run("completion", "bash")
    assert script.returncode == 0, script
    project.write("complete.sh", script.stdout, dedent=False)
    bindir = os.path.dirname(FLOWMAKE[0])
    driver = ('source ./complete.sh; COMP_LINE="flowmake run extract:S"; COMP_POINT=${#COMP_LINE}; '
              'COMP_WORDS=(flowmake run extract : S); COMP_CWORD=4; _flowmake_complete; printf "%s\\n" "${COMPREPLY[@]}"')
    env = project.env({"PATH": bindir + os.pathsep + os.environ["PATH"]})
    if not shutil.which("flowmake", path=env["PATH"]):
        pytest.skip("no flowmake console script beside this Python")
    done = subprocess.run(["bash", "-c", driver], cwd=project.root, env=env, capture_output=True, text=True, timeout=30)
    assert done.stdout.splitlines() == ["S01", "S02"], done


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_script_is_valid_for_its_shell(project: Project, shell: str) -> None:
    result = project.run("completion", shell)
    assert result.returncode == 0 and "__complete" in result.stdout, result
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    project.write(f"script.{shell}", result.stdout, dedent=False)
    check = subprocess.run([shell, "-n", f"script.{shell}"], cwd=project.root, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_an_unknown_shell_is_exit_2(project: Project) -> None:
    result = project.run("completion", "tcsh")
    assert result.returncode == 2
    assert result.stderr == "error: unknown shell 'tcsh' for completion\n  hint: use one of: bash, zsh, fish\n"


def test_install_writes_where_the_shell_looks(project: Project) -> None:
    result = project.run("completion", "fish", "--install")
    assert result.returncode == 0, result
    home = Path(project.env()["HOME"])
    assert (home / ".config/fish/completions/flowmake.fish").read_text() == completion.FISH
    result = project.run("--install-completion", env={"SHELL": "/bin/bash"})
    assert result.returncode == 0, result
    assert (home / ".local/share/bash-completion/completions/flowmake").read_text() == completion.BASH
