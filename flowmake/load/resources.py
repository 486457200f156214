"""Where tasks run, as the Flowfile says: a task's `resources`, and `[flow] executor` / `scheduler`.

Checked at load time like every other key, so that a typo in `memory =
"8G B"` is an error with its line before anything runs, not a task that
waits forever for a worker that has no such resource (docs/scaling.md).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Tuple

from ..model import EXECUTOR_NAMES
from .problems import Problems, describe

RESOURCE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Decimal units as Dask writes them (`dask worker --resources memory=8e9`), binary ones as people mean them.
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*")
_HINT = 'write resources = { gpu = 1, memory = "8GB" } (a number, or a size such as "512MiB")'


def parse_amount(value: object) -> Optional[float]:
    """A resource amount: a positive number, or a size text ("8GB", "512 MiB") in bytes; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    match = _SIZE_RE.fullmatch(value)
    if match is None or match.group(2).lower() not in _UNITS:
        return None
    amount = float(match.group(1)) * _UNITS[match.group(2).lower()]
    return amount if amount > 0 else None


def read_resources(raw: object, *, problems: Problems, task: str) -> Optional[Tuple[Tuple[str, float], ...]]:
    """`resources = { NAME = AMOUNT, ... }` of a task, checked; sorted (name, amount) pairs."""
    at = ("tasks", task, "resources")
    if not isinstance(raw, dict):
        problems.add(f"task {task}: key `resources` must be a table, got {describe(raw)}", at=at, hint=_HINT)
        return None
    out = []
    for name, value in raw.items():
        if not RESOURCE_NAME_RE.fullmatch(name):
            problems.add(f"task {task}: resource name `{name}` must be letters, digits, '_' or '-'", at=(*at, name),
                         hint=_HINT)
            continue
        amount = parse_amount(value)
        if amount is None:
            problems.add(f"task {task}: resource `{name}` must be a positive number or a size such as \"8GB\", "
                         f"got {describe(value)}", at=(*at, name), hint=_HINT)
            continue
        out.append((name, amount))
    return tuple(sorted(out))


def read_executor(raw: Mapping[str, Any], *, problems: Problems) -> Tuple[Optional[str], Optional[str]]:
    """`[flow] executor` and `scheduler`, checked: (executor name or None, scheduler address or None)."""
    executor = raw.get("executor")
    if executor is not None and executor not in EXECUTOR_NAMES:
        got = f"'{executor}'" if isinstance(executor, str) else describe(executor)
        problems.add(f"[flow]: key `executor` must be one of {', '.join(EXECUTOR_NAMES)}, got {got}",
                     at=("flow", "executor"), hint='write executor = "dask" (docs/scaling.md)')
        executor = None
    scheduler = raw.get("scheduler")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        problems.add(f"[flow]: key `scheduler` must be a scheduler address, got {describe(scheduler)}",
                     at=("flow", "scheduler"), hint='write scheduler = "tcp://10.0.0.5:8786"')
        scheduler = None
    return executor, scheduler
