#!/usr/bin/env python3
"""Time flowmake against GNU make, ninja, doit, Snakemake and go-task.

The runner installs the peers into their own virtualenv
(benchmarks/.peers-venv: `ninja`, `doit`, `snakemake`, `go-task-bin`, plus
`xxhash` and `blake3` for hash_throughput.py), takes GNU make from the system
and flowmake from the interpreter that runs this script. For each shape and
size it generates one equivalent project per tool (generate.py) and times,
interleaved (the tool order rotates every repetition) and as the median of
--reps runs after a warm-up: full builds at -j1 and -j2, a no-op, a
touch-only run (every source touched, contents unchanged), a one-file-change
rebuild (one leaf source edited; -j1), plus each tool's startup (`--version`)
and a no-op on a 10-task project. Every child is started with posix_spawn and
reaped with os.wait4 for its wall time. Peak RSS comes from GNU time
(/usr/bin/time -f %M) around the run: a child spawned straight from this
Python process inherits its memory high-water mark at exec, so the runner's
own wait4 would report at least the runner's RSS (30-50 MB) for make too.
Whole builds are timed through GNU time (its ~1 ms is noise there); the
short scenarios are timed bare and get one extra, untimed run for the RSS.
It prints a table of medians, a table of flowmake/peer ratios and the targets
of issue 4 as PASS/FAIL lines. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import big as big_suite  # noqa: E402  (sibling modules)
import generate  # noqa: E402

PEERS_VENV = HERE / ".peers-venv"
PEER_PACKAGES = {"ninja": "ninja", "doit": "doit", "snakemake": "snakemake", "task": "go-task-bin"}
EXTRA_PACKAGES = ("xxhash", "blake3")  # for hash_throughput.py, not timed here
# flowmake trusts a cached file hash once the file system's clock has passed
# its mtime (SPEC §2, git's racy-timestamp rule; docs/rebuild.md), and only
# where it cannot read that clock once the mtime is 2 s old. "first" measures
# the run right after a build; the other no-op scenarios wait this long
# first, so that they time the same thing on any file system.
RACY_SETTLE_S = 2.1
GNU_TIME = "/usr/bin/time"
SCENARIOS = ("full-j1", "full-j2", "first", "noop", "noop-daemon", "touch", "change1")
# Whole-graph builds for make/ninja: fewer reps at 10k. "first" rebuilds
# (untimed) before each timed run, so it costs as much.
HEAVY = ("full-j1", "full-j2", "first", "touch")
# Sizes above which a tool is skipped unless --tool-max says otherwise.
DEFAULT_CAPS = {"task": 10_000}
SCENARIO_HELP = {
    "full-j1": "full build from clean, -j1",
    "full-j2": "full build from clean, -j2",
    "first": "the first run right after a full build, nothing changed, -j2",
    "noop": "nothing to do, -j2",
    "noop-daemon": "nothing to do, -j2, answered by `flowmake daemon` (flowmake only; docs/daemon.md)",
    "touch": "every source touched, contents unchanged, -j2",
    "change1": "one leaf source edited, -j1",
    "version": "`--version` (startup)",
    "noop10": "no-op on a 10-task layered project",
    "peak-rss": "largest peak RSS (GNU time %M) of any run at this size (MB)",
}


# ---------------------------------------------------------------------------
# Running one command


@dataclass
class Measurement:
    seconds: float
    maxrss_kb: Optional[int]  # None when not measured through GNU time
    returncode: int
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def gnu_time_available() -> bool:
    try:
        done = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stderr.strip().isdigit()


def run_measured(
    argv: Sequence[str], cwd: Path, env: Dict[str, str], log: Path, timeout: float, *, rss: bool = False
) -> Measurement:
    """Spawn argv in cwd (own session) and reap it with wait4: wall time, and with
    rss=True its peak RSS in KB as GNU time saw it (the largest single process
    of the tree, not a sum)."""
    rss_file = log.with_suffix(".rss")
    if rss:
        rss_file.unlink(missing_ok=True)
        argv = [GNU_TIME, "-f", "%M", "-o", str(rss_file), "--", *argv]
    exe = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=env.get("PATH"))
    if exe is None:
        raise FileNotFoundError(argv[0])
    with open(log, "wb") as out, open(os.devnull, "rb") as devnull:
        actions = [
            (os.POSIX_SPAWN_DUP2, devnull.fileno(), 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 2),
        ]
        previous = os.getcwd()
        os.chdir(cwd)  # posix_spawn has no cwd argument in the standard library
        try:
            start = time.perf_counter()
            pid = os.posix_spawn(exe, list(argv), env, file_actions=actions, setsid=True)
        finally:
            os.chdir(previous)
        status, _, timed_out = reap(pid, timeout)
        elapsed = time.perf_counter() - start
    maxrss: Optional[int] = None
    if rss:
        try:  # GNU time writes "Command exited with non-zero status N" first on failure
            maxrss = int(rss_file.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            maxrss = None
    return Measurement(elapsed, maxrss, os.waitstatus_to_exitcode(status), timed_out)


def reap(pid: int, timeout: float) -> Tuple[int, "os.struct_rusage", bool]:  # type: ignore[name-defined]
    """wait4 for a child that leads its own session, killing its whole group
    after `timeout` seconds (or on Ctrl-C): (status, rusage, timed out)."""
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        _, status, usage = os.wait4(pid, 0)
    except BaseException:  # Ctrl-C or SIGTERM: take the child's whole group down with us
        kill()
        os.wait4(pid, 0)
        raise
    finally:
        timer.cancel()
    return status, usage, fired.is_set()


# ---------------------------------------------------------------------------
# Tools


@dataclass
class Tool:
    name: str
    exe: str  # absolute path, or "" when unavailable
    prefix: Tuple[str, ...] = ()  # e.g. (python, "-m", "flowmake")
    note: str = ""

    @property
    def available(self) -> bool:
        return bool(self.exe)

    def argv(self, *args: str) -> List[str]:
        return [self.exe, *self.prefix, *args]

    def build(self, jobs: int) -> List[str]:
        j = str(jobs)
        return {
            "flowmake": lambda: self.argv("run", "-j", j),
            "make": lambda: self.argv("-j", j),
            "ninja": lambda: self.argv("-j", j),
            "doit": lambda: self.argv() if jobs == 1 else self.argv("-n", j),
            "snakemake": lambda: self.argv("--cores", j, "--quiet", "all"),
            "task": lambda: self.argv("--concurrency", j),
        }[self.name]()

    def version(self) -> List[str]:
        return self.argv("--version")


def ensure_peers_venv(python: str, log: Path, tools: Sequence[str] = tuple(PEER_PACKAGES)) -> Tuple[Optional[Path], List[str]]:
    """Create benchmarks/.peers-venv if missing and pip-install what it lacks of `tools`' packages.

    Returns the venv's bin directory (None if there is none) and notes.
    """
    notes: List[str] = []
    bindir = PEERS_VENV / "bin"
    if not (bindir / "python").exists():
        print(f"creating {PEERS_VENV} ...", flush=True)
        done = subprocess.run([python, "-m", "venv", str(PEERS_VENV)], capture_output=True, text=True)
        if done.returncode != 0:
            return None, [f"could not create {PEERS_VENV}: {done.stderr.strip()[-300:]}"]
    wanted = [(pkg, bindir / exe) for exe, pkg in PEER_PACKAGES.items() if exe in tools]
    for pkg in EXTRA_PACKAGES:
        probe = subprocess.run([str(bindir / "python"), "-c", f"import {pkg}"], capture_output=True)
        if probe.returncode != 0:
            wanted.append((pkg, Path("")))
    for pkg, exe in wanted:
        if exe != Path("") and exe.exists():
            continue
        print(f"pip install {pkg} into {PEERS_VENV.name} ...", flush=True)
        with open(log, "ab") as out:
            done = subprocess.run(
                [str(bindir / "python"), "-m", "pip", "install", "--disable-pip-version-check", pkg],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if done.returncode != 0:
            notes.append(f"pip install {pkg} failed (see {log}); skipped")
    return bindir, notes


def find_flowmake(explicit: Optional[str]) -> Tool:
    if explicit:
        return Tool("flowmake", str(Path(explicit).resolve()))
    script = Path(sys.executable).parent / "flowmake"
    if script.exists():
        return Tool("flowmake", str(script))
    probe = subprocess.run([sys.executable, "-m", "flowmake", "--version"], capture_output=True)
    if probe.returncode == 0:
        return Tool("flowmake", sys.executable, ("-m", "flowmake"))
    return Tool("flowmake", "", note="flowmake is not importable from this interpreter")


def discover_tools(selected: Sequence[str], bindir: Optional[Path], flowmake: Optional[str]) -> List[Tool]:
    tools: List[Tool] = []
    for name in selected:
        if name == "flowmake":
            tool = find_flowmake(flowmake)
        elif name == "make":
            exe = shutil.which("make") or ""
            tool = Tool("make", exe, note="" if exe else "GNU make not found on PATH (apt-get install make)")
        else:
            exe_path = (bindir / name) if bindir else None
            exe = str(exe_path) if exe_path and exe_path.exists() else ""
            tool = Tool(name, exe, note="" if exe else f"{PEER_PACKAGES[name]} is not installed in {PEERS_VENV}")
        if tool.available:
            probe = subprocess.run(tool.version(), capture_output=True, text=True)
            first = (probe.stdout or probe.stderr).strip().splitlines()
            if probe.returncode != 0:
                tool = Tool(name, "", note=f"`{name} --version` failed: {' '.join(first[-1:])}")
            else:
                tool.note = first[0] if first else ""
        tools.append(tool)
    return tools


# ---------------------------------------------------------------------------
# Projects


@dataclass
class Project:
    tool: Tool
    root: Path
    dag: generate.Dag
    input_size: int

    def clean(self) -> None:
        """Remove outputs and every trace of previous runs (tool state is dot-files)."""
        for entry in self.root.iterdir():
            if entry.name in ("out", "__pycache__") or entry.name.startswith("."):
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        (self.root / "out").mkdir()

    def built(self) -> bool:
        return all((self.root / t.output).exists() for t in self.dag.tasks)

    def touch_sources(self) -> None:
        now = time.time_ns()
        for src in self.dag.sources:
            os.utime(self.root / src, ns=(now, now))

    def change_source(self, generation: int) -> None:
        path = self.root / self.dag.change_source()
        i = self.dag.sources.index(self.dag.change_source())
        path.write_bytes(generate.source_content(i, self.input_size) + f"change {generation}\n".encode())


@dataclass
class Results:
    times: Dict[Tuple[str, int, str, str], List[float]] = field(default_factory=dict)
    rss: Dict[Tuple[str, int, str], int] = field(default_factory=dict)  # (shape, n, tool) -> max KB
    notes: List[str] = field(default_factory=list)
    affected: Dict[Tuple[str, int], int] = field(default_factory=dict)  # tasks downstream of the edited source
    ran: Dict[Tuple[str, int], Tuple[int, bool]] = field(default_factory=dict)  # flowmake: tasks run, exit ok
    tasks_time: Dict[Tuple[str, int], float] = field(default_factory=dict)  # affected commands run serially
    scenario_rss: Dict[Tuple[str, int, str, str], int] = field(default_factory=dict)  # --big: per scenario, max KB
    missing: Dict[Tuple[str, int, str], str] = field(default_factory=dict)  # (shape, n, tool) -> why it has no figures
    big_sizes: Tuple[int, ...] = ()  # the sizes --big added (big.py's targets read them)

    def why_missing(self, shape: str, n: int, tool: str) -> str:
        return self.missing.get((shape, n, tool), "not measured at this size")

    def add(self, shape: str, n: int, scenario: str, tool: str, m: Measurement) -> None:
        self.times.setdefault((shape, n, scenario, tool), []).append(m.seconds)
        self.add_rss(shape, n, tool, m)

    def add_rss(self, shape: str, n: int, tool: str, m: Measurement) -> None:
        if m.maxrss_kb is not None:
            key = (shape, n, tool)
            self.rss[key] = max(self.rss.get(key, 0), m.maxrss_kb)

    def median(self, shape: str, n: int, scenario: str, tool: str) -> Optional[float]:
        values = self.times.get((shape, n, scenario, tool))
        return statistics.median(values) if values else None


class Bench:
    def __init__(self, args: argparse.Namespace, tools: List[Tool], env: Dict[str, str], work: Path) -> None:
        self.args = args
        self.tools = [t for t in tools if t.available]
        self.env = env
        self.work = work
        self.results = Results()
        self.log = work / "last-run.log"
        self.gnu_time = gnu_time_available()
        if not self.gnu_time:
            self.results.notes.append(f"{GNU_TIME} (GNU time) not found: no peak RSS (apt-get install time)")

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def exec(self, project: Project, argv: List[str], rss: bool = False, heavy: bool = False) -> Measurement:
        timeout = max(self.args.timeout, self.args.build_timeout) if heavy else self.args.timeout
        return run_measured(argv, project.root, self.env, self.log, timeout, rss=rss and self.gnu_time)

    def reps_for(self, n: int, scenario: str) -> int:
        if n >= 10_000 and scenario in HEAVY and self.args.heavy_reps:
            return self.args.heavy_reps
        return self.args.big_reps if n >= 1000 and self.args.big_reps else self.args.reps

    def scenario(
        self,
        shape: str,
        n: int,
        name: str,
        projects: Dict[str, Project],
        command: Callable[[Project], List[str]],
        prepare: Callable[[Project, int], None],
        warmup: int,
        rss_each: bool = False,
    ) -> None:
        """Warm-up then reps, tools interleaved and rotated; failures drop the tool for this size.

        `rss_each`: every run through GNU time, its peak RSS kept for this scenario (Results.scenario_rss)."""
        reps = self.reps_for(n, name)
        names = [t for t in projects]
        for rep in range(warmup + reps):
            order = names[rep % len(names):] + names[: rep % len(names)] if names else []
            for tool in order:
                project = projects.get(tool)
                if project is None:
                    continue
                prepare(project, rep)
                m = self.exec(project, command(project), rss=name in HEAVY or rss_each, heavy=name in HEAVY)
                if not m.ok:
                    why = f"timed out after {m.seconds:.0f} s" if m.timed_out else f"exit {m.returncode}"
                    tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
                    last = tail[-1] if tail else ""
                    self.results.notes.append(f"{tool} {shape} {n} {name}: {why} ({last[:160]}); dropped at this size")
                    self.results.missing.setdefault((shape, n, tool), f"dropped at this size: {name} {why}")
                    self.say(f"  {tool} {name} FAILED ({why}):\n    " + "\n    ".join(tail))
                    del projects[tool]
                    continue
                if rep >= warmup:
                    self.results.add(shape, n, name, tool, m)
                if rss_each and m.maxrss_kb is not None:
                    key = (shape, n, name, tool)
                    self.results.scenario_rss[key] = max(self.results.scenario_rss.get(key, 0), m.maxrss_kb)
        if name not in HEAVY and not rss_each and self.gnu_time:  # one more, untimed, through GNU time for the peak RSS
            for tool, project in projects.items():
                prepare(project, warmup + reps)
                m = self.exec(project, command(project), rss=True)
                if m.ok:
                    self.results.add_rss(shape, n, tool, m)
        summary = ", ".join(
            f"{t} {self.results.median(shape, n, name, t):.3f}s"
            for t in names
            if self.results.median(shape, n, name, t) is not None
        )
        self.say(f"  {shape} {n} {name}: {summary}")

    def size(self, shape: str, n: int) -> None:
        self.say(f"== {shape}, {n} tasks")
        base = self.work / f"{shape}-{n}"
        projects: Dict[str, Project] = {}
        for tool in self.tools:
            cap = self.args.caps.get(tool.name)
            if cap is not None and n > cap:
                flag = "--snakemake-max" if tool.name == "snakemake" else f"--tool-max {tool.name}={cap}"
                self.results.missing[(shape, n, tool.name)] = f"skipped above {cap} tasks ({flag})"
                note = f"{tool.name} skipped at {shape} {n} (above {flag})"
                if note not in self.results.notes:
                    self.results.notes.append(note)
                continue
            root = base / tool.name
            if root.exists():
                shutil.rmtree(root)
            dag = generate.generate(shape, n, tool.name, root, self.args.input_size)
            projects[tool.name] = Project(tool, root, dag, self.args.input_size)
        if not projects:
            return
        dag = next(iter(projects.values())).dag
        # Warm-ups fill the page cache and .pyc caches; from 1k on a whole build
        # is its own warm-up. The no-op always gets one (the first run after a
        # build is measured on its own, as "first").
        warmup = 1 if n < 10_000 else 0
        heavy_warmup = 1 if n < 1000 else 0

        def clean(p: Project, rep: int) -> None:
            p.clean()

        def nothing(p: Project, rep: int) -> None:
            pass

        def touch(p: Project, rep: int) -> None:
            p.touch_sources()

        def change(p: Project, rep: int) -> None:
            p.change_source(rep)

        if n <= self.args.j1_max:
            self.scenario(shape, n, "full-j1", projects, lambda p: p.tool.build(1), clean, heavy_warmup)
        self.scenario(shape, n, "full-j2", projects, lambda p: p.tool.build(2), clean, heavy_warmup)
        for tool, project in list(projects.items()):
            if not project.built():
                self.results.notes.append(f"{tool} {shape} {n}: a full build left outputs missing; dropped")
                del projects[tool]

        def rebuild(p: Project, rep: int) -> None:
            if rep:  # the first rep follows the last full build above
                p.clean()
                self.exec(p, p.tool.build(2), heavy=True)

        self.scenario(shape, n, "first", projects, lambda p: p.tool.build(2), rebuild, 0)
        time.sleep(RACY_SETTLE_S)
        self.scenario(shape, n, "noop", projects, lambda p: p.tool.build(2), nothing, 1)
        self.daemon_noop(shape, n, projects)
        if n < min(self.results.big_sizes or big_suite.BIG_SIZES):  # above, make and ninja rebuild everything, for minutes each
            self.scenario(shape, n, "touch", projects, lambda p: p.tool.build(2), touch, heavy_warmup)
        # The touch runs leave every source hashed within the racy window of its
        # new mtime: an edit then is timed together with re-reading them all
        # (rebuild.md), which is not what one changed leaf measures. So the
        # window passes first, and, as for the no-op, one untimed run re-reads them.
        time.sleep(RACY_SETTLE_S)
        self.scenario(shape, n, "change1", projects, lambda p: p.tool.build(1), change, 1)
        affected = dag.affected_by(dag.change_source())
        self.results.affected[(shape, n)] = len(affected)
        if "flowmake" in projects:
            self.check_change(shape, n, projects["flowmake"])
            self.results.tasks_time[(shape, n)] = self.tasks_time(projects["flowmake"], affected)
        if self.args.big:
            big_suite.run_scenarios(self, shape, n, projects)

    def daemon_noop(self, shape: str, n: int, projects: Dict[str, Project]) -> None:
        """The no-op answered by the resident watcher (docs/daemon.md): started after the build, stopped after."""
        project = projects.get("flowmake")
        if project is None:
            return
        started = self.exec(project, project.tool.argv("daemon", "start", "--idle-exit", "30m"))
        if not started.ok:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
            self.results.notes.append(f"flowmake {shape} {n} noop-daemon: the daemon did not start ({''.join(tail)[:160]})")
            return
        try:
            self.scenario(shape, n, "noop-daemon", {"flowmake": project}, lambda p: p.tool.build(2), lambda p, r: None, 1)
        finally:
            self.exec(project, project.tool.argv("daemon", "stop"))

    def check_change(self, shape: str, n: int, project: Project) -> None:
        """One more edit, run with --progress json: exactly the affected tasks must run."""
        project.change_source(10_000)
        m = self.exec(project, project.tool.argv("run", "-j", "1", "--progress", "json"))
        ran = 0
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "task_finished" and event.get("status") == "ok":
                ran += 1
        self.results.ran[(shape, n)] = (ran, m.ok)

    def tasks_time(self, project: Project, tasks: Sequence[generate.Task], rounds: int = 3) -> float:
        """The affected tasks' own cost: each command run serially with `sh -c`, as written; median of `rounds`.

        One round alone varied by ~15 % between suite runs, and so did the
        one-change budgets built on it.
        """
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for task in tasks:
                run_measured(["/bin/sh", "-c", task.command], project.root, self.env, self.log, self.args.timeout)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def startup(self) -> None:
        self.say("== startup")
        reps = self.args.reps
        tools = list(self.tools)
        for rep in range(1 + reps):
            for tool in tools[rep % len(tools):] + tools[: rep % len(tools)]:
                m = run_measured(tool.version(), self.work, self.env, self.log, self.args.timeout)
                if rep >= 1 and m.ok:
                    self.results.add("startup", 0, "version", tool.name, m)
        base = self.work / "noop10"
        projects: Dict[str, Project] = {}
        for tool in tools:
            root = base / tool.name
            if root.exists():
                shutil.rmtree(root)
            dag = generate.generate("layered", 10, tool.name, root, self.args.input_size)
            project = Project(tool, root, dag, self.args.input_size)
            if self.exec(project, tool.build(2)).ok:
                projects[tool.name] = project
        time.sleep(RACY_SETTLE_S)
        self.scenario("startup", 0, "noop10", projects, lambda p: p.tool.build(2), lambda p, r: None, 1)
        for tool in tools:
            med = self.results.median("startup", 0, "version", tool.name)
            if med is not None:
                self.say(f"  {tool.name} --version {med * 1000:.1f} ms")


# ---------------------------------------------------------------------------
# Report


def fmt_seconds(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f}ms"
    return f"{value:.2f}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def row_keys(results: Results) -> List[Tuple[str, int, str]]:
    order = {s: i for i, s in enumerate(("version", "noop10", *SCENARIOS))}
    keys = {(s, n, sc) for (s, n, sc, _) in results.times}
    return sorted(keys, key=lambda k: (k[0] != "startup", k[0], k[1], order.get(k[2], 99)))


def report(results: Results, tools: Sequence[str]) -> str:
    out: List[str] = []
    headers = ["shape", "N", "scenario", *tools]
    rows: List[List[str]] = []
    sizes = sorted({(s, n) for (s, n, _) in results.rss if s != "startup"})
    for shape, n, scenario in row_keys(results):
        rows.append([shape, str(n) if n else "", scenario, *(fmt_seconds(results.median(shape, n, scenario, t)) for t in tools)])
        if scenario == "change1" or (scenario == "touch" and (shape, n, "change1") not in {k[:3] for k in results.times}):
            rss = [results.rss.get((shape, n, t)) for t in tools]
            rows.append([shape, str(n), "peak-rss", *(f"{v / 1024:.0f}MB" if v else "-" for v in rss)])
    out.append("Medians (wall time; peak-rss = largest peak RSS of one process, GNU time %M, of any run at that size)\n")
    out.append(table(headers, rows))
    peers = [t for t in tools if t != "flowmake"]
    if "flowmake" in tools and peers:
        ratio_rows: List[List[str]] = []
        for shape, n, scenario in row_keys(results):
            fm = results.median(shape, n, scenario, "flowmake")
            cells = []
            for peer in peers:
                other = results.median(shape, n, scenario, peer)
                cells.append(f"{fm / other:.2f}x" if fm and other else "-")
            ratio_rows.append([shape, str(n) if n else "", scenario, *cells])
        for shape, n in sizes:
            fm_rss = results.rss.get((shape, n, "flowmake"))
            cells = [f"{fm_rss / results.rss[(shape, n, p)]:.2f}x" if fm_rss and results.rss.get((shape, n, p)) else "-" for p in peers]
            ratio_rows.append([shape, str(n), "peak-rss", *cells])
        out.append("\nRatios flowmake / peer (below 1 = flowmake faster)\n")
        out.append(table(["shape", "N", "scenario", *(f"/{p}" for p in peers)], ratio_rows))
    return "\n".join(out)


def targets(results: Results) -> List[str]:
    """The issue's targets, each as a PASS/FAIL/SKIP line."""
    lines: List[str] = []
    med = results.median

    def verdict(ok: Optional[bool], text: str) -> None:
        lines.append(f"{'SKIP' if ok is None else 'PASS' if ok else 'FAIL'}  {text}")

    big = max((n for (s, n, _, _) in results.times if s != "startup"), default=0)
    for shape in ("layered", "wide"):
        fm = med(shape, big, "noop", "flowmake")
        if fm is None:
            verdict(None, f"no-op {shape}: flowmake not measured at N = {big}")
            continue
        for peer, factor in (("make", 2.0), ("doit", 0.1), ("snakemake", 0.1), ("task", 0.1)):
            other = med(shape, big, "noop", peer)
            if other is None:
                verdict(None, f"no-op {shape} {big}: flowmake <= {factor}x {peer} ({peer} {results.why_missing(shape, big, peer)})")
            else:
                verdict(fm <= factor * other,
                        f"no-op {shape} {big}: flowmake {fmt_seconds(fm)} <= {factor}x {peer} {fmt_seconds(other)}"
                        f" (ratio {fm / other:.3g})")  # fmt: skip
        small = med(shape, 1000, "noop", "flowmake")
        large = med(shape, 10_000, "noop", "flowmake")
        if small is None or large is None:
            verdict(None, f"no-op {shape} growth noop(10000)/noop(1000) <= 11: needs both sizes")
        else:
            verdict(large / small <= 11, f"no-op {shape} growth: flowmake noop(10000)/noop(1000) = "
                    f"{fmt_seconds(large)} / {fmt_seconds(small)} = {large / small:.1f} <= 11")  # fmt: skip
    for shape in ("layered", "wide"):  # issue 16 target 4 through the resident watcher (docs/daemon.md)
        for n in sorted({k[1] for k in results.times if k[0] == shape and k[2] == "noop-daemon" and k[1] >= 10_000} | {10_000}):
            fm, mk = med(shape, n, "noop-daemon", "flowmake"), med(shape, n, "noop", "make")
            if fm is None or mk is None:
                verdict(None, f"no-op {shape} {n} through the daemon <= 1.0x make: not measured")
            else:
                verdict(fm <= mk, f"no-op {shape} {n} through the daemon: flowmake {fmt_seconds(fm)} <= 1.0x make "
                        f"{fmt_seconds(mk)} (ratio {fm / mk:.2f})")  # fmt: skip
    for (shape, n), (ran, ok) in sorted(results.ran.items()):
        expected = results.affected[(shape, n)]
        verdict(ok and ran == expected, f"one change {shape} {n}: flowmake ran {ran} tasks, exactly the {expected} affected")
    for (shape, n), tasks in sorted(results.tasks_time.items()):
        fm_change = med(shape, n, "change1", "flowmake")
        fm_noop = med(shape, n, "noop", "flowmake")
        if fm_change is None or fm_noop is None:
            continue
        bound = 1.5 * fm_noop + tasks
        verdict(fm_change <= bound,
                f"one change {shape} {n}: flowmake {fmt_seconds(fm_change)} <= 1.5x no-op {fmt_seconds(fm_noop)}"
                f" + tasks' own time {fmt_seconds(tasks)} = {fmt_seconds(bound)}")  # fmt: skip
    for (shape, n, scenario, tool) in sorted(results.times):
        if scenario != "first" or tool != "flowmake":
            continue
        first, noop = med(shape, n, "first", "flowmake"), med(shape, n, "noop", "flowmake")
        if first is not None and noop is not None:
            verdict(first <= 2 * noop, f"first run after a build {shape} {n}: flowmake {fmt_seconds(first)}"
                    f" <= 2x no-op {fmt_seconds(noop)} (ratio {first / noop:.2f})")  # fmt: skip
    for shape in ("layered", "wide"):
        fm = med(shape, 1000, "full-j2", "flowmake")
        mk = med(shape, 1000, "full-j2", "make")
        if fm is None or mk is None:
            verdict(None, f"full {shape} 1000 -j2 <= 1.2x make -j2: not measured")
        else:
            verdict(fm <= 1.2 * mk, f"full {shape} 1000 -j2: flowmake {fmt_seconds(fm)} <= 1.2x make {fmt_seconds(mk)} (ratio {fm / mk:.2f})")
    for scenario in ("version", "noop10"):
        fm = med("startup", 0, scenario, "flowmake")
        verdict(None if fm is None else fm <= 0.150, f"startup {scenario}: flowmake {fmt_seconds(fm)} <= 150 ms")
    for shape in ("layered", "wide", "chain"):
        rss = results.rss.get((shape, 10_000, "flowmake"))
        if rss is not None:
            verdict(rss / 1024 <= 150, f"peak RSS {shape} 10000: flowmake {rss / 1024:.0f} MB <= 150 MB")
    big_suite.big_targets(results, verdict, fmt_seconds)
    return lines


