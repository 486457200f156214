"""`[schedules]` through the real CLI: checking, list, fire, run (SIGTERM) and export."""

from __future__ import annotations

import configparser
import json
import shutil
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest

from conftest import Project, rest_of_output, wait_for

BASE = """
[tasks.a]
outputs = ["a.txt"]
run = "echo ran >> a.txt"
"""

GOOD = BASE + """
[schedules.nightly]
cron = "30 2 * * *"
targets = ["a"]
timezone = "Europe/Berlin"
catch_up = true
"""


@pytest.mark.parametrize("table, line, message, hint", [
    ('cron = "61 * * * *"', 7, "schedule `s`: cron expression `61 * * * *`: bad minute field `61`", "0-59"),
    ('cron = "0 5 * * *"\ntimezone = "Europe/Berln"', 8, "schedule `s`: unknown time zone `Europe/Berln`",
     "did you mean 'Europe/Berlin'?"),
    ('cron = "0 5 * * *"\ntargets = ["b"]', 8, "schedule `s`: target `b` is not a task, a variant or a declared output",
     "flowmake list"),
    ('cron = "0 5 * * *"\noverlap = "later"', 8, "schedule `s`: unknown `overlap` value `later`", 'overlap = "queue"'),
    ('cron = "0 5 * * *"\ncatch_up = "yes"', 8, "schedule `s`: `catch_up` must be true or false, got string",
     "catch_up = true"),
    ('targets = ["a"]', 6, "schedule `s`: needs `cron`, a five-field cron expression", 'cron = "0 5 * * *"'),
    ('cron = "0 5 * * *"\ncron_tz = "UTC"', "8:1", "schedule `s`: unknown key `cron_tz`", "did you mean 'cron'?"),
])
def test_bad_schedules_exit_2_with_file_line_problem_and_hint(project: Project, table: str, line: object,
                                                              message: str, hint: str) -> None:
    project.flowfile(BASE + "\n[schedules.s]\n" + table + "\n")
    for command in (["check"], ["schedule", "list"]):
        result = project.run(*command)
        assert result.returncode == 2, result
        first = result.err_lines[0]
        assert first == f"{project.path('Flowfile.toml')}:{line}: error: {message}", result
        assert hint in result.err_lines[1]
        assert "Traceback" not in result.stderr


def test_list_shows_five_fire_times_across_the_autumn_change(project: Project) -> None:
    project.flowfile(GOOD)
    result = project.run("schedule", "list", "--from", "2026-10-24T12:00", "--json")
    assert result.returncode == 0, result
    [row] = json.loads(result.stdout)
    assert row["next"] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00",
                           "2026-10-28T02:30:00+01:00", "2026-10-29T02:30:00+01:00"]
    assert row["last"] is None and row["catch_up"] is True
    text = project.run("schedule", "list", "--from", "2026-10-24T12:00")
    assert text.lines[:4] == [
        "nightly  30 2 * * *  Europe/Berlin  (At 02:30 every day)",
        "  targets: a  overlap: skip  catch_up: true",
        "  last: never (no run of this schedule on record)",
        "  next: 2026-10-25 Sun 02:30 CEST (+02:00)",
    ]
    assert text.lines[4] == "        2026-10-26 Mon 02:30 CET (+01:00)"


def test_fire_records_the_schedule_and_slot_and_list_shows_the_result(project: Project) -> None:
    project.flowfile(GOOD)
    result = project.run("schedule", "fire", "nightly", "--progress", "plain")
    assert result.returncode == 0, result
    assert project.read("a.txt") == "ran\n"
    runs = json.loads(project.run("log", "--json").stdout)
    assert len(runs) == 1 and runs[0]["trigger"]["schedule"] == "nightly" and runs[0]["trigger"]["via"] == "fire"
    [row] = json.loads(project.run("schedule", "list", "--json").stdout)
    last = row["last"]
    assert last["event"] == "run" and last["result"] == "success" and last["run_id"] == runs[0]["id"]
    slot = datetime.fromisoformat(last["slot"])
    assert (slot.hour, slot.minute) == (2, 30) and slot.tzinfo is not None
    assert project.run("audit", "verify").returncode == 0


def test_unknown_schedule_names_the_close_one(project: Project) -> None:
    project.flowfile(GOOD)
    result = project.run("schedule", "fire", "nighty")
    assert result.returncode == 2
    assert result.err_lines[0].endswith("error: unknown schedule `nighty`")
    assert "did you mean 'nightly'?" in result.err_lines[1]


def test_schedule_run_stops_cleanly_on_sigterm_between_runs(project: Project) -> None:
    project.flowfile(BASE + '\n[schedules.yearly]\ncron = "0 0 1 1 *"\ntargets = ["a"]\n')
    proc = project.popen("schedule", "run", "--progress", "plain")
    lines = []

    def waiting() -> bool:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        lines.append(line)
        return line.startswith("schedule: waiting until")

    wait_for(waiting, timeout=30, what="the scheduler to wait")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    # communicate() would lose what readline() had already buffered.
    rest, err = rest_of_output(proc, timeout=15)
    out = "".join(lines) + rest
    assert proc.returncode == 0, (out, err)
    assert time.monotonic() - started < 5
    assert "schedule: SIGTERM: stopped between runs" in out
    assert not project.exists("a.txt")
    log = json.loads(project.run("log", "--json").stdout)
    assert log == []  # no run started


