"""`flowmake watch` with the real file watcher on real temporary projects."""

from __future__ import annotations

import queue
import signal
import threading
import time
from typing import List

import pytest

from conftest import Project

pytest.importorskip("watchfiles")

FLOWFILE = """
[tasks.copy]
inputs = ["src/in.txt"]
outputs = ["build/out.txt"]
run = "SLEEP cp src/in.txt build/out.txt"

[tasks.count]
inputs = ["build/out.txt"]
outputs = ["build/n.txt"]
run = "wc -l < build/out.txt | tr -d ' ' > build/n.txt"
"""


class Lines:
    """The watcher's stdout, read in a thread so that a test can wait for a line with a timeout."""

    def __init__(self, proc) -> None:  # type: ignore[no-untyped-def]
        self.seen: List[str] = []
        self._queue: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: [self._queue.put(line.rstrip("\n")) for line in proc.stdout],
                         daemon=True).start()

    def wait_for(self, start: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(start):
                return line
        raise AssertionError(f"no line starting {start!r} within {timeout}s; saw {self.seen}")

    def quiet_for(self, seconds: float) -> List[str]:
        end = time.monotonic() + seconds
        got = []
        while time.monotonic() < end:
            try:
                got.append(self._queue.get(timeout=0.1))
            except queue.Empty:
                pass
        self.seen += got
        return got


def start(project: Project, sleep: str = "") -> tuple:
    project.flowfile(FLOWFILE.replace("SLEEP ", sleep))
    project.write("src/in.txt", "a\n")
    proc = project.popen("watch", "--progress", "plain", "--debounce", "200")
    lines = Lines(proc)
    lines.wait_for("watch: success")
    return proc, lines


def test_a_source_change_reruns_within_seconds_and_own_outputs_are_ignored(project: Project) -> None:
    proc, lines = start(project)
    assert project.read("build/n.txt") == "1\n"
    changed_at = time.monotonic()
    project.write("src/in.txt", "a\nb\n")
    assert lines.wait_for("watch: changed") == "watch: changed: src/in.txt"
    lines.wait_for("watch: success")
    assert time.monotonic() - changed_at < 10
    assert project.read("build/n.txt") == "2\n"
    # The run wrote build/out.txt and build/n.txt: neither starts another run, nor does an edit to an output.
    project.write("build/out.txt", "x\n")
    assert not any(line.startswith("watch: changed") for line in lines.quiet_for(2.0)), lines.seen
    proc.send_signal(signal.SIGINT)
    lines.wait_for("watch: stopped")
    assert proc.wait(timeout=15) == 0


def test_a_change_during_a_run_starts_the_next_run_after_it(project: Project) -> None:
    proc, lines = start(project)
    project.flowfile(FLOWFILE.replace("SLEEP ", "sleep 2; "))  # the Flowfile changed: a run, 2 s long
    lines.wait_for("watch: changed: Flowfile.toml")
    lines.wait_for("start  copy")
    project.write("src/in.txt", "a\nb\nc\n")  # while copy sleeps
    lines.wait_for("watch: success")
    assert lines.wait_for("watch: changed") == "watch: changed: src/in.txt"
    lines.wait_for("watch: success")
    assert project.read("build/n.txt") == "3\n"
    proc.send_signal(signal.SIGTERM)
    lines.wait_for("watch: stopped")
    assert proc.wait(timeout=15) == 0


def test_a_broken_flowfile_is_reported_and_watched_until_fixed(project: Project) -> None:
    proc, lines = start(project)
    project.write("Flowfile.toml", "[tasks.copy\n")
    lines.wait_for("watch: not run")
    project.flowfile(FLOWFILE.replace("SLEEP ", "") + '\n[tasks.more]\ninputs = ["src/in.txt"]\nrun = "true"\n')
    lines.wait_for("start  more")
    lines.wait_for("watch: success")
    proc.send_signal(signal.SIGINT)
    lines.wait_for("watch: stopped")
    assert proc.wait(timeout=15) == 0
    err = proc.stderr.read()
    assert "invalid TOML" in err and "Traceback" not in err


def test_the_watch_set_takes_sources_and_the_flowfile_and_leaves_outputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flowmake.engine.graph import build_graph
    from flowmake.load.flowfile import load
    from flowmake.unattended.watch import watch_set

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "in.txt").write_text("a\n")
    (tmp_path / "Flowfile.toml").write_text(FLOWFILE.replace("SLEEP ", ""))
    flowfile = load(tmp_path / "Flowfile.toml")
    ws = watch_set(flowfile, build_graph(flowfile), ["copy", "count"])
    assert ws.files == {"src/in.txt", "Flowfile.toml"}
    root = str(tmp_path)
    assert ws.relevant(False, f"{root}/src/in.txt")
    assert ws.relevant(True, f"{root}/src/new.txt")  # a new file beside a source: a glob may want it
    assert not ws.relevant(False, f"{root}/src/other.txt")
    assert not ws.relevant(False, f"{root}/build/out.txt")
    assert not ws.relevant(True, f"{root}/.flowmake/state.db")
