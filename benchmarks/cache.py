#!/usr/bin/env python3
"""The shared output cache's price and payoff (issue 19 item 7), on a generated project.

Three timings of a full build of the same project from nothing (no outputs,
no .flowmake/), repeated and interleaved so that the machine's load falls
on all alike; the median of each is printed:

* ``run``: no cache;
* ``miss``: a cache that holds nothing (a new empty directory each time),
  read-write: every task is looked up and missed, and its outputs stored:
  the cost the cache adds to a run with no hits;
* ``restore``: a warm directory cache: every task restored, none run.

    python benchmarks/cache.py [--tasks 1000] [--shape layered] [--reps 5] [-j 2]
"""

from __future__ import annotations

import argparse
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


def timed_run(project: Path, jobs: int, cache: "Path | None") -> float:
    argv = [sys.executable, "-m", "flowmake", "run", "--progress", "plain", "-q", "-j", str(jobs)]
    if cache is not None:
        argv += ["--cache", str(cache)]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"flowmake failed in {project}: {done.stderr}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--shape", choices=SHAPES, default="layered")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowmake-cache-bench-") as tmp:
        base = Path(tmp)
        template = base / "template"
        generate(args.shape, args.tasks, "flowmake", template)
        warm = base / "warm-cache"
        fresh_clone(template, base / "warmer")
        timed_run(base / "warmer", args.jobs, warm)  # fills the warm cache (and the bytecode cache)
        times = {"run": [], "miss": [], "restore": []}
        for rep in range(args.reps):
            for kind in ("run", "miss", "restore"):
                clone = base / f"{kind}-{rep}"
                fresh_clone(template, clone)
                cache = {"run": None, "miss": base / f"empty-{rep}", "restore": warm}[kind]
                times[kind].append(timed_run(clone, args.jobs, cache))
                shutil.rmtree(clone)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{args.tasks} tasks ({args.shape}), -j {args.jobs}, median of {args.reps}:")
        for kind, label in (("run", "run, no cache"), ("miss", "run, empty cache (all missed, all stored)"),
                            ("restore", "restore from a warm directory cache")):
            spread = ", ".join(f"{t:.2f}" for t in times[kind])
            print(f"  {label:<45} {med[kind]:6.2f} s   ({spread})")
        print(f"  cost of the cache with no hits: {100 * (med['miss'] / med['run'] - 1):+.1f}%")
        print(f"  restore vs run: {med['restore'] / med['run']:.2f}x the time ({med['run'] / med['restore']:.1f}x faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
