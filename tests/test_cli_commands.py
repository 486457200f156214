"""SPEC §5 commands and output modes through the real CLI.

status (text, --json, --exit-code, one task in full), list, graph in its three
formats, clean, check, init, --version, bare `flowmake`, -C and -f; then the
progress modes: plain in a pipe, json, NO_COLOR, tree and auto under a
pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import textwrap
import time
from typing import Mapping, Optional, Tuple

from conftest import FLOWMAKE, Project, kinds, status_json

import flowmake

ESC = "\x1b"

CHAIN = """\
    [flow]
    name = "chain"

    [tasks.extract]
    help = "Copy the export into the build area"
    inputs = ["src.txt"]
    outputs = ["build/a.txt"]
    run = "cp src.txt build/a.txt"

    [tasks.clean]
    help = "Normalise the copy"
    inputs = ["build/a.txt"]
    outputs = ["build/b.txt"]
    run = "cat build/a.txt > build/b.txt"

    [tasks.lonely]
    outputs = ["lonely.txt"]
    run = "echo alone > lonely.txt"
"""


def chain(project: Project) -> None:
    project.flowfile(CHAIN)
    project.write("src.txt", "one\n")


def built(project: Project) -> None:
    chain(project)
    result = project.json_run()
    assert result.returncode == 0, result


# -- status ------------------------------------------------------------------------


def test_status_text_shows_each_task_state_and_reason(project: Project) -> None:
    built(project)
    project.write("src.txt", "two\n")
    result = project.run("status")
    assert result.returncode == 0, result
    rows = {line.split()[1]: line.split()[0] for line in result.lines[:-1]}
    assert rows == {"extract": "stale", "clean": "blocked", "lonely": "fresh"}
    extract_line = next(line for line in result.lines if line.split()[1:2] == ["extract"])
    assert extract_line.endswith("input changed: src.txt")
    assert result.lines[-1] == "3 tasks: 1 fresh, 1 stale, 1 blocked"


def test_status_json_has_the_documented_shape(project: Project) -> None:
    built(project)
    project.write("build/b.txt", "changed by hand\n")
    result = project.run("status", "--json")
    assert result.returncode == 0, result
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    assert [row["task"] for row in rows] == ["extract", "clean", "lonely"]
    for row in rows:
        assert set(row) == {"task", "state", "reasons", "blocked_by"}
        assert row["state"] in ("fresh", "stale", "blocked")
        for reason in row["reasons"]:
            assert set(reason) <= {"kind", "path", "old", "new"} and "kind" in reason
    by_task = status_json(result)
    assert by_task["extract"] == {"task": "extract", "state": "fresh", "reasons": [], "blocked_by": []}
    (reason,) = by_task["clean"]["reasons"]
    assert reason["kind"] == "output modified" and reason["path"] == "build/b.txt"
    assert reason["old"] != reason["new"]


def test_status_exit_code_is_1_when_stale_and_0_when_fresh(project: Project) -> None:
    chain(project)
    stale = project.run("status", "--exit-code")
    assert stale.returncode == 1, stale
    assert not project.exists("build") and not project.exists("lonely.txt")  # status runs nothing
    assert project.json_run().returncode == 0
    fresh = project.run("status", "--exit-code")
    assert fresh.returncode == 0, fresh


def test_status_of_a_named_task_shows_old_and_new_hashes(project: Project) -> None:
    built(project)
    project.write("src.txt", "two\n")
    result = project.run("status", "extract")
    assert result.returncode == 0, result
    text = result.stdout
    assert "input changed: src.txt" in text
    old = re.search(r"old:\s*([0-9a-f]{16,})", text)
    new = re.search(r"new:\s*([0-9a-f]{16,})", text)
    assert old and new and old.group(1) != new.group(1), text
    assert "lonely" not in text


# -- list and graph -------------------------------------------------------------------


def test_list_shows_every_task_with_its_help(project: Project) -> None:
    chain(project)
    result = project.run("list")
    assert result.returncode == 0, result
    rows = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result.lines]
    assert rows == [
        ["extract", "Copy the export into the build area"],
        ["clean", "Normalise the copy"],
        ["lonely"],
    ]


def test_graph_text_lists_edges_from_a_task_to_its_dependents(project: Project) -> None:
    chain(project)
    result = project.run("graph", "--format", "text")
    assert result.returncode == 0, result
    assert "extract -> clean" in result.lines
    assert "clean -> extract" not in result.lines
    assert "lonely" in result.stdout


def test_graph_dot_is_a_digraph_with_the_edge(project: Project) -> None:
    chain(project)
    result = project.run("graph", "--format", "dot")
    assert result.returncode == 0, result
    assert result.stdout.lstrip().startswith("digraph")
    assert result.stdout.rstrip().endswith("}")
    assert re.search(r'"?extract"?\s*->\s*"?clean"?', result.stdout), result
    assert "lonely" in result.stdout


def test_graph_mermaid_has_the_edge_between_the_labelled_nodes(project: Project) -> None:
    chain(project)
    result = project.run("graph", "--format", "mermaid")
    assert result.returncode == 0, result
    assert result.lines[0].split()[0] in ("graph", "flowchart")
    labels = dict(re.findall(r'(\w+)\["([^"]+)"\]', result.stdout))
    ids = {label: node for node, label in labels.items()}
    edges = set(re.findall(r"(\w+)\s*-->\s*(\w+)", result.stdout))
    assert (ids["extract"], ids["clean"]) in edges, result
    assert "lonely" in ids


def test_graph_unknown_format_is_a_usage_error(project: Project) -> None:
    chain(project)
    result = project.run("graph", "--format", "png")
    assert result.returncode == 2, result
    assert "png" in result.stderr and "Traceback" not in result.stderr


# -- clean ----------------------------------------------------------------------------


def test_clean_deletes_only_declared_outputs(project: Project) -> None:
    built(project)
    project.write("build/keep.txt", "not declared\n")
    result = project.run("clean")
    assert result.returncode == 0, result
    for rel in ("build/a.txt", "build/b.txt", "lonely.txt"):
        assert not project.exists(rel), rel
    assert project.read("build/keep.txt") == "not declared\n"
    assert project.read("src.txt") == "one\n"
    assert project.read("Flowfile.toml") == textwrap.dedent(CHAIN)


def test_clean_dry_run_deletes_nothing(project: Project) -> None:
    built(project)
    result = project.run("clean", "-n")
    assert result.returncode == 0, result
    assert "build/a.txt" in result.stdout and "lonely.txt" in result.stdout
    for rel in ("build/a.txt", "build/b.txt", "lonely.txt"):
        assert project.exists(rel), rel


def test_clean_forgets_records_so_everything_runs_again(project: Project) -> None:
    built(project)
    assert project.run("clean").returncode == 0
    # Put identical outputs back by hand: only forgotten records can make the tasks run now.
    project.write("build/a.txt", "one\n")
    project.write("build/b.txt", "one\n")
    project.write("lonely.txt", "alone\n")
    result = project.json_run()
    assert result.returncode == 0, result
    assert sorted(result.started) == ["clean", "extract", "lonely"]
    assert kinds(result.reasons("extract")) == ["never run"]


def test_clean_of_one_task_leaves_the_others(project: Project) -> None:
    built(project)
    assert project.run("clean", "lonely").returncode == 0
    assert not project.exists("lonely.txt")
    assert project.exists("build/a.txt") and project.exists("build/b.txt")


# -- check, init, version, entry points -------------------------------------------------


def test_check_accepts_a_valid_flowfile_and_runs_nothing(project: Project) -> None:
    chain(project)
    result = project.run("check")
    assert result.returncode == 0, result
    # Only the warning that CHAIN's task `clean` has a command's name (test_cli_shorthand.py).
    assert result.err_lines == ["warning: task 'clean' has the name of a command: `flowmake clean` runs the "
                                "command; `flowmake run clean` runs the task (or rename it)"]
    assert not project.exists("build") and not project.exists("lonely.txt")


def test_check_prints_every_problem_and_exits_2(project: Project) -> None:
    project.flowfile("""\
        [tasks.a]
        outputs = ["a.txt"]
        rnu = "echo a > a.txt"
        [tasks.b]
        inputs = ["nope.txt"]
        run = "true"
        [tasks.c]
        run = "echo {zzz}"
    """)
    result = project.run("check")
    assert result.returncode == 2, result
    assert "rnu" in result.stderr and "did you mean 'run'?" in result.stderr
    assert "nope.txt" in result.stderr
    assert "{zzz}" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_writes_a_flowfile_that_runs(project: Project) -> None:
    result = project.run("init")
    assert result.returncode == 0, result
    assert project.exists("Flowfile.toml")
    ran = project.json_run()
    assert ran.returncode == 0, ran
    assert ran.started and all(s == "ok" for s in ran.statuses.values()), ran


def test_init_refuses_to_overwrite_an_existing_flowfile(project: Project) -> None:
    project.flowfile("# mine\n")
    result = project.run("init")
    assert result.returncode == 2, result
    assert "Flowfile.toml" in result.stderr
    assert project.read("Flowfile.toml") == "# mine\n"


def test_version_prints_the_package_version(project: Project) -> None:
    result = project.run("--version")
    assert result.returncode == 0, result
    assert result.stdout.strip() == f"flowmake {flowmake.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", flowmake.__version__)


def test_bare_flowmake_is_run_with_plain_progress_in_a_pipe(project: Project) -> None:
    chain(project)
    result = project.run(env={"NO_COLOR": None})
    assert result.returncode == 0, result
    assert project.read("build/b.txt") == "one\n" and project.exists("lonely.txt")
    # auto progress, and stdout is not a terminal: plain lines, no escape codes
    assert ESC not in result.stdout
    starts = sorted(line.split()[1] for line in result.lines if line.startswith("start "))
    assert starts == ["clean", "extract", "lonely"]
    assert result.lines[-1].startswith("done: 3 ok")


def test_directory_option_changes_directory_first(project: Project) -> None:
    chain(project)
    outside = project.root.parent
    result = project.run("-C", str(project.root), "run", "--progress", "json", cwd=outside)
    assert result.returncode == 0, result
    assert project.read("build/b.txt") == "one\n"
    assert not (outside / "build").exists()


def test_file_option_names_the_flowfile_and_its_directory_is_the_root(project: Project) -> None:
    project.write("conf/pipeline.toml", """\
        [tasks.hello]
        inputs = ["in.txt"]
        outputs = ["out/hello.txt"]
        run = "cp in.txt out/hello.txt"
    """)
    project.write("conf/in.txt", "hi\n")
    result = project.run("-f", "conf/pipeline.toml", "run", "--progress", "json")
    assert result.returncode == 0, result
    assert project.read("conf/out/hello.txt") == "hi\n"
    assert project.path("conf/.flowmake").is_dir()
    assert not project.exists("Flowfile.toml")


def test_flowfile_is_found_in_the_nearest_parent(project: Project) -> None:
    chain(project)
    sub = project.path("deep/er")
    sub.mkdir(parents=True)
    result = project.run("run", "--progress", "json", cwd=sub)
    assert result.returncode == 0, result
    assert project.read("build/b.txt") == "one\n"
    assert not (sub / "build").exists()


def test_dry_run_shows_what_would_run_and_runs_nothing(project: Project) -> None:
    chain(project)
    result = project.run("run", "-n", "--progress", "plain")
    assert result.returncode == 0, result
    assert any(line.split()[:2] == ["run", "extract"] and line.endswith("never run") for line in result.lines)
    assert not project.exists("build") and not project.exists("lonely.txt")
    assert not project.path(".flowmake/logs").exists() or not any(project.path(".flowmake/logs").iterdir())


def test_quiet_prints_only_the_summary_on_success(project: Project) -> None:
    chain(project)
    result = project.run("run", "-q", "--progress", "plain")
    assert result.returncode == 0, result
    assert result.lines == [result.lines[-1]] and result.lines[-1].startswith("done: 3 ok")


# -- output modes ------------------------------------------------------------------------

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def colour_codes(text: str) -> list:
    """The colour parameters (30-38, 40-48, 90-107) of every SGR sequence in text."""
    found = []
    for params in SGR.findall(text):
        for p in params.split(";"):
            if p.isdigit() and (30 <= int(p) <= 38 or 40 <= int(p) <= 48 or 90 <= int(p) <= 107):
                found.append(int(p))
    return found


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[@-Z\\-_]", "", text)


def run_in_pty(project: Project, *args: str, env: Optional[Mapping[str, Optional[str]]] = None,
               timeout: float = 30.0, rows: int = 40, cols: int = 120) -> Tuple[int, str]:
    """Run flowmake with stdin, stdout and stderr on a pseudo-terminal of `rows` x `cols` (120x40)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full_env = project.env({"TERM": "xterm-256color", **(env or {})})
    proc = subprocess.Popen(FLOWMAKE + list(args), cwd=str(project.root), env=full_env,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"flowmake under a pty did not finish in {timeout}s")
        proc.wait(timeout=10)
    finally:
        os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def failing_project(project: Project) -> None:
    project.flowfile(CHAIN + """
    [tasks.broken]
    run = "echo it broke; exit 1"
    """)
    project.write("src.txt", "one\n")


