"""`run -n`: the executor that runs nothing.

A dry run decides every task as the run would (the same preview), shows the
plan and stops before the loop: `runs_commands` is False. It reads the
project's files like the local executor, and ends nothing: the project lock
may be another run's, whose tasks are alive, not orphans.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence

from .files import LocalFiles

if TYPE_CHECKING:  # names for type checkers only
    from .messages import Command
    from .protocol import Message


class DryExecutor:
    runs_commands = False

    def __init__(self, root: Path) -> None:
        self.files = LocalFiles(root)

    def slots(self) -> int:
        return 1

    def start(self, command: Command) -> None:
        raise AssertionError(f"a dry run starts no command ({command.task})")  # the loop never runs dry

    def wait(self, timeout: Optional[float]) -> List[Message]:
        return []

    def wake(self) -> None:
        pass

    def cancel(self, *, at_once: bool) -> None:
        pass

    def end_orphans(self, run_ids: Sequence[str]) -> List[str]:
        return []

    def close(self) -> None:
        pass
