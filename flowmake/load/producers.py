"""Pass 2 of loading: who produces what, and each draft finished against it.

Once every draft's outputs are known, `Producers` indexes them (reporting
outputs declared twice or nested in another task's directory output) and
`TaskNames` the task and variant names. Each draft is then finished into a
`TaskSpec`: input globs replaced by their sorted matches among existing
files and other tasks' outputs, plain inputs checked to be produced or on
disk, `run` rendered with the final file lists, and `after` names resolved
to variants.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Dict, FrozenSet, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..errors import NOT_UTF8_HINT, did_you_mean, not_utf8
from ..model import NO_GROUPS, TaskSpec
from .drafts import Context, Draft
from .paths import Disk, glob_to_regex, is_glob, literal_dir, merge, unique
from .problems import Problems
from .sections import Flow
from .templates import Files, TemplateError, render_run


class Producers:
    """Every declared output and its task; reports duplicates and nesting."""

    def __init__(self, drafts: Sequence[Draft], *, problems: Problems) -> None:
        self.files: Dict[str, str] = {}
        self.dirs: Dict[str, str] = {}
        for draft in drafts:
            for path in draft.outputs:
                owners = self.dirs if path.endswith("/") else self.files
                other = owners.setdefault(path, draft.name)
                if other != draft.name:
                    problems.add(
                        f"output {path} is declared by both task {other} and task {draft.name}",
                        at=("tasks", draft.table.name, "outputs"),
                        hint="each output has exactly one producer",
                    )
        if self.dirs:
            for path, owner in itertools.chain(self.files.items(), self.dirs.items()):
                outer = self.enclosing_dir(path)
                if outer is not None and outer[1] != owner:
                    problems.add(
                        f"output {path} of task {owner} lies inside directory output {outer[0]} of task {outer[1]}",
                        at=("tasks", owner.split(":")[0], "outputs"),
                        hint="a directory output belongs wholly to one task",
                    )
        self.sorted_files = sorted(self.files)
        self._sorted_dirs: Optional[List[str]] = None  # made on the first directory input

    def enclosing_dir(self, path: str) -> Optional[Tuple[str, str]]:
        """(directory output, owner) strictly containing `path`, if any."""
        if not self.dirs:
            return None
        i = path.find("/")
        while 0 <= i < len(path) - 1:
            owner = self.dirs.get(path[: i + 1])
            if owner is not None:
                return path[: i + 1], owner
            i = path.find("/", i + 1)
        return None

    def produces(self, path: str) -> bool:
        """Whether a task declares `path` (a directory ends in '/'), or a directory output holding it."""
        return path in self.files or path in self.dirs or self.enclosing_dir(path) is not None

    def within(self, directory: str) -> Iterator[Tuple[str, str]]:
        """(output, owner) for every declared output strictly inside `directory` ("src/")."""
        if self._sorted_dirs is None:
            self._sorted_dirs = sorted(self.dirs)
        for paths, owners in ((self.sorted_files, self.files), (self._sorted_dirs, self.dirs)):
            for i in range(bisect.bisect_right(paths, directory), len(paths)):
                path = paths[i]
                if not path.startswith(directory):
                    break
                yield path, owners[path]

    def glob(self, pattern: str) -> Iterator[Tuple[str, str]]:
        """(file output, owner) matching pattern; only the sorted range under its literal directory."""
        regex = glob_to_regex(pattern)
        base = literal_dir(pattern)
        for i in range(bisect.bisect_left(self.sorted_files, base), len(self.sorted_files)):
            path = self.sorted_files[i]
            if not path.startswith(base):
                break
            if regex.fullmatch(path):
                yield path, self.files[path]


class TaskNames(NamedTuple):
    groups: Mapping[str, Tuple[str, ...]]
    variants: FrozenSet[str]
    broken: FrozenSet[str]  # tables that could not be expanded: no cascade of "unknown task"

    def resolve(self, name: str) -> Optional[Tuple[str, ...]]:
        if name in self.groups:
            return self.groups[name]
        if name in self.variants:
            return (name,)
        if name in self.broken or name.split(":")[0] in self.broken:
            return ()
        return None

    def choices(self) -> List[str]:
        return list(self.groups) + sorted(self.variants - set(self.groups))


def finish(draft: Draft, *, producers: Producers, disk: Disk, names: TaskNames, ctx: Context) -> TaskSpec:
    table = draft.table
    groups = {
        g: _resolve_inputs(draft, paths, producers=producers, disk=disk, ctx=ctx) for g, paths in draft.inputs.items()
    }
    inputs = merge(groups.values())
    input_groups = {g: v for g, v in groups.items() if g}
    command = None
    if table.run is not None:
        files = Files(inputs, input_groups, draft.outputs, draft.output_groups)
        try:
            command = render_run(table.run, values=draft.values, lists=ctx.vars.lists, files=files)
        except TemplateError as exc:
            ctx.problems.add(f"task {draft.name}: {exc.message}", at=("tasks", table.name, "run"), hint=exc.hint)
    return TaskSpec(
        name=draft.name,
        group=table.name,
        command=command,
        inputs=inputs,
        input_groups=input_groups or NO_GROUPS,
        outputs=draft.outputs,
        output_groups=draft.output_groups or NO_GROUPS,
        after=_resolve_after(draft, names=names, problems=ctx.problems) if draft.after else (),
        matrix=draft.matrix,
        wait_for=draft.wait_for,
        **table.common,
    )


def _resolve_inputs(
    draft: Draft, paths: Sequence[str], *, producers: Producers, disk: Disk, ctx: Context
) -> Tuple[str, ...]:
    """Globs replaced by their sorted matches; every plain input checked to exist or be produced."""
    out: List[str] = []
    # The usual input, another task's file output, needs no check when no task declares a directory
    # output (none can hold it or be it) and it is not one of this task's own (declared twice).
    files = producers.files if not producers.dirs else {}
    name, own = draft.name, draft.outputs
    for path in paths:
        if files.get(path, name) != name and path not in own:
            out.append(path)  # not a glob: no declared output is one
        elif is_glob(path):
            matches = _glob_input(path, draft=draft, producers=producers, disk=disk)
            for shown in filter(None, map(not_utf8, matches)):
                ctx.problems.add(f"input glob {path} of task {draft.name} matches {shown}, whose name is not UTF-8",
                                 at=("tasks", draft.table.name, "inputs"), hint=NOT_UTF8_HINT)
            if not matches:
                ctx.problems.add(
                    f"input glob {path} of task {draft.name} matches no file",
                    at=("tasks", draft.table.name, "inputs"),
                    hint="globs match existing files and the outputs of other tasks",
                )
            out.extend(matches)
        else:
            problem = _plain_input_problem(path, draft=draft, producers=producers, disk=disk)
            if problem is None:
                out.append(path)
            else:
                message, hint = problem
                ctx.problems.add(
                    f"input {path} of task {draft.name} {message}", at=("tasks", draft.table.name, "inputs"), hint=hint
                )
    return unique(out)


def _plain_input_problem(path: str, *, draft: Draft, producers: Producers, disk: Disk) -> Optional[Tuple[str, str]]:
    """(what is wrong, hint) for an input that is neither produced nor on disk as written."""
    own = _own_output_problem(path, draft.outputs)
    if own is not None:
        return own
    as_dir = path.rstrip("/") + "/"
    if not path.endswith("/") and as_dir in producers.dirs:
        return (
            f"is the directory output of task {producers.dirs[as_dir]}",
            f"write {as_dir} to depend on its whole tree",
        )
    if producers.produces(path) or path in draft.wait_for:
        return None
    if path.endswith("/") and next(producers.within(path), None) is not None:
        return None  # made by the tasks writing into it, which it waits for (graph.py)
    kind = disk.kind(path)
    if kind is None:
        return "does not exist and no task produces it", (
            f"paths are relative to the project root {disk.root}; "
            "check the spelling, or declare the task that writes it"
        )
    if kind == "dir" and not path.endswith("/"):
        return "is a directory", f"write {as_dir} to depend on its whole tree"
    if kind == "file" and path.endswith("/"):
        return "is a file, not a directory", f"write {path.rstrip('/')} without the trailing '/'"
    return None


def _own_output_problem(path: str, outputs: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(what is wrong, hint) when an input is, holds or lies inside one of the task's own outputs.

    Such a task never converges: each run changes its own input, so the next
    run finds it stale again (and a command like `>>` appends once more).
    """
    stale_forever = "a task that reads its own output is stale again after every run"
    for out in outputs:
        if path.rstrip("/") == out.rstrip("/"):
            return "is also its own output", f"{stale_forever}; write the result to a new path, e.g. {_renamed(out)}"
        if out.endswith("/") and path.startswith(out):
            return f"lies inside its own directory output {out}", (
                f"{stale_forever}; keep {path} outside {out}, or write the output to another directory")
        if path.endswith("/") and out.startswith(path):
            return f"holds its own output {out}", (
                f"{stale_forever}; write {out} outside {path}, or read it as the glob {path}** "
                "(a glob leaves the task's own outputs out)")
    return None


