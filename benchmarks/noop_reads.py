#!/usr/bin/env python3
"""Show that a no-op `flowmake run` reads no file contents, only stats.

Generates a layered project (generate.py), builds it, waits out flowmake's
racy-timestamp window (a file hashed within 2 s of its mtime is re-hashed
once, SPEC §2), runs one warm-up no-op, then traces one more no-op with
`strace -f -y` and counts, for files under the project's src/ and out/:
opens (openat without O_DIRECTORY), read() calls and stat calls. The claim
holds when there are no opens and no reads, while every file is stat'ed.

Without strace (apt-get install strace), it falls back to a Python audit hook
in a `python -c` wrapper around flowmake's entry point, which sees every open()
made from Python (blake3's mmap path opens from Python too) but no stats.
Standard library only; also used by run.py --noop-reads.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

RACY_SETTLE_S = 2.1
# A path may be relative to a directory fd (flowmake stats relative to the
# project root's): with -y strace prints that fd's path, group 1.
_OPEN = re.compile(r'\bopen(?:at)?\((?:(?:AT_FDCWD|\d+)(?:<([^>]*)>)?, )?"([^"]+)", ([A-Z_|]+)')
_READ = re.compile(r"\b(?:read|pread64|readv)\(\d+<([^>]+)>")
_STAT = re.compile(r'\b(?:newfstatat|statx|stat|lstat)\((?:(?:AT_FDCWD|\d+)(?:<([^>]*)>)?, )?"([^"]+)"')


@dataclass
class Counts:
    opens: int
    reads: int
    stats: int
    method: str
    example: str = ""


def _under(path: str, root: Path, base: Optional[str] = None) -> bool:
    full = path if os.path.isabs(path) else os.path.join(base or root, path)
    full = os.path.normpath(full)
    return any(full.startswith(str(root / d) + os.sep) for d in ("src", "out"))


def trace_with_strace(argv: Sequence[str], root: Path, env: Dict[str, str]) -> Counts:
    log = root.parent / f"{root.name}.strace"
    cmd = ["strace", "-f", "-qq", "-y", "-s", "0", "-o", str(log),
           "-e", "trace=open,openat,read,pread64,readv,stat,lstat,newfstatat,statx", "--", *argv]  # fmt: skip
    subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    opens = reads = stats = 0
    example = ""
    for line in log.read_text(errors="replace").splitlines():
        m = _OPEN.search(line)
        if m and "O_DIRECTORY" not in m.group(3) and _under(m.group(2), root, m.group(1)) and "= -1" not in line:
            opens += 1
            example = example or line.strip()
            continue
        m = _READ.search(line)
        if m and _under(m.group(1), root):
            reads += 1
            example = example or line.strip()
            continue
        m = _STAT.search(line)
        if m and _under(m.group(2), root, m.group(1)):
            stats += 1
    return Counts(opens, reads, stats, "strace", example)


_HOOK = """
import sys, os
root = sys.argv.pop(1)
prefixes = tuple(os.path.join(root, d) + os.sep for d in ("src", "out"))
hits = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        p = os.fsdecode(args[0])
        p = os.path.normpath(p if os.path.isabs(p) else os.path.join(os.getcwd(), p))
        if p.startswith(prefixes) and not os.path.isdir(p):
            hits.append(p)
sys.addaudithook(hook)
from flowmake.__main__ import main
try:
    code = main(sys.argv[1:])
finally:
    sys.stderr.write("AUDIT-OPENS %d %s\\n" % (len(hits), hits[0] if hits else ""))
sys.exit(code)
"""


def trace_with_audit_hook(python: str, args: Sequence[str], root: Path, env: Dict[str, str]) -> Counts:
    done = subprocess.run([python, "-c", _HOOK, str(root), *args], cwd=root, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    found = [line for line in done.stderr.splitlines() if line.startswith("AUDIT-OPENS")]
    if not found:
        raise RuntimeError("the audit-hook wrapper printed nothing: " + done.stderr[-500:])
    parts = found[-1].split(" ", 2)
    return Counts(int(parts[1]), 0, -1, "python audit hook (opens from Python only; no stat counts)", parts[2])


def check(flowmake_argv: Sequence[str], n: int, work: Path, env: Optional[Dict[str, str]] = None, shape: str = "layered") -> str:
    """Build, settle, warm up, trace one no-op; return a PASS/FAIL line."""
    env = dict(env or os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    root = work / f"{shape}-{n}"
    if root.exists():
        shutil.rmtree(root)
    dag = generate.generate(shape, n, "flowmake", root)
    run = [*flowmake_argv, "run", "-j", "2"]
    subprocess.run(run, cwd=root, env=env, stdout=subprocess.DEVNULL, check=True)
    time.sleep(RACY_SETTLE_S)
    subprocess.run(run, cwd=root, env=env, stdout=subprocess.DEVNULL, check=True)  # warm-up no-op
    files = len(dag.sources) + len(dag.tasks)
    if shutil.which("strace", path=env.get("PATH")):
        counts = trace_with_strace(run, root, env)
    else:
        counts = trace_with_audit_hook(sys.executable, ["run", "-j", "2"], root, env)
    ok = counts.opens == 0 and counts.reads == 0
    stats = f", {counts.stats} stat calls" if counts.stats >= 0 else ""
    line = (f"{'PASS' if ok else 'FAIL'}  no-op {shape} {n} reads no file contents: "
            f"{counts.opens} opens and {counts.reads} reads of the {files} files under src/ and out/{stats} "
            f"[{counts.method}]")  # fmt: skip
    if counts.example:
        line += f"\n      first: {counts.example[:200]}"
    return line


def default_flowmake() -> List[str]:
    script = Path(sys.executable).parent / "flowmake"
    return [str(script)] if script.exists() else [sys.executable, "-m", "flowmake"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="task count (default 10000)")
    parser.add_argument("--shape", choices=generate.SHAPES, default="layered")
    parser.add_argument("--flowmake", help="flowmake executable (default: next to this interpreter)")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    flowmake = [args.flowmake] if args.flowmake else default_flowmake()
    work = args.work or Path(tempfile.mkdtemp(prefix="flowmake-noop-reads-"))
    try:
        line = check(flowmake, args.tasks, work, shape=args.shape)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(line)
    return 0 if line.startswith("PASS") else 1


if __name__ == "__main__":
    sys.exit(main())
