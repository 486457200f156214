#!/usr/bin/env python3
"""Time a full build with the live tree on a pseudo-terminal against json and plain.

Issue 4 asks that the live tree stay cheap at 10,000 tasks: a full build's
wall time with `--progress tree` under a pseudo-terminal within 10 % of
`--progress json`. This script generates a layered project (generate.py)
and times full builds, `flowmake run -j2 --progress MODE` with out/ and
.flowmake/ removed first, in each mode: interleaved, the mode order rotated
every repetition, after an untimed warm-up build. For `tree` the child's
stdout and stderr are the slave side of a pty (window 50 x 160) whose master
side a thread drains continuously, so the child never blocks on a full pty
buffer; the bytes read are the redraw volume. `json` and `plain` write to a
pipe drained the same way. It prints the median wall time per mode, its
ratio to json, the CPU time of the process tree (wait4: flowmake and the
commands it reaped), the bytes written, and PASS/FAIL for tree <= 1.10 x
json (exit status 1 on FAIL). Standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (sibling module)
from run import fmt_seconds, reap, table  # noqa: E402  (shared with the suite)

MODES = ("tree", "json", "plain")
ROWS, COLS = 50, 160
TARGET = 1.10  # tree <= TARGET x json


def find_flowmake(explicit: Optional[str]) -> List[str]:
    if explicit:
        return [str(Path(explicit).resolve())]
    script = Path(sys.executable).parent / "flowmake"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "flowmake"]


def clean(root: Path) -> None:
    """Remove outputs and flowmake's state (and any other dot-entry a run left)."""
    for entry in root.iterdir():
        if entry.name == "out" or entry.name.startswith("."):
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    (root / "out").mkdir()