def test_plain_output_has_no_escape_codes_when_not_a_tty(project: Project) -> None:
    failing_project(project)
    result = project.run("run", "-k", "--progress", "plain", env={"NO_COLOR": None, "TERM": "xterm-256color"})
    assert result.returncode == 1, result
    assert ESC not in result.stdout and ESC not in result.stderr, result
    assert any(line.startswith("FAILED") for line in result.lines)


def test_json_progress_stdout_is_only_json_events_with_the_documented_fields(project: Project) -> None:
    failing_project(project)
    result = project.run("run", "-k", "--progress", "json", env={"NO_COLOR": None})
    assert result.returncode == 1, result
    events = result.events  # fails on any non-JSON line
    assert all(isinstance(e, dict) for e in events)
    run_id = events[0]["run_id"]
    for e in events:
        assert {"event", "run_id", "time"} <= set(e), e
        assert e["run_id"] == run_id
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", e["time"]), e
        if e["event"].startswith("task_"):
            assert isinstance(e["task"], str), e
    assert events[0]["event"] == "run_started" and events[-1]["event"] == "run_finished"
    started = result.one("run_started")
    assert isinstance(started["targets"], list)
    assert started["task_count"] == 4
    for e in result.of_kind("task_started"):
        assert isinstance(e["reasons"], list) and e["reasons"], e
    for e in result.of_kind("task_finished"):
        assert e["status"] in ("ok", "failed", "fresh", "skipped")
        assert isinstance(e["duration"], (int, float)) and e["duration"] >= 0
        assert "exit_code" in e
    assert result.finished_event("broken")["exit_code"] == 1
    assert result.finished_event("extract")["exit_code"] == 0
    finished = result.one("run_finished")
    assert finished["result"] == "failed"
    assert finished["counts"]["ok"] == 3 and finished["counts"]["failed"] == 1
    assert isinstance(finished["duration"], (int, float))
    assert set(result.of_kind("task_started")[0]) >= {"event", "run_id", "time", "task", "reasons"}
    assert "it broke" not in result.stderr  # the tail is in the event, stdout stays JSON only


