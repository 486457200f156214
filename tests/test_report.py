"""Reporters fed hand-built event lists, read back from StringIO.

Exact lines for plain mode (they are what CI logs and users grep), parsed
lines for JSON, and rendered text for the tree, counted to prove it stays
within the terminal at 500 tasks.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import TYPE_CHECKING, List, Sequence

import pytest
from rich.console import Console
from rich.tree import Tree

from flowmake.events import (
    Notice,
    PlannedTask,
    RunFinished,
    RunInterrupted,
    RunResult,
    RunStarted,
    TaskFinished,
    TaskLines,
    TaskOutput,
    TaskPlaced,
    TaskStarted,
    TaskState,
    TasksFresh,
    TaskWaiting,
)
from flowmake.model import Reason, ReasonKind
from flowmake.report import make_reporter, use_color
from flowmake.report.board import Board, MoreRow, TaskRow, layout
from flowmake.report.common import clean_line, format_clock, format_duration
from flowmake.report.tree import TreeReporter

if TYPE_CHECKING:  # events.Event is a name for type checkers only
    from flowmake.events import Event

RUN = "20261124T120000123Z-ab12"
T0 = 1_764_000_000.0
LOG = f".flowmake/logs/{RUN}/validate.log"


def changed(path: str) -> Reason:
    return Reason(ReasonKind.INPUT_CHANGED, path)


NEVER = Reason(ReasonKind.NEVER_RUN)


def planned(name: str, *, will_run: bool = True, reasons: Sequence[Reason] = (), blocked_by: Sequence[str] = ()) -> PlannedTask:
    return PlannedTask(name, name.split(":")[0], will_run, tuple(blocked_by), tuple(reasons))


PLAN = (
    planned("extract", reasons=[changed("data/raw/dm.csv")]),
    planned("validate", reasons=[NEVER, Reason(ReasonKind.COMMAND_CHANGED)]),
    planned("package", will_run=False, blocked_by=["validate"]),
    planned("report", will_run=False),
)


def failing_run() -> List[Event]:
    return [
        RunStarted(RUN, T0, "study-pipeline", ("package",), PLAN, 4),
        TaskStarted(RUN, T0 + 0.1, "extract", (changed("data/raw/dm.csv"),), "python x.py"),
        TaskOutput(RUN, T0 + 0.5, "extract", "copied 120 rows"),
        TaskFinished(RUN, T0 + 1.3, "extract", TaskState.OK, 1.2, exit_code=0),
        TaskFinished(RUN, T0 + 1.3, "report", TaskState.FRESH),
        TaskStarted(RUN, T0 + 1.4, "validate", (NEVER,), "python v.py"),
        TaskFinished(
            RUN, T0 + 1.7, "validate", TaskState.FAILED, 0.3, exit_code=1, log=LOG, tail=("checking dm.csv", "error: AGE < 0")
        ),
        TaskFinished(RUN, T0 + 1.7, "package", TaskState.SKIPPED, message="upstream failed: validate"),
        Notice(RUN, T0 + 1.8, "on_failure hook exited 2"),
        RunFinished(RUN, T0 + 2.1, RunResult.FAILED, {"ok": 1, "failed": 1, "skipped": 1, "fresh": 1}, 2.1, ("validate",)),
    ]


def feed(mode: str, events: Sequence[Event], **options: object) -> "tuple[str, str]":
    out, err = io.StringIO(), io.StringIO()
    reporter = make_reporter(mode, out=out, err=err, **options)  # type: ignore[arg-type]
    for event in events:
        reporter.handle(event)
    reporter.close()
    return out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def no_color_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)


# --- plain ---------------------------------------------------------------------


def test_plain_failed_run_prints_one_line_per_event_and_the_tail_on_stderr() -> None:
    out, err = feed("plain", failing_run())
    assert out.splitlines() == [
        f"flowmake: study-pipeline — 4 tasks, 2 to run, 1 may run, -j 4 (run {RUN})",
        "start  extract          input changed: data/raw/dm.csv",
        "ok     extract          1.2s",
        "start  validate         never run",
        f"FAILED validate         exit 1 after 0.3s — log: {LOG}",
        "skip   package          upstream failed: validate",
        "failed: 1 ok, 1 failed, 1 skipped, 1 fresh in 2.1s",
    ]
    assert err.splitlines() == [
        f"--- validate failed (exit 1), last 2 lines of {LOG}:",
        "checking dm.csv",
        "error: AGE < 0",
        "warning: on_failure hook exited 2",
    ]
    assert "\x1b" not in out + err


def test_plain_quiet_prints_only_failures_notices_and_the_summary() -> None:
    out, err = feed("plain", failing_run(), quiet=True)
    assert out.splitlines() == [
        f"FAILED validate         exit 1 after 0.3s — log: {LOG}",
        "failed: 1 ok, 1 failed, 1 skipped, 1 fresh in 2.1s",
    ]
    assert "error: AGE < 0" in err and "warning: on_failure hook exited 2" in err


def test_plain_verbose_lists_fresh_tasks_and_every_reason() -> None:
    events = failing_run()
    events[1] = TaskStarted(RUN, T0, "extract", (changed("a.csv"), changed("b.csv")), None)
    out, _ = feed("plain", events, verbose=True)
    assert "start  extract          input changed: a.csv; input changed: b.csv" in out.splitlines()
    assert "fresh  report" in out.splitlines()
    out, _ = feed("plain", events)
    assert "start  extract          input changed: a.csv (+1 more)" in out.splitlines()


def test_plain_success_and_nothing_to_do_summaries() -> None:
    done = RunFinished(RUN, T0, RunResult.SUCCESS, {"ok": 3, "fresh": 9}, 2.1)
    nothing = RunFinished(RUN, T0, RunResult.SUCCESS, {"fresh": 12}, 0.05)
    assert feed("plain", [done])[0] == "done: 3 ok, 9 fresh in 2.1s\n"
    assert feed("plain", [nothing])[0] == "nothing to do: 12 tasks fresh (0.05s)\n"


def test_plain_prints_a_waiting_line_only_when_the_awaited_paths_change() -> None:
    waits: List[Event] = [
        TaskStarted(RUN, T0, "extract", (), None),
        TaskWaiting(RUN, T0, "extract", ("data/raw/S01/dm.csv",)),
        TaskWaiting(RUN, T0 + 5, "extract", ("data/raw/S01/dm.csv",)),
        TaskWaiting(RUN, T0 + 10, "extract", ()),
        TaskOutput(RUN, T0 + 11, "extract", "not shown in plain mode"),
    ]
    out, _ = feed("plain", waits)
    assert out.splitlines() == [
        "start  extract",
        "wait   extract          for data/raw/S01/dm.csv",
    ]


def test_plain_retry_is_not_a_failure_until_the_last_attempt() -> None:
    events: List[Event] = [
        TaskFinished(RUN, T0, "load", TaskState.FAILED, 0.5, exit_code=3, log="l.log", tail=("x",), will_retry=True),
        TaskStarted(RUN, T0 + 1, "load", (NEVER,), None, attempt=2),
        TaskFinished(RUN, T0 + 2, "load", TaskState.OK, 0.4, attempt=2),
    ]
    out, err = feed("plain", events)
    assert out.splitlines() == [
        "retry  load             exit 3 after 0.5s, will retry",
        "start  load             attempt 2: never run",
        "ok     load             0.4s (attempt 2)",
    ]
    assert err == ""


def test_plain_failure_without_exit_code_uses_the_message() -> None:
    event = TaskFinished(RUN, T0, "extract", TaskState.FAILED, 0.2, exit_code=0, message="did not produce build/x.csv", log="e.log")
    out, err = feed("plain", [event])
    assert out == "FAILED extract          did not produce build/x.csv after 0.2s — log: e.log\n"
    assert err == "--- extract failed (did not produce build/x.csv), no output in e.log\n"


def test_plain_colour_only_when_forced_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "\x1b[" in feed("plain", failing_run(), color=True)[0]
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b" not in feed("plain", failing_run(), color=True)[0]
    assert "\x1b" not in feed("tree", failing_run(), color=True)[0]


def test_use_color_follows_tty_and_no_color() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_color(Tty(), None, {}) is True
    assert use_color(io.StringIO(), None, {}) is False
    assert use_color(Tty(), None, {"NO_COLOR": "1"}) is False
    assert use_color(Tty(), None, {"NO_COLOR": ""}) is True  # empty means unset, per no-color.org


# --- dry run -------------------------------------------------------------------

DRY: List[Event] = [
    RunStarted(RUN, T0, "study-pipeline", (), PLAN, 4, dry_run=True,
               commands={"extract": "python3 extract.py data/raw/dm.csv", "package": "zip -q dist/p.zip \\\n  build/*"}),
    RunFinished(RUN, T0, RunResult.SUCCESS, dry_run=True),
]


def test_plain_dry_run_prints_the_plan_with_every_reason() -> None:
    out, err = feed("plain", DRY)
    assert out.splitlines() == [
        "flowmake: study-pipeline — dry run of 4 tasks",
        "run    extract          input changed: data/raw/dm.csv",
        "                        $ python3 extract.py data/raw/dm.csv",
        "run    validate         never run",
        "                        command changed",
        "maybe  package          may run after: validate",
        "                        $ zip -q dist/p.zip \\",
        "                            build/*",
        "dry run: 2 to run, 1 may run after them, 1 fresh (nothing was run)",
    ]
    assert err == ""
    assert "fresh  report" in feed("plain", DRY, verbose=True)[0].splitlines()


def test_dry_run_with_nothing_stale_says_nothing_to_do() -> None:
    fresh = tuple(planned(f"t{i}", will_run=False) for i in range(3))
    events: List[Event] = [RunStarted(RUN, T0, "f", (), fresh, 1, dry_run=True), RunFinished(RUN, T0, RunResult.SUCCESS, dry_run=True)]
    assert feed("plain", events)[0].splitlines()[-1] == "nothing to do: 3 tasks fresh"


def test_dry_run_names_a_whole_matrix_group_it_waits_for() -> None:
    variants = [planned(f"extract:S0{i}") for i in range(1, 4)]
    after = planned("package", will_run=False, blocked_by=[v.name for v in variants])
    out, _ = feed("plain", [RunStarted(RUN, T0, "f", (), (*variants, after), 1, dry_run=True)])
    assert "maybe  package          may run after: extract" in out.splitlines()


def test_tree_dry_run_prints_a_static_plan() -> None:
    out, _ = feed("tree", DRY)
    assert "▶ extract   input changed: data/raw/dm.csv" in out
    assert "command changed" in out
    assert "? package   may run after: validate" in out
    assert "report" not in out  # fresh tasks are counted, listed only with verbose
    assert out.splitlines()[-1] == "dry run: 2 to run, 1 may run after them, 1 fresh (nothing was run)"


# --- json ----------------------------------------------------------------------


def test_json_writes_only_json_lines_with_the_required_keys() -> None:
    events = failing_run()
    out, err = feed("json", events)
    lines = out.splitlines()
    assert len(lines) == len(events)
    for line, event in zip(lines, events):
        data = json.loads(line)
        assert data["event"] == event.kind and data["run_id"] == RUN and data["time"].endswith("Z")
        if hasattr(event, "task"):
            assert data["task"] == event.task  # type: ignore[union-attr]
    finished = json.loads(lines[6])
    assert finished["status"] == "failed" and finished["tail"] == ["checking dm.csv", "error: AGE < 0"]
    assert err == "warning: on_failure hook exited 2\n"  # tails stay inside the JSON


def test_json_dry_run_carries_the_plan() -> None:
    out, _ = feed("json", DRY)
    started = json.loads(out.splitlines()[0])
    assert started["plan"] == [
        {"task": "extract", "state": "stale", "reasons": [{"kind": "input changed", "path": "data/raw/dm.csv"}], "blocked_by": [],
         "command": "python3 extract.py data/raw/dm.csv"},
        {"task": "validate", "state": "stale", "reasons": [{"kind": "never run"}, {"kind": "command changed"}], "blocked_by": [],
         "command": None},
        {"task": "package", "state": "blocked", "reasons": [], "blocked_by": ["validate"],
         "command": "zip -q dist/p.zip \\\n  build/*"},
        {"task": "report", "state": "fresh", "reasons": [], "blocked_by": [], "command": None},
    ]


def test_plain_and_json_modes_do_not_import_rich() -> None:
    code = (
        "import io, sys\n"
        "from flowmake.report import make_reporter\n"
        "for mode in ('plain', 'json'):\n"
        "    make_reporter(mode, out=io.StringIO(), err=io.StringIO())\n"
        "import flowmake.report.plain, flowmake.report.jsonl, flowmake.report.board\n"
        "print('rich' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- tree ----------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tree_reporter(clock: FakeClock, err: io.StringIO) -> TreeReporter:
    # Not a terminal: Live draws nothing until it stops, so the test reads one frame.
    console = Console(file=io.StringIO(), width=100, height=40, force_terminal=False, color_system=None)
    return TreeReporter(console=console, err=err, clock=clock)


def render(reporter: TreeReporter, *, width: int = 100, height: int = 40) -> List[str]:
    console = Console(file=io.StringIO(), width=width, height=height, force_terminal=True, color_system=None)
    console.print(reporter.view)
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


def test_tree_shows_a_running_task_with_its_elapsed_time_and_latest_line() -> None:
    clock = FakeClock()
    reporter = tree_reporter(clock, io.StringIO())
    for event in failing_run()[:2]:
        reporter.handle(event)
    reporter.handle(TaskOutput(RUN, T0, "extract", "\x1b[32mcopied\x1b[0m 120 rows\r"))
    clock.now += 12.4
    lines = render(reporter)
    assert lines[0] == "study-pipeline  0/4 · 1 running · 0:12"
    running = next(line for line in lines if "extract" in line)
    assert running.endswith("extract   0:12  copied 120 rows")
    assert next(line for line in lines if "validate" in line).endswith("validate  never run (+1 more)")
    reporter.close()


def test_tree_shows_the_worker_a_cluster_placed_a_running_task_on() -> None:
    clock = FakeClock()
    reporter = tree_reporter(clock, io.StringIO())
    for event in failing_run()[:2]:
        reporter.handle(event)
    reporter.handle(TaskPlaced(RUN, T0, "extract", "tcp://10.0.0.7:40123"))
    reporter.handle(TaskOutput(RUN, T0, "extract", "copied 120 rows"))
    clock.now += 3
    running = next(line for line in render(reporter) if "extract" in line)
    assert running.endswith("extract   0:03  on tcp://10.0.0.7:40123  copied 120 rows")
    reporter.close()


def test_plain_names_the_worker_a_task_was_placed_on() -> None:
    out, _ = feed("plain", [*failing_run()[:2], TaskPlaced(RUN, T0, "extract", "tcp://10.0.0.7:40123")])
    assert any(line.split() == ["on", "extract", "tcp://10.0.0.7:40123"] for line in out.splitlines()), out


def test_tree_end_of_run_keeps_the_final_tree_then_tails_then_summary() -> None:
    err = io.StringIO()
    reporter = tree_reporter(FakeClock(), err)
    for event in failing_run():
        reporter.handle(event)
    reporter.close()
    out = reporter.console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert out[0] == "study-pipeline  4/4 · 1 failed · 1 skipped · 0:02"
    assert "✗ validate  exit 1 after 0.3s" in "\n".join(out)
    assert out[-1] == "✗ failed: 1 ok, 1 failed, 1 skipped, 1 fresh in 2.1s"
    assert "AGE < 0" not in "\n".join(out)
    assert err.getvalue().splitlines() == [
        f"--- validate failed (exit 1), last 2 lines of {LOG}:",
        "checking dm.csv",
        "error: AGE < 0",
        "warning: on_failure hook exited 2",
    ]


def big_run(reporter: TreeReporter, clock: FakeClock) -> None:
    """500 tasks: 200 extract variants done, one clean variant running, one failed, the rest pending."""
    sizes = {"extract": 200, "clean": 200, "validate": 50, "package": 1, "report": 49}
    tasks = [
        planned(name if n == 1 else f"{name}:S{i:03d}", reasons=[NEVER]) for name, n in sizes.items() for i in range(n)
    ]
    reporter.handle(RunStarted(RUN, T0, "study", (), tuple(tasks), 8))
    for task in tasks[:180]:
        reporter.handle(TaskFinished(RUN, T0, task.name, TaskState.OK, 1.0))
    for task in tasks[180:200]:
        reporter.handle(TaskFinished(RUN, T0, task.name, TaskState.FRESH))
    reporter.handle(TaskStarted(RUN, T0, "clean:S000", (NEVER,), None))
    reporter.handle(TaskOutput(RUN, T0, "clean:S000", "row 1234 of 5000"))
    reporter.handle(TaskStarted(RUN, T0, "clean:S001", (NEVER,), None))
    reporter.handle(TaskFinished(RUN, T0, "clean:S001", TaskState.FAILED, 0.3, exit_code=2, log="c.log"))
    clock.now += 7


def test_tree_collapses_500_tasks_to_the_screen_and_keeps_failed_and_running_visible() -> None:
    clock = FakeClock()
    reporter = tree_reporter(clock, io.StringIO())
    big_run(reporter, clock)
    lines = render(reporter, height=40)
    assert len(lines) <= 40
    assert lines[0] == "study  201/500 · 1 running · 1 failed · 0:07"
    text = "\n".join(lines)
    assert "extract  ✓ 180 ok · ○ 20 fresh" in text
    assert "clean:S000  0:07  row 1234 of 5000" in text
    assert "✗ clean:S001  exit 2 after 0.3s" in text
    reporter.close()


def test_tree_folds_calm_groups_into_one_line_when_the_screen_is_short() -> None:
    clock = FakeClock()
    reporter = tree_reporter(clock, io.StringIO())
    big_run(reporter, clock)
    lines = render(reporter, height=8)
    assert len(lines) <= 8
    text = "\n".join(lines)
    assert "clean:S000" in text and "clean:S001" in text
    assert "… 300 more tasks: 180 ok, 20 fresh, 100 pending" in text
    reporter.close()


def test_tree_never_exceeds_the_screen_even_with_more_running_tasks_than_lines() -> None:
    clock = FakeClock()
    reporter = tree_reporter(clock, io.StringIO())
    tasks = tuple(planned(f"t{i}") for i in range(100))
    reporter.handle(RunStarted(RUN, T0, "wide", (), tasks, 100))
    for task in tasks[:60]:
        reporter.handle(TaskStarted(RUN, T0, task.name, (), None))
    lines = render(reporter, height=20)
    assert len(lines) <= 20
    assert "t0 " in lines[1]  # running tasks come first
    assert lines[-1] == "└── … 83 more tasks: 43 running, 40 pending"
    reporter.close()


def test_tree_shows_every_task_when_the_run_fits() -> None:
    reporter = tree_reporter(FakeClock(), io.StringIO())
    variants = tuple(planned(f"extract:S0{i}", reasons=[NEVER]) for i in range(1, 3))
    reporter.handle(RunStarted(RUN, T0, "small", (), variants + (planned("report", will_run=False),), 2))
    assert render(reporter) == [
        "small  0/3 · 0:00",
        "├── extract  2 pending",
        "│   ├── · extract:S01  never run",
        "│   └── · extract:S02  never run",
        "└── · report",
    ]
    reporter.close()


def test_tree_marks_tasks_still_running_at_an_interrupt() -> None:
    clock = FakeClock()
    reporter = tree_reporter(clock, io.StringIO())
    reporter.handle(RunStarted(RUN, T0, "f", (), (planned("slow"),), 1))
    reporter.handle(TaskStarted(RUN, T0, "slow", (NEVER,), None))
    clock.now += 3
    reporter.handle(RunFinished(RUN, T0 + 3, RunResult.INTERRUPTED, {}, 3.0))
    out = reporter.console.file.getvalue()  # type: ignore[attr-defined]
    assert "■ slow  interrupted after 0:03" in out
    assert out.splitlines()[-1] == "✗ interrupted: no tasks finished in 3.0s"


def test_tree_holds_notices_back_while_live_and_shows_them_in_the_tree() -> None:
    err = io.StringIO()
    reporter = tree_reporter(FakeClock(), err)
    reporter.handle(RunStarted(RUN, T0, "f", (), (planned("a"),), 1))
    reporter.handle(Notice(RUN, T0, "state database was unreadable; moved aside"))
    assert err.getvalue() == ""  # writing under a live display would garble it
    assert "├── ! warning: state database was unreadable; moved aside" in render(reporter)
    reporter.close()
    assert err.getvalue() == "warning: state database was unreadable; moved aside\n"


def test_tree_handles_10000_events_without_rendering() -> None:
    reporter = tree_reporter(FakeClock(), io.StringIO())
    calls: List[int] = []
    build = reporter.view.build

    def counting_build(max_lines: int) -> Tree:
        calls.append(max_lines)
        return build(max_lines)

    reporter.view.build = counting_build  # type: ignore[method-assign]
    reporter.handle(RunStarted(RUN, T0, "f", (), (planned("a"),), 1))
    reporter.handle(TaskStarted(RUN, T0, "a", (), None))
    for i in range(10_000):
        reporter.handle(TaskOutput(RUN, T0, "a", f"line {i}"))
    assert calls == []  # the console is not a terminal, so Live draws only when it stops
    reporter.close()
    assert len(calls) == 1



class _Counting(list):  # type: ignore[type-arg]
    """board.entries that counts how many of its items a frame reads."""

    reads = 0

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        _Counting.reads += 1
        return super().__getitem__(index)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in super().__iter__():
            _Counting.reads += 1
            yield item


@pytest.mark.parametrize("failed_every", [0, 3])
def test_a_frame_of_100000_tasks_reads_only_what_it_shows(failed_every: int) -> None:
    """Each redraw costs O(rows shown), not O(tasks): no step walks every task or group to size itself."""
    n = 50_000
    names = [f"t{i}" for i in range(n)] + [f"m:{i}" for i in range(n)]  # 50,000 one-task groups and a matrix
    board = Board()
    board.plan("big", tuple(planned(name) for name in names), 0.0)
    for name in names[::failed_every] if failed_every else ():
        board.finished(TaskFinished(RUN, T0, name, TaskState.FAILED, 0.1, exit_code=1), 1.0)
    for name in ("t7", "m:9"):
        board.started(TaskStarted(RUN, T0, name, (), None), 1.0)
    board.entries = _Counting(board.entries)
    _Counting.reads = 0
    rows = layout(board, 40)
    assert len(rows) <= 40
    shown = [r.task.name for r in rows if isinstance(r, TaskRow)]
    assert shown[:2] == ["t7", "m:9"]  # running first
    assert len(shown) == (2 if not failed_every else 40 - 1)  # with failures: as many as fit, then the count
    more = rows[-1]
    # Without failures the matrix shows as its group's line (counting all its tasks) over its running one.
    assert isinstance(more, MoreRow) and more.hidden == (2 * n - len(shown) if failed_every else n - 1)
    assert _Counting.reads <= 2 * 40, f"a frame read {_Counting.reads} entries"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _calm_run(extra: Sequence[Event] = ()) -> List[Event]:
    tasks = (planned("a", will_run=False), planned("b", will_run=False))
    return [RunStarted(RUN, T0, "f", (), tasks, 2), Notice(RUN, T0, "state database was unreadable; moved aside"),
            TaskFinished(RUN, T0, "a", TaskState.FRESH), *extra, TaskFinished(RUN, T0, "b", TaskState.FRESH),
            RunFinished(RUN, T0 + 1, RunResult.SUCCESS, {"fresh": 2}, 0.02)]


def _outputs(events: Sequence[Event], *, color: bool, front: bool) -> tuple:
    """(stdout, stderr) of the tree mode for `events`: through make_reporter (the front), or the tree itself."""
    from flowmake.report import _tree

    out, err = _Tty(), io.StringIO()
    reporter = (make_reporter("tree", out=out, err=err, color=color) if front
                else _tree(out=out, err=err, color=color, verbose=False, prefixed=False))
    for event in events:
        reporter.handle(event)
    reporter.close()
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("color", [True, False])
def test_a_calm_run_in_tree_mode_prints_what_the_tree_prints_without_building_it(color: bool) -> None:
    events = _calm_run()
    shown = _outputs(events, color=color, front=True)
    assert shown == _outputs(events, color=color, front=False)
    assert shown[0].endswith("✓ nothing to do: 2 tasks fresh (0.02s)" + ("\x1b[0m\n" if color else "\n"))
    assert shown[1] == "warning: state database was unreadable; moved aside\n"


@pytest.mark.parametrize("extra", [
    TaskLines(RUN, T0, "a", ("a line", "another")),
    TaskFinished(RUN, T0, "a", TaskState.FAILED, 0.2, exit_code=1, log="a.log", tail=("boom",)),
    TaskStarted(RUN, T0, "a", (NEVER,), None),
])
def test_anything_unexpected_in_a_calm_run_hands_over_to_the_tree(extra: Event) -> None:
    events = _calm_run([extra])
    assert _outputs(events, color=False, front=True) == _outputs(events, color=False, front=False)


def test_a_calm_run_takes_its_fresh_tasks_as_one_event_and_still_hands_over_to_the_tree() -> None:
    bulk = TasksFresh(RUN, T0, ("a", "b"))
    started, finished = _calm_run()[0], _calm_run()[-1]
    failed = TaskFinished(RUN, T0, "c", TaskState.FAILED, 0.2, exit_code=1, log="c.log", tail=("boom",))
    for events in ([started, bulk, finished], [started, bulk, failed, finished]):
        out, err = _Tty(), io.StringIO()
        front = make_reporter("tree", out=out, err=err, color=False)
        assert not getattr(front, "takes_tasks_fresh")  # before RunStarted: the run may need the tree
        for event in events:
            if event is bulk:
                assert getattr(front, "takes_tasks_fresh")
            front.handle(event)
        front.close()
        each = [e for event in events for e in (event.each() if event is bulk else [event])]  # type: ignore[union-attr]
        assert (out.getvalue(), err.getvalue()) == _outputs(each, color=False, front=False)
    assert not getattr(front, "takes_tasks_fresh")  # handed over: the tree takes task_finished events


def test_a_run_with_work_and_a_dry_run_go_to_the_tree() -> None:
    for started in (RunStarted(RUN, T0, "f", (), (planned("a"),), 1),
                    RunStarted(RUN, T0, "f", (), (planned("a", will_run=False),), 1, dry_run=True)):
        reporter = make_reporter("tree", out=_Tty(), err=io.StringIO(), color=False)
        reporter.handle(started)
        assert isinstance(reporter.inner, TreeReporter)  # type: ignore[attr-defined]
        reporter.close()


def test_a_calm_run_in_tree_mode_does_not_import_rich() -> None:
    code = (
        "import io, sys\n"
        "from flowmake.events import PlannedTask, RunStarted, TaskFinished, TaskState, RunFinished, RunResult\n"
        "from flowmake.report import make_reporter\n"
        "r = make_reporter('tree', out=io.StringIO(), err=io.StringIO(), color=True)\n"
        "r.handle(RunStarted('r', 0.0, 'f', (), (PlannedTask('a', 'a', False),), 1))\n"
        "r.handle(TaskFinished('r', 0.0, 'a', TaskState.FRESH))\n"
        "r.handle(RunFinished('r', 0.0, RunResult.SUCCESS, {'fresh': 1}, 0.01))\n"
        "r.close()\n"
        "print('rich' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"

# --- common --------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [(0.0, "0.00s"), (0.05, "0.05s"), (0.3, "0.3s"), (2.14, "2.1s"), (59.9, "59.9s"), (125, "2m05s"), (3720, "1h02m"),
     # the unit follows the rounded figure: no '0.10s' beside '0.1s', no '60.0s'
     (0.0996, "0.1s"), (0.094, "0.09s"), (59.97, "1m00s"), (3599.7, "1h00m")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_clock() -> None:
    assert [format_clock(s) for s in (0.9, 12.4, 754, 3723)] == ["0:00", "0:12", "12:34", "1:02:03"]


def test_clean_line_keeps_what_a_terminal_would_show() -> None:
    assert clean_line("10%\r50%\r\x1b[1m90%\x1b[0m\tdone\n") == "90%    done"
    assert clean_line("bell\x07 and \x1b]0;title\x07x") == "bell and x"


@pytest.mark.parametrize("output, shown", [
    ("prefixed", ["[extract] … 3 earlier lines left out: the task's log has them", "[extract] row 4", "[extract] done"]),
    ("group", ["… 3 earlier lines left out: the task's log has them", "row 4", "done"]),
])
def test_plain_prints_task_lines_in_the_output_mode_and_says_what_a_block_left_out(output, shown) -> None:
    out = io.StringIO()
    reporter = make_reporter("plain", out=out, err=io.StringIO(), output=output)
    reporter.handle(TaskLines(RUN, T0, "extract", ("row 4", "done"), omitted=3))
    assert out.getvalue().splitlines() == shown


def test_task_lines_json_has_omitted_only_when_lines_were_left_out() -> None:
    assert TaskLines(RUN, T0, "a", ("x",)).to_json() == {
        "event": "task_lines", "run_id": RUN, "time": "2025-11-24T16:00:00.000Z", "task": "a", "lines": ["x"]}
    assert TaskLines(RUN, T0, "a", ("x",), omitted=2).to_json()["omitted"] == 2
def test_tree_root_counts_down_to_sigkill_after_an_interrupt_and_ends_tasks_as_interrupted() -> None:
    clock = FakeClock()
    err = io.StringIO()
    reporter = tree_reporter(clock, err)
    reporter.handle(RunStarted(RUN, T0, "f", (), (planned("a"), planned("b")), 2))
    reporter.handle(TaskStarted(RUN, T0, "a", (NEVER,), None))
    reporter.handle(TaskStarted(RUN, T0, "b", (NEVER,), None))
    reporter.handle(RunInterrupted(RUN, T0, "SIGINT", ("a", "b"), 5.0))
    assert render(reporter)[0] == "f  0/2 · 2 running · 0:00  interrupted: stopping 2 tasks, SIGKILL in 5 s"
    clock.now += 2.5
    assert render(reporter)[0].endswith("interrupted: stopping 2 tasks, SIGKILL in 3 s")
    reporter.handle(RunInterrupted(RUN, T0, "SIGINT", ("a", "b"), 0.0))  # a second Ctrl-C
    assert render(reporter)[0].endswith("interrupted: killing 2 tasks")
    reporter.handle(TaskFinished(RUN, T0, "a", TaskState.INTERRUPTED, 2.6, None, "killed by signal SIGTERM",
                                 LOG, ()))
    reporter.handle(TaskFinished(RUN, T0, "b", TaskState.INTERRUPTED, 2.6, 1, "exit code 1", LOG, ()))
    assert render(reporter)[1:] == [
        "├── ■ a  interrupted (killed by signal SIGTERM) after 2.6s",
        "└── ■ b  interrupted (exit code 1) after 2.6s",
    ]
    reporter.handle(RunFinished(RUN, T0, RunResult.INTERRUPTED, {"interrupted": 2}, 2.6))
    out = reporter.console.file.getvalue()  # type: ignore[attr-defined]
    assert out.splitlines()[-1] == "✗ interrupted: 2 interrupted in 2.6s"
    assert err.getvalue() == ""  # no log tails for tasks cut short


def test_plain_reports_an_interrupt_and_interrupted_tasks_without_tails() -> None:
    out, err = feed("plain", [
        RunStarted(RUN, T0, "f", (), (planned("a"),), 1),
        TaskStarted(RUN, T0, "a", (NEVER,), None),
        RunInterrupted(RUN, T0, "SIGTERM", ("a",), 5.0),
        TaskFinished(RUN, T0, "a", TaskState.INTERRUPTED, 0.4, None, "killed by signal SIGTERM", LOG, ("x",)),
        RunFinished(RUN, T0, RunResult.INTERRUPTED, {"interrupted": 1}, 0.4),
    ])
    assert out.splitlines()[2:] == [
        "interrupted: stopping 1 task, SIGKILL in 5 s",
        f"stop   a                interrupted (killed by signal SIGTERM) after 0.4s — log: {LOG}",
        "interrupted: 1 interrupted in 0.4s",
    ]
    assert err == ""
