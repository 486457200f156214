"""A snapshot's flat file records (engine/snapshot.Files): leaving some out keeps every other path with its own stats."""

from __future__ import annotations

from array import array

import pytest

from flowmake.engine.snapshot import Files


@pytest.mark.parametrize("step", [1, 3, 50], ids=["all", "a third (the many branch)", "a few (in place)"])
def test_without_keeps_each_other_path_with_its_three_stats_and_inode(step: int) -> None:
    paths = [f"out/t{i}.txt" for i in range(300)]
    files = Files(paths, array("q", range(900)), array("Q", range(1000, 1300)))
    drop = set(paths[::step]) | {"not/recorded.txt"}
    kept = files.without(drop)
    left = [i for i, path in enumerate(paths) if path not in drop]
    assert list(kept.paths) == [paths[i] for i in left]
    assert list(kept.stats) == [v for i in left for v in range(3 * i, 3 * i + 3)]
    assert list(kept.inodes) == [1000 + i for i in left]
    assert list(files.paths) == paths and len(files.stats) == 900  # the original is left as it was