# ---------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated task counts (default 100,1000,10000)")
    parser.add_argument("--shapes", default="layered,wide", help="comma-separated: layered, wide, chain (default layered,wide)")
    parser.add_argument("--tools", default=",".join(generate.TOOLS), help="comma-separated subset of " + ",".join(generate.TOOLS))
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per measurement (median; default 5)")
    parser.add_argument("--big-reps", type=int, default=3, help="repetitions at N >= 1000 (default 3; 0 = --reps)")
    parser.add_argument("--heavy-reps", type=int, default=1,
                        help="repetitions of full builds and touch runs at N >= 10000 (default 1; 0 = --big-reps)")
    parser.add_argument("--j1-max", type=int, default=1000, help="skip full -j1 builds above this size (default 1000)")
    parser.add_argument("--snakemake-max", type=int, default=1000, help="skip snakemake above this size (default 1000)")
    parser.add_argument("--tool-max", default="",
                        help="skip a tool above a size: TOOL=N[,TOOL=N], over the defaults task=10000 (go-task took"
                             " 12 s and 1.4 GB for a no-op at 10,000) and snakemake=--snakemake-max; doit, make and"
                             " ninja run at every size unless capped here")
    parser.add_argument("--build-timeout", type=float, default=1800,
                        help="timeout of a whole build (full, first, touch) in seconds, if above --timeout (default 1800)")
    parser.add_argument("--timeout", type=float, default=600, help="per-command timeout in seconds (default 600)")
    parser.add_argument("--input-size", type=int, default=generate.DEFAULT_INPUT_SIZE, help="bytes per source file")
    parser.add_argument("--work", type=Path, help="work directory (default: a new temporary one, removed afterwards)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--flowmake", help="flowmake executable (default: the one next to this interpreter)")
    parser.add_argument("--no-startup", action="store_true", help="skip the startup measurements")
    parser.add_argument("--noop-reads", action="store_true", help="also run noop_reads.py's strace check on the largest layered size")
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON here")
    parser.add_argument("--quick", action="store_true", help="fast sanity run: sizes 100, layered, 2 reps")
    parser.add_argument("--big", action="store_true",
                        help="issue 16: add --big-sizes, and the load/edit/status scenarios from 10,000 up and at those"
                             " sizes (benchmarks/big.py; takes hours with every peer)")
    parser.add_argument("--big-sizes", default=",".join(map(str, big_suite.BIG_SIZES)),
                        help="sizes --big adds (default 50000,100000); e.g. 2000 for a quick check of the big suite")
    args = parser.parse_args(argv)
    args.caps = {**DEFAULT_CAPS, "snakemake": args.snakemake_max}
    for item in filter(None, args.tool_max.split(",")):
        tool, _, cap = item.partition("=")
        if tool not in generate.TOOLS or not cap.isdigit():
            parser.error(f"--tool-max: expected TOOL=N with TOOL one of {', '.join(generate.TOOLS)}, got {item!r}")
        args.caps[tool] = int(cap)
    args.big_size_list = tuple(int(n) for n in args.big_sizes.split(",") if n) if args.big else ()
    if args.big:
        args.sizes = ",".join(dict.fromkeys([*args.sizes.split(","), *map(str, args.big_size_list)]))
    if args.quick:
        args.sizes, args.shapes, args.reps, args.big_reps, args.heavy_reps = "100", "layered", 2, 2, 2
    return args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the running child is killed and the work dir removed


