"""After an edit of the Flowfile, the snapshot's proof holds for exactly the tasks whose spec did not change.

The snapshot keeps each task's spec digest (engine/proof.py): a run after an
edit plans only the tasks specified otherwise, those the snapshot does not
know and the cone below them. For each kind of edit (a task's command, env,
env_inputs, inputs, outputs or edges, a task added, removed or renamed, an
included file, and the global ones: the flow's shell, `[env]`, `[vars]`, an
env_input's value), a real project is built, edited, and:

- the proof a run would plan from leaves exactly the expected tasks to plan;
- the run that follows runs exactly the expected tasks, with the shortcuts
  and with FLOWMAKE_NO_SHORTCUTS=1 alike;
- the run after that has nothing to do, the fast path answering.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, FrozenSet, NamedTuple, Optional, Set

import pytest
from conftest import SHORTCUTS_OFF, Project

pytestmark = pytest.mark.skipif(SHORTCUTS_OFF, reason="tests the snapshot's proof against the full path")

FLOWFILE = """\
[flow]
name = "specs"
include = ["more.toml"]

[vars]
mode = "plain"

[tasks.a]
inputs = ["src/a.txt"]
outputs = ["build/a.txt"]
run = "cp src/a.txt build/a.txt"

[tasks.b]
inputs = ["build/a.txt"]
outputs = ["build/b.txt"]
run = "cp build/a.txt build/b.txt"

[tasks.c]
inputs = ["src/c.txt"]
outputs = ["build/c.txt"]
run = "cp src/c.txt build/c.txt"

