"""The JUnit XML reporter: a run as one test suite, for CI servers' test views.

Jenkins (JUnit and xunit plugins), GitLab (`artifacts:reports:junit`) and
most other CI servers show a JUnit XML file as a table of test cases. A
pipeline's tasks are its checks, so each selected task becomes one
`<testcase>`: classname is its task table (the matrix task), name the task or
variant; a failure carries the exit code and the log tail, fresh and skipped
tasks are `<skipped>` with why, an interrupted task is an `<error>`, and the
failed attempts before a retry are Surefire's `<rerunFailure>` (the task
still failed) or `<flakyFailure>` (it passed in the end). The shape is the
Jenkins xunit plugin's junit-10.xsd, which GitLab's parser also reads
(docs/ci.md); tests/test_cli_junit.py validates against that schema.

Like every reporter it sees only events; the task's log (for
`<system-out>`) comes through `read_log`, which the CLI gives it, because
reading files is not a reporter's business. The file is written once, at
`close()`, which the CLI calls however the run ends (failure, Ctrl-C), into
a temporary file then renamed over `path`: a reader never sees half a file.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from ..events import (
    RunFinished,
    RunInterrupted,
    RunStarted,
    TaskFinished,
    TaskStarted,
    TaskState,
    iso_time,
)

if TYPE_CHECKING:  # events.Event is a name for type checkers only
    from ..events import Event

# A task's log in <system-out> keeps its last this many bytes: CI servers load
# the whole file into memory and pages, and the end of a log is what explains it.
LOG_CAP = 64 * 1024
# Characters XML 1.0 cannot carry at all (escaping does not help): a task that
# prints a NUL or a terminal escape would make the file unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """`text` with what XML 1.0 cannot hold shown as \\xNN (an escape code stays readable)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def failure_type(event: TaskFinished) -> str:
    """A short, stable kind of failure for the `type` attribute: what a CI view groups by."""
    message = event.message or ""
    if event.exit_code is not None and not message.startswith("did not produce"):
        return f"exit code {event.exit_code}"
    for start, kind in (("timed out", "timeout"), ("killed by signal", "signal"),
                        ("did not produce", "missing output"), ("wait_for", "wait timeout")):
        if message.startswith(start):
            return kind
    return "failed"


class _Case:
    """What the suite needs of one task, gathered from its events."""

    def __init__(self, name: str, group: str) -> None:
        self.name = name
        self.group = group
        self.final: Optional[TaskFinished] = None
        self.retried: List[TaskFinished] = []  # failed attempts that were retried
        self.time = 0.0
        self.command: Optional[str] = None


