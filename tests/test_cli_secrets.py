"""Secrets through the real CLI (issue 3, item 5).

A task lists `secrets = ["API_TOKEN"]`: the value reaches the task through its
environment, and is masked as `***` in its captured log, live output, failure
tail (JSON and stderr) and the audit trail. Nothing under `.flowmake/` (the
database and its WAL included) may hold the value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, List

from conftest import Project, wait_for

TOKEN = "tok-7Hq2-SECRET-91xZ"
ENV = {"API_TOKEN": TOKEN}

# Both variants print the token on stdout and stderr and write it to a file
# outside .flowmake/; leak:S02 then fails.
LEAK = """\
    [tasks.leak]
    matrix = { study = ["S01", "S02"] }
    secrets = ["API_TOKEN"]
    outputs = ["out/{study}.txt"]
    run = "echo token=$API_TOKEN; echo \\"$API_TOKEN\\" > out/{study}.txt; echo err $API_TOKEN >&2; [ {study} = S01 ]"
"""


def leak_project(project: Project) -> None:
    project.flowfile(LEAK)


def json_of(result) -> Any:
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def files_holding(root: Path, needle: str) -> List[str]:
    """Every file under root whose bytes contain needle (UTF-8 or UTF-16)."""
    forms = [needle.encode(), needle.encode("utf-16-le"), needle.encode("utf-16-be")]
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            data = path.read_bytes()
            if any(form in data for form in forms):
                found.append(str(path.relative_to(root)))
    return found


def all_flowmake_files(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_secret_value_appears_nowhere_under_dot_flowmake(project: Project) -> None:
    leak_project(project)
    result = project.plain_run("-k", env=ENV)
    assert result.returncode == 1, result

    dot = project.path(".flowmake")
    names = all_flowmake_files(dot)
    assert "state.db" in names, names
    assert any(name.startswith("logs/") for name in names), names
    assert files_holding(dot, TOKEN) == [], f"the secret's value is stored in clear; files: {names}"
    assert sorted(files_holding(project.root, TOKEN)) == ["out/S01.txt", "out/S02.txt"]  # the search works


def test_secret_value_appears_nowhere_under_dot_flowmake_while_a_task_runs(project: Project) -> None:
    # With the run still going, the WAL and the open log are on disk as well.
    project.flowfile("""\
        [tasks.first]
        secrets = ["API_TOKEN"]
        outputs = ["first.txt"]
        run = "echo $API_TOKEN; echo ok > first.txt"

        [tasks.hold]
        secrets = ["API_TOKEN"]
        inputs = ["first.txt"]
        outputs = ["held.txt"]
        run = "echo $API_TOKEN; touch hold.marker; i=0; while [ ! -e release ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo ok > held.txt"
    """)
    proc = project.popen("run", "--progress", "json", env=ENV)
    wait_for(lambda: project.exists("hold.marker") or proc.poll() is not None, what="hold.marker")
    dot = project.path(".flowmake")
    during = files_holding(dot, TOKEN)
    names = all_flowmake_files(dot)
    project.write("release", "")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert during == [], f"the secret's value is on disk during the run; files: {names}"
    assert "state.db" in names and any(name.startswith("logs/") for name in names), names
    assert TOKEN not in out and TOKEN not in err


def test_secret_value_is_masked_in_json_progress_and_the_log_shows_stars(project: Project) -> None:
    leak_project(project)
    result = project.json_run("-k", env=ENV)
    assert result.returncode == 1, result
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    lines = [e["line"] for e in result.of_kind("task_output")]
    assert all(TOKEN not in line for line in lines)
    failed = result.finished_event("leak:S02")
    assert failed["status"] == "failed"
    assert "token=***" in failed["tail"] and "err ***" in failed["tail"], failed
    for task in ("leak:S01", "leak:S02"):
        log = project.read(result.finished_event(task)["log"])
        assert log.splitlines() == ["token=***", "err ***"], log

    shown = project.run("log", result.run_id, "--json")
    assert shown.returncode == 0 and TOKEN not in shown.stdout, shown
    export = project.run("audit", "export")
    assert export.returncode == 0 and TOKEN not in export.stdout, export


def test_secret_value_is_masked_in_the_stderr_tail_of_a_failing_variant(project: Project) -> None:
    leak_project(project)
    result = project.plain_run("-k", env=ENV)
    assert result.returncode == 1, result
    assert TOKEN not in result.stderr and TOKEN not in result.stdout, result
    tail_start = next(i for i, line in enumerate(result.err_lines) if line.startswith("--- leak:S02 failed"))
    tail = result.err_lines[tail_start + 1:]
    assert "token=***" in tail and "err ***" in tail, result


def test_secret_is_passed_to_the_task(project: Project) -> None:
    leak_project(project)
    result = project.json_run("-k", env=ENV)
    assert result.returncode == 1, result
    assert result.statuses["leak:S01"] == "ok"
    assert project.read("out/S01.txt") == TOKEN + "\n"
    assert project.read("out/S02.txt") == TOKEN + "\n"


def test_a_secret_that_is_not_set_fails_the_task_with_a_message_naming_it(project: Project) -> None:
    project.flowfile("""\
        [tasks.upload]
        secrets = ["API_TOKEN"]
        outputs = ["sent.txt"]
        run = "echo sent > sent.txt"
    """)
    result = project.json_run(env={"API_TOKEN": None})
    assert result.returncode == 1, result
    finished = result.finished_event("upload")
    assert finished["status"] == "failed"
    assert "API_TOKEN" in finished["message"], finished
    assert not project.exists("sent.txt")

    plain = project.plain_run(env={"API_TOKEN": None})
    assert plain.returncode == 1, plain
    assert "API_TOKEN" in plain.stderr, plain
    assert "Traceback" not in plain.stderr


def test_secret_value_put_into_the_command_by_a_var_is_masked_in_events_and_the_journal(
        project: Project) -> None:
    project.write("Flowfile.toml", f"""\