def _drain(fd: int, counter: List[int]) -> None:
    """Read fd to EOF (a pipe) or EIO (a pty whose slave side is closed everywhere)."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        counter[0] += len(chunk)


def run_build(argv: Sequence[str], cwd: Path, env: Dict[str, str], mode: str, timeout: float) -> Tuple[float, float, int, int]:
    """One build: (wall seconds, CPU seconds of the process tree, bytes of output, exit code)."""
    if mode == "tree":
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        read_fd, write_fd = master, slave
    else:
        read_fd, write_fd = os.pipe()
    counter = [0]
    reader = threading.Thread(target=_drain, args=(read_fd, counter), daemon=True)
    reader.start()
    try:
        with open(os.devnull, "rb") as devnull:
            start = time.perf_counter()
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=env, stdin=devnull, stdout=write_fd, stderr=write_fd, start_new_session=True
            )
        os.close(write_fd)  # the child holds the only copy now: EOF / EIO once it (and its children) exit
        write_fd = -1
        # wait4, not proc.wait(): its rusage covers flowmake and the task commands it reaped.
        status, usage, timed_out = reap(proc.pid, timeout)
        elapsed = time.perf_counter() - start
        proc.returncode = code = -1 if timed_out else os.waitstatus_to_exitcode(status)
        reader.join(timeout=30)
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        reader.join(timeout=5)
        os.close(read_fd)
    return elapsed, usage.ru_utime + usage.ru_stime, counter[0], code


def fmt_bytes(value: float) -> str:
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}MB"


def pty_env(base: Mapping[str, str]) -> Dict[str, str]:
    """The environment of the timed builds (also run.py --big's, through big.py)."""
    env = dict(base)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users run with .pyc caches
    for name in ("NO_COLOR", "COLUMNS", "LINES", "FORCE_COLOR"):
        env.pop(name, None)  # the tree must size and colour itself from the pty
    env["TERM"] = "xterm-256color"
    return env


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10000, help="tasks in the layered project (default 10000)")
    parser.add_argument("--reps", type=int, default=3, help="timed builds per mode (median; default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed builds first, one per mode in turn (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="flowmake -j (default 2)")
    parser.add_argument("--flowmake", help="flowmake executable (default: the one next to this interpreter)")
    parser.add_argument("--work", type=Path, help="work directory (default: a new temporary one, removed afterwards)")
    parser.add_argument("--timeout", type=float, default=600, help="per-build timeout in seconds (default 600)")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the running child is killed and the work dir removed


def main(argv: Optional[Sequence[str]] = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse_args(argv)
    flowmake = find_flowmake(args.flowmake)
    env = pty_env(os.environ)
    work = args.work or Path(tempfile.mkdtemp(prefix="flowmake-tree-pty-"))
    work.mkdir(parents=True, exist_ok=True)
    root = work / f"layered-{args.tasks}"
    times: Dict[str, List[float]] = {m: [] for m in MODES}
    cpu: Dict[str, List[float]] = {m: [] for m in MODES}
    volume: Dict[str, List[int]] = {m: [] for m in MODES}
    started = time.perf_counter()
    try:
        if root.exists():
            shutil.rmtree(root)
        dag = generate.generate("layered", args.tasks, "flowmake", root)
        subprocess.run([*flowmake, "--version"], env=env, capture_output=True)  # compile .pyc once
        print(f"layered {len(dag.tasks)} tasks in {root}; {args.warmup} warm-up, {args.reps} reps x {', '.join(MODES)}, -j{args.jobs}",
              file=sys.stderr)  # fmt: skip
        plan = [(-1, MODES[i % len(MODES)]) for i in range(args.warmup)]
        for rep in range(args.reps):
            plan += [(rep, m) for m in MODES[rep % len(MODES):] + MODES[: rep % len(MODES)]]
        for rep, mode in plan:
            clean(root)
            argv = [*flowmake, "run", "-j", str(args.jobs), "--progress", mode]
            seconds, cpu_seconds, nbytes, code = run_build(argv, root, env, mode, args.timeout)
            if code != 0:
                print(f"{mode}: flowmake exited {code}" + (" (timed out)" if code == -1 else ""), file=sys.stderr)
                return 1
            missing = [t.output for t in dag.tasks if not (root / t.output).exists()]
            if missing:
                print(f"{mode}: {len(missing)} outputs missing after the build", file=sys.stderr)
                return 1
            label = "warm-up" if rep < 0 else f"rep {rep + 1}"
            print(f"  {label:7} {mode:5} {fmt_seconds(seconds):>9}  cpu {fmt_seconds(cpu_seconds):>9}  {fmt_bytes(nbytes)}",
                  file=sys.stderr)  # fmt: skip
            if rep >= 0:
                times[mode].append(seconds)
                cpu[mode].append(cpu_seconds)
                volume[mode].append(nbytes)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    med = {m: statistics.median(times[m]) for m in MODES}
    rows = []
    for m in MODES:
        where = f"pty {ROWS}x{COLS}" if m == "tree" else "pipe"
        rows.append([m, where, fmt_seconds(med[m]), f"{med[m] / med['json']:.3f}", " ".join(fmt_seconds(t) for t in times[m]),
                     fmt_seconds(statistics.median(cpu[m])), fmt_bytes(statistics.median(volume[m]))])  # fmt: skip
    print()
    print(f"tree under a pty: layered {args.tasks} tasks, full build -j{args.jobs}, median of {args.reps} after {args.warmup} warm-up; "
          f"{os.cpu_count()} CPUs; took {time.perf_counter() - started:.0f} s")  # fmt: skip
    print()
    print(table(["mode", "output", "median", "/json", "runs", "cpu (median)", "bytes written"], rows))
    print()
    ratio = med["tree"] / med["json"]
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"{verdict}  tree {fmt_seconds(med['tree'])} <= {TARGET:.2f}x json {fmt_seconds(med['json'])} (ratio {ratio:.3f})")
    print(f"      plain/json = {med['plain'] / med['json']:.3f}; tree wrote {fmt_bytes(statistics.median(volume['tree']))} to the pty")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