class JunitReporter:
    def __init__(self, path: str, *, read_log: Callable[[str, int], Optional[Tuple[bytes, int]]], hostname: str = "") -> None:
        self.path = path
        self.read_log = read_log
        self.hostname = hostname or socket.gethostname()
        self._cases: Dict[str, _Case] = {}
        self._started: Optional[RunStarted] = None
        self._finished: Optional[RunFinished] = None
        self._signal: Optional[str] = None
        self._written = False

    def handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started = event
            self._cases = {t.name: _Case(t.name, t.group) for t in event.tasks}
        elif isinstance(event, TaskStarted):
            case = self._case(event.task)
            case.command = event.command
        elif isinstance(event, TaskFinished):
            case = self._case(event.task)
            case.time += event.duration
            if event.will_retry:
                case.retried.append(event)
            else:
                case.final = event
        elif isinstance(event, RunInterrupted):
            self._signal = event.signal
        elif isinstance(event, RunFinished):
            self._finished = event

    def _case(self, name: str) -> _Case:
        if name not in self._cases:  # not planned (never expected): kept all the same
            self._cases[name] = _Case(name, name.split(":", 1)[0])
        return self._cases[name]

    def close(self) -> None:
        if self._written or self._started is None or self._started.dry_run:
            return  # a dry run ran nothing: no test results to report
        self._written = True
        write_atomically(self.path, self.document())

    # --- the document ----------------------------------------------------------

    def document(self) -> bytes:
        started = self._started
        assert started is not None
        cases = [self._testcase(case) for case in self._cases.values()]
        tally = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
        for element in cases:
            for kind, key in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
                if element.find(kind) is not None:
                    tally[key] += 1
        duration = self._finished.duration if self._finished is not None else sum(c.time for c in self._cases.values())
        counts = {k: str(v) for k, v in tally.items()}
        root = ET.Element("testsuites", name=f"flowmake {started.flow_name}", time=f"{duration:.3f}",
                          **{k: counts[k] for k in ("tests", "failures", "errors")})
        suite = ET.SubElement(root, "testsuite", name=started.flow_name, **counts, time=f"{duration:.3f}",
                              timestamp=iso_time(started.time), hostname=self.hostname, id=started.run_id)
        properties = ET.SubElement(suite, "properties")
        result = self._finished.result.value if self._finished is not None else "interrupted"
        for name, value in (("run_id", started.run_id), ("targets", " ".join(started.targets)),
                            ("result", result), ("jobs", str(started.jobs))):
            ET.SubElement(properties, "property", name=name, value=xml_text(value))
        suite.extend(cases)
        ET.indent(root)  # readable when opened by hand
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"

    def _testcase(self, case: _Case) -> ET.Element:
        element = ET.Element("testcase", classname=case.group, name=case.name, time=f"{case.time:.3f}")
        final = case.final
        if final is None:
            reason = f"not run: the run was interrupted ({self._signal})" if self._signal else "not run"
            ET.SubElement(element, "skipped", message=reason)
            return element
        status = final.status
        if status is TaskState.FAILED:
            failure = ET.SubElement(element, "failure", message=xml_text(final.message or "failed"),
                                    type=failure_type(final))
            failure.text = xml_text("\n".join(line.rstrip("\r\n") for line in final.tail))
        elif status is TaskState.INTERRUPTED:
            error = ET.SubElement(element, "error", type="interrupted",
                                  message=xml_text(f"interrupted: {final.message or 'stopped by flowmake'}"))
            error.text = "the run was interrupted while this task ran; it was stopped, not broken"
        elif status is TaskState.FRESH:
            ET.SubElement(element, "skipped", message="fresh: up to date, did not run")
        elif status is TaskState.SKIPPED:
            ET.SubElement(element, "skipped", message=xml_text(f"skipped: {final.message or 'not started'}"))
        elif status is TaskState.RESTORED:  # a pass: its outputs are the ones a run made, from the shared cache
            ET.SubElement(element, "system-out").text = xml_text(final.message or "restored from cache")
        rerun = "rerunFailure" if status is TaskState.FAILED else "flakyFailure"
        for attempt in case.retried:
            failed = ET.SubElement(element, rerun, message=xml_text(
                f"attempt {attempt.attempt}: {attempt.message or 'failed'}"), type=failure_type(attempt))
            out = self._log_text(attempt.log)
            if out is not None:
                ET.SubElement(failed, "system-out").text = out
        out = self._log_text(final.log)
        if out is not None:
            ET.SubElement(element, "system-out").text = out
        return element

    def _log_text(self, log: Optional[str]) -> Optional[str]:
        if not log:
            return None
        found = self.read_log(log, LOG_CAP)
        if found is None:
            return None
        data, size = found
        head = ""
        if size > len(data):
            start = data.find(b"\n", 0, 4096) + 1  # from a line's start, not the middle of one
            data = data[start:]
            head = f"[… the first {size - len(data)} bytes are left out: the whole log is {log}]\n"
        return xml_text(head + data.decode("utf-8", errors="replace"))


def write_atomically(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in its folder and a rename."""
    folder = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix=".flowmake-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o666 & ~_umask())  # as open() would have made it, not mkstemp's 0600
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
