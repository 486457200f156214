"""The CI jobs of docs/ci.md: their YAML parses and every flowmake command in them works, in order.

Each recipe is read from the page itself, so the page cannot drift from
what is tested. The install step is left out (this flowmake is installed
already); every `flowmake` line runs through `sh` on a real project with a
failing-then-passing history, with the service's variables set, and the
paths the job caches and uploads must exist afterwards, with names an
artifact upload accepts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from conftest import Project

DOC = Path(__file__).resolve().parent.parent / "docs" / "ci.md"
# What actions/upload-artifact refuses in a file's path (besides the separators).
NOT_IN_ARTIFACTS = set('":<>|*?\r\n')


def recipes() -> Dict[str, dict]:
    """The ```yaml blocks under "Ready-to-copy jobs", by the file their first line names."""
    text = DOC.read_text().split("## Ready-to-copy jobs", 1)[1]
    found = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S):
        name = block.splitlines()[0].lstrip("# ").strip()
        found[name] = yaml.safe_load(block)
    return found


def commands_of(recipe: dict, name: str) -> List[str]:
    lines: List[str] = []
    if name.endswith(".gitlab-ci.yml"):
        job = recipe["pipeline"]
        steps = [*job["script"], *job.get("after_script", [])]
    else:
        steps = [step["run"] for step in recipe["jobs"]["pipeline"]["steps"] if "run" in step]
    for step in steps:
        lines += [line.strip() for line in step.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith(("python -m pip", "pip "))]


def uploaded(recipe: dict, name: str) -> List[str]:
    if name.endswith(".gitlab-ci.yml"):
        job = recipe["pipeline"]
        return [*job["artifacts"]["paths"], *job["cache"]["paths"]]
    paths: List[str] = []
    for step in recipe["jobs"]["pipeline"]["steps"]:
        uses = step.get("uses", "")
        if uses.startswith(("actions/upload-artifact", "actions/cache")):
            paths += step["with"]["path"].split()
    return paths


def test_the_page_has_a_github_and_a_gitlab_job() -> None:
    names = sorted(recipes())
    assert names == [".github/workflows/pipeline.yml", ".gitlab-ci.yml"], names
    for name, recipe in recipes().items():
        assert any(c.startswith("flowmake run") for c in commands_of(recipe, name))
        assert "flowmake status --exit-code" in commands_of(recipe, name)


@pytest.mark.parametrize("name", [".github/workflows/pipeline.yml", ".gitlab-ci.yml"])
def test_each_recipes_commands_work_on_a_real_project(project: Project, name: str) -> None:
    recipe = recipes()[name]
    project.flowfile("""
        [tasks.extract]
        matrix = { study = ["S01", "S02"] }
        inputs = ["raw/{study}.csv"]
        outputs = ["build/{study}.csv"]
        run = "cp {inputs} {outputs}"

        [tasks.validate]
        matrix = { study = ["S01", "S02"] }
        inputs = ["build/{study}.csv"]
        run = "echo checked {study}"

        [tasks.package]
        inputs = ["build/S01.csv", "build/S02.csv"]
        outputs = ["dist/all.csv"]
        run = "cat {inputs} > {outputs}"
    """)
    project.write("raw/S01.csv", "a\n")
    project.write("raw/S02.csv", "b\n")
    service = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(project.root.parent / "summary.md")} \
        if "github" in name else {"GITLAB_CI": "true"}
    env = project.env({**service, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]})
    for command in commands_of(recipe, name):
        done = subprocess.run(["sh", "-c", command], cwd=project.root, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    for path in uploaded(recipe, name):
        assert project.path(path).exists(), f"{name} uploads or caches {path}, which the job did not make"
    logs = [p for p in project.path(".flowmake/logs").rglob("*") if p.is_file()]
    assert any(p.name == "extract.S01.log" for p in logs)
    for log in logs:
        assert not NOT_IN_ARTIFACTS & set(str(log.relative_to(project.root))), log
