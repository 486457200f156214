"""The deletion rule (flowmake/removal.py) on real files and links under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowmake.removal import remove, way_out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """proj/ with links that stay inside and ones that leave; outside/ beside it."""
    proj, outside = tmp_path / "proj", tmp_path / "outside"
    (proj / "real").mkdir(parents=True)
    (proj / "real" / "a.txt").write_text("a")
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "v.txt").write_text("v")
    (outside / "v.txt").write_text("v")
    os.symlink(outside, proj / "up")  # leaves
    os.symlink("real", proj / "in")  # stays
    os.symlink(outside / "v.txt", proj / "file-link")
    (proj / "chain").mkdir()
    os.symlink("../up", proj / "chain" / "hop")  # inside, to a link that leaves
    return proj


@pytest.mark.parametrize("rel, itself, expected", [
    ("real/a.txt", False, None),
    ("in/a.txt", False, None),
    ("missing/dir/x.txt", False, None),
    ("up/v.txt", False, ("up", "outside")),
    ("up/deep/v.txt", False, ("up", "outside")),
    ("chain/hop/v.txt", False, ("chain/hop", "outside")),
    ("up", False, None),  # the link itself is the path: deleting it passes through nothing
    ("up", True, ("up", "outside")),
    ("file-link", True, ("file-link", "outside/v.txt")),
    ("real/../../outside/v.txt", False, ("real/../../outside/v.txt", "outside")),
])
def test_way_out_names_the_link_a_path_leaves_the_root_by(tree: Path, rel: str, itself: bool, expected) -> None:
    found = way_out(str(tree), rel, itself=itself)
    if expected is None:
        assert found is None
    else:
        link, target = expected
        assert found == (link, str(tree.parent / target))


def test_remove_refuses_a_path_through_a_link_out_and_deletes_nothing(tree: Path) -> None:
    warning = remove(str(tree), "up/deep", tree=True)
    assert warning == f"not deleting up/deep: up is a symbolic link to {tree.parent / 'outside'}, outside the project"
    assert (tree.parent / "outside" / "deep" / "v.txt").exists()
    assert remove(str(tree), "../outside/v.txt", boundary=".flowmake/logs") == \
        f"not deleting ../outside/v.txt: it leads outside .flowmake/logs, to {tree.parent / 'outside'}"
    assert (tree.parent / "outside" / "v.txt").exists()


def test_remove_deletes_a_link_not_its_target_and_a_tree_without_following_links(tree: Path) -> None:
    assert remove(str(tree), "up/", tree=True) is None
    assert not os.path.lexists(tree / "up")
    assert (tree.parent / "outside" / "deep" / "v.txt").exists()
    os.symlink(tree.parent / "outside", tree / "real" / "out")
    assert remove(str(tree), "real/", tree=True) is None
    assert not (tree / "real").exists()
    assert (tree.parent / "outside" / "v.txt").exists()
    assert remove(str(tree), "never/was.txt") is None