[tasks.d]
inputs = ["build/b.txt", "build/c.txt"]
outputs = ["build/d.txt"]
run = "cat build/b.txt build/c.txt > build/d.txt"
"""

MORE = """\
[tasks.e]
inputs = ["src/e.txt"]
outputs = ["build/e.txt"]
env_inputs = ["MODE"]
run = "cp src/e.txt build/e.txt; : {mode}"
"""

ALL = frozenset("abcde")


class Edit(NamedTuple):
    flowfile: Callable[[str], str] = lambda text: text
    more: Callable[[str], str] = lambda text: text
    env: Optional[Dict[str, str]] = None  # the environment of the run after the edit
    planned: FrozenSet[str] = frozenset()  # what the proof leaves to plan
    ran: FrozenSet[str] = frozenset()  # what the run then runs


def _swap(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


ADDED = '\n[tasks.f]\ninputs = ["build/c.txt"]\noutputs = ["build/f.txt"]\nrun = "cp build/c.txt build/f.txt"\n'
C_TABLE = FLOWFILE[FLOWFILE.index("[tasks.c]"):FLOWFILE.index("[tasks.d]")]

EDITS: Dict[str, Edit] = {
    "a comment": Edit(flowfile=lambda t: "# a comment\n" + t),
    "the flow's name and jobs": Edit(flowfile=_swap('name = "specs"', 'name = "renamed"\njobs = 1')),
    # cp -p writes the same bytes: b is cut off early.
    "one task's command": Edit(flowfile=_swap("cp src/a.txt", "cp -p src/a.txt"), planned=frozenset("abd"),
                               ran=frozenset("a")),
    "one task's env": Edit(flowfile=_swap('run = "cp src/c.txt', 'env = { X = "1" }\nrun = "cp src/c.txt'),
                           planned=frozenset("cd"), ran=frozenset("c")),
    "one task's env_inputs": Edit(flowfile=_swap('run = "cp src/c.txt', 'env_inputs = ["OTHER"]\nrun = "cp src/c.txt'),
                                  planned=frozenset("cd"), ran=frozenset("c")),
    "one task's inputs": Edit(flowfile=_swap('inputs = ["build/a.txt"]', 'inputs = ["build/a.txt", "src/c.txt"]'),
                              planned=frozenset("bd"), ran=frozenset("b")),
    "one task's outputs": Edit(flowfile=lambda t: t.replace("build/a.txt", "build/a2.txt"),
                               planned=frozenset("abd"), ran=frozenset("ab")),
    "an edge added": Edit(flowfile=_swap('[tasks.b]\n', '[tasks.b]\nafter = ["c"]\n'), planned=frozenset("bd")),
    "always": Edit(flowfile=_swap('run = "cp src/c.txt', 'always = true\nrun = "cp src/c.txt'),
                   planned=frozenset("cd"), ran=frozenset("c")),
    "a task added": Edit(flowfile=lambda t: t + ADDED, planned=frozenset("f"), ran=frozenset("f")),
    # d then reads build/c.txt as a source (it exists): its spec's edges changed, its fingerprint did not.
    "a task removed": Edit(flowfile=_swap(C_TABLE, ""), planned=frozenset("d")),
    "a task renamed": Edit(flowfile=_swap("[tasks.c]", "[tasks.c2]"), planned=frozenset({"c2", "d"}),
                           ran=frozenset({"c2"})),
    "an included task": Edit(more=_swap("cp src/e.txt", "cp -p src/e.txt"), planned=frozenset("e"),
                             ran=frozenset("e")),
    "a var": Edit(flowfile=_swap('mode = "plain"', 'mode = "fancy"'), planned=frozenset("e"), ran=frozenset("e")),
    "the default targets": Edit(flowfile=_swap('name = "specs"', 'name = "specs"\ndefault = ["b"]')),
    "the flow's shell": Edit(flowfile=_swap('name = "specs"', 'name = "specs"\nshell = "bash -c"'),
                             planned=ALL, ran=ALL),
    "the flow's env": Edit(flowfile=_swap("[vars]", '[env]\nLANG_X = "1"\n\n[vars]'), planned=ALL, ran=ALL),
    "an env_input's value": Edit(env={"MODE": "other"}, planned=ALL, ran=frozenset("e")),
}


def _built(root: Path, env: Dict[str, str]) -> Project:
    root.mkdir()
    project = Project(root)
    project.flowfile(FLOWFILE)
    project.write("more.toml", MORE)
    for name in "ace":
        project.write(f"src/{name}.txt", f"{name}\n")
    first = project.json_run(env=env)
    assert first.returncode == 0 and set(first.ran) == ALL, first
    again = project.json_run(env=env)  # all fresh: leaves the snapshot (with the shortcuts)
    assert again.returncode == 0 and not again.ran, again
    return project


def _edited(project: Project, edit: Edit) -> None:
    project.flowfile(edit.flowfile(project.read("Flowfile.toml")))
    project.write("more.toml", edit.more(project.read("more.toml")))


def _left_to_plan(root: Path, environ: Dict[str, str]) -> Set[str]:
    """What the snapshot's proof leaves a run to plan, asked as the run asks (engine/build.py)."""
    from flowmake.cli.commands import Project as Loaded
    from flowmake.cli.commands import open_state
    from flowmake.engine.graph import closure
    from flowmake.engine.proof import proven_fresh

    loaded = Loaded.load(file=root / "Flowfile.toml", directory=None)
    selection = closure(loaded.graph, loaded.targets(()))
    state = open_state(loaded)
    try:
        proven, cone = proven_fresh(loaded.flowfile, loaded.graph, selection, state_identity=state.identity,
                                    target_names=(), environ=environ)
    finally:
        state.close()
    return set(selection) - set(proven)


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edit_of_the_flowfile_plans_and_runs_only_what_it_changed(tmp_path: Path, name: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    edit = EDITS[name]
    fast = _built(tmp_path / "fast", {})
    full = _built(tmp_path / "full", {"FLOWMAKE_NO_SHORTCUTS": "1"})
    try:
        assert fast.exists(".flowmake/noop.snapshot")
        _edited(fast, edit)
        _edited(full, edit)
        env = dict(edit.env or {})
        monkeypatch.chdir(fast.root)
        assert _left_to_plan(fast.root, {**os.environ, **env}) == set(edit.planned)
        ran_fast = fast.json_run(env=env)
        ran_full = full.json_run(env={**env, "FLOWMAKE_NO_SHORTCUTS": "1"})
        assert ran_fast.returncode == 0 and ran_full.returncode == 0, (ran_fast, ran_full)
        assert set(ran_fast.ran) == set(ran_full.ran) == set(edit.ran), (ran_fast, ran_full)
        assert ran_fast.statuses == ran_full.statuses
        if "always" in name:
            return  # an `always` task runs every time, and no snapshot is left
        # Left the next proof: nothing to do, answered from it alone (the fast path needs no plan).
        assert fast.exists(".flowmake/noop.snapshot")
        assert _left_to_plan(fast.root, {**os.environ, **env}) == set()
        again = fast.json_run(env=env)
        assert again.returncode == 0 and not again.ran, again
        full_again = full.json_run(env={**env, "FLOWMAKE_NO_SHORTCUTS": "1"})
        assert again.statuses == full_again.statuses
        assert again.one("run_started")["flow"] == full_again.one("run_started")["flow"]  # the flow's name, as edited
    finally:
        fast.cleanup()
        full.cleanup()


def test_edits_one_after_another_each_plan_their_own_cone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot left by a run planned across an edit keeps the digests of the tasks it did not plan."""
    project = _built(tmp_path / "p", {})
    monkeypatch.chdir(project.root)
    steps = [("one task's command", frozenset("abd")), ("an included task", frozenset("e")),
             ("a task added", frozenset("f")), ("one task's env", frozenset("cdf"))]
    for name, planned in steps:
        _edited(project, EDITS[name])
        assert _left_to_plan(project.root, dict(os.environ)) == set(planned), name
        result = project.json_run()
        assert result.returncode == 0, result
        assert project.exists(".flowmake/noop.snapshot"), name