def test_no_color_removes_colour_from_terminal_output(project: Project) -> None:
    failing_project(project)
    code, coloured = run_in_pty(project, "run", "-k", "--progress", "plain", env={"NO_COLOR": None})
    assert code == 1, coloured
    assert colour_codes(coloured), "plain on a terminal without NO_COLOR should use colour"
    code, plain = run_in_pty(project, "run", "-B", "-k", "--progress", "plain", env={"NO_COLOR": "1"})
    assert code == 1, plain
    assert colour_codes(plain) == [], repr(plain)
    code, tree = run_in_pty(project, "run", "-B", "-k", "--progress", "tree", env={"NO_COLOR": "1"})
    assert code == 1, tree
    assert colour_codes(tree) == [], repr(tree)


def test_tree_progress_on_a_terminal_shows_tasks_and_a_final_summary(project: Project) -> None:
    # --progress auto: on a terminal that must be the tree
    chain(project)
    code, output = run_in_pty(project, "run")
    assert code == 0, output
    assert "\x1b[" in output  # a live display: it moves the cursor
    text = strip_ansi(output)
    assert "chain" in text  # the flow name heads the tree
    assert not re.search(r"^start\s+extract", text, re.M), "auto on a terminal printed plain lines"
    for task in ("extract", "clean", "lonely"):
        assert task in text, text
    last = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()][-1]
    assert re.search(r"done: 3 ok in [0-9.]+s$", last), repr(last)
