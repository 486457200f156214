"""The loop (engine/build.py) without any process: a scripted executor (fake_executor.py) plays the tasks.

In the manner of Ninja's build_test.cc: ordering, the -j limit, -k,
failure propagation, retries, timeouts, interrupts and early cutoff, each
checked on what the loop started, what it reported and what it recorded.
The Flowfile, the graph and the state are the real ones, on tmp_path.
"""

from __future__ import annotations

import inspect
import os
import signal
import textwrap
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import pytest
from fake_executor import FakeExecutor, Outcome

from flowmake.engine.build import Build, BuildOptions
from flowmake.engine.graph import build_graph, closure, default_targets, resolve_targets
from flowmake.errors import EXIT_OK, EXIT_SIGINT, EXIT_TASK_FAILED
from flowmake.events import RunFinished, RunStarted, TaskFinished, TaskStarted
from flowmake.executors.dry import DryExecutor
from flowmake.executors.local import LocalExecutor
from flowmake.executors.protocol import Executor
from flowmake.load.flowfile import load
from flowmake.model import RunRecord
from flowmake.store.state import State

CHAIN = """
    [tasks.a]
    inputs = ["src.txt"]
    outputs = ["build/a.txt"]
    run = "make a"

    [tasks.b]
    inputs = ["build/a.txt"]
    outputs = ["build/b.txt"]
    run = "make b"

    [tasks.c]
    inputs = ["build/b.txt"]
    outputs = ["build/c.txt"]
    run = "make c"
"""


def independent(*names: str, extra: str = "") -> str:
    return "".join(f'[tasks.{n}]\noutputs = ["out/{n}.txt"]\nrun = "make {n}"\n{extra}\n' for n in names)


class Run:
    """One run of the loop: its exit code, its events, and the executor that played it."""

    def __init__(self, code: int, events: List[object], executor: FakeExecutor, attempts: List) -> None:
        self.code = code
        self.events = events
        self.executor = executor
        self.attempts = attempts  # AttemptRecords the run left in the journal

    @property
    def started(self) -> List[str]:
        return self.executor.started

    def finished(self) -> Dict[str, TaskFinished]:
        """task -> its last task_finished event."""
        return {e.task: e for e in self.events if isinstance(e, TaskFinished)}

    def statuses(self) -> Dict[str, str]:
        return {task: e.status.value for task, e in self.finished().items()}

    def run_finished(self) -> RunFinished:
        (last,) = [e for e in self.events if isinstance(e, RunFinished)]
        return last


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "src.txt").write_text("one\n")

    def flowfile(self, text: str) -> None:
        (self.root / "Flowfile.toml").write_text(textwrap.dedent(text))

    def run(self, script: Optional[Mapping[str, Sequence[Outcome]]] = None, *, targets: Sequence[str] = (),
            jobs: int = 1, keep_going: bool = False, executor: Optional[object] = None,
            cache: Optional[object] = None) -> Run:
        flowfile = load(self.root / "Flowfile.toml")
        graph = build_graph(flowfile)
        roots = resolve_targets(flowfile, graph, targets) if targets else default_targets(flowfile, graph)
        fake = FakeExecutor(self.root, script, outputs={n: s.outputs for n, s in flowfile.tasks.items()})
        events: List[object] = []
        state = State.open(self.root, warn=lambda message: None)
        try:
            build = Build(flowfile, graph, state, BuildOptions(roots=roots, jobs=jobs, keep_going=keep_going),
                          emit=events.append, executor=executor or fake, selection=closure(graph, roots),
                          environ={"PATH": os.environ.get("PATH", "")}, cache=cache)
            self.build = build
            code = build.run()
            attempts = state.attempts(build.run_id) if executor is None else []
        finally:
            state.close()
        return Run(code, events, fake, attempts)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_tasks_start_after_what_they_need_and_ready_ones_in_declaration_order(project: Project) -> None:
    project.flowfile(independent("x") + CHAIN + independent("y"))
    run = project.run()
    assert run.code == EXIT_OK
    assert run.started == ["x", "a", "y", "b", "c"]  # y was ready before b
    assert set(run.statuses().values()) == {"ok"}


