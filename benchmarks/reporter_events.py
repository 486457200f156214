#!/usr/bin/env python3
"""The reporters' own cost at N tasks, without the build around them.

tree_pty.py times whole builds, where the reporter is a few percent of the
work and the machine's noise is more. This feeds each reporter the events of
a full build of N one-task groups (the benchmarks' shapes) in-process: the
plan, then a start and a finish per task, two at a time as at -j2, and the
run's end. Each mode runs in a fresh interpreter, interleaved and rotated
over --reps rounds; it prints the median CPU seconds (the process's, so the
tree's refresh thread counts) of folding the plan, of the events, in all,
and the peak RSS. The tree draws on a Console that takes the terminal's part
(160 x 50, colours on) and discards what it is sent; json and plain write
to /dev/null, flushing per line as they do on a pipe. Needs flowmake
importable from this interpreter.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

MODES = ("tree", "json", "plain")


class _Screen(io.TextIOBase):
    """A terminal that is written to and shows nothing."""

    def write(self, text: str) -> int:
        return len(text)

    def isatty(self) -> bool:
        return True


def one(mode: str, n: int) -> Dict[str, float]:
    """Run mode's reporter over N tasks' events here; its costs."""
    from flowmake.events import PlannedTask, RunFinished, RunResult, RunStarted, TaskFinished, TaskStarted, TaskState
    from flowmake.report import make_reporter

    run = "20261204T000000000Z-bench"
    tasks = tuple(PlannedTask(f"t{i}", f"t{i}", True) for i in range(n))
    begin = time.process_time()
    if mode == "tree":
        os.environ.update(COLUMNS="160", LINES="50")
        os.environ.pop("NO_COLOR", None)
        reporter = make_reporter("tree", out=_Screen(), err=sys.stderr, color=True)
    else:
        reporter = make_reporter(mode, out=open(os.devnull, "w"), err=sys.stderr)
    reporter.handle(RunStarted(run, time.time(), "bench", (), tasks, 2))
    planned = time.process_time()
    for i in range(0, n, 2):
        pair = [f"t{j}" for j in (i, i + 1) if j < n]
        for name in pair:
            reporter.handle(TaskStarted(run, time.time(), name, (), None))
        for name in pair:
            reporter.handle(TaskFinished(run, time.time(), name, TaskState.OK, 0.01))
    events = time.process_time()
    reporter.handle(RunFinished(run, time.time(), RunResult.SUCCESS, {"ok": n}, 1.0))
    reporter.close()
    end = time.process_time()
    return {"plan": planned - begin, "events": events - planned, "total": end - begin,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks (default 100000)")
    parser.add_argument("--reps", type=int, default=3, help="rounds over the modes (median; default 3)")
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)  # a child's run
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.tasks)))
        return 0
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs: Dict[str, List[Dict[str, float]]] = {m: [] for m in MODES}
    for rep in range(args.reps):
        for mode in MODES[rep % 3:] + MODES[: rep % 3]:
            done = subprocess.run([sys.executable, __file__, "--one", mode, "--tasks", str(args.tasks)], env=env,
                                  capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(done.stdout))
    print(f"reporters over {args.tasks} tasks' events (plan, a start and a finish each), median of {args.reps}:")
    print()
    print("| mode  | plan (cpu) | events (cpu) | total (cpu) | /json | peak RSS |")
    print("|-------|------------|--------------|-------------|-------|----------|")
    med = {m: {k: statistics.median(r[k] for r in runs[m]) for k in runs[m][0]} for m in MODES}
    for m in MODES:
        row = med[m]
        print(f"| {m:5} | {row['plan']:9.3f}s | {row['events']:11.3f}s | {row['total']:10.3f}s |"
              f" {row['total'] / med['json']['total']:5.2f} | {row['rss_mb']:6.0f}MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
