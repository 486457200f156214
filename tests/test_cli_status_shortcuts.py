"""`status` answers from the last run's snapshot, and says exactly what the full preview says.

With the shortcuts, status takes every task the snapshot still proves fresh
as fresh without deciding it, and previews only the cone below what changed
(engine/proof.py), as a run plans. Two copies of each project are built the
same way, one with the shortcuts (leaving the snapshot) and one with
FLOWMAKE_NO_SHORTCUTS=1 (never one), edited the same way, and asked the
same questions: text, `--json`, targets (the detailed text) and
`--exit-code` must answer alike, byte for byte.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest
from conftest import SHORTCUTS_OFF, Project
from test_cli_agreement import FLOWFILE as CHAIN
from test_cli_shortcuts_equivalence import MATRIX as EQUIVALENCE_MATRIX

pytestmark = pytest.mark.skipif(SHORTCUTS_OFF, reason="compares status with and without the shortcuts")

# The equivalence test's matrix, with default targets and a task outside them.
MATRIX = EQUIVALENCE_MATRIX.replace('name = "matrix"\n', 'name = "matrix"\ndefault = ["list"]\n', 1) + """
[tasks.extra]
inputs = ["src/s.txt"]
outputs = ["build/extra.txt"]
run = "cp src/s.txt build/extra.txt"
"""
assert 'default = ["list"]' in MATRIX

# Declared consumers first, beside tasks that need nothing: the graph's order is neither the declaration
# order nor the order a run finishes them in, and status's rows follow the graph's.
UNORDERED = """
[flow]
name = "unordered"

[tasks.last]
inputs = ["build/mid.txt", "build/side.txt"]
outputs = ["build/last.txt"]
run = "cat build/mid.txt build/side.txt > build/last.txt"

[tasks.mid]
inputs = ["build/a.out"]
outputs = ["build/mid.txt"]
run = "cp build/a.out build/mid.txt"

[tasks.side]
inputs = ["src/s.txt"]
outputs = ["build/side.txt"]
run = "cp src/s.txt build/side.txt"

