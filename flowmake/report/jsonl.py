"""The JSON-lines reporter: one JSON object per event on stdout, for scripts.

`out` carries nothing but these lines, each flushed as it is written so that a
consumer reading a pipe sees events as they happen. The shapes are the
events' own `to_json()`; the only addition is the `plan` of a dry run, which a
script needs and RunStarted's stable shape does not carry. Failure tails and
messages are inside the events, so `err` gets only notices (a human watching
stderr should still see warnings). Never imports rich.
"""

from __future__ import annotations

import json

from ..events import Notice, RunStarted
from ..records import TYPE_CHECKING
from .common import plan_entries

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Any, Dict, List, TextIO

    from ..events import Event


def plan_json(event: RunStarted) -> List[Dict[str, Any]]:
    """Every selected task with its preview state, as `flowmake status --json` words it."""
    return [
        {
            "task": entry.task.name,
            "state": entry.state.value,
            "reasons": [r.to_json() for r in entry.reasons],
            "blocked_by": list(entry.task.blocked_by),
            "command": event.commands.get(entry.task.name),
        }
        for entry in plan_entries(event.tasks)
    ]


class JsonReporter:
    def __init__(self, *, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    def handle(self, event: Event) -> None:
        data = event.to_json()
        if isinstance(event, RunStarted) and event.dry_run:
            data["plan"] = plan_json(event)
        self.out.write(json.dumps(data, ensure_ascii=False) + "\n")
        self.out.flush()
        if isinstance(event, Notice):
            self.err.write(f"{event.level}: {event.message}\n")
            self.err.flush()

    def close(self) -> None:
        for stream in (self.out, self.err):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # a reader that went away must not turn into a traceback at exit
