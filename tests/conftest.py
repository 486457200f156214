"""Shared fixtures for the end-to-end tests (tests/test_cli_*.py).

Those tests drive the real `flowmake` command in a subprocess
(`python -m flowmake ...`) on throw-away projects under tmp_path. The helpers
here write a Flowfile and its files, run flowmake, and parse `--progress json`
output, so that each test reads as: write a project, run, assert.

`_isolated` is autouse for every test in this directory: a test runs with
tmp_path as its working directory, HOME and TMPDIR inside tmp_path, NO_COLOR
set and no FLOWMAKE_* variable inherited, so nothing a test does (or that
flowmake writes, such as a crash report) lands outside tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

FLOWMAKE = [sys.executable, "-m", "flowmake"]

# .ci/run's second pass sets FLOWMAKE_NO_SHORTCUTS=1 for the CLI tests: every run takes the full path.
SHORTCUTS_OFF = os.environ.get("FLOWMAKE_NO_SHORTCUTS", "") not in ("", "0")
# A test of a shortcut itself (the no-op snapshot, the fast path, the load cache), not of what a run does.
shortcut_test = pytest.mark.skipif(SHORTCUTS_OFF, reason="tests a shortcut itself, and FLOWMAKE_NO_SHORTCUTS is set")
# Generous: a run must finish well within this, and a hung flowmake must fail
# the test rather than the whole suite.
RUN_TIMEOUT = 60.0

# Budgets of the property tests (tests/test_property_*.py): "ci", the default,
# keeps them to about a minute in all; "long" is a campaign, chosen with
# `pytest --hypothesis-profile=long` or HYPOTHESIS_PROFILE=long (README,
# Development). Tests that drive the CLI take no deadline: a subprocess's
# time depends on the machine's load, and a deadline would make them flaky.
# "ci" keeps no example database, so a test writes nothing outside tmp_path;
# "long" keeps one in .hypothesis/ of the checkout, where a failure it
# found is tried first the next time.
settings.register_profile(
    "ci", max_examples=25, stateful_step_count=12, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=2_000, stateful_step_count=30, deadline=None, print_blob=True,
    database=DirectoryBasedExampleDatabase(str(Path(__file__).resolve().parent.parent / ".hypothesis")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def _pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bytecode cache for every flowmake subprocess of the session.

    Each test runs flowmake several times; without cached bytecode (as under
    PYTHONDONTWRITEBYTECODE) every start recompiles flowmake and its
    dependencies, which doubles the suite's time. The cache lives in pytest's
    own temporary directory, never in the checkout or the venv.
    """
    return tmp_path_factory.mktemp("pycache")


def isolation_env(base: Path, pycache: Path) -> Dict[str, Optional[str]]:
    """Environment changes that keep flowmake and its tasks inside `base` (None: unset)."""
    home = base / "_home"
    tmp = base / "_tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    changes: Dict[str, Optional[str]] = {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "TMP": str(tmp),
        "TEMP": str(tmp),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "NO_COLOR": "1",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPYCACHEPREFIX": str(pycache),
        "PYTHONDONTWRITEBYTECODE": None,
    }
    for name in os.environ:
        # A CI service's own variables would switch on its output (cli/cioutput.py) in every test.
        # FLOWMAKE_NO_SHORTCUTS stays: .ci/run's second pass sets it for every flowmake the tests start.
        if (name.startswith("FLOWMAKE_") and name != "FLOWMAKE_NO_SHORTCUTS") or name in ("FORCE_COLOR", "CLICOLOR_FORCE", "COLUMNS", "LINES",
                                                    "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITLAB_CI"):
            changes[name] = None
    return changes


def apply_env(changes: Mapping[str, Optional[str]], base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ if base is None else base)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _pycache: Path) -> None:
    """Keep every test inside its tmp_path: cwd, HOME, TMPDIR; no colour; no FLOWMAKE_*."""
    monkeypatch.chdir(tmp_path)
    for key, value in isolation_env(tmp_path, _pycache).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    # tempfile keeps the first TMPDIR it saw: flowmake run in-process (a crash report) would write to /tmp.
    monkeypatch.setattr(tempfile, "tempdir", None)


# -- results -------------------------------------------------------------------


def rest_of_output(proc: subprocess.Popen, timeout: float = 60.0) -> Tuple[str, str]:
    """`proc.communicate()` for a process whose stdout the test already read lines from.

    communicate() reads the pipes' file descriptors directly, so lines that
    readline() or iteration had already buffered would be lost (a task_finished,
    say); this reads through the same buffered streams, each on a thread.
    """
    got: Dict[str, str] = {}

    def drain(name: str, stream: Any) -> None:
        got[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(name, stream), daemon=True)
               for name, stream in (("out", proc.stdout), ("err", proc.stderr)) if stream is not None]
    for thread in threads:
        thread.start()
    proc.wait(timeout=timeout)
    for thread in threads:
        thread.join(timeout=10)
    return got.get("out", ""), got.get("err", "")


