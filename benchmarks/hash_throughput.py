#!/usr/bin/env python3
"""Hash throughput on this machine, and flowmake's first hash of a big file.

Measures, over one buffer of --size bytes (default 1 GiB) held in memory:
hashlib's sha256 and blake2b, blake3 single-threaded and with
max_threads=AUTO, and xxhash's xxh3_128 (not cryptographic; shown for
scale). blake3 and xxhash are taken from this interpreter if importable,
else from benchmarks/.peers-venv (run.py installs both there), else skipped.
Then writes the buffer to a file and times flowmake's own path, a first hash
with an empty stat cache: ``FileHasher(root, {}).hash(relpath)``. The target
of issue 4 is that this runs at >= 80% of the fastest cryptographic
throughput measured. The file is in the page cache after being written
(24 GiB of RAM here); --drop-caches asks the kernel to drop it first (root
only) to include the disk. Prints GiB/s, median of --reps. Standard library
only (plus the hash modules it measures).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
PEERS_PYTHON = HERE / ".peers-venv" / "bin" / "python"
GIB = 1 << 30
CRYPTOGRAPHIC = ("sha256", "blake2b", "blake3", "blake3-threads")


def _timed(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_memory(buf: bytes, reps: int, only: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Seconds per pass over buf for each hash importable here (median of reps)."""
    view = memoryview(buf)
    cases: Dict[str, Callable[[], object]] = {
        "sha256": lambda: hashlib.sha256(view).digest(),
        "blake2b": lambda: hashlib.blake2b(view).digest(),
    }
    try:
        from blake3 import blake3

        cases["blake3"] = lambda: blake3(view).digest()
        cases["blake3-threads"] = lambda: blake3(view, max_threads=blake3.AUTO).digest()
    except ImportError:
        pass
    try:
        import xxhash

        cases["xxh3_128"] = lambda: xxhash.xxh3_128(view).digest()
    except ImportError:
        pass
    return {name: _timed(fn, reps) for name, fn in cases.items() if only is None or name in only}


def in_peers_venv(size: int, reps: int, names: Sequence[str]) -> Dict[str, float]:
    """Measure the hashes missing here with the peers venv's interpreter (same script)."""
    if not names or not PEERS_PYTHON.exists():
        return {}
    done = subprocess.run(
        [str(PEERS_PYTHON), __file__, "--size", str(size), "--reps", str(reps), "--_only", ",".join(names)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"peers venv measurement failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return {}
    return json.loads(done.stdout)


def flowmake_first_hash(buf: bytes, reps: int, drop_caches: bool) -> Tuple[Optional[float], str]:
    """Seconds for FileHasher(root, {}).hash(path) on a file holding buf."""
    try:
        from flowmake.store.hashing import FileHasher
    except ImportError as exc:
        return None, f"flowmake.store.hashing not importable: {exc}"
    with tempfile.TemporaryDirectory(prefix="flowmake-hash-") as tmp:
        root = Path(tmp)
        (root / "big.bin").write_bytes(buf)
        times: List[float] = []
        for _ in range(reps):
            if drop_caches:
                os.sync()
                try:
                    Path("/proc/sys/vm/drop_caches").write_text("3\n")
                except OSError as exc:
                    return None, f"cannot drop caches: {exc}"
            hasher = FileHasher(root, {})  # empty stat cache: a first hash
            start = time.perf_counter()
            digest = hasher.hash("big.bin")
            times.append(time.perf_counter() - start)
            assert digest and hasher.reads == 1
        return statistics.median(times), "FileHasher(root, {}).hash (stat + read + hash)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=GIB, help="bytes to hash (default 1 GiB)")
    parser.add_argument("--reps", type=int, default=3, help="median of this many passes (default 3)")
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache before each file hash (root)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--_only", help=argparse.SUPPRESS)  # internal: run.py's peers venv helper
    args = parser.parse_args(argv)

    block = os.urandom(1 << 20)
    buf = block * max(1, args.size // len(block))
    size = len(buf)
    if args._only:
        print(json.dumps(in_memory(buf, args.reps, args._only.split(","))))
        return 0

    seconds = in_memory(buf, args.reps)
    missing = [n for n in ("blake3", "blake3-threads", "xxh3_128") if n not in seconds]
    from_venv = in_peers_venv(size, args.reps, missing)
    seconds.update(from_venv)
    fm_seconds, fm_how = flowmake_first_hash(buf, args.reps, args.drop_caches)

    rate = {name: size / s / GIB for name, s in seconds.items()}
    fastest_crypto = max((n for n in rate if n in CRYPTOGRAPHIC), key=rate.__getitem__)
    if args.json:
        print(json.dumps({"size": size, "gib_per_s": rate, "flowmake_gib_per_s": size / fm_seconds / GIB if fm_seconds else None}))
        return 0
    print(f"hash throughput over {size / GIB:.2f} GiB in memory, {os.cpu_count()} CPUs, median of {args.reps}")
    for name, r in sorted(rate.items(), key=lambda kv: -kv[1]):
        tags = [] if name in CRYPTOGRAPHIC else ["not cryptographic"]
        if name in from_venv:
            tags.append("measured in .peers-venv")
        print(f"  {name:16} {r:6.2f} GiB/s" + (f"  ({', '.join(tags)})" if tags else ""))
    for name in ("blake3", "xxh3_128"):
        if name not in rate:
            print(f"  {name:16}   skipped (not importable; run benchmarks/run.py once to create .peers-venv)")
    if fm_seconds is None:
        print(f"SKIP  flowmake first hash: {fm_how}")
        return 0
    fm_rate = size / fm_seconds / GIB
    share = fm_rate / rate[fastest_crypto]
    cache = "page cache dropped" if args.drop_caches else "file in page cache"
    print(f"  flowmake         {fm_rate:6.2f} GiB/s  ({fm_how}, {cache})")
    verdict = "PASS" if share >= 0.8 else "FAIL"
    print(f"{verdict}  flowmake's first hash of a {size / GIB:.2f} GiB input runs at {share:.1%} of the fastest "
          f"cryptographic hash ({fastest_crypto}, {rate[fastest_crypto]:.2f} GiB/s); target >= 80%")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
