"""A real Dask cluster for tests: a `dask scheduler` and `dask worker` subprocesses on 127.0.0.1.

Ports are chosen free; every process runs in its own session and is killed
(with its group) by `stop`, which the fixtures always call. Workers run
without a nanny, so a worker a test kills stays dead, as a lost machine does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

DASK = str(Path(sys.executable).parent / "dask")
START_TIMEOUT = 60.0  # seconds: the machine is shared, and a worker imports a lot


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: Optional[subprocess.Popen] = None
        self.workers: Dict[str, subprocess.Popen] = {}  # name -> process
        self.addresses: Dict[str, str] = {}  # name -> its address, once it joined

    def _spawn(self, name: str, argv: Sequence[str], *, prefix: Sequence[str] = ()) -> subprocess.Popen:
        log = open(self.base / f"{name}.log", "wb")
        try:
            return subprocess.Popen([*prefix, *argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, cwd=str(self.base))
        finally:
            log.close()

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                                   str(self.port), "--no-dashboard", "--no-show"])
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.scheduler.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the scheduler did not start:\n" + self.log("scheduler"))
                time.sleep(0.1)

    def start_worker(self, name: str, *extra: str, prefix: Sequence[str] = ()) -> None:
        (self.base / name).mkdir(exist_ok=True)
        self.workers[name] = self._spawn(name, [DASK, "worker", self.address, "--name", name, "--nthreads", "1",
                                                "--no-nanny", "--no-dashboard", "--local-directory",
                                                str(self.base / name), *extra], prefix=prefix)

    def wait_for_workers(self, names: Sequence[str]) -> None:
        from distributed import Client

        deadline = time.monotonic() + START_TIMEOUT
        with Client(self.address, timeout=START_TIMEOUT, set_as_default=False) as client:
            while True:
                joined = {w["name"]: a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()}
                if all(n in joined for n in names):
                    self.addresses.update({n: joined[n] for n in names})
                    return
                dead = [n for n in names if self.workers[n].poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"workers {dead or names} did not join:\n" +
                                       "\n".join(self.log(n) for n in (dead or names)))
                time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL one worker (or the scheduler) and its process group, as a lost machine."""
        proc = self.scheduler if name == "scheduler" else self.workers[name]
        assert proc is not None
        _kill_group(proc, signal.SIGKILL)

    def log(self, name: str) -> str:
        try:
            return (self.base / f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        procs: List[subprocess.Popen] = list(self.workers.values())
        if self.scheduler is not None:
            procs.append(self.scheduler)
        for proc in procs:
            _kill_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