@dataclass
class Result:
    """What one flowmake invocation did: exit code, both streams, JSON events."""

    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return (f"Result(args={list(self.args)!r}, returncode={self.returncode},\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr})")

    @property
    def lines(self) -> List[str]:
        return self.stdout.splitlines()

    @property
    def err_lines(self) -> List[str]:
        return self.stderr.splitlines()

    @property
    def events(self) -> List[Dict[str, Any]]:
        """stdout parsed as JSON lines; fails the test if any line is not JSON."""
        out = []
        for line in self.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"stdout line is not JSON: {line!r}\n{self!r}") from None
        return out

    def of_kind(self, kind: str) -> List[Dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]

    def one(self, kind: str) -> Dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind} event, got {len(found)}\n{self!r}"
        return found[0]

    @property
    def started(self) -> List[str]:
        """Tasks with a task_started event, in order."""
        return [e["task"] for e in self.of_kind("task_started")]

    @property
    def statuses(self) -> Dict[str, str]:
        """Task -> status of its (last) task_finished event."""
        return {e["task"]: e["status"] for e in self.of_kind("task_finished")}

    def tasks_with(self, status: str) -> List[str]:
        return sorted(t for t, s in self.statuses.items() if s == status)

    @property
    def ran(self) -> List[str]:
        """Tasks whose command ran this time (sorted): finished ok or failed."""
        return sorted(t for t, s in self.statuses.items() if s in ("ok", "failed"))

    def started_event(self, task: str) -> Dict[str, Any]:
        found = [e for e in self.of_kind("task_started") if e["task"] == task]
        assert found, f"task {task} did not start\n{self!r}"
        return found[-1]

    def finished_event(self, task: str) -> Dict[str, Any]:
        found = [e for e in self.of_kind("task_finished") if e["task"] == task]
        assert found, f"task {task} has no task_finished event\n{self!r}"
        return found[-1]

    def reasons(self, task: str) -> List[Dict[str, Any]]:
        """The reasons of the task's task_started event."""
        return self.started_event(task)["reasons"]

    @property
    def run_id(self) -> str:
        return self.one("run_started")["run_id"]


def status_json(result: Result) -> Dict[str, Dict[str, Any]]:
    """`flowmake status --json` output as task -> row."""
    rows = json.loads(result.stdout)
    return {row["task"]: row for row in rows}


def kinds(reasons: Iterable[Mapping[str, Any]]) -> List[str]:
    return [r["kind"] for r in reasons]


# -- processes -------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie (PID 1 here may not reap)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = data[data.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_file(path: Path, timeout: float = 15.0, proc: Optional[subprocess.Popen] = None) -> str:
    """Wait until `path` exists with a complete first line; return its stripped text."""

    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"flowmake exited ({proc.returncode}) before {path.name} appeared\n"
                                 f"--- stdout ---\n{out}\n--- stderr ---\n{err}")
        try:
            return path.read_text().endswith("\n")
        except FileNotFoundError:
            return False

    wait_for(ready, timeout, what=str(path))
    return path.read_text().strip()


# -- projects --------------------------------------------------------------------


@dataclass
class Project:
    """A temporary flowmake project: write files, run flowmake, read results."""

    root: Path
    _procs: List[subprocess.Popen] = field(default_factory=list)
    _pids: List[int] = field(default_factory=list)

    def write(self, rel: str, text: str = "", *, dedent: bool = True) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if dedent else text)
        return path

    def flowfile(self, text: str) -> Path:
        return self.write("Flowfile.toml", text)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def path(self, rel: str) -> Path:
        return self.root / rel

    def env(self, extra: Optional[Mapping[str, Optional[str]]] = None) -> Dict[str, str]:
        return apply_env(extra or {})

    def run(self, *args: str, env: Optional[Mapping[str, Optional[str]]] = None, cwd: Optional[Path] = None,
            timeout: float = RUN_TIMEOUT) -> Result:
        """Run `flowmake ARGS` in the project root (or `cwd`) and wait for it."""
        proc = subprocess.run(
            FLOWMAKE + list(args), cwd=str(cwd or self.root), env=self.env(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
        )
        return Result(list(args), proc.returncode, proc.stdout, proc.stderr)

    def json_run(self, *args: str, **kwargs: Any) -> Result:
        """`flowmake run --progress json ARGS`."""
        return self.run("run", "--progress", "json", *args, **kwargs)

    def plain_run(self, *args: str, **kwargs: Any) -> Result:
        return self.run("run", "--progress", "plain", *args, **kwargs)

    def status(self, *args: str, **kwargs: Any) -> Dict[str, Dict[str, Any]]:
        """`flowmake status --json ARGS` as task -> row; asserts exit 0."""
        result = self.run("status", "--json", *args, **kwargs)
        assert result.returncode == 0, result
        return status_json(result)

    def popen(self, *args: str, env: Optional[Mapping[str, Optional[str]]] = None) -> subprocess.Popen:
        """Start `flowmake ARGS` in the background; killed at teardown if still running."""
        proc = subprocess.Popen(
            FLOWMAKE + list(args), cwd=str(self.root), env=self.env(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self._procs.append(proc)
        return proc

    def track_pid(self, pid: int) -> None:
        """Kill this task process group at teardown if a test left it running."""
        self._pids.append(pid)

    def cleanup(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()  # flowmake then ends its tasks' process groups itself
                try:
                    proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            try:
                proc.communicate(timeout=10)
            except Exception:
                pass
        for pid in self._pids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, OSError):
                    pass


@pytest.fixture
def project(tmp_path: Path) -> Iterable[Project]:
    root = tmp_path / "proj"
    root.mkdir()
    proj = Project(root)
    try:
        yield proj
    finally:
        proj.cleanup()