def test_every_start_comes_before_its_finish_and_the_plan_comes_first(project: Project) -> None:
    project.flowfile(CHAIN)
    events = project.run(jobs=2).events
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    kinds = [(type(e).__name__, getattr(e, "task", None)) for e in events]
    for task in "abc":
        assert kinds.index(("TaskStarted", task)) < kinds.index(("TaskFinished", task))


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_no_more_than_jobs_tasks_run_at_once(project: Project, jobs: int) -> None:
    project.flowfile(independent(*"pqrstu"))
    run = project.run(jobs=jobs)
    assert run.code == EXIT_OK
    assert run.executor.most_at_once == jobs
    assert sorted(run.started) == list("pqrstu")


def test_a_failure_stops_new_starts_while_running_tasks_finish(project: Project) -> None:
    project.flowfile(independent("p", "q", "r"))
    run = project.run({"p": [Outcome(exit=1, takes=1)], "q": [Outcome(takes=5)]}, jobs=2)
    assert run.code == EXIT_TASK_FAILED
    assert run.started == ["p", "q"]
    assert run.statuses() == {"p": "failed", "q": "ok", "r": "skipped"}
    assert run.finished()["p"].message == "exit code 1"
    assert "run stopped after a failure" in run.finished()["r"].message
    assert run.run_finished().failed == ("p",)


def test_keep_going_runs_everything_not_below_a_failure(project: Project) -> None:
    project.flowfile(CHAIN + independent("x"))
    run = project.run({"a": [Outcome(exit=2)]}, keep_going=True)
    assert run.code == EXIT_TASK_FAILED
    assert run.started == ["a", "x"]
    assert run.statuses() == {"a": "failed", "b": "skipped", "c": "skipped", "x": "ok"}
    assert run.finished()["b"].message == "upstream failed: a"
    assert run.finished()["c"].message == "upstream failed: a"


def test_a_failed_attempt_is_retried_and_each_attempt_recorded(project: Project) -> None:
    project.flowfile(independent("a", extra="retries = 2"))
    run = project.run({"a": [Outcome(exit=1), Outcome(exit=1), Outcome()]})
    assert run.code == EXIT_OK
    assert run.started == ["a", "a", "a"]
    finishes = [e for e in run.events if isinstance(e, TaskFinished)]
    assert [(e.status.value, e.attempt, e.will_retry) for e in finishes] == [
        ("failed", 1, True), ("failed", 2, True), ("ok", 3, False)]
    assert [(a.attempt, a.status) for a in run.attempts] == [(1, "failed"), (2, "failed"), (3, "ok")]
    logs = [c.log for c in run.executor.commands]
    assert len(set(logs)) == 3  # each attempt its own log


def test_a_task_fails_once_its_retries_are_used_up(project: Project) -> None:
    project.flowfile(independent("a", extra="retries = 1") + '[tasks.b]\nafter = ["a"]\nrun = "make b"\n')
    run = project.run({"a": [Outcome(exit=1), Outcome(exit=3)]})
    assert run.code == EXIT_TASK_FAILED
    assert run.started == ["a", "a"]
    assert run.statuses() == {"a": "failed", "b": "skipped"}
    assert run.finished()["a"].exit_code == 3 and run.finished()["a"].attempt == 2


def test_a_timed_out_task_fails_naming_its_limit_and_gets_the_timeout_passed(project: Project) -> None:
    project.flowfile(independent("a", extra='timeout = "90s"'))
    run = project.run({"a": [Outcome(exit=-int(signal.SIGKILL), timed_out=True)]})
    assert run.code == EXIT_TASK_FAILED
    assert run.executor.commands[0].timeout == 90.0
    assert run.finished()["a"].message == "timed out (limit 90s)"
    assert run.finished()["a"].exit_code is None


def test_a_task_killed_by_a_signal_fails_naming_it(project: Project) -> None:
    project.flowfile(independent("a"))
    run = project.run({"a": [Outcome(exit=-int(signal.SIGSEGV))]})
    assert run.finished()["a"].message == "killed by signal SIGSEGV"


