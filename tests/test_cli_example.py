"""The study pipeline in examples/ as a user runs it (see examples/README.md).

The example's sources are copied out of the checkout and built once from
scratch with the real CLI; each later test works on its own copy of that
built project: a no-op second run, an edit of one raw file that reruns only
that study's variants plus the summary and package, a validation failure that
stops the run before the summary and the package and makes the on_failure
hook write an alert file, the lineage of the deliverable back to the raw
bytes, the sensor waiting for a raw export that arrives during the run, and
a fourth study added through the `studies` list var.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Tuple

import pytest
from blake3 import blake3
from conftest import FLOWMAKE, RUN_TIMEOUT, Project, Result, apply_env, isolation_env

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STUDIES = ("S01", "S02", "S03")
STEPS = ("extract", "tidy", "transform", "validate")


def variants(*studies: str) -> list:
    return [f"{step}:{s}" for s in studies for step in STEPS]


ALL_TASKS = sorted(variants(*STUDIES) + ["summary", "package"])


def copy_sources(dest: Path) -> None:
    shutil.copytree(EXAMPLES, dest,
                    ignore=shutil.ignore_patterns(".flowmake", "build", "dist", "alerts", "__pycache__"))


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


def generate_raw(example: Project, *args: str) -> None:
    gen = subprocess.run([sys.executable, "scripts/generate_raw.py", "--out", "raw", *args],
                         cwd=example.root, capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr


def kinds_of(result: Result, task: str) -> list:
    return [(r["kind"], r.get("path")) for r in result.reasons(task)]


def test_example_builds_the_submission_package(first_build: Tuple[Path, Result]) -> None:
    built, result = first_build
    assert result.returncode == 0, result
    assert result.ran == ALL_TASKS
    assert result.tasks_with("ok") == ALL_TASKS
    # [flow] default names `package`; the matrix tasks appear as their variants
    assert result.one("run_started")["targets"] == ["package"]
    assert result.one("run_started")["task_count"] == len(ALL_TASKS)
    with zipfile.ZipFile(built / "dist/submission.zip") as zf:
        names = zf.namelist()
        assert zf.testzip() is None
    assert "manifest.json" in names
    assert {f"sdtm/{s}/{d}.csv" for s in STUDIES for d in ("dm", "vs")} <= set(names)
    assert (built / "dist/summary.md").read_text().startswith("# Study pipeline summary")
    assert "Studies: S01, S02, S03." in (built / "dist/summary.md").read_text()
    assert not (built / "alerts").exists()  # on_failure only runs after a failure


def test_example_second_run_has_nothing_to_do(example: Project) -> None:
    again = example.plain_run()
    assert again.returncode == 0, again
    assert again.lines[-1].startswith(f"nothing to do: {len(ALL_TASKS)} tasks fresh"), again
    assert not [line for line in again.lines if line.startswith(("start", "wait"))], again


def test_example_editing_one_raw_file_reruns_only_that_study_then_summary_and_package(example: Project) -> None:
    zip_before = example.path("dist/submission.zip").read_bytes()
    dm = example.path("raw/S01/dm.csv")
    data = dm.read_bytes()
    assert b",F,18," in data
    dm.write_bytes(data.replace(b",F,18,", b",F,19,", 1))  # one subject's age
    result = example.json_run()
    assert result.returncode == 0, result
    # The new age reaches the SDTM file, so the summary (age statistics) and the
    # package (which zips that file) must run; nothing of S02 or S03 may.
    assert result.ran == sorted(variants("S01") + ["summary", "package"])
    assert result.tasks_with("fresh") == sorted(variants("S02", "S03"))
    assert kinds_of(result, "extract:S01") == [("input changed", "raw/S01/dm.csv")]
    assert example.path("dist/submission.zip").read_bytes() != zip_before
    assert ",19," in example.read("build/sdtm/S01/dm.csv")


def test_example_validation_failure_stops_before_summary_and_package_and_alerts(example: Project) -> None:
    generate_raw(example, "--bad")
    result = example.json_run()
    assert result.returncode == 1, result
    assert result.statuses["validate:S02"] == "failed"
    assert result.statuses["package"] == "skipped"
    assert result.statuses["summary"] == "skipped"
    assert "upstream failed: validate:S02" in result.finished_event("package")["message"]
    assert result.ran == sorted(variants("S02"))  # S01 and S03 were regenerated byte for byte
    tail = result.finished_event("validate:S02")["tail"]
    assert any("AGE 250" in line for line in tail), tail

    # The on_failure hook (scripts/alert.py) wrote the alert for this run.
    run_id = result.run_id
    alert = example.read("alerts/latest.txt")
    assert example.read(f"alerts/{run_id}.txt") == alert
    assert alert.splitlines()[:2] == [f"flowmake run {run_id}: failed", "failed tasks: validate:S02"], alert
    assert "validate.S02.log" in alert and "AGE 250 is outside 0..120" in alert, alert
    assert "FAILED: 2 error-level finding(s)" in alert, alert

    plain = example.plain_run()
    assert plain.returncode == 1, plain
    assert "AGE 250" in plain.stderr and "validate.S02.log" in plain.stderr
    assert example.read("alerts/latest.txt") != alert  # a new run, a new alert
    assert len(list(example.path("alerts").glob("*.txt"))) == 3


def test_example_lineage_sources_of_the_package_are_the_raw_bytes(example: Project) -> None:
    result = example.run("lineage", "--sources", "dist/submission.zip")
    assert result.returncode == 0, result
    sources = {}
    for line in result.lines:
        digest, path = line.split("  ", 1)
        sources[path] = digest
    raw_files = sorted(p.relative_to(example.root).as_posix() for p in example.path("raw").glob("*/*.csv"))
    assert sorted(p for p in sources if p.startswith("raw/")) == raw_files
    for rel in raw_files:
        assert sources[rel] == blake3(example.path(rel).read_bytes()).hexdigest(), rel
    assert "scripts/extract.py" in sources and "scripts/package.py" in sources
    assert not [p for p in sources if p.startswith(("build/", "dist/"))], sources  # written by tasks

    tree = example.run("lineage", "dist/submission.zip")
    assert tree.returncode == 0, tree
    assert tree.lines[1].startswith("← package in run "), tree
    assert "← extract:S01 in run " in tree.stdout
    assert f"raw/S01/dm.csv {sources['raw/S01/dm.csv'][:16]} source" in tree.stdout


def test_example_sensor_waits_for_a_raw_export_that_arrives_during_the_run(example: Project) -> None:
    vs = example.path("raw/S03/vs.csv")
    data = vs.read_bytes()
    vs.unlink()
    proc = example.popen("run", "--progress", "json")
    lines: "queue.Queue[str]" = queue.Queue()
    collected = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while not any('"task_waiting"' in line and '"extract:S03"' in line for line in collected):
        assert time.monotonic() < deadline, f"no task_waiting event for extract:S03: {collected}"
        try:
            collected.append(lines.get(timeout=0.5))
        except queue.Empty:
            assert proc.poll() is None, f"flowmake exited {proc.returncode} without waiting: {collected}"
    time.sleep(1.0)
    assert proc.poll() is None, "flowmake stopped waiting for raw/S03/vs.csv"
    vs.write_bytes(data)  # the export arrives
    proc.wait(timeout=RUN_TIMEOUT)
    reader.join(timeout=10)
    while not lines.empty():
        collected.append(lines.get())
    result = Result(["run", "--progress", "json"], proc.returncode, "".join(collected), proc.stderr.read())
    assert result.returncode == 0, result
    waiting = [e for e in result.of_kind("task_waiting") if e["task"] == "extract:S03"]
    assert waiting and waiting[0]["paths"] == ["raw/S03/vs.csv"], result
    assert {e["task"] for e in result.of_kind("task_waiting")} == {"extract:S03"}, result
    # The same bytes arrived: extract:S03 is fresh once they hold still, and so is the rest.
    assert result.statuses["extract:S03"] == "fresh", result
    assert result.one("run_finished")["result"] == "success", result


def test_example_adding_a_study_runs_only_its_variants_then_summary_and_package(example: Project) -> None:
    flowfile = example.read("Flowfile.toml")
    old = 'studies = ["S01", "S02", "S03"]'
    assert old in flowfile
    example.write("Flowfile.toml", flowfile.replace(old, 'studies = ["S01", "S02", "S03", "S04"]'), dedent=False)
    generate_raw(example, "--studies", "S04")
    result = example.json_run()
    assert result.returncode == 0, result
    assert result.ran == sorted(variants("S04") + ["summary", "package"])
    assert result.tasks_with("fresh") == sorted(variants(*STUDIES))
    assert "Studies: S01, S02, S03, S04." in example.read("dist/summary.md")
    with zipfile.ZipFile(example.path("dist/submission.zip")) as zf:
        assert "sdtm/S04/dm.csv" in zf.namelist()