[tasks.first]
inputs = ["src/a.txt"]
outputs = ["build/a.out"]
run = "cp src/a.txt build/a.out"
"""

PROJECTS: Dict[str, str] = {"chain": CHAIN, "matrix": MATRIX, "unordered": UNORDERED}
SOURCES = {"src/a.txt": "abc\n", "src/s.txt": "side\n", "src/b.txt": "b\n", "src/c.txt": "c\n"}
NO_SHORTCUTS = {"FLOWMAKE_NO_SHORTCUTS": "1"}


def _output(p: Project) -> str:
    return next(rel for rel in ("build/a.out", "build/a.csv", "build/s.out") if p.exists(rel))


def _command_edit(p: Project) -> None:
    text = p.read("Flowfile.toml")
    p.flowfile(text.replace("cp src/s.txt", "cp -p src/s.txt", 1) if "cp src/s.txt" in text else text)


ADDED = '\n[tasks.added]\ninputs = ["src/a.txt"]\noutputs = ["build/added.txt"]\nrun = "cp src/a.txt build/added.txt"\n'
EDITS: Dict[str, Callable[[Project], None]] = {
    "nothing": lambda p: None,
    "one source": lambda p: p.write("src/a.txt", "changed\n"),
    "a source rewritten as it was": lambda p: p.write("src/a.txt", "abc\n"),
    "an output deleted": lambda p: p.path(_output(p)).unlink(),
    "an output modified by hand": lambda p: p.write(_output(p), "tampered\n"),
    "a source gone": lambda p: p.path("src/s.txt").unlink(),
    "a comment in the Flowfile": lambda p: p.flowfile("# a comment\n" + p.read("Flowfile.toml")),
    "a command": _command_edit,
    "a task added": lambda p: p.flowfile(p.read("Flowfile.toml") + ADDED),
    "the shell": lambda p: p.flowfile(p.read("Flowfile.toml").replace("[flow]\n", '[flow]\nshell = "bash -c"\n', 1)),
    # What status answers from alone when it proves every task fresh (cli/statuscmd.py), damaged or gone:
    # the full copy has none of them, and the state database is damaged in both.
    "the snapshot damaged": lambda p: _damage(p, ".flowmake/noop.snapshot"),
    "the order kept for status damaged": lambda p: _damage(p, ".flowmake/status.order"),
    "the order kept for status gone": lambda p: _damage(p, ".flowmake/status.order", gone=True),
    "the state database damaged": lambda p: _damage(p, ".flowmake/state.db"),
}


def _damage(p: Project, rel: str, *, gone: bool = False) -> None:
    if p.exists(rel):
        if gone:
            p.path(rel).unlink()
        else:
            p.path(rel).write_bytes(b"not what flowmake wrote\n" * 100)


def _built(root: Path, flowfile: str, env: Dict[str, str], *targets: str) -> Project:
    root.mkdir()
    project = Project(root)
    project.flowfile(flowfile)
    for rel, text in SOURCES.items():
        project.write(rel, text)
    for _ in range(2):  # the second, all fresh, leaves the snapshot (with the shortcuts)
        result = project.json_run(*targets, env=env)
        assert result.returncode == 0, result
    return project


def _answers(project: Project, env: Dict[str, str], *, every_way: bool = True) -> List[Tuple[str, int, str, str]]:
    """What status says, asked every way (or two): (question, exit code, stdout, stderr)."""
    names = sorted({line.split()[1] for line in project.run("status", env=env).lines[:-1]})
    questions = [("status",), ("status", "--json", "--exit-code")]
    if names and every_way:  # none when the Flowfile no longer loads (a source gone): then both say why, alike
        questions += [("status", "--exit-code", *names), ("status", "--json", names[0])]
    out = []
    for question in questions:
        result = project.run(*question, env=env)
        root = str(project.root)  # the copies' errors name their own directories
        out.append((" ".join(question), result.returncode, result.stdout.replace(root, "ROOT"),
                    result.stderr.replace(root, "ROOT")))
        if "--json" in question and result.returncode in (0, 1):
            # Rendered in bulk (cli/statuscmd.py), it must be exactly what json.dumps would have made.
            assert result.stdout == json.dumps(json.loads(result.stdout), indent=2) + "\n"
    return out


# Every edit on the chain; a few on the matrix, and with a snapshot of other targets than status shows.
CASES = [("chain", edit, ()) for edit in EDITS]
CASES += [("matrix", edit, ()) for edit in ("an output deleted", "a task added")]
CASES += [("chain", edit, ("side",)) for edit in ("one source", "a command")]
CASES += [("unordered", edit, ()) for edit in ("nothing", "one source", "an output deleted", "a task added",
                                               "the order kept for status gone", "the state database damaged")]


@pytest.mark.parametrize("name,edit,targets", CASES, ids=[f"{n}-{e}-{t or 'default'}" for n, e, t in CASES])
def test_status_says_the_same_with_and_without_the_shortcuts(tmp_path: Path, name: str, edit: str,
                                                             targets: Tuple[str, ...]) -> None:
    fast = _built(tmp_path / "fast", PROJECTS[name], {}, *targets)
    full = _built(tmp_path / "full", PROJECTS[name], NO_SHORTCUTS, *targets)
    try:
        assert fast.exists(".flowmake/noop.snapshot") and not full.exists(".flowmake/noop.snapshot")
        EDITS[edit](fast)
        EDITS[edit](full)
        assert _answers(fast, {}) == _answers(full, NO_SHORTCUTS)
        # And after a run from there, which plans from the snapshot's cone (and leaves the next one).
        ran_fast, ran_full = fast.json_run(*targets), full.json_run(*targets, env=NO_SHORTCUTS)
        assert ran_fast.returncode == ran_full.returncode
        assert _answers(fast, {}, every_way=False) == _answers(full, NO_SHORTCUTS, every_way=False)
    finally:
        fast.cleanup()
        full.cleanup()


def test_status_of_a_project_never_built_and_after_clean(tmp_path: Path) -> None:
    fast = _built(tmp_path / "fast", CHAIN, {})
    full = _built(tmp_path / "full", CHAIN, NO_SHORTCUTS)
    try:
        for project, env in ((fast, {}), (full, NO_SHORTCUTS)):
            assert project.run("clean", "up", env=env).returncode == 0
        assert not fast.exists(".flowmake/noop.snapshot")
        assert _answers(fast, {}) == _answers(full, NO_SHORTCUTS)
    finally:
        fast.cleanup()
        full.cleanup()


# Command lines status parses itself (cli/statuscmd.py) or leaves to typer: the same answers either way.
COMMAND_LINES = [
    ("status", "--exit-code", "--", "up"),
    ("status", "up", "--json"),
    ("-C", "ROOT", "status"),
    ("status", "-C", "ROOT", "--json"),
    ("--file=Flowfile.toml", "status", "--exit-code"),
    ("--directory=ROOT", "-f", "Flowfile.toml", "status"),
    ("status", "no-such-task"),
    ("status", "--no-such-option"),
    ("status", "--json=yes"),
    ("status", "--help"),
    ("-C", "ROOT/no-such-dir", "status"),
    ("-f", "no-such.toml", "status"),
]


@pytest.mark.parametrize("argv", COMMAND_LINES, ids=[" ".join(a) for a in COMMAND_LINES])
def test_status_command_lines_answer_as_typer_does(tmp_path: Path, argv: Tuple[str, ...]) -> None:
    fast = _built(tmp_path / "fast", CHAIN, {})
    full = _built(tmp_path / "full", CHAIN, NO_SHORTCUTS)  # with FLOWMAKE_NO_SHORTCUTS, status is typer's
    try:
        fast.write("src/a.txt", "changed\n")
        full.write("src/a.txt", "changed\n")
        answers = []
        for project, env in ((fast, {}), (full, NO_SHORTCUTS)):
            root = str(project.root)
            result = project.run(*(a.replace("ROOT", root) for a in argv), env=env)
            answers.append((result.returncode, result.stdout.replace(root, "ROOT"), result.stderr.replace(root, "ROOT")))
        assert answers[0] == answers[1]
    finally:
        fast.cleanup()
        full.cleanup()


WIDE_TASKS = 1100  # 2,200 files: a snapshot past prescan.SCAN_MIN_BYTES, so status forks its scan


def _wide_flowfile() -> str:
    tables = [f'[tasks.t{i}]\ninputs = ["src/s{i}.txt"]\noutputs = ["out/t{i}.txt"]\nrun = "cp src/s{i}.txt out/t{i}.txt"\n'
              for i in range(WIDE_TASKS)]
    return '[flow]\nname = "wide"\n\n' + "\n".join(tables)


@pytest.mark.parametrize("edit", ["nothing", "a few sources", "an output deleted"])
def test_status_with_the_forked_scan_says_what_the_full_preview_says(tmp_path: Path, edit: str) -> None:
    from flowmake.engine import prescan

    fast = Project(tmp_path / "fast")
    fast.root.mkdir()
    fast.flowfile(_wide_flowfile())
    for i in range(WIDE_TASKS):
        fast.write(f"src/s{i}.txt", f"{i}\n")
    try:
        for _ in range(2):
            assert fast.run("run", "-j2", "--progress", "plain").returncode == 0
        assert fast.path(".flowmake/noop.snapshot").stat().st_size >= prescan.SCAN_MIN_BYTES
        # A copy never reads the snapshot (other inodes): its state is rehashed and proven anew.
        shutil.copytree(fast.root, tmp_path / "full", symlinks=True)
        full = Project(tmp_path / "full")
        for project in (fast, full):
            if edit == "a few sources":
                for i in (3, 500, WIDE_TASKS - 1):
                    project.write(f"src/s{i}.txt", "changed\n")
            elif edit == "an output deleted":
                project.path("out/t7.txt").unlink()
        assert _answers(fast, {}) == _answers(full, NO_SHORTCUTS)
    finally:
        fast.cleanup()


PROBE = """
import sys
from flowmake.cli import commands, statuscmd
def refuse(*args, **kwargs):
    raise SystemExit("status loaded the project")