def _renamed(path: str) -> str:
    """`data.csv` -> `data.out.csv`, a plausible new name for an output that overwrote its input."""
    head, dot, ext = path.rstrip("/").rpartition(".")
    if not dot or "/" in ext:
        return path.rstrip("/") + ".out" + ("/" if path.endswith("/") else "")
    return f"{head}.out.{ext}"


def _glob_input(pattern: str, *, draft: Draft, producers: Producers, disk: Disk) -> List[str]:
    """Sorted matches among existing files and other tasks' outputs, never the task's own outputs."""
    own_files = set(draft.outputs)
    own_dirs = tuple(p for p in draft.outputs if p.endswith("/"))
    found = {p for p in disk.glob(pattern) if p not in own_files and not p.startswith(own_dirs)}
    found.update(p for p, owner in producers.glob(pattern) if owner != draft.name)
    return sorted(found)


def _resolve_after(draft: Draft, *, names: TaskNames, problems: Problems) -> Tuple[str, ...]:
    at = ("tasks", draft.table.name, "after")
    out: List[str] = []
    for name in draft.after:
        resolved = names.resolve(name)
        if resolved is None:
            problems.add(
                f"task {draft.table.name}: `after` names unknown task `{name}`",
                at=at,
                hint=did_you_mean(name, names.choices()) or "run `flowmake list` to see the tasks",
            )
        elif draft.name in resolved:
            problems.add(f"task {draft.name} lists itself in `after`", at=at, hint=f"remove `{name}` from `after`")
        else:
            out.extend(resolved)
    return unique(out)


def resolve_default(
    flow: Flow, *, names: TaskNames, producers: Producers, problems: Problems
) -> Optional[Tuple[str, ...]]:
    """`flow.default` as written, after checking each names a task, a variant or an output."""
    if flow.default is None:
        return None
    for target in flow.default:
        if names.resolve(target) is None and not producers.produces(target):
            problems.add(
                f"[flow]: default target `{target}` is not a task, a variant or a declared output",
                at=("flow", "default"),
                hint=did_you_mean(target, names.choices()),
            )
    return flow.default