def test_crontab_export_parses_back_and_its_command_fires_the_schedule(project: Project) -> None:
    project.flowfile(GOOD)
    result = project.run("schedule", "export", "--format", "crontab")
    assert result.returncode == 0, result
    entries = [line for line in result.lines if line and not line.startswith("#") and "=" not in line.split()[0]]
    settings = dict(line.split("=", 1) for line in result.lines if line and not line.startswith("#")
                    and "=" in line.split()[0])
    assert settings["CRON_TZ"] == "Europe/Berlin" and settings["PATH"]
    [entry] = entries
    fields = entry.split(None, 5)
    assert fields[:5] == ["30", "2", "*", "*", "*"]
    command = fields[5]
    assert "schedule fire nightly" in command and ".flowmake/schedule-nightly.log" in command
    # Run the line as cron would (sh -c, another directory, cron's environment).
    done = subprocess.run(["sh", "-c", command], cwd="/", env={"PATH": settings["PATH"], "HOME": str(project.root)},
                          timeout=60)
    assert done.returncode == 0
    assert project.read("a.txt") == "ran\n"
    assert "done: 1 ok" in project.read(".flowmake/schedule-nightly.log")


def test_systemd_units_parse_back_and_their_calendar_fires_when_cron_does(project: Project, tmp_path) -> None:
    project.flowfile(GOOD + '\n[schedules.weekdays]\ncron = "*/20 7-9 * * mon-fri"\ntargets = ["a"]\n'
                     '\n[schedules.either]\ncron = "0 6 1 * sun"\ntargets = ["a"]\n')
    out = tmp_path / "units"
    result = project.run("schedule", "export", "--format", "systemd", "-o", str(out))
    assert result.returncode == 0, result
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"flowmake-proj-{s}.{k}" for s in ("either", "nightly", "weekdays") for k in ("service", "timer")]
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(out / "flowmake-proj-nightly.service")
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["WorkingDirectory"] == str(project.root)
    assert service["Service"]["ExecStart"].endswith("schedule fire nightly --progress plain")
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(out / "flowmake-proj-nightly.timer")
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["OnCalendar"] == "*-*-* 02:30:00 Europe/Berlin"
    assert timer["Timer"]["Unit"] == "flowmake-proj-nightly.service"
    either = (out / "flowmake-proj-either.timer").read_text()
    assert either.count("OnCalendar=") == 2  # day 1 OR Sunday, as cron means it
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the calendar expressions were not checked by systemd")
    listed = {r["name"]: r for r in json.loads(project.run("schedule", "list", "--json", "--from",
                                                           "2026-10-24T12:00+00:00").stdout)}
    for name in ("nightly", "weekdays"):
        text = (out / f"flowmake-proj-{name}.timer").read_text()
        [calendar] = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("OnCalendar=")]
        check = subprocess.run(["systemd-analyze", "calendar", "--iterations=5", "--base-time=2026-10-24 12:00 UTC",
                                calendar], capture_output=True, text=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"})
        if check.returncode != 0 and "base-time" in check.stderr:
            pytest.skip("this systemd-analyze has no --base-time")
        assert check.returncode == 0, check.stderr
        shown = [line.split(":", 1)[1].strip() for line in check.stdout.splitlines()
                 if "Next elapse" in line or line.strip().startswith("Iter.")]
        elapses = [datetime.strptime(" ".join(s.split()[1:3]), "%Y-%m-%d %H:%M:%S") for s in shown]
        expected = [datetime.fromisoformat(t).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
                    for t in listed[name]["next"]]
        assert [e.strftime("%Y-%m-%d %H:%M") for e in elapses] == expected, check.stdout


def test_sigterm_during_a_scheduled_run_interrupts_it_as_ctrl_c_would(project: Project) -> None:
    from flowmake.store.state import State
    from flowmake.store.lock import lock_project

    project.flowfile('[tasks.slow]\noutputs = ["slow.txt"]\nrun = "echo $$ > pid.txt; sleep 30; touch slow.txt"\n'
                     '\n[schedules.minutely]\ncron = "* * * * *"\ntargets = ["slow"]\ncatch_up = true\n')
    # A scheduler stopped an hour ago: on start it catches up the latest missed minute at once.
    lock = lock_project(project.root, wait=False)
    state = State.open(project.root, warn=lambda m: None)
    state.record_schedule({"event": "stopped", "time": time.time() - 3600, "reason": "SIGTERM"}, record_id="0")
    state.close()
    lock.release()
    proc = project.popen("schedule", "run", "--progress", "plain")
    wait_for(lambda: project.exists("pid.txt") and project.read("pid.txt").strip() != "", timeout=30,
             what="the caught-up run to start its task")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, (out, err)
    assert "SIGTERM during run" in out and "interrupted as Ctrl-C would" in out
    assert not project.exists("slow.txt")
    [run] = json.loads(project.run("log", "--json").stdout)
    assert run["result"] == "interrupted" and run["trigger"]["catch_up"] is True
    assert project.run("audit", "verify").returncode == 0
