"""The study pipeline in examples/ as a user runs it (see examples/README.md).

The example's sources are copied out of the checkout and built once from
scratch with the real CLI; each later test works on its own copy of that
built project: a no-op second run, an edit of one raw file that reruns only
that study's tasks plus the report and package, and a validation failure
that stops the run before the report and the package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Tuple

import pytest

from conftest import FLOWMAKE, RUN_TIMEOUT, Project, Result, apply_env, isolation_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STUDIES = ("S01", "S02", "S03")
STEPS = ("extract", "clean", "transform", "validate")
ALL_TASKS = sorted([f"{step}.{s}" for s in STUDIES for step in STEPS] + ["report", "package"])


def copy_sources(dest: Path) -> None:
    shutil.copytree(EXAMPLES, dest, ignore=shutil.ignore_patterns(".flowmake", "build", "dist", "__pycache__"))


@pytest.fixture(scope="module")
def first_build(tmp_path_factory: pytest.TempPathFactory, _pycache: Path) -> Tuple[Path, Result]:
    """The example built once from scratch, with the same isolation as the tests.

    Tests start from a copy of this built project rather than building again:
    a copy has new inodes, so flowmake re-hashes every file, and what it decides
    depends on content only, which the copy keeps.
    """
    base = tmp_path_factory.mktemp("example")
    root = base / "proj"
    copy_sources(root)
    env = apply_env(isolation_env(base, _pycache))
    proc = subprocess.run(FLOWMAKE + ["run", "--progress", "json"], cwd=root, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return root, Result(["run", "--progress", "json"], proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def example(project: Project, first_build: Tuple[Path, Result]) -> Project:
    """A copy of the example right after its first build."""
    built, result = first_build
    assert result.returncode == 0, result
    shutil.rmtree(project.root)
    shutil.copytree(built, project.root, symlinks=True)
    return project


def test_example_builds_the_submission_package(first_build: Tuple[Path, Result]) -> None:
    built, result = first_build
    assert result.returncode == 0, result
    assert result.ran == ALL_TASKS
    assert result.tasks_with("ok") == ALL_TASKS
    assert result.one("run_started")["targets"] == ["package"]  # [flow] default
    with zipfile.ZipFile(built / "dist/submission.zip") as zf:
        names = zf.namelist()
        assert zf.testzip() is None
    assert "manifest.json" in " ".join(names)
    assert any(name.endswith("dm.csv") for name in names)
    assert (built / "dist/report.md").stat().st_size > 0


def test_example_second_run_has_nothing_to_do(example: Project) -> None:
    again = example.plain_run()
    assert again.returncode == 0, again
    assert again.lines[-1].startswith(f"nothing to do: {len(ALL_TASKS)} tasks fresh"), again
    assert not [line for line in again.lines if line.startswith("start")], again


def test_example_editing_one_raw_file_reruns_only_that_study_then_report_and_package(example: Project) -> None:
    zip_before = example.path("dist/submission.zip").read_bytes()
    dm = example.path("raw/S01/dm.csv")
    data = dm.read_bytes()
    assert b",F,18," in data
    dm.write_bytes(data.replace(b",F,18,", b",F,19,", 1))  # one subject's age
    result = example.json_run()
    assert result.returncode == 0, result
    assert result.ran == ["clean.S01", "extract.S01", "package", "report", "transform.S01", "validate.S01"]
    assert result.tasks_with("fresh") == [t for t in ALL_TASKS if t.endswith(("S02", "S03"))]
    assert kinds_of(result, "extract.S01") == [("input changed", "raw/S01/dm.csv")]
    assert example.path("dist/submission.zip").read_bytes() != zip_before
    assert "19" in example.read("build/sdtm/S01/dm.csv")


def kinds_of(result, task: str) -> list:
    return [(r["kind"], r.get("path")) for r in result.reasons(task)]


def test_example_validation_failure_stops_before_report_and_package(example: Project) -> None:
    gen = subprocess.run([sys.executable, "scripts/generate_raw.py", "--out", "raw", "--bad"],
                         cwd=example.root, capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    result = example.json_run()
    assert result.returncode == 1, result
    assert result.statuses["validate.S02"] == "failed"
    assert result.statuses["package"] == "skipped"
    assert result.statuses["report"] == "skipped"
    assert "upstream failed: validate.S02" in result.finished_event("package")["message"]
    assert result.ran == ["clean.S02", "extract.S02", "transform.S02", "validate.S02"]
    tail = result.finished_event("validate.S02")["tail"]
    assert any("AGE 250" in line for line in tail), tail
    plain = example.plain_run()
    assert plain.returncode == 1, plain
    assert "AGE 250" in plain.stderr and "validate.S02.log" in plain.stderr
