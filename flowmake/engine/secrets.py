"""A task's secrets (SPEC §1, `secrets`): the command as events and records show it, and when a task may not start.

Values are masked as *** wherever flowmake shows or records a command; a
secret that is unset, or too short to mask without ruining the log, stops
its task before it starts (masking.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional

from ..masking import MIN_LENGTH, Mask

if TYPE_CHECKING:  # names for type checkers only
    from ..model import TaskSpec


def secrets_refusal(spec: TaskSpec, environ: Mapping[str, str]) -> Optional[str]:
    """Why the task may not start for its secrets, if it may not.

    Running without a credential would fail obscurely (or worse, run
    anonymously); one too short to mask could neither be hidden nor shown.
    """
    unset = [s for s in spec.secrets if s not in environ]
    if unset:
        return "secret " + ", ".join(unset) + " is not set in the environment"
    short = [s for s in spec.secrets if 0 < len(environ.get(s, "")) < MIN_LENGTH]
    if short:
        return (f"secret {', '.join(short)} is shorter than {MIN_LENGTH} characters, too short to mask"
                " (every such string in the log would become ***): use a longer value")
    return None


def shown_command(spec: TaskSpec, environ: Mapping[str, str]) -> str:
    """The command as events and records show it: secret values masked."""
    values = [environ[s] for s in spec.secrets if environ.get(s)]
    return Mask(values).text(spec.command or "") if values else spec.command or ""
