"""Scale-out benchmark of `--executor dask` (issue 18): what handing tasks to a Dask cluster costs.

Two measurements, each against the local executor on the same machine:

1. CPU-bound work: N tasks (default 200) of 0.5 s of CPU each, on a
   two-worker local cluster (`dask scheduler` and two `dask worker
   --nthreads 1` processes on 127.0.0.1) against `flowmake run -j 2`.
   The ratio dask/local is the price of the cluster for real work; the
   goal is <= 1.15x.
2. Per-task overhead: M trivial tasks (default 1,000, `true`) through the
   same cluster; the wall time per task, and what it adds over the local
   executor's, is the Dask path's own cost per task; the goal is <= 10 ms.

Each run is `flowmake run -B --progress json` in a fresh project, repeated
`--reps` times interleaved (local, dask, local, dask, ...), medians
reported. The cluster is started once and always stopped.

    python benchmarks/scaleout.py                      # 200 x 0.5 s, 1,000 trivial, 3 reps
    python benchmarks/scaleout.py --cpu-tasks 40 --trivial-tasks 300 --reps 1   # quick look
    python benchmarks/scaleout.py --json results.json

Needs flowmake with the dask extra in the interpreter that runs it
(`pip install -e '.[dask]'`). On a machine with other load, both sides
suffer alike; run it on a quiet one for absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

BURN = "0.5"  # seconds of CPU per task in the CPU-bound workload

CPU_FLOWFILE = """\
[vars]
ids = {ids}

[tasks.burn]
matrix = {{ i = "{{ids}}" }}
outputs = ["out/{{i}}.txt"]
run = "python3 burn.py {burn} > {{outputs}}"
"""

TRIVIAL_FLOWFILE = """\
[vars]
ids = {ids}

[tasks.nothing]
matrix = {{ i = "{{ids}}" }}
run = "true"
"""

# Busy until this process has used the CPU time asked for: the same work under either executor.
BURN_SCRIPT = """\
import sys, time
end = time.process_time() + float(sys.argv[1])
n = 0
while time.process_time() < end:
    n += 1
