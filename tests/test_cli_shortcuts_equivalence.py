"""The speed layers change how fast a run answers, never what it says.

The same projects, built the same way, then run once with the shortcuts
(the no-op fast path, the snapshot's cone, the load cache) and once with
FLOWMAKE_NO_SHORTCUTS=1 (the full path every time): their `--progress json`
event streams must be the same, minus times, durations and run ids. Tasks
proven fresh are finished before any other starts (the cone, the fast
path), in the order the run that proved them finished them, while the full
path finishes each as the schedule reaches it: so the same events, the plan
first and the end last, and each task's own events in their order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from conftest import SHORTCUTS_OFF, Project
from test_cli_agreement import FLOWFILE as AGREEMENT_FLOWFILE

pytestmark = pytest.mark.skipif(SHORTCUTS_OFF, reason="compares runs with and without the shortcuts")

CHAIN = AGREEMENT_FLOWFILE  # two branches joined below a chain: the agreement test's project

# A matrix, and a task named like a command: every run repeats a warning (a notice event).
MATRIX = """
[flow]
name = "matrix"

[tasks.extract]
matrix = { site = ["a", "b", "c"] }
inputs = ["src/{site}.txt"]
outputs = ["build/{site}.csv"]
run = "cp {inputs[0]} {outputs[0]}"

[tasks.list]
inputs = ["build/a.csv", "build/b.csv", "build/c.csv"]
outputs = ["build/all.csv"]
run = "cat {inputs} > {outputs[0]}"
"""

# Over 256 tasks and sources: the load cache keeps its graph and the checked paths in buckets
# (load/pages.py), and the cone's plan takes the proven tasks' rows from the snapshot (Build._plan_cone).
WIDE_NAMES = ["a", "b", "c", "s"] + [f"w{i}" for i in range(300)]
WIDE = f"""
[flow]
name = "wide"

[tasks.copy]
matrix = {{ site = {WIDE_NAMES!r} }}
inputs = ["src/{{site}}.txt"]
outputs = ["build/{{site}}.csv"]
run = "cp {{inputs[0]}} {{outputs[0]}}"

[tasks.list]
inputs = ["build/a.csv", "build/w7.csv"]
outputs = ["build/all.csv"]
run = "cat {{inputs}} > {{outputs[0]}}"
""".replace("'", '"')

PROJECTS: Dict[str, str] = {"chain": CHAIN, "matrix": MATRIX, "wide": WIDE}
SOURCES = {"src/a.txt": "abc\n", "src/s.txt": "side\n", "src/b.txt": "b\n", "src/c.txt": "c\n"}
EXTRA_SOURCES = {"wide": {f"src/{name}.txt": f"{name}\n" for name in WIDE_NAMES[4:]}}
EDITS: Dict[str, Callable[[Project], None]] = {
    "no-op": lambda p: None,
    "one source": lambda p: p.write("src/a.txt", "changed\n"),
    "an output deleted": lambda p: p.path("build/a.out" if p.exists("build/a.out") else "build/a.csv").unlink(),
}
NO_SHORTCUTS = {"FLOWMAKE_NO_SHORTCUTS": "1"}


def _normalized(events: List[Dict[str, Any]], run_id: str) -> List[str]:
    out = []
    for event in events:
        event = {k: v for k, v in event.items() if k not in ("run_id", "time", "duration")}
        text = json.dumps(event, sort_keys=True).replace(run_id, "RUN")  # log paths name the run
        out.append(text)
    return out


def _same(with_shortcuts: List[str], without: List[str]) -> None:
    """The same events; the plan first and the end last in both (tasks fresh from the start may finish in another order)."""
    assert sorted(with_shortcuts) == sorted(without)
    assert with_shortcuts[0] == without[0] and with_shortcuts[-1] == without[-1]

    def by_task(stream: List[str]) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        for text in stream:
            out.setdefault(json.loads(text).get("task", ""), []).append(text)
        return out

    assert by_task(with_shortcuts) == by_task(without)


def _stream(project: Project, env: Dict[str, str]) -> List[str]:
    result = project.json_run(env=env)
    assert result.returncode == 0, result
    return _normalized(result.events, result.run_id)


def _built(root: Path, name: str, env: Dict[str, str]) -> Project:
    root.mkdir()
    project = Project(root)
    project.flowfile(PROJECTS[name])
    for rel, text in {**SOURCES, **EXTRA_SOURCES.get(name, {})}.items():
        project.write(rel, text)
    assert project.json_run(env=env).returncode == 0
    assert project.json_run(env=env).returncode == 0  # all fresh: leaves the snapshot (with shortcuts)
    return project


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("name", list(PROJECTS))
def test_the_fast_and_the_full_path_send_the_same_events(tmp_path: Path, name: str, edit: str) -> None:
    fast = _built(tmp_path / "fast", name, {})
    full = _built(tmp_path / "full", name, NO_SHORTCUTS)
    try:
        assert fast.exists(".flowmake/noop.snapshot") and not full.exists(".flowmake/noop.snapshot")
        EDITS[edit](fast)
        EDITS[edit](full)
        with_shortcuts, without = _stream(fast, {}), _stream(full, NO_SHORTCUTS)
        _same(with_shortcuts, without)
        # And the next no-op agrees again, the fast path answering one side.
        _same(_stream(fast, {}), _stream(full, NO_SHORTCUTS))
    finally:
        fast.cleanup()
        full.cleanup()
