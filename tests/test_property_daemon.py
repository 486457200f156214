"""Property: any sequence of edits gives the same runs with the daemon as without it.

Two copies of one project take the same edits (inputs rewritten, within
the same mtime too; outputs tampered with or deleted; the Flowfile edited;
files aged so that the snapshot vouches for them and the daemon may
answer); one has a daemon running, the other none. After each edit both
run: the tasks that ran, the exit code and the outputs must be the same.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Project, pid_alive, shortcut_test
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("inotify_simple")
pytestmark = [shortcut_test, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")]

from flowmake.daemon.client import ask, socket_path  # noqa: E402

FLOWFILE = """\
[vars]
greeting = "{greeting}"

[tasks.extract]
inputs = ["data/src.txt"]
outputs = ["build/a.txt"]
run = "cp {{inputs}} {{outputs}}"

[tasks.tidy]
inputs = ["build/a.txt", "data/other.txt"]
outputs = ["build/deep/b.txt"]
run = "cat {{inputs}} > {{outputs}}; echo {{greeting}} >> {{outputs}}"
"""
TEXTS = st.sampled_from(["one\n", "two\n", "three\n", ""])
EDITS = st.one_of(
    st.tuples(st.just("input"), st.sampled_from(["data/src.txt", "data/other.txt"]), TEXTS),
    st.tuples(st.just("same-mtime"), st.sampled_from(["data/src.txt", "build/a.txt"]), TEXTS),
    st.tuples(st.just("output"), st.sampled_from(["build/a.txt", "build/deep/b.txt"]), TEXTS),
    st.tuples(st.just("remove"), st.sampled_from(["build/a.txt", "build/deep/b.txt"]), st.just("")),
    st.tuples(st.just("flowfile"), st.sampled_from(["hello", "howdy"]), st.just("")),
    st.tuples(st.just("touch"), st.sampled_from(["data/src.txt", "build/a.txt", "Flowfile.toml"]), st.just("")),
    st.tuples(st.just("age"), st.just(""), st.just("")),
)


def apply(root: Path, edit) -> None:
    kind, rel, text = edit
    path = root / rel
    if kind == "input" or kind == "output":
        path.write_text(text)
    elif kind == "same-mtime":
        if path.exists():
            before = path.stat()
            path.write_text(text)
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif kind == "remove":
        if path.exists():
            path.unlink()
    elif kind == "flowfile":
        (root / "Flowfile.toml").write_text(FLOWFILE.format(greeting=rel))
    elif kind == "touch":
        if path.exists():
            os.utime(path)
    else:
        past = time.time() - 30
        for file in root.rglob("*"):
            if ".flowmake" not in file.parts and file.is_file():
                os.utime(file, (past, past))


def outcome(project: Project):
    result = project.json_run()
    outputs = {rel: project.read(rel) if project.exists(rel) else None for rel in ("build/a.txt", "build/deep/b.txt")}
    return result.returncode, sorted(result.ran), outputs


def start(root: Path) -> Project:
    root.mkdir(parents=True)
    project = Project(root)
    apply(root, ("flowfile", "hello", ""))
    for rel, text in (("data/src.txt", "one\n"), ("data/other.txt", "other\n")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    assert project.json_run().returncode == 0
    apply(root, ("age", "", ""))
    assert project.json_run().returncode == 0
    return project


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(edits=st.lists(EDITS, min_size=1, max_size=6))
def test_the_same_runs_with_and_without_the_daemon(tmp_path: Path, edits) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    watched, alone = start(base / "watched"), start(base / "alone")
    started = watched.run("daemon", "start", "--idle-exit", "120s")
    assert started.returncode == 0, started
    sock = socket_path(str(watched.root / ".flowmake"))
    pid = ask(sock, "status")[1]["pid"]
    try:
        for edit in edits:
            apply(watched.root, edit)
            apply(alone.root, edit)
            assert outcome(watched) == outcome(alone), edits
            assert ask(sock, "status") is not None  # still watching
    finally:
        watched.run("daemon", "stop")
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
