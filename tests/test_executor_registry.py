"""executors/registry.py: the run's executor is one lookup, `select(choose(...).name, options)`."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmake.errors import UsageError
from flowmake.executors.dry import DryExecutor
from flowmake.executors.local import LocalExecutor
from flowmake.executors.registry import DRY, EXECUTORS, ExecutorOptions, choose, select
from flowmake.load.flowfile import load
from flowmake.model import EXECUTOR_NAMES


@pytest.fixture
def flowfile(tmp_path: Path):
    (tmp_path / "Flowfile.toml").write_text('[tasks.a]\noutputs = ["a.txt"]\nrun = "echo a > a.txt"\n')
    return load(tmp_path / "Flowfile.toml")


def test_every_executor_a_flowfile_may_name_is_registered_and_dry_too() -> None:
    assert set(EXECUTORS) == {*EXECUTOR_NAMES, DRY}


def test_select_makes_the_chosen_executor(flowfile, tmp_path: Path) -> None:
    local = select(choose(flowfile, executor=None, scheduler=None, environ={}).name,
                   ExecutorOptions(tmp_path, output="none"))
    try:
        assert isinstance(local, LocalExecutor) and local.runs_commands
    finally:
        local.close()
    dry = select(choose(flowfile, executor="local", scheduler=None, environ={}, dry_run=True).name,
                 ExecutorOptions(tmp_path))
    assert isinstance(dry, DryExecutor) and not dry.runs_commands


def test_a_dry_run_is_checked_like_the_run_it_plans(flowfile) -> None:
    with pytest.raises(UsageError, match="unknown executor 'nosuch'"):
        choose(flowfile, executor="nosuch", scheduler=None, environ={}, dry_run=True)
    planned = choose(flowfile, executor="dask", scheduler="tcp://127.0.0.1:1", environ={}, dry_run=True)
    assert planned.name == DRY and not planned.follows_cluster
