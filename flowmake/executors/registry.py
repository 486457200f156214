"""Which executor a run uses: `--executor NAME`, else `[flow] executor`, else local; a dry run always plans only.

One entry per name of model.EXECUTOR_NAMES (the loader checks `[flow]
executor` against those). Adding an executor is a module in this package and
a line here (docs/scaling.md, "Adding an executor").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Mapping, Optional

from ..errors import UsageError
from ..model import EXECUTOR_NAMES

if TYPE_CHECKING:  # names for type checkers only
    from ..model import Flowfile
    from .protocol import Executor


class Choice:
    """What the run asked for: an executor's name and, for a cluster, its scheduler's address."""

    __slots__ = ("name", "scheduler")

    def __init__(self, name: str, scheduler: Optional[str]) -> None:
        self.name = name
        self.scheduler = scheduler

    @property
    def follows_cluster(self) -> bool:
        """Whether its `-j` default is the cluster's worker threads (followed), not this machine's CPUs."""
        return self.name != "local"


def choose(flowfile: Flowfile, *, executor: Optional[str], scheduler: Optional[str],
           environ: Optional[Mapping[str, str]] = None) -> Choice:
    """The option first, then the environment (DASK_SCHEDULER_ADDRESS), then the Flowfile."""
    env = os.environ if environ is None else environ
    name = executor or flowfile.executor or "local"
    if name not in EXECUTOR_NAMES:
        raise UsageError(f"unknown executor '{name}'", hint="use one of: " + ", ".join(EXECUTOR_NAMES))
    address = scheduler or env.get("DASK_SCHEDULER_ADDRESS") or flowfile.scheduler
    if address is not None and name == "local" and scheduler is not None:
        raise UsageError("--scheduler-address needs --executor dask (the local executor has no scheduler)",
                         hint="add --executor dask, or set executor = \"dask\" in [flow]")
    return Choice(name, address or None)


def _local(root: Path, choice: Choice, output: str) -> Executor:
    from .local import LocalExecutor

    return LocalExecutor(root, output=output)


def _dask(root: Path, choice: Choice, output: str) -> Executor:
    from .dask.executor import DaskExecutor

    return DaskExecutor(root, address=choice.scheduler, output=output)


EXECUTORS: Dict[str, Callable[["Path", Choice, str], "Executor"]] = {"local": _local, "dask": _dask}
assert tuple(EXECUTORS) == EXECUTOR_NAMES


def make_executor(root: Path, choice: Choice, *, output: str, dry_run: bool) -> Executor:
    """The run's executor; a dry run's plans only, wherever the tasks would run."""
    if dry_run:
        from .dry import DryExecutor

        return DryExecutor(root)
    return EXECUTORS[choice.name](root, choice, output)