def main(argv: Optional[Sequence[str]] = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    shapes = [s for s in args.shapes.split(",") if s]
    selected = [t for t in args.tools.split(",") if t]
    unknown = [x for x in shapes if x not in generate.SHAPES] + [t for t in selected if t not in generate.TOOLS]
    if unknown:
        print(f"unknown shape or tool: {', '.join(unknown)}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="flowmake-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    notes: List[str] = []
    bindir: Optional[Path] = None
    if any(t in PEER_PACKAGES for t in selected):
        bindir, notes = ensure_peers_venv(sys.executable, work / "pip.log", selected)
    tools = discover_tools(selected, bindir, args.flowmake)
    env = dict(os.environ)
    if bindir is not None:
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MAKEFLAGS", None)
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        # Without .pyc caches every Python tool recompiles its modules on each
        # start: users do not run that way, so neither do the benchmarks.
        notes.append("PYTHONDONTWRITEBYTECODE was set in this environment; unset for the timed tools")
    print("tools:", file=sys.stderr)
    for tool in tools:
        print(f"  {tool.name:10} {tool.exe or 'UNAVAILABLE'}  {tool.note}", file=sys.stderr)
        if not tool.available:
            notes.append(f"{tool.name} skipped: {tool.note}")
    bench = Bench(args, tools, env, work)
    bench.results.notes.extend(notes)
    bench.results.big_sizes = args.big_size_list
    started = time.perf_counter()
    try:
        if not args.no_startup and bench.tools:
            bench.startup()
        for shape in shapes:
            for n in sizes:
                bench.size(shape, n)
                if not args.keep and n >= 10_000:  # 100,000 layered tasks leave ~1.9 GB of outputs per tool
                    shutil.rmtree(work / f"{shape}-{n}", ignore_errors=True)
        reads_line: Optional[str] = None
        if args.noop_reads and "layered" in shapes:
            import noop_reads

            flowmake = next((t for t in bench.tools if t.name == "flowmake"), None)
            if flowmake is not None:
                reads_line = noop_reads.check(flowmake.argv(), max(sizes), work / "noop-reads", env)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    names = [t.name for t in bench.tools]
    print()
    print(f"flowmake benchmark: {os.cpu_count()} CPUs; median of {args.reps} runs after a warm-up "
          f"({args.big_reps or args.reps} at N >= 1000; at N >= 10000 {args.heavy_reps or args.big_reps} for full/touch "
          f"builds, no warm-up but for the no-op and the one change); suite took {time.perf_counter() - started:.0f} s")  # fmt: skip
    print("tools: " + "; ".join(f"{t.name} = {t.note}" for t in bench.tools))
    print()
    print(report(bench.results, names))
    if bench.results.scenario_rss:
        print("\n" + big_suite.rss_table(bench.results, names, table))
    print("\nTargets (issues 4 and 16)\n")
    for line in targets(bench.results):
        print(line)
    if reads_line:
        print(reads_line)
    if bench.results.notes:
        print("\nNotes")
        for note in bench.results.notes:
            print(f"- {note}")
    if args.json:
        args.json.write_text(json.dumps({
            "times": {"|".join(map(str, k)): v for k, v in bench.results.times.items()},
            "rss_kb": {"|".join(map(str, k)): v for k, v in bench.results.rss.items()},
            "affected": {f"{s}|{n}": v for (s, n), v in bench.results.affected.items()},
            "ran": {f"{s}|{n}": v for (s, n), v in bench.results.ran.items()},
            "tasks_time": {f"{s}|{n}": v for (s, n), v in bench.results.tasks_time.items()},
            "scenario_rss_kb": {"|".join(map(str, k)): v for k, v in bench.results.scenario_rss.items()},
            "notes": bench.results.notes,
        }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
