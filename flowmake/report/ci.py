"""CI-native output: GitHub Actions workflow commands and GitLab CI sections.

A CI log is long and flat; both services read special lines to fold it
and to annotate the run. These reporters wrap the plain reporter (which
still writes every line it would) and add around it: each task's output as
one collapsible block (`::group::` on GitHub, `section_start` on GitLab),
and on GitHub an `::error` annotation per failed task pointing at its table
in the Flowfile, `::warning` for warnings and `::add-mask::` for secret
values. `StepSummary` writes the Markdown summary GitHub shows on the run's
page. `resolve` picks the service: never at a terminal unless asked.

A task's output is fenced with `::stop-commands::`, so that a task which
prints `::error::` (or a crafted line from an input file) cannot annotate
the run or unmask a secret.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from ..events import Notice, RunFinished, RunStarted, TaskFinished, TaskLines, TaskStarted, TaskState
from .common import failure_text, format_duration, plural, reasons_text, summary_text

if TYPE_CHECKING:  # names for type checkers only
    from ..events import Event

CI_CHOICES = ("auto", "github", "gitlab", "none")


def resolve(asked: str, environ: Mapping[str, str], *, terminal: bool) -> str:
    """The CI service whose output to write: "github", "gitlab" or "none".

    `auto` follows the service's own variables (GITHUB_ACTIONS=true,
    GITLAB_CI set), but never at a terminal: a person who runs the job's
    commands by hand, with those variables exported, gets the ordinary view.
    """
    if asked != "auto":
        return asked
    if terminal:
        return "none"
    if environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    if environ.get("GITLAB_CI"):
        return "gitlab"
    return "none"


def escape_data(text: str) -> str:
    """A workflow command's message: GitHub reads %, CR and LF as escapes there."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (title=, file=): also ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class _Folding:
    """Shared by both services: hold each task's output until it ends, then write it as one block."""

    def __init__(self, inner: object, *, out: TextIO, grouped: bool) -> None:
        self.inner = inner
        self.out = out
        self.grouped = grouped  # --output group: task_lines come as one block per attempt
        self._lines: Dict[str, List[str]] = {}
        self._sections = 0

    def handle(self, event: Event) -> None:
        if isinstance(event, TaskLines) and self.grouped:
            lines = list(event.lines)
            if event.omitted:
                lines.insert(0, f"… {plural(event.omitted, 'earlier line')} left out: the task's log has them")
            self._lines.setdefault(event.task, []).extend(lines)
            return
        if isinstance(event, TaskFinished) and event.task in self._lines:
            self._write_block(event, self._lines.pop(event.task))
        self.inner.handle(event)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]

    def _title(self, event: TaskFinished) -> str:
        word = "failed" if event.status is TaskState.FAILED else event.status.value
        title = f"{event.task}: {word} after {format_duration(event.duration)}"
        if event.attempt != 1 or event.will_retry:
            title += f" (attempt {event.attempt})"
        return title

    def _write_block(self, event: TaskFinished, lines: List[str]) -> None:
        raise NotImplementedError


class GithubLog(_Folding):
    """Plain output plus GitHub Actions workflow commands (see the module docstring)."""

    def __init__(self, inner: object, *, out: TextIO, err: TextIO, grouped: bool,
                 lines: Optional[Mapping[str, Tuple[str, int]]] = None, masks: Sequence[str] = ()) -> None:
        super().__init__(inner, out=out, grouped=grouped)
        self.err = err
        self.task_lines = lines or {}  # task table -> (file relative to the root, line of its header)
        self.masks = masks
        self._groups: Dict[str, str] = {}

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            for value in self.masks:
                for part in value.splitlines():  # GitHub masks a command's value line by line
                    if part.strip():
                        self._command(f"::add-mask::{escape_data(part)}")
            self._groups = {t.name: t.group for t in event.tasks}
        if isinstance(event, Notice) and event.level == "warning":
            self._command(f"::warning title=flowmake::{escape_data(event.message)}")
            return
        failed = isinstance(event, TaskFinished) and event.status is TaskState.FAILED and not event.will_retry
        if not failed:
            super().handle(event)
            return
        # The plain reporter prints the log's tail on stderr: fenced there too, in the same stream.
        token = os.urandom(8).hex()  # as below: unguessable
        self._command(f"::stop-commands::{token}", self.err)
        super().handle(event)
        self._command(f"::{token}::", self.err)
        self._annotate(event)  # type: ignore[arg-type]

    def _annotate(self, event: TaskFinished) -> None:
        where = self.task_lines.get(self._groups.get(event.task, event.task.split(":", 1)[0]))
        props = f"title={escape_property(f'flowmake: task {event.task} failed')}"
        if where is not None:
            props = f"file={escape_property(where[0])},line={where[1]}," + props
        detail = f"{event.task} failed ({failure_text(event)})"
        if event.log:
            detail += f"; log: {event.log}"
        if event.tail:
            detail += "\n" + "\n".join(line.rstrip("\r\n") for line in event.tail[-10:])
        self._command(f"::error {props}::{escape_data(detail)}")

    def _write_block(self, event: TaskFinished, lines: List[str]) -> None:
        # Unguessable (os.urandom, what secrets.token_hex reads): a task cannot print the line that ends
        # the fence. Not `secrets`, whose hmac and _hashlib cost every full-path run ~5 ms to import.
        token = os.urandom(8).hex()
        text = [f"::group::{escape_data(self._title(event))}", f"::stop-commands::{token}", *lines,
                f"::{token}::", "::endgroup::"]
        self.out.write("".join(line + "\n" for line in text))
        self.out.flush()

    def _command(self, line: str, stream: Optional[TextIO] = None) -> None:
        stream = stream or self.out
        stream.write(line + "\n")
        stream.flush()


