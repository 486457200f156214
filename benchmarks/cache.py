#!/usr/bin/env python3
"""The shared output cache's price and payoff (issue 19 item 7), on a generated project.

Three timings of a full build of the same project from nothing (no outputs,
no .flowmake/), repeated and interleaved so that the machine's load falls
on all alike; the median of each is printed:

* ``run``: no cache;
* ``miss``: a cache that holds nothing (a new empty directory each time),
  read-write: every task is looked up and missed, and its outputs stored:
  the cost the cache adds to a run with no hits;
* ``miss-read``: the same with ``--cache-mode read`` (a pull request's job
  that reads the shared cache but never writes it): looked up, missed, not stored;
* ``restore``: a warm directory cache: every task restored, none run;
* ``miss-baseline`` (with ``--baseline DIR``): ``miss`` with the flowmake
  package found in DIR (e.g. ``git worktree add /tmp/old <commit>``), to
  compare two versions of the cache on the same machine at the same time.

    python benchmarks/cache.py [--tasks 1000] [--shape layered] [--reps 5] [-j 2] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import SHAPES, generate  # noqa: E402


def fresh_clone(template: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy(template / "Flowfile.toml", dest / "Flowfile.toml")
    shutil.copytree(template / "src", dest / "src")


def timed_run(project: Path, jobs: int, cache: "Path | None", mode: str = "readwrite",
              code: "str | None" = None) -> "tuple[float, float]":
    """(wall seconds, CPU seconds of flowmake and its tasks) of one run; `code`: where to import flowmake from."""
    argv = [sys.executable, "-m", "flowmake", "run", "--progress", "plain", "-q", "-j", str(jobs)]
    if cache is not None:
        argv += ["--cache", str(cache), "--cache-mode", mode]
    env = dict(os.environ, PYTHONPATH=code) if code else None
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"flowmake failed in {project}: {err}")
    return took, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--shape", choices=SHAPES, default="layered")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--baseline", metavar="DIR", help="also time `miss` with the flowmake package in DIR")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowmake-cache-bench-") as tmp:
        base = Path(tmp)
        template = base / "template"
        generate(args.shape, args.tasks, "flowmake", template)
        warm = base / "warm-cache"
        fresh_clone(template, base / "warmer")
        timed_run(base / "warmer", args.jobs, warm)  # fills the warm cache (and the bytecode cache)
        kinds: tuple = ("run", "miss", "miss-read", "restore") + (("miss-baseline",) if args.baseline else ())
        times: dict = {k: [] for k in kinds}
        cpu: dict = {k: [] for k in kinds}
        for rep in range(args.reps):
            for kind in kinds:
                clone = base / f"{kind}-{rep}"
                fresh_clone(template, clone)
                cache = {"run": None, "miss": base / f"empty-{rep}", "miss-read": base / f"none-{rep}",
                         "restore": warm, "miss-baseline": base / f"empty-baseline-{rep}"}[kind]
                wall, used = timed_run(clone, args.jobs, cache, "read" if kind == "miss-read" else "readwrite",
                                       args.baseline if kind == "miss-baseline" else None)
                times[kind].append(wall)
                cpu[kind].append(used)
                shutil.rmtree(clone)
        med = {k: statistics.median(v) for k, v in times.items()}
        low = {k: min(v) for k, v in times.items()}
        used = {k: statistics.median(v) for k, v in cpu.items()}
        print(f"{args.tasks} tasks ({args.shape}), -j {args.jobs}, {args.reps} runs each "
              "(wall: median and best; CPU of flowmake and its tasks: median):")
        for kind, label in (("run", "run, no cache"), ("miss", "run, empty cache (all missed, all stored)"),
                            ("miss-read", "the same, --cache-mode read (missed, not stored)"),
                            ("restore", "restore from a warm directory cache"),
                            ("miss-baseline", f"empty cache, flowmake from {args.baseline}")):
            if kind not in med:
                continue
            print(f"  {label:<50} {med[kind]:6.2f} s  best {low[kind]:5.2f} s  CPU {used[kind]:5.2f} s")
        for kind in [k for k in ("miss", "miss-read", "miss-baseline") if k in med]:
            print(f"  cost of the cache with no hits ({kind}): wall {100 * (med[kind] / med['run'] - 1):+.1f}% "
                  f"(median), {100 * (low[kind] / low['run'] - 1):+.1f}% (best); "
                  f"CPU {100 * (used[kind] / used['run'] - 1):+.1f}%")
        print(f"  restore vs run: {med['run'] / med['restore']:.1f}x faster (median), "
              f"{low['run'] / low['restore']:.1f}x (best)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