[vars]
token = "{TOKEN}"

[tasks.call]
secrets = ["API_TOKEN"]
outputs = ["called.txt"]
run = "echo {{token}} > called.txt"
""", dedent=False)
    result = project.json_run(env=ENV)
    assert result.returncode == 0, result
    assert result.started_event("call")["command"] == "echo *** > called.txt"
    assert TOKEN not in result.stdout
    assert project.read("called.txt") == TOKEN + "\n"
    attempts = json_of(project.run("log", result.run_id, "--json"))["attempts"]
    assert attempts[0]["command"] == "echo *** > called.txt"
    assert files_holding(project.path(".flowmake"), TOKEN) == []


def test_changing_a_secret_value_does_not_rerun_the_task(project: Project) -> None:
    project.flowfile("""\
        [tasks.call]
        secrets = ["API_TOKEN"]
        outputs = ["called.txt"]
        run = "echo called > called.txt"
    """)
    assert project.json_run(env=ENV).returncode == 0
    again = project.json_run(env={"API_TOKEN": "another-value"})
    assert again.returncode == 0, again
    assert again.statuses == {"call": "fresh"}


# -- overlapping values, short values, values split across reads (issue 22, item 2) --

# A's value begins AB's and is listed first; P's end begins Q's. Masking one
# value after another left `token=***-EFGH-ijkl` and `pair=***-RSTU`.
OVERLAPPING = {"A": "abcd", "AB": "abcd-EFGH-ijkl", "P": "pq12-3456", "Q": "3456-RSTU"}
FRAGMENTS = ["EFGH", "RSTU"]  # what a masking in list order lets through


def overlapping_project(project: Project) -> None:
    # The scripts print P's value followed by the rest of Q's, so that no
    # fragment is in the Flowfile (or the recorded command) itself.
    project.write("show.sh", """\
        echo "token=$AB"
        echo "pair=$P${Q#????}" >&2
    """)
    project.write("hook.sh", """echo "hook saw $AB and $P${Q#????}"\n""")
    project.flowfile("""\
        [vars]
        token = "abcd-EFGH-ijkl"

        [hooks]
        on_failure = "sh hook.sh"

        [tasks.leak]
        secrets = ["A", "AB", "P", "Q"]
        outputs = ["out.txt"]
        run = "sh show.sh; echo {token} > out.txt; exit 1"
    """)


def assert_no_fragment(text: str, where: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"part of a secret value ({fragment}) shows in {where}:\n{text}"


def test_overlapping_secret_values_are_masked_whole_in_the_log_and_the_terminal(project: Project) -> None:
    overlapping_project(project)
    result = project.plain_run(env=OVERLAPPING)
    assert result.returncode == 1, result
    assert_no_fragment(result.stdout + result.stderr, "the terminal")
    tail_start = next(i for i, line in enumerate(result.err_lines) if line.startswith("--- leak failed"))
    assert result.err_lines[tail_start + 1:tail_start + 3] == ["token=***", "pair=***"], result

    logs = sorted(project.path(".flowmake/logs").rglob("leak.log"))
    assert len(logs) == 1, logs
    assert logs[0].read_text().splitlines() == ["token=***", "pair=***"]
    hook_logs = sorted(project.path(".flowmake/logs").rglob("hook.on_failure.log"))
    assert len(hook_logs) == 1, hook_logs
    assert hook_logs[0].read_text() == "hook saw *** and ***\n"
    assert project.read("out.txt") == "abcd-EFGH-ijkl\n"  # the task itself got the real values
    for fragment in FRAGMENTS:
        assert files_holding(project.path(".flowmake"), fragment) == [], fragment


def test_overlapping_secret_values_are_masked_whole_in_json_events_log_and_audit(project: Project) -> None:
    overlapping_project(project)
    # --output prefixed: every line travels as task_lines; task_output (the
    # latest line, throttled) may be skipped by a task that ends at once.
    result = project.json_run("--output", "prefixed", env=OVERLAPPING)
    assert result.returncode == 1, result
    assert_no_fragment(result.stdout + result.stderr, "the JSON events")
    shown_lines = [line for e in result.of_kind("task_lines") for line in e["lines"]]
    assert "token=***" in shown_lines, result
    command = "sh show.sh; echo *** > out.txt; exit 1"
    assert result.started_event("leak")["command"] == command
    assert result.finished_event("leak")["tail"] == ["token=***", "pair=***"]

    shown = json_of(project.run("log", result.run_id, "--json"))
    assert [a["command"] for a in shown["attempts"]] == [command]
    assert_no_fragment(json.dumps(shown), "`flowmake log --json`")
    export = project.run("audit", "export")
    assert export.returncode == 0, export
    assert_no_fragment(export.stdout, "`audit export`")
    assert json.dumps(command) in export.stdout or command in export.stdout, export


def test_a_secret_value_shorter_than_four_characters_fails_the_task_unrun(project: Project) -> None:
    project.flowfile("""\
        [tasks.upload]
        secrets = ["PIN", "API_TOKEN"]
        outputs = ["sent.txt"]
        run = "echo sent > sent.txt"
    """)
    result = project.plain_run(env={"PIN": "123", "API_TOKEN": TOKEN})
    assert result.returncode == 1, result
    assert ("--- upload failed (secret PIN is shorter than 4 characters, too short to mask"
            " (every such string in the log would become ***): use a longer value)") in result.err_lines, result
    assert "Traceback" not in result.stderr
    assert not project.exists("sent.txt")

    # Four characters are enough; an empty value has nothing to hide.
    ok = project.json_run(env={"PIN": "1234", "API_TOKEN": ""})
    assert ok.returncode == 0, ok
    assert project.read("sent.txt") == "sent\n"


def test_a_secret_value_split_across_reads_of_a_very_long_line_is_masked(project: Project) -> None:
    # 65,533 bytes and the value's first five: more than the 64 KiB a line is
    # held for, so that much is written before the rest arrives.
    project.write("long.sh", """\
        printf '%65533s' '' | tr ' ' x
        printf '%.5s' "$API_TOKEN"
        sleep 0.3
        printf '%s\\n' "${API_TOKEN#?????}"
    """)
    project.flowfile("""\
        [tasks.long]
        secrets = ["API_TOKEN"]
        outputs = ["done.txt"]
        run = "sh long.sh; touch done.txt"
    """)
    result = project.json_run(env=ENV)
    assert result.returncode == 0, result
    log = project.read(result.finished_event("long")["log"])
    assert log == "x" * 65533 + "***\n"
    assert files_holding(project.path(".flowmake"), TOKEN) == []


def test_a_secret_value_holding_a_line_break_is_masked_when_its_lines_arrive_apart(project: Project) -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----"
    project.write("sign.sh", """\
        echo before
        printf 'key=%s\\n' "$(printf '%s\\n' "$SIGNING_KEY" | head -n 2)"
        sleep 0.3
        printf '%s\\n' "$SIGNING_KEY" | tail -n 1
        echo after
    """)
    project.flowfile("""\
        [tasks.sign]
        secrets = ["SIGNING_KEY"]
        outputs = ["signed.txt"]
        run = "sh sign.sh; touch signed.txt"
    """)
    result = project.json_run(env={"SIGNING_KEY": key})
    assert result.returncode == 0, result
    log = project.read(result.finished_event("sign")["log"])
    assert log.splitlines() == ["before", "key=***", "after"], log
    assert files_holding(project.path(".flowmake"), "MIIEvQIBADANBg") == []


def test_the_command_of_a_task_whose_wait_for_timed_out_is_recorded_masked(project: Project) -> None:
    project.write("Flowfile.toml", f"""\
[vars]
token = "{TOKEN}"

[tasks.fetch]
secrets = ["API_TOKEN"]
wait_for = ["delivery.csv"]
wait_timeout = "0.3s"
wait_poll = "0.1s"
outputs = ["fetched.txt"]
run = "echo {{token}} > fetched.txt"
""", dedent=False)
    result = project.json_run(env=ENV)
    assert result.returncode == 1, result
    assert "wait_for timed out" in result.finished_event("fetch")["message"]
    attempts = json_of(project.run("log", result.run_id, "--json"))["attempts"]
    assert [a["command"] for a in attempts] == ["echo *** > fetched.txt"]
    assert files_holding(project.path(".flowmake"), TOKEN) == []
