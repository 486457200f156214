"""Ending the task processes a killed run left behind (SPEC §3), found by the run id in their environment."""

from __future__ import annotations

import os
import signal
import time
from typing import Dict, List, Optional, Sequence


def end_orphans(run_ids: Sequence[str]) -> Dict[int, str]:
    """Kill the process groups still running tasks of these (dead) runs; {group: task} of those ended.

    Every task is started with FLOWMAKE_RUN_ID and FLOWMAKE_TASK in its
    environment, which its processes inherit: a live process that carries a
    dead run's id belongs to one of its tasks, and a pid reused since by an
    unrelated process never does. Needs /proc (Linux); elsewhere nothing is
    killed.
    """
    ended: Dict[int, str] = {}
    if not run_ids or not os.path.isdir("/proc"):
        return ended
    markers = {f"FLOWMAKE_RUN_ID={run_id}".encode() for run_id in run_ids}
    own_group = os.getpgrp()
    for group, members in _live_process_groups().items():
        if group == own_group or group in ended:
            continue
        for member in members:
            task = _task_of(member, markers)
            if task is not None:
                ended[group] = task
                break
    for group in list(ended):
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            del ended[group]
    if ended:
        _wait_until_gone(set(ended))
    return ended


def _task_of(pid: int, markers: set) -> Optional[str]:
    """FLOWMAKE_TASK of a process whose environment carries one of `markers`, else None."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            entries = f.read().split(b"\0")
    except OSError:
        return None  # gone, or another user's: not ours either way
    if markers.isdisjoint(entries):
        return None
    for entry in entries:
        if entry.startswith(b"FLOWMAKE_TASK="):
            return entry[len(b"FLOWMAKE_TASK="):].decode("utf-8", "replace")
    return "?"


def _wait_until_gone(groups: set, timeout: float = 5.0) -> None:
    """Return once no live process is left in these process groups.

    SIGKILL is delivered asynchronously: without this wait, a task started
    right after could still meet the orphan writing its output.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not groups.intersection(_live_process_groups()):
            return
        time.sleep(0.01)


def _live_process_groups() -> Dict[int, List[int]]:
    """Process group id -> its members that are alive (zombies are dead, just not reaped)."""
    groups: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read().decode()
        except OSError:
            continue
        fields = data[data.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X"):
            groups.setdefault(int(fields[2]), []).append(int(entry))
    return groups
