"""What tasks print, as the run shows it: `--output prefixed|interleaved|group|none`, `[flow] output`,
carriage-return lines, masked secrets (docs/cli.md, "Task output")."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from typing import List

from conftest import FLOWMAKE, RUN_TIMEOUT, Project, Result
from test_cli_commands import run_in_pty, strip_ansi

# Two tasks whose lines interleave for sure at -j2: a1, b1, a2, b2, each printed
# only once the line before it is in flowmake's output (run_to_file writes it to
# out.txt): the order shown is the order printed, however slow the machine.
INTERLEAVING = """
[tasks.a]
run = "echo a1; until grep -q 'b1$' out.txt; do sleep 0.02; done; echo a2"

[tasks.b]
run = "until grep -q 'a1$' out.txt; do sleep 0.02; done; echo b1; until grep -q 'a2$' out.txt; do sleep 0.02; done; echo b2"
"""
# The same order by marker files, for the modes that show nothing while the tasks run.
INTERLEAVING_QUIETLY = """
[tasks.a]
run = "echo a1; touch a1.mark; until [ -e b1.mark ]; do sleep 0.02; done; echo a2"

[tasks.b]
run = "until [ -e a1.mark ]; do sleep 0.02; done; echo b1; touch b1.mark; sleep 0.3; echo b2"
"""


def run_to_file(project: Project, *args: str) -> Result:
    """`flowmake run --progress plain ARGS` with stdout in out.txt (which the tasks can read)."""
    out = project.path("out.txt")
    with open(out, "w") as stdout:
        proc = subprocess.run(FLOWMAKE + ["run", "--progress", "plain", *args], cwd=str(project.root),
                              env=project.env(), stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                              text=True, timeout=RUN_TIMEOUT)
    return Result(list(args), proc.returncode, out.read_text(), proc.stderr)


def output_lines(stdout: str) -> List[str]:
    """stdout without flowmake's own lines (the header, start/ok/FAILED rows and the summary)."""
    own = ("flowmake: ", "start ", "ok ", "FAILED ", "done: ", "failed: ", "skip ")
    return [line for line in stdout.splitlines() if not line.startswith(own)]


def last_log(project: Project, task: str) -> str:
    (log,) = project.path(".flowmake/logs").glob(f"*/{task}.log")  # these tests run each task once
    return log.read_bytes().decode()  # read_text would turn each \r into a line end


