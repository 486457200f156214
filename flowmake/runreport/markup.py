"""What every piece of the report's HTML is made with: escaping, the status words and their CSS classes."""

from __future__ import annotations

import html
from typing import Mapping, Sequence

STATUS_CLASS = {"not run": "notrun", "did not finish": "did-not-finish"}
STATUS_WORDS = ("ran", "restored", "fresh", "failed", "interrupted", "skipped", "not run")


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def css_class(status: str) -> str:
    return STATUS_CLASS.get(status, status)


def section_id(run: Mapping) -> str:
    """The anchor of a run's section, which the trend's bars and the overview's rows link to."""
    return f"run-{run['id']}"


def reasons_text(reasons: Sequence[Mapping]) -> str:
    """A task's reasons on one line (the page and the Markdown summary say them alike)."""
    return "; ".join(r["kind"] + (f": {r['path']}" if r.get("path") else "") for r in reasons)
