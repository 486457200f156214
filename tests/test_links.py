"""outputs_leaving: way_out's answer for every output, from one lstat per directory and one listing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowmake.load.links import outputs_leaving
from flowmake.removal import way_out

# Each step of a tree: (path, what): a directory, a file, a link out of the project, a link inside it.
STEPS = st.lists(st.tuples(st.sampled_from(["a", "b", "a/c", "b/d", "a/c/e", "x"]),
                           st.sampled_from(["dir", "file", "link-out", "link-in"])), max_size=8)
OUTPUTS = st.lists(st.sampled_from(["a", "a/", "b/f.txt", "a/c/e", "a/c/e/g.txt", "x", "x/y", "b/d/",
                                    "a/../../z", "./a/c", "b"]), max_size=10)


def _make(root: Path, outside: Path, steps) -> None:
    for rel, what in steps:
        path = root / rel
        if os.path.lexists(path) or not path.parent.is_dir():
            continue
        if what == "dir":
            path.mkdir()
        elif what == "file":
            path.write_text("x")
        elif what == "link-out":
            path.symlink_to(outside)
        else:
            path.symlink_to(root / "b")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(STEPS, OUTPUTS)
def test_outputs_leaving_agrees_with_way_out(tmp_path_factory: pytest.TempPathFactory, steps, outputs) -> None:
    base = tmp_path_factory.mktemp("tree")
    root, outside = base / "project", base / "elsewhere"
    root.mkdir()
    outside.mkdir()
    _make(root, outside, steps)
    declared = [(f"t{i}", out) for i, out in enumerate(outputs)]
    expected = [(task, out, leak) for task, out in declared
                if (leak := way_out(str(root), out, itself=True)) is not None]
    assert list(outputs_leaving(str(root), declared)) == expected


def test_an_output_that_is_a_link_out_is_found_among_many(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    root = tmp_path / "project"
    (root / "out").mkdir(parents=True)
    for i in range(50):
        (root / "out" / f"t{i}.txt").write_text("x")
    (root / "out" / "t50.txt").symlink_to(tmp_path / "elsewhere" / "t50.txt")
    declared = [(f"t{i}", f"out/t{i}.txt") for i in range(60)]
    found = list(outputs_leaving(str(root), declared))
    assert [(task, out) for task, out, _ in found] == [("t50", "out/t50.txt")]
