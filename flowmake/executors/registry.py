"""Which executor a run uses: `--executor NAME`, else `[flow] executor`, else local; a dry run always plans only.

`choose` says which (a name, and a cluster's address); `select(name,
options)` makes it, one lookup in EXECUTORS, so neither the CLI nor the loop
holds an `if` per executor. One entry per name of model.EXECUTOR_NAMES (the
loader checks `[flow] executor` against those), plus `dry`, which `-n`
chooses. Adding an executor is a module in this package and a line here
(docs/scaling.md, "Adding an executor"); its module is imported only when
chosen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Mapping, NamedTuple, Optional

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
        return self.name not in ("local", DRY)


def choose(flowfile: Flowfile, *, executor: Optional[str], scheduler: Optional[str],
           environ: Optional[Mapping[str, str]] = None, dry_run: bool = False) -> Choice:
    """The option first, then the environment (DASK_SCHEDULER_ADDRESS), then the Flowfile.

    `dry_run` (-n): `dry`, which plans wherever the tasks would run (after the same checks).
    """
    env = os.environ if environ is None else environ
    name = executor or flowfile.executor or "local"
    if name not in EXECUTOR_NAMES:
        raise UsageError(f"unknown executor '{name}'", hint="use one of: " + ", ".join(EXECUTOR_NAMES))
    address = scheduler or env.get("DASK_SCHEDULER_ADDRESS") or flowfile.scheduler
    if address is not None and name == "local" and scheduler is not None:
        raise UsageError("--scheduler-address needs --executor dask (the local executor has no scheduler)",
                         hint="add --executor dask, or set executor = \"dask\" in [flow]")
    return Choice(DRY if dry_run else name, address or None)


DRY = "dry"


class ExecutorOptions(NamedTuple):
    """What the CLI knows that an executor may need; each takes what it uses."""

    root: Path  # the project root: where commands run and outputs are checked
    output: str = "latest"  # the run's output mode (model.OUTPUT_MODES or "latest"): which lines the loop wants
    scheduler: Optional[str] = None  # a cluster's address (Choice.scheduler)


def _local(options: ExecutorOptions) -> Executor:
    from .local import LocalExecutor

    return LocalExecutor(options.root, output=options.output)


def _dask(options: ExecutorOptions) -> Executor:
    from .dask.executor import DaskExecutor

    return DaskExecutor(options.root, address=options.scheduler, output=options.output)


def _dry(options: ExecutorOptions) -> Executor:
    from .dry import DryExecutor

    return DryExecutor(options.root)


EXECUTORS: Dict[str, Callable[[ExecutorOptions], "Executor"]] = {"local": _local, "dask": _dask, DRY: _dry}
assert tuple(EXECUTORS) == (*EXECUTOR_NAMES, DRY)


def select(name: str, options: ExecutorOptions) -> Executor:
    """The executor called `name` (a Choice's), made for this run."""
    return EXECUTORS[name](options)
