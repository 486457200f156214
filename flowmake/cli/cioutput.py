"""What a run writes for CI besides its progress: JUnit XML, GitHub/GitLab output.

`plan_outputs` checks the options before anything runs (an unknown `--ci`,
a JUnit path that cannot be written: exit 2) and says which output mode a
CI log wants; `Outputs.wrap` puts the CI reporters around the live one and
gives the file writers (JUnit, the step summary), which get every event
whatever happens to stdout. The reporters are in `report/`; this module
only knows where the files go and what the Flowfile says about tasks.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ..errors import UsageError

if TYPE_CHECKING:  # names for type checkers only
    from ..model import Flowfile


class Outputs(NamedTuple):
    ci: str  # "github", "gitlab" or "none"
    junit: Optional[str]  # absolute path of the JUnit XML file to write, or None
    summary: Optional[str]  # $GITHUB_STEP_SUMMARY when writing GitHub output

    def output_mode(self, asked: Optional[str], flow_output: Optional[str], *, progress: str,
                    quiet: bool) -> Optional[str]:
        """A CI log folds each task's output into one block, so it wants the output at each task's end."""
        if self.ci != "none" and progress == "plain" and not quiet and asked in (None, "auto") and flow_output is None:
            return "group"
        return asked

    def wrap(self, reporter: object, flowfile: Flowfile, *, progress: str, output: str,
             environ: Mapping[str, str]) -> Tuple[object, List[object]]:
        """(the live reporter with CI output around it, the reporters that write files)."""
        files: List[object] = []
        if self.junit is not None:
            from ..report.junit import JunitReporter

            root = str(flowfile.root)
            files.append(JunitReporter(self.junit, read_log=lambda rel, cap: _read_log(root, rel, cap)))
        if self.summary is not None:
            from ..report.ci import StepSummary

            files.append(StepSummary(self.summary))
        if progress != "plain":
            return reporter, files  # the tree redraws and JSON lines are JSON only: no workflow commands in them
        if self.ci == "github":
            from ..report.ci import GithubLog

            return GithubLog(reporter, out=sys.stdout, err=sys.stderr, grouped=output == "group",
                             lines=task_lines(flowfile),
                             masks=secret_values(flowfile, environ)), files
        if self.ci == "gitlab":
            from ..report.ci import GitlabLog

            return GitlabLog(reporter, out=sys.stdout, grouped=output == "group"), files
        return reporter, files


def plan_outputs(flowfile: Flowfile, *, ci: str, junit_xml: Optional[str], dry_run: bool,
                 environ: Mapping[str, str] = os.environ) -> Outputs:
    """Check the CI options and the JUnit path now, so that a mistake stops the run before it starts.

    `junit_xml` from the command line is absolute already (relative to where
    flowmake was started); `[flow] junit_xml` is relative to the project root.
    """
    from ..report.ci import CI_CHOICES, resolve, step_summary_path

    if ci not in CI_CHOICES:
        raise UsageError(f"unknown --ci value '{ci}'", hint="use one of: " + ", ".join(CI_CHOICES))
    service = resolve(ci, environ, terminal=sys.stdout.isatty())
    path = junit_xml
    if path is None and flowfile.junit_xml is not None:
        path = os.path.join(str(flowfile.root), flowfile.junit_xml)
    if path is not None and not dry_run:
        path = writable_file(path, given=junit_xml or flowfile.junit_xml or path,
                             file=None if junit_xml is not None else flowfile.path)
    summary = step_summary_path(environ) if service == "github" and not dry_run else None
    return Outputs(service, None if dry_run else path, summary)


def writable_file(path: str, *, given: str, file: object = None) -> str:
    """`path` made absolute, its folder created; a UsageError (exit 2) when it cannot be written."""
    full = os.path.abspath(path)
    folder = os.path.dirname(full)
    what = f"cannot write the JUnit XML file {given}"
    if os.path.isdir(full):
        raise UsageError(f"{what}: it is a directory", file=file, hint="name a file, e.g. build/junit.xml")
    try:
        os.makedirs(folder, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = folder
        while not os.path.exists(blocker):
            blocker = os.path.dirname(blocker)
        raise UsageError(f"{what}: {blocker} is a file, not a folder", file=file,
                         hint="choose a path in a folder you can write to") from None
    except OSError as exc:
        raise UsageError(f"{what}: cannot create the folder {folder}: {exc.strerror}", file=file,
                         hint="choose a path in a folder you can write to") from None
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(full) and not os.access(full, os.W_OK)):
        raise UsageError(f"{what}: permission denied", file=file, hint="choose a path in a folder you can write to")
    return full


def task_lines(flowfile: Flowfile) -> Dict[str, Tuple[str, int]]:
    """Task table -> (its file relative to the project root, the line of its header): where annotations point."""
    out: Dict[str, Tuple[str, int]] = {}
    for spec in flowfile.tasks.values():
        if spec.group not in out and spec.line is not None:
            source = flowfile.source_of(spec.group)
            try:
                rel = source.relative_to(flowfile.root).as_posix()
            except ValueError:
                rel = source.name
            out[spec.group] = (rel, spec.line)
    return out


def secret_values(flowfile: Flowfile, environ: Mapping[str, str]) -> List[str]:
    """The values of every task's `secrets`, for GitHub to mask in the whole log."""
    names = sorted({name for spec in flowfile.tasks.values() for name in spec.secrets})
    return [environ[name] for name in names if environ.get(name)]


def _read_log(root: str, rel: str, cap: int) -> Optional[Tuple[bytes, int]]:
    """The last `cap` bytes of a task's log (secrets were masked as it was written) and its size; None if gone."""
    try:
        with open(os.path.join(root, rel), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - cap))
            return handle.read(cap), size
    except OSError:
        return None