class GitlabLog(_Folding):
    """Plain output with each task's output in a collapsible GitLab CI section (collapsed when it passed)."""

    def _write_block(self, event: TaskFinished, lines: List[str]) -> None:
        self._sections += 1
        name = f"flowmake_{self._sections}_" + re.sub(r"[^A-Za-z0-9_.-]", "_", event.task)[:60]
        collapsed = "true" if event.status is not TaskState.FAILED else "false"
        stamp = int(time.time())
        self.out.write(f"\x1b[0Ksection_start:{stamp}:{name}[collapsed={collapsed}]\r\x1b[0K{self._title(event)}\n")
        self.out.write("".join(line + "\n" for line in lines))
        self.out.write(f"\x1b[0Ksection_end:{int(time.time())}:{name}\r\x1b[0K\n")
        self.out.flush()


class StepSummary:
    """The run as Markdown, appended to $GITHUB_STEP_SUMMARY when the run ends."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._flow = ""
        self._reasons: Dict[str, str] = {}
        self._rows: List[TaskFinished] = []
        self._plan_order: Dict[str, int] = {}
        self._finished: Optional[RunFinished] = None
        self._written = False

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._flow = event.flow_name
            self._plan_order = {task.name: i for i, task in enumerate(event.tasks)}
        elif isinstance(event, TaskStarted):
            self._reasons[event.task] = reasons_text(event.reasons)
        elif isinstance(event, TaskFinished) and not event.will_retry:
            if event.status is not TaskState.FRESH:
                self._rows.append(event)
        elif isinstance(event, RunFinished) and not event.dry_run:
            self._finished = event

    def close(self) -> None:
        if self._written or self._finished is None:
            return
        self._written = True
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(self.markdown())
        except OSError:
            pass  # the summary is a courtesy: a missing or read-only file must not fail the run

    def markdown(self) -> str:
        done = self._finished
        assert done is not None
        icon = {"success": "✅", "failed": "❌", "interrupted": "⏹️"}[done.result.value]
        out = [f"### {icon} flowmake: {_cell(self._flow)} — {done.result.value}", "", summary_text(done), ""]
        # In the plan's order, not the order tasks ended: parallel tasks end in
        # any order, and a table that reshuffles between runs reads as a change.
        rows = sorted(self._rows, key=lambda row: self._plan_order.get(row.task, len(self._plan_order)))
        if rows:
            out += ["| task | status | reason | duration |", "|---|---|---|---|"]
            for row in rows:
                status = row.status.value if row.status is not TaskState.FAILED else f"**failed** ({failure_text(row)})"
                reason = self._reasons.get(row.task, row.message or "")
                took = format_duration(row.duration) if row.status is not TaskState.SKIPPED else "–"
                out.append(f"| `{_cell(row.task)}` | {_cell(status)} | {_cell(reason)} | {took} |")
            out.append("")
        for row in rows:
            if row.status is TaskState.FAILED:
                where = f" ({row.log})" if row.log else ""
                out += [f"<details open><summary>{_html(row.task)}: last lines of the log{_html(where)}</summary>",
                        "", "```text", *(line.rstrip("\r\n").replace("```", "`\u200b``") for line in row.tail),
                        "```", "", "</details>", ""]
        return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    """Text that cannot break a Markdown table row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def step_summary_path(environ: Mapping[str, str]) -> Optional[str]:
    path = environ.get("GITHUB_STEP_SUMMARY")
    return path if path and os.path.isabs(path) else None