def test_plain_output_prefixes_each_line_and_shows_it_while_the_task_still_runs(project: Project) -> None:
    # The default in a plain log (CI): a long step is never silent.
    project.flowfile("""
    [tasks.slow]
    run = "echo first line; until [ -e go ]; do sleep 0.05; done; echo second line"
    """)
    proc = project.popen("run", "--progress", "plain")
    seen: "queue.Queue[str]" = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.put(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    collected: List[str] = []
    deadline = time.monotonic() + 20
    while "[slow] first line" not in collected:
        assert time.monotonic() < deadline, f"the task's first line never showed while it ran: {collected}"
        try:
            collected.append(seen.get(timeout=0.5))
        except queue.Empty:
            pass
    assert proc.poll() is None and not project.exists("go")  # still running: it waits for `go`
    project.write("go", "")
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    reader.join(timeout=30)  # the reader ends at EOF, so every line is queued
    assert not reader.is_alive(), "flowmake's stdout never reached EOF"
    while not seen.empty():
        collected.append(seen.get())
    assert output_lines("\n".join(collected)) == ["[slow] first line", "[slow] second line"]
    ok = next(i for i, line in enumerate(collected) if line.startswith("ok "))
    assert collected.index("[slow] second line") < ok


def test_prefixed_lines_of_parallel_tasks_come_in_the_order_they_were_printed(project: Project) -> None:
    project.flowfile(INTERLEAVING)
    result = run_to_file(project, "-j", "2", "--output", "prefixed")
    assert result.returncode == 0, result
    assert output_lines(result.stdout) == ["[a] a1", "[b] b1", "[a] a2", "[b] b2"]


def test_interleaved_prints_the_lines_as_they_arrive_without_a_prefix(project: Project) -> None:
    project.flowfile(INTERLEAVING)
    result = run_to_file(project, "-j", "2", "--output", "interleaved")
    assert result.returncode == 0, result
    assert output_lines(result.stdout) == ["a1", "b1", "a2", "b2"]


def test_group_prints_each_tasks_output_as_one_block_right_before_it_ends(project: Project) -> None:
    project.flowfile(INTERLEAVING_QUIETLY)
    result = project.plain_run("-j", "2", "--output", "group")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert output_lines(result.stdout) in (["a1", "a2", "b1", "b2"], ["b1", "b2", "a1", "a2"])  # whole blocks
    for task, block in (("a", ["a1", "a2"]), ("b", ["b1", "b2"])):
        at = lines.index(block[0])
        assert lines[at:at + 3] == block + [lines[at + 2]] and lines[at + 2].split()[:2] == ["ok", task], lines


def test_group_of_a_failed_task_still_shows_its_block(project: Project) -> None:
    project.flowfile("""
    [tasks.broken]
    run = "echo trying; echo giving up; exit 3"
    """)
    result = project.plain_run("--output", "group")
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    at = lines.index("trying")
    assert lines[at + 1] == "giving up" and lines[at + 2].startswith("FAILED broken"), lines


def test_none_prints_no_task_output_but_the_log_keeps_it(project: Project) -> None:
    project.flowfile(INTERLEAVING_QUIETLY)
    result = project.plain_run("-j", "2", "--output", "none")
    assert result.returncode == 0, result
    assert output_lines(result.stdout) == []
    assert last_log(project, "a").splitlines() == ["a1", "a2"]


def test_flow_output_key_sets_the_mode_and_the_command_line_wins(project: Project) -> None:
    project.flowfile("""
    [flow]
    output = "interleaved"

    [tasks.a]
    run = "echo one; echo two"
    """)
    result = project.plain_run()
    assert result.returncode == 0, result
    assert output_lines(result.stdout) == ["one", "two"]
    result = project.plain_run("-B", "--output", "none")
    assert output_lines(result.stdout) == []
    result = project.plain_run("-B", "--output", "auto")  # the progress mode's own default, not the Flowfile's
    assert output_lines(result.stdout) == ["[a] one", "[a] two"]


def test_a_bad_flow_output_value_is_exit_2_naming_the_line_and_the_choices(project: Project) -> None:
    project.flowfile("""
    [flow]
    output = "loud"

    [tasks.a]
    run = "echo hi"
    """)
    for args in (("run", "--progress", "plain"), ("check",)):
        result = project.run(*args)
        assert result.returncode == 2, result
        assert "Flowfile.toml:3: error: [flow]: key `output` must be one of interleaved, prefixed, group, none, " \
               "got 'loud'" in result.stderr, result
        assert "Traceback" not in result.stderr


def test_a_bad_output_option_is_exit_2(project: Project) -> None:
    project.flowfile("""
    [tasks.a]
    run = "echo hi"
    """)
    result = project.run("run", "--output", "loud")
    assert result.returncode == 2, result
    assert "unknown --output mode 'loud'" in result.stderr and "Traceback" not in result.stderr
    assert not project.exists(".flowmake/logs")  # nothing ran


# A progress bar drawn 200 times over one line, as tqdm does, then a line of its own.
PROGRESS_BAR = """
[tasks.train]
run = "i=0; printf 'epochs'; while [ $i -lt 200 ]; do i=$((i+1)); printf '\\\\r%3d%%' $((i/2)); done; printf '\\\\n'; echo trained"
"""


def test_a_carriage_return_line_shows_only_its_final_state_in_a_plain_log(project: Project) -> None:
    project.flowfile(PROGRESS_BAR)
    result = project.plain_run()
    assert result.returncode == 0, result
    assert output_lines(result.stdout) == ["[train] 100%", "[train] trained"]
    log = last_log(project, "train")
    assert log.count("\r") == 200  # the log keeps every redraw


def test_the_tree_shows_a_carriage_return_lines_latest_state_under_the_running_task(project: Project) -> None:
    project.flowfile("""
    [tasks.download]
    run = "printf 'fetching\\\\r 10%%\\\\r 37%% of 8 GB\\\\r'; sleep 1.5; printf ' 100%% of 8 GB\\\\n'"
    """)
    code, screen = run_in_pty(project, "run", "--progress", "tree", env={"NO_COLOR": "1"})
    assert code == 0, screen
    frames = [line for line in strip_ansi(screen).replace("\r", "\n").splitlines() if "download" in line]
    assert any("37% of 8 GB" in line for line in frames), frames  # drawn while it ran, before its line ended
    assert not any("[download]" in line for line in frames)  # the tree's default prints no lines of its own


def test_the_tree_with_prefixed_output_prints_lines_above_the_live_tree(project: Project) -> None:
    project.flowfile("""
    [tasks.a]
    run = "echo hello from a; sleep 0.5"
    """)
    code, screen = run_in_pty(project, "run", "--progress", "tree", "--output", "prefixed", env={"NO_COLOR": "1"})
    assert code == 0, screen
    assert "[a] hello from a" in strip_ansi(screen)


SECRET = "s3cr3t-Value-42"


def test_secrets_are_masked_in_every_shown_output_line(project: Project) -> None:
    project.flowfile("""
    [tasks.upload]
    secrets = ["API_TOKEN"]
    run = 'echo using $API_TOKEN now; printf "try %s\\rsent with %s\\n" "$API_TOKEN" "$API_TOKEN"'
    """)
    env = {"API_TOKEN": SECRET}
    for mode in ("prefixed", "interleaved", "group"):
        result = project.plain_run("-B", "--output", mode, env=env)
        assert result.returncode == 0, result
        assert SECRET not in result.stdout + result.stderr, (mode, result)
        prefix = "[upload] " if mode == "prefixed" else ""
        assert output_lines(result.stdout) == [f"{prefix}using *** now", f"{prefix}sent with ***"], (mode, result)
    result = project.json_run("-B", "--output", "prefixed", env=env)
    assert SECRET not in result.stdout + result.stderr
    assert [line for e in result.of_kind("task_lines") for line in e["lines"]] == ["using *** now", "sent with ***"]


def test_json_carries_task_lines_only_when_the_command_line_asks(project: Project) -> None:
    project.flowfile("""
    [flow]
    output = "prefixed"

    [tasks.a]
    run = "echo one; echo two"
    """)
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.of_kind("task_lines") == []  # [flow] output is about text: the stream stays as it was
    result = project.json_run("-B", "--output", "group")
    lines = result.of_kind("task_lines")
    assert [(e["task"], e["lines"]) for e in lines] == [("a", ["one", "two"])]
    kinds = [e["event"] for e in result.events]
    assert kinds.index("task_lines") == kinds.index("task_finished") - 1
