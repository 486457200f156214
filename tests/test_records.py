"""records.NamedTuple: what the records and events rely on, as typing.NamedTuple gives it."""

from __future__ import annotations

import pickle
from typing import Optional

import pytest

from flowmake.events import TaskFinished, TaskState
from flowmake.records import NamedTuple


class Sample(NamedTuple):
    """A sample record."""

    name: str
    size: int = 0
    note: Optional[str] = None

    @property
    def kind(self) -> str:
        return "sample"

    def __str__(self) -> str:
        return f"{self.name} ({self.size})"


def test_fields_and_defaults_follow_the_class_body() -> None:
    assert Sample._fields == ("name", "size", "note")
    assert Sample("a") == ("a", 0, None)
    assert Sample("a", note="n").note == "n"
    with pytest.raises(TypeError):
        Sample()  # type: ignore[call-arg]


def test_methods_properties_and_docstring_are_kept() -> None:
    sample = Sample("a", 2)
    assert sample.kind == "sample"
    assert str(sample) == "a (2)"
    assert repr(sample) == "Sample(name='a', size=2, note=None)"
    assert Sample.__doc__ == "A sample record."
    assert Sample.__module__ == __name__ and Sample.__qualname__ == "Sample"


def test_records_are_immutable() -> None:
    sample = Sample("a")
    with pytest.raises(AttributeError):
        sample.size = 3  # type: ignore[misc]
    assert sample._replace(size=3) == Sample("a", 3)


def test_records_survive_pickling() -> None:
    # The load cache pickles the model's records.
    event = TaskFinished("run", 1.0, "extract", TaskState.OK, duration=0.5)
    assert pickle.loads(pickle.dumps(event)) == event
    assert pickle.loads(pickle.dumps(Sample("a", 1))) == Sample("a", 1)
