"""The recorder's commit batching (engine/recorder.py), on a real state database.

A quick successful attempt may wait RECORD_DELAY for others; a failure, a
slow task or a full batch is committed at once; an attempt not yet
committed is not in the journal (a kill then only means it runs again).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmake.engine import recorder as recorder_module
from flowmake.engine.recorder import MAX_UNRECORDED, RECORD_DELAY, Recorder
from flowmake.events import RunResult
from flowmake.model import AttemptRecord, Hooks, RunRecord
from flowmake.store.state import State


def attempt(task: str, *, status: str = "ok", took: float = 0.01) -> AttemptRecord:
    return AttemptRecord(run_id="r1", task=task, attempt=1, status=status, reasons=(), command="true",
                         started=100.0, finished=100.0 + took, exit_code=0, inputs={}, outputs={}, log=None,
                         log_hash=None, message=None, waited=None)


@pytest.fixture
def recorder(tmp_path: Path):
    state = State.open(tmp_path, warn=lambda message: None)
    rec = Recorder(state, "r1", root=tmp_path, flow_name="f", hooks=Hooks(), shell=("sh", "-c"), environ={})
    rec.begin(RunRecord("r1", 100.0, "u", "h", "0", "hash", (), ()))
    yield rec
    state.close()


def recorded(rec: Recorder) -> list:
    return [a.task for a in rec.state.attempts("r1")]


def test_a_quick_success_waits_for_others_and_a_failure_goes_at_once(recorder: Recorder) -> None:
    assert recorder.due_in() is None
    recorder.attempt(attempt("a"), None)
    assert 0.0 < recorder.due_in() <= RECORD_DELAY
    assert recorded(recorder) == []  # not yet in the journal
    recorder.attempt(attempt("b", status="failed"), None)
    assert recorder.due_in() == 0.0
    recorder.commit()
    assert recorded(recorder) == ["a", "b"] and recorder.due_in() is None


def test_a_slow_task_is_committed_at_once(recorder: Recorder) -> None:
    recorder.attempt(attempt("slow", took=recorder_module.QUICK_TASK + 1), None)
    assert recorder.due_in() == 0.0


def test_a_full_batch_is_committed_at_once(recorder: Recorder) -> None:
    for i in range(MAX_UNRECORDED - 1):
        recorder.attempt(attempt(f"t{i}"), None)
    assert recorder.due_in() > 0.0
    recorder.attempt(attempt("last"), None)
    assert recorder.due_in() == 0.0


def test_finishing_commits_what_is_pending_and_ends_the_run(recorder: Recorder) -> None:
    recorder.attempt(attempt("a"), None)
    assert recorder.finish(RunResult.SUCCESS, 101.0, counts={"ok": 1}) == []
    assert recorded(recorder) == ["a"]
    assert recorder.state.runs()[0].result == "success"


def test_a_run_never_begun_gets_no_end_record(tmp_path: Path) -> None:
    state = State.open(tmp_path, warn=lambda message: None)
    try:
        rec = Recorder(state, "r9", root=tmp_path, flow_name="f", hooks=Hooks(on_failure="exit 1"),
                       shell=("sh", "-c"), environ={})
        assert rec.finish(RunResult.INTERRUPTED, 1.0, counts={}) == []
        assert state.runs() == []
    finally:
        state.close()