def test_exit_0_without_a_declared_output_is_a_failure(project: Project) -> None:
    project.flowfile(CHAIN)
    run = project.run({"a": [Outcome(writes={})]})
    assert run.code == EXIT_TASK_FAILED
    assert run.finished()["a"].message == "did not produce build/a.txt"
    assert run.statuses()["b"] == "skipped"
    assert [a.status for a in run.attempts] == ["failed"]


def test_a_command_that_cannot_start_fails_its_task(project: Project) -> None:
    project.flowfile(independent("a"))
    run = project.run({"a": [Outcome(cannot_start="No such file or directory")]})
    assert run.code == EXIT_TASK_FAILED
    assert run.finished()["a"].message.startswith("could not start 'sh':")


def test_an_upstream_task_that_rewrites_its_output_byte_for_byte_cuts_off_the_rest(project: Project) -> None:
    project.flowfile(CHAIN)
    assert project.run().started == ["a", "b", "c"]
    (project.root / "src.txt").write_text("two\n")
    run = project.run()  # a runs again and writes the same "a\n": b and c need not run
    assert run.code == EXIT_OK
    assert run.started == ["a"]
    assert run.statuses() == {"a": "ok", "b": "fresh", "c": "fresh"}


def test_an_upstream_change_in_content_runs_the_task_below(project: Project) -> None:
    project.flowfile(CHAIN)
    project.run()
    (project.root / "src.txt").write_text("two\n")
    run = project.run({"a": [Outcome(writes={"build/a.txt": "new\n"})]})
    assert run.started == ["a", "b"]  # b writes "b\n" again: c is cut off
    assert run.statuses() == {"a": "ok", "b": "ok", "c": "fresh"}


def test_nothing_runs_the_second_time(project: Project) -> None:
    project.flowfile(CHAIN)
    project.run()
    run = project.run()
    assert run.started == [] and run.code == EXIT_OK
    assert run.run_finished().counts["fresh"] == 3


def test_an_interrupt_stops_the_running_tasks_gracefully_and_starts_no_other(project: Project) -> None:
    project.flowfile(independent("a", "b", "c"))
    interrupt = lambda: project.build._on_signal(signal.SIGINT, None)  # noqa: E731 (as Ctrl-C would)
    run = project.run({"b": [Outcome(takes=10, on_start=interrupt)]}, jobs=2)
    assert run.code == EXIT_SIGINT
    assert run.started == ["a", "b"]
    assert run.executor.cancelled == [False]  # SIGTERM first; SIGKILL only after the grace period
    assert run.statuses() == {"a": "interrupted", "b": "interrupted", "c": "skipped"}
    assert run.finished()["c"].message == "not started: the run was interrupted"
    assert [a.status for a in run.attempts] == ["interrupted", "interrupted"]  # none recorded as done
    assert run.run_finished().result.value == "interrupted"


def test_a_second_ctrl_c_kills_at_once(project: Project) -> None:
    project.flowfile(independent("a"))

    def twice() -> None:
        project.build._on_signal(signal.SIGINT, None)
        project.build._on_signal(signal.SIGINT, None)

    run = project.run({"a": [Outcome(takes=10, on_start=twice)]})
    assert run.code == EXIT_SIGINT
    assert run.executor.cancelled == [False, True]


def test_a_run_ends_the_orphans_of_a_killed_run_before_starting_anything(project: Project) -> None:
    project.flowfile(independent("a"))
    state = State.open(project.root, warn=lambda message: None)
    state.begin_run(RunRecord("dead-run", 1.0, "u", "h", "0", "hash", (), ()))  # never finished: killed
    state.close()
    run = project.run()
    assert run.executor.orphan_runs == [["dead-run"]]
    assert run.executor.closed
    assert project.run().executor.orphan_runs == []  # ended once: forgotten


def test_a_dry_run_starts_nothing_ends_nothing_and_records_nothing(project: Project) -> None:
    project.flowfile(CHAIN)
    run = project.run(executor=DryExecutor(project.root))
    assert run.code == EXIT_OK
    assert [type(e).__name__ for e in run.events] == ["RunStarted", "RunFinished"]
    assert run.events[0].dry_run and run.run_finished().counts == {"stale": 3, "blocked": 0, "fresh": 0}
    assert not (project.root / "build").exists()
    assert project.run().started == ["a", "b", "c"]


