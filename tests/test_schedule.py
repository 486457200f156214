"""The ready-queue, with no processes at all."""

from __future__ import annotations

from flowmake.engine.schedule import Schedule

ORDER = ["a", "b", "c", "d", "e"]
DEPS = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}


def test_ready_follows_dependencies() -> None:
    s = Schedule(ORDER, DEPS)
    assert s.pop_ready() == ["a", "e"]
    assert s.pop_ready() == []
    s.succeeded("a")
    assert s.pop_ready() == ["b", "c"]
    s.succeeded("b")
    assert s.pop_ready() == []
    s.succeeded("c")
    assert s.pop_ready() == ["d"]
    s.succeeded("d")
    s.succeeded("e")
    assert s.done


def test_failure_skips_everything_downstream_and_stops_new_starts() -> None:
    s = Schedule(ORDER, DEPS)
    s.pop_ready()
    assert s.failed("a") == ["b", "c", "d"]
    assert s.stopped
    assert s.pop_ready() == []
    assert s.unfinished() == ["e"]


def test_keep_going_runs_what_is_not_downstream() -> None:
    s = Schedule(["a", "b", "c", "x", "y"], {"b": ["a"], "c": ["b"], "y": ["x"]}, keep_going=True)
    assert s.pop_ready() == ["a", "x"]
    assert s.failed("a") == ["b", "c"]
    assert not s.stopped
    s.succeeded("x")
    assert s.pop_ready() == ["y"]
    s.succeeded("y")
    assert s.done


def test_dependencies_outside_the_selection_are_ignored() -> None:
    s = Schedule(["b"], {"b": ["a"]})
    assert s.pop_ready() == ["b"]