commands.Project.at = refuse
sys.exit(statuscmd.try_status(sys.argv[1:]))
"""


@pytest.mark.parametrize("question", [("status",), ("status", "--json", "--exit-code")])
def test_status_proven_all_fresh_answers_without_loading(tmp_path: Path, question: Tuple[str, ...]) -> None:
    """The shortcut is taken (not only harmless): with loading made impossible, the same answer."""
    import subprocess
    import sys

    fast = _built(tmp_path / "fast", UNORDERED, {})
    full = _built(tmp_path / "full", UNORDERED, NO_SHORTCUTS)
    try:
        assert fast.exists(".flowmake/status.order")
        expected = full.run(*question, env=NO_SHORTCUTS)
        probed = subprocess.run([sys.executable, "-c", PROBE, *question], cwd=fast.root, env=fast.env(),
                                capture_output=True, text=True, timeout=60)
        assert (probed.returncode, probed.stdout, probed.stderr) == (expected.returncode, expected.stdout, "")
        if "--json" not in question:  # the graph's order: ready tasks by declaration, neither order above
            assert [line.split()[1] for line in expected.stdout.splitlines()[:4]] == ["side", "first", "mid", "last"]
        fast.write("src/a.txt", "changed\n")  # and a change sends it to the preview
        assert subprocess.run([sys.executable, "-c", PROBE, *question], cwd=fast.root, env=fast.env(),
                              capture_output=True, text=True, timeout=60).stderr == "status loaded the project\n"
    finally:
        fast.cleanup()
        full.cleanup()