print(n)
"""


def flowmake_command() -> List[str]:
    script = Path(sys.executable).parent / "flowmake"
    return [str(script)] if script.exists() else [sys.executable, "-m", "flowmake"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalDaskCluster:
    """`dask scheduler` and two single-thread `dask worker` processes on 127.0.0.1, each in its own session."""

    def __init__(self, work: Path, workers: int = 2) -> None:
        self.work = work
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: List[subprocess.Popen] = []
        dask = str(Path(sys.executable).parent / "dask")
        log = open(work / "cluster.log", "wb")
        self.procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                            "--no-dashboard", "--no-show"], stdout=log, stderr=log,
                                           start_new_session=True))
        for i in range(workers):
            (work / f"w{i}").mkdir()
            self.procs.append(subprocess.Popen([dask, "worker", self.address, "--nthreads", "1", "--no-dashboard",
                                                "--name", f"w{i}", "--local-directory", str(work / f"w{i}")],
                                               stdout=log, stderr=log, start_new_session=True))
        log.close()
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)

    def cpu_seconds(self) -> float:
        """CPU time the cluster's own processes used so far (scheduler, nannies, workers; not the tasks).

        Each was started in a session of its own, and a task runs in one of its own:
        the processes of those sessions are the cluster.
        """
        sessions = {proc.pid for proc in self.procs}
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    data = f.read().decode()
            except OSError:
                continue
            fields = data[data.rfind(")") + 2:].split()
            if int(fields[3]) in sessions:  # field 6 of stat: the session id
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def make_project(where: Path, flowfile: str) -> Path:
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    (where / "Flowfile.toml").write_text(flowfile)
    (where / "burn.py").write_text(BURN_SCRIPT)
    return where


def timed_run(project: Path, extra: List[str], expect: int, cpu: Optional[List[float]] = None) -> float:
    """Seconds of one full run (every task forced); checks that every task ran and succeeded.

    `cpu`: appended the CPU seconds of flowmake itself and of what it waited for (local tasks).
    """
    before = os.times()
    start = time.monotonic()
    proc = subprocess.run(flowmake_command() + ["run", "-B", "--progress", "json", *extra], cwd=project,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - start
    after = os.times()
    if cpu is not None:
        cpu.append(after.children_user + after.children_system - before.children_user - before.children_system)
    if proc.returncode != 0:
        raise SystemExit(f"flowmake failed ({proc.returncode}) in {project}:\n{proc.stderr[-2000:]}")
    ok = sum(1 for line in proc.stdout.splitlines()
             if '"task_finished"' in line and json.loads(line).get("status") == "ok")
    if ok != expect:
        raise SystemExit(f"{ok} of {expect} tasks succeeded in {project}")
    return took


def measure(work: Path, name: str, flowfile: str, tasks: int, cluster: LocalDaskCluster, reps: int,
            local_jobs: int, *, warm: bool) -> Dict[str, List[float]]:
    times: Dict[str, List[float]] = {"local": [], "dask": [], "flowmake_cpu": [], "cluster_cpu": []}
    local = make_project(work / f"{name}-local", flowfile)
    remote = make_project(work / f"{name}-dask", flowfile)
    if warm:  # a first, unmeasured run of each: the workers' imports and the page cache warm
        timed_run(local, ["-j", str(local_jobs)], tasks)
        timed_run(remote, ["--executor", "dask", "--scheduler-address", cluster.address], tasks)
    for _ in range(reps):
        times["local"].append(timed_run(local, ["-j", str(local_jobs)], tasks))
        cluster_before = cluster.cpu_seconds()
        times["dask"].append(timed_run(remote, ["--executor", "dask", "--scheduler-address", cluster.address],
                                       tasks, times["flowmake_cpu"]))
        times["cluster_cpu"].append(cluster.cpu_seconds() - cluster_before)
    return times


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-tasks", type=int, default=200)
    parser.add_argument("--trivial-tasks", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--work", type=Path, help="keep the projects here (default: a temporary directory)")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="flowmake-scaleout-"))
    work.mkdir(parents=True, exist_ok=True)
    cluster = LocalDaskCluster(work)
    try:
        ids = json.dumps([str(i) for i in range(args.cpu_tasks)])
        cpu = measure(work, "cpu", CPU_FLOWFILE.format(ids=ids, burn=BURN), args.cpu_tasks, cluster, args.reps, 2,
                      warm=False)
        ids = json.dumps([str(i) for i in range(args.trivial_tasks)])
        trivial = measure(work, "trivial", TRIVIAL_FLOWFILE.format(ids=ids), args.trivial_tasks, cluster,
                          args.reps, 2, warm=True)
    finally:
        cluster.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    cpu_local, cpu_dask = statistics.median(cpu["local"]), statistics.median(cpu["dask"])
    tr_local, tr_dask = statistics.median(trivial["local"]), statistics.median(trivial["dask"])
    per_task = tr_dask / args.trivial_tasks * 1000
    # What the Dask path costs in CPU, wherever it runs: flowmake (the client) and the cluster's own processes.
    cpu_over = (statistics.median(cpu["flowmake_cpu"]) + statistics.median(cpu["cluster_cpu"])) / args.cpu_tasks
    tr_over = (statistics.median(trivial["flowmake_cpu"]) + statistics.median(trivial["cluster_cpu"]))
    tr_over = tr_over / args.trivial_tasks * 1000
    added = (tr_dask - tr_local) / args.trivial_tasks * 1000
    ratio = cpu_dask / cpu_local
    load = os.getloadavg()[0]
    print(f"CPU-bound: {args.cpu_tasks} tasks x {BURN}s CPU, median of {args.reps} "
          f"({os.cpu_count()} CPUs, load average {load:.1f} at the end)")
    print(f"  local -j2          {cpu_local:8.2f} s")
    print(f"  dask, 2 workers    {cpu_dask:8.2f} s   ratio {ratio:.3f}x   (goal <= 1.15x: "
          f"{'pass' if ratio <= 1.15 else 'FAIL'})")
    print(f"  CPU of the Dask path (flowmake + scheduler + workers): {cpu_over * 1000:.1f} ms/task, "
          f"{cpu_over / float(BURN) * 100:.1f}% of the tasks' own")
    print(f"Per-task overhead: {args.trivial_tasks} trivial tasks, median of {args.reps}")
    print(f"  local -j2          {tr_local:8.2f} s   {tr_local / args.trivial_tasks * 1000:.2f} ms/task")
    print(f"  dask, 2 workers    {tr_dask:8.2f} s   {per_task:.2f} ms/task   (+{added:.2f} ms over local; "
          f"goal <= 10 ms: {'pass' if per_task <= 10 else 'FAIL'})")
    print(f"  CPU of the Dask path (flowmake + scheduler + workers): {tr_over:.2f} ms/task")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "cpu": {"tasks": args.cpu_tasks, "burn_s": float(BURN), "times": cpu, "ratio": ratio},
            "trivial": {"tasks": args.trivial_tasks, "times": trivial, "ms_per_task": per_task,
                        "ms_added_per_task": added, "cpu_ms_per_task": tr_over},
            "load_average": os.getloadavg()[0],
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