def test_the_command_carries_the_shell_the_environment_and_a_log_path(project: Project) -> None:
    project.flowfile('[env]\nTZ = "UTC"\n' + independent("a"))
    command = project.run().executor.commands[0]
    assert command.argv == ["sh", "-c", "make a"]
    assert command.cwd == str(project.root)
    assert command.env["TZ"] == "UTC" and command.env["FLOWMAKE_TASK"] == "a"
    assert command.env["FLOWMAKE_RUN_ID"] == project.build.run_id
    assert command.log.startswith(".flowmake/logs/")


@pytest.mark.parametrize("executor", [LocalExecutor, DryExecutor, FakeExecutor])
def test_every_executor_has_the_shape_of_the_protocol(executor: type) -> None:
    # The loop is typed against executors/protocol.py; executors match it by shape, not by inheritance.
    for name, member in vars(Executor).items():
        if name.startswith("_") or not callable(member):
            continue
        assert callable(getattr(executor, name, None)), f"{executor.__name__} lacks {name}"
        wanted = list(inspect.signature(member).parameters.items())
        got = list(inspect.signature(getattr(executor, name)).parameters.items())
        assert [(n, p.kind) for n, p in got] == [(n, p.kind) for n, p in wanted], f"{executor.__name__}.{name}"
    assert "runs_commands" in vars(executor)


# -- the restore seam (engine/restore.py) ----------------------------------------


class CopiesCache:
    """A shared cache in memory: the outputs of each fingerprint a run recorded, as bytes."""

    def __init__(self, root: Path, state_root: Path) -> None:
        state = State.open(state_root, warn=lambda message: None)
        try:
            traces = list(state.traces().values())
        finally:
            state.close()
        self.root = root
        self.entries = {t.fingerprint: {o: (root / o).read_bytes() for o in t.outputs} for t in traces}
        self.restored: List[str] = []

    def lookup(self, spec, obs):
        from flowmake.engine.plan import fingerprint

        return self.entries.get(fingerprint(obs))

    def restore(self, spec, entry, files):
        files.make_parents(list(entry))
        for rel, data in entry.items():
            (self.root / rel).write_bytes(data)
        self.restored.append(spec.name)
        hasher = files.hasher({})
        return {rel: hasher.hash(rel) for rel in entry}

    def begin(self, build):
        pass

    def finish(self):
        pass

    def provenance(self, entry):
        return {"run": "R0", "host": "elsewhere"}

    def store(self, spec, obs, outputs):
        pass  # filled from the traces of the run before, above


def test_a_restore_decision_puts_outputs_back_through_the_cache_and_runs_nothing(project: Project) -> None:
    project.flowfile(CHAIN)
    assert project.run().code == EXIT_OK
    cache = CopiesCache(project.root, project.root)
    for name in "abc":
        (project.root / f"build/{name}.txt").unlink()
    run = project.run(cache=cache)
    assert run.code == EXIT_OK
    assert run.started == [] and cache.restored == ["a", "b", "c"]
    assert run.statuses() == {"a": "restored", "b": "restored", "c": "restored"}
    assert run.run_finished().counts["restored"] == 3
    plan = {t.name: t for t in run.events[0].tasks}
    assert plan["a"].will_run and plan["b"].blocked_by == ("a",)
    assert [a.status for a in run.attempts] == ["restored"] * 3
    again = project.run()  # the restored outputs carry traces: fresh next time, without the cache
    assert again.started == [] and set(again.statuses().values()) == {"fresh"}


def test_a_restore_that_fails_runs_the_task(project: Project) -> None:
    project.flowfile(CHAIN)
    assert project.run().code == EXIT_OK
    cache = CopiesCache(project.root, project.root)
    cache.restore = lambda spec, entry, files: None  # the cache lost it since the lookup
    (project.root / "build/a.txt").unlink()
    run = project.run(cache=cache)
    assert run.code == EXIT_OK and run.started == ["a"] and run.statuses()["a"] == "ok"
