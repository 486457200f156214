"""Pass 1 of loading: each [tasks.NAME] table checked, then expanded into drafts.

A table is read once, whatever its matrix: every key is checked and its
templates parsed (`Table`). It then becomes one `Draft` per matrix
combination, named `task:value:...`, whose outputs are final but whose
inputs are not yet globbed or checked: both depend on the outputs of every
task, including those declared further down, so pass 2 (`producers.py`)
finishes them. A table too broken to expand (a bad name, shape or matrix)
yields no drafts; the loader remembers its name so that `after` references
to it do not cascade into more errors.
"""

from __future__ import annotations

import functools
import itertools
import re
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

from ..errors import FlowfileError
from .durations import parse_duration
from .matrix import read_matrix
from .paths import Disk, PathError, clean_path, is_glob, merge, unique
from .problems import Problems, check_keys, describe, is_str_list, toml_type
from .resources import read_resources
from .sections import Vars, read_env, read_shell
from .templates import (
    IDENT_RE,
    Entry,
    Groups,
    Names,
    RunPiece,
    TemplateError,
    compile_entry,
    compile_run,
    expand_entry,
)

TASK_KEYS = (
    "run",
    "inputs",
    "outputs",
    "after",
    "help",
    "env",
    "env_inputs",
    "always",
    "matrix",
    "wait_for",
    "wait_timeout",
    "wait_poll",
    "retries",
    "retry_delay",
    "timeout",
    "secrets",
    "shell",
    "cache",
    "resources",
)

_TASK_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

_TASK_NAME_HINT = "task names use letters, digits, '_', '-' and '.', and start with a letter or '_'"


class Context:
    """What every task table is read against."""

    def __init__(self, *, root: Path, problems: Problems, vars: Vars, flow_env: Mapping[str, str],
                 flow_shell: Tuple[str, ...], disk: Disk) -> None:
        self.root = root
        self.problems = problems
        self.disk = disk  # glob-driven matrix values are read from it, so the load cache re-checks them
        self.file_values: List[Tuple[str, str, int]] = list(vars.from_files)  # (what, pattern, values), for `check`
        self.vars = vars
        self.flow_env = flow_env
        self.flow_shell = flow_shell
        self.flow_env_items = tuple(sorted(self.flow_env.items()))
        self.var_lists = frozenset(self.vars.lists)
        self._names: Dict[FrozenSet[str], Names] = {}

    def names(self, matrix_keys: FrozenSet[str]) -> Names:
        """Names for a table with these matrix keys (shared between tables alike)."""
        hit = self._names.get(matrix_keys)
        if hit is None:
            hit = Names(frozenset(self.vars.scalars) | matrix_keys, self.var_lists - matrix_keys)
            self._names[matrix_keys] = hit
        return hit


_EntryGroups = Dict[str, List[Entry]]  # group ("" for a plain list) -> its entries


class Table(NamedTuple):
    """One [tasks.NAME] table, checked, with templates parsed once for all its variants."""

    name: str
    matrix: List[Tuple[str, Tuple[str, ...]]]
    inputs: _EntryGroups
    outputs: _EntryGroups
    wait_for: List[Entry]
    after: List[Entry]
    run: Optional[Tuple[RunPiece, ...]]
    common: Dict[str, Any]  # TaskSpec fields shared by every variant


class Draft:
    """A task variant between the passes: outputs final, inputs not yet globbed."""

    __slots__ = ("name", "table", "matrix", "values", "outputs", "output_groups", "inputs", "wait_for", "after")

    def __init__(self, *, name: str, table: Table, matrix: Tuple[Tuple[str, str], ...],
                 values: Mapping[str, str]) -> None:
        self.name = name
        self.table = table
        self.matrix = matrix
        self.values = values
        self.outputs: Tuple[str, ...] = ()
        self.output_groups: Dict[str, Tuple[str, ...]] = {}
        self.inputs: Dict[str, List[str]] = {}
        self.wait_for: Tuple[str, ...] = ()
        self.after: List[str] = []


class _TaskReader:
    """Reads one task table's keys, reporting problems against the task and key."""

    def __init__(self, name: str, table: Mapping[str, Any], *, ctx: Context) -> None:
        self.name = name
        self.table = table
        self.ctx = ctx
        self.problems = ctx.problems

    def at(self, key: str) -> Tuple[str, ...]:
        return ("tasks", self.name, key)

    def error(self, key: str, message: str, *, hint: Optional[str] = None) -> None:
        self.problems.add(f"task {self.name}: {message}", at=self.at(key), hint=hint)

    def typed(
        self, key: str, ok: Callable[[Any], bool], expected: str, *, default: Any = None, hint: Optional[str] = None
    ) -> Any:
        value = self.table.get(key)
        if value is None:
            return default
        if not ok(value):
            self.error(key, f"key `{key}` must be {expected}, got {describe(value)}", hint=hint)
            return default
        return value

    def names_list(self, key: str) -> Tuple[str, ...]:
        values = self.typed(key, is_str_list, "a list of variable names", default=[], hint=f'write {key} = ["NAME"]')
        for value in values:
            if not IDENT_RE.fullmatch(value):
                self.error(key, f"`{key}` entry `{value}` is not a valid environment variable name")
        return tuple(dict.fromkeys(v for v in values if IDENT_RE.fullmatch(v)))

    def duration(self, key: str, *, positive: bool) -> Optional[float]:
        line = self.problems.line(self.at(key))
        try:
            seconds = parse_duration(
                self.table[key], file=self.problems.file(self.at(key)), line=line, what=f"task {self.name}: `{key}`"
            )
        except FlowfileError as exc:
            self.problems.add_error(exc)
            return None
        if positive and seconds <= 0:
            self.error(key, f"`{key}` must be more than zero")
            return None
        return seconds


def read_table(name: str, raw: object, *, ctx: Context) -> Optional[Table]:
    """Check one task table; None when it cannot be expanded (bad name, shape or matrix)."""
    problems = ctx.problems
    if not _TASK_NAME_RE.fullmatch(name):
        problems.add(f"task name `{name}` is not valid", at=("tasks", name), hint=_TASK_NAME_HINT)
        return None
    if not isinstance(raw, dict):
        problems.add(
            f"task {name} must be a table, got {toml_type(raw)}",
            at=("tasks", name),
            hint=f"write [tasks.{name}] and its keys below it",
        )
        return None
    check_keys(raw, TASK_KEYS, problems=problems, at=("tasks", name), label=f"task {name}: ")
    reader = _TaskReader(name, raw, ctx=ctx)
    matrix = read_matrix(reader)
    # Even when the matrix is broken its keys are known names, so the rest of
    # the table is still checked without "unknown placeholder" noise.
    raw_matrix = raw.get("matrix")
    names = ctx.names(frozenset(raw_matrix) if isinstance(raw_matrix, dict) else frozenset())
    inputs, input_groups = _read_entries(reader, "inputs")
    outputs, output_groups = _read_entries(reader, "outputs")
    wait_for = reader.typed("wait_for", is_str_list, "a list of paths", default=[], hint='write wait_for = ["path"]')
    after = reader.typed("after", is_str_list, "a list of task names", default=[], hint='write after = ["task"]')
    table = Table(
        name=name,
        matrix=matrix or [],
        inputs={g: _parse_entries(reader, "inputs", e, names=names) for g, e in inputs.items()},
        outputs={g: _parse_entries(reader, "outputs", e, names=names) for g, e in outputs.items()},
        wait_for=_parse_entries(reader, "wait_for", wait_for, names=names),
        after=_parse_entries(reader, "after", after, names=names),
        run=_read_run(
            reader,
            names=names,
            groups=Groups(input_groups, output_groups),
            grouping=bool(after),
            producing=any(outputs.values()),
        ),
        common=_read_common(reader),
    )
    return table if matrix is not None else None


def _read_entries(reader: _TaskReader, key: str) -> Tuple[Dict[str, List[str]], Optional[Tuple[str, ...]]]:
    """inputs/outputs as group -> entries ("" for a plain list), and the group names of a table."""
    raw = reader.table.get(key)
    if raw is None:
        return {}, None
    if is_str_list(raw):
        return {"": raw}, None
    if isinstance(raw, dict) and all(is_str_list(v) for v in raw.values()):
        groups: Dict[str, List[str]] = {}
        for group, entries in raw.items():
            if IDENT_RE.fullmatch(group):
                groups[group] = entries
            else:
                reader.error(key, f"`{key}` group name `{group}` must be letters, digits and '_'")
        return groups, tuple(groups)
    got = describe(raw)
    if isinstance(raw, dict):
        got = next(f"a table whose `{g}` is {describe(v)}" for g, v in raw.items() if not is_str_list(v))
    reader.error(
        key,
        f"key `{key}` must be a list of strings or a table of lists, got {got}",
        hint=f'write {key} = ["path", ...]',
    )
    return {}, None


def _parse_entries(reader: _TaskReader, key: str, texts: Sequence[str], *, names: Names) -> List[Entry]:
    """Each entry's template and list vars; an entry with a bad placeholder is reported and dropped."""
    joined = "".join(texts)
    if "{" not in joined and "}" not in joined:  # the usual list of plain paths: compile_entry's answer, in bulk
        return [(text, (text,), ()) for text in texts]
    entries: List[Entry] = []
    for text in texts:
        try:
            entries.append(compile_entry(text, names, key))
        except TemplateError as exc:
            reader.error(key, f'`{key}` entry "{text}": {exc.message}', hint=exc.hint)
    return entries


def _read_run(
    reader: _TaskReader, *, names: Names, groups: Groups, grouping: bool, producing: bool
) -> Optional[Tuple[RunPiece, ...]]:
    """`run` ready to render: literal runs of text merged, each placeholder word with its list vars."""
    run = reader.typed("run", lambda v: isinstance(v, str), "a string")
    if run is None:
        if "run" not in reader.table:
            if producing:
                reader.error("run", "declares outputs but has no `run` to produce them")
            elif not grouping:
                reader.error(
                    "run", "has no `run`", hint='add run = "..." (or after = [...] for a task that only groups others)'
                )
        return None
    try:
        return compile_run(run, names, groups)
    except TemplateError as exc:
        reader.error("run", exc.message, hint=exc.hint)
        return None


def _read_common(reader: _TaskReader) -> Dict[str, Any]:
    """The TaskSpec fields that do not depend on the matrix variant (absent keys keep the model's defaults)."""
    ctx = reader.ctx
    common: Dict[str, Any] = {
        "shell": ctx.flow_shell,
        "env": ctx.flow_env_items,
        "line": reader.problems.task_line(reader.name),
    }
    for key in reader.table:
        read = _COMMON_READERS.get(key)
        if read is not None:
            value = read(reader)
            if value is not None:
                common[key] = value
    return common


def _read_task_env(reader: _TaskReader) -> Tuple[Tuple[str, str], ...]:
    env = dict(reader.ctx.flow_env)
    env.update(
        read_env(reader.table["env"], problems=reader.problems, at=reader.at("env"), label=f"task {reader.name}: ")
    )
    return tuple(sorted(env.items()))


def _read_retries(reader: _TaskReader) -> Optional[int]:
    retries: Optional[int] = reader.typed(
        "retries", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"
    )
    if retries is not None and retries < 0:
        reader.error(
            "retries", f"`retries` must be 0 or more, got {retries}", hint="retries = 2 re-runs a failed attempt twice"
        )
        return None
    return retries


_COMMON_READERS: Dict[str, Callable[[_TaskReader], Any]] = {
    "help": lambda r: r.typed("help", lambda v: isinstance(v, str), "a string"),
    "env": _read_task_env,
    "env_inputs": lambda r: r.names_list("env_inputs"),
    "secrets": lambda r: r.names_list("secrets"),
    "always": lambda r: r.typed("always", lambda v: isinstance(v, bool), "true or false"),
    "cache": lambda r: r.typed("cache", lambda v: isinstance(v, bool), "true or false"),
    "retries": _read_retries,
    "retry_delay": lambda r: r.duration("retry_delay", positive=False),
    "timeout": lambda r: r.duration("timeout", positive=True),
    "wait_timeout": lambda r: r.duration("wait_timeout", positive=True),
    "wait_poll": lambda r: r.duration("wait_poll", positive=True),
    "shell": lambda r: read_shell(r.table["shell"], problems=r.problems, at=r.at("shell"), label=f"task {r.name}: "),
    "resources": lambda r: read_resources(r.table["resources"], problems=r.problems, task=r.name),
}


def expand_table(table: Table, *, ctx: Context) -> List[Draft]:
    """One draft per matrix combination, in product order, with outputs expanded."""
    keys = [k for k, _ in table.matrix]
    drafts = []
    for combo in itertools.product(*(values for _, values in table.matrix)):
        if keys:
            values: Mapping[str, str] = {**ctx.vars.scalars, **dict(zip(keys, combo))}
            name = ":".join((table.name,) + combo)
        else:
            values, name = ctx.vars.scalars, table.name
        draft = Draft(name=name, table=table, matrix=tuple(zip(keys, combo)), values=values)
        output_groups = {
            g: unique(_expand_paths(draft, "outputs", entries, ctx=ctx)) for g, entries in table.outputs.items()
        }
        draft.outputs = merge(output_groups.values())
        draft.output_groups = {g: v for g, v in output_groups.items() if g}
        draft.inputs = {g: _expand_paths(draft, "inputs", entries, ctx=ctx) for g, entries in table.inputs.items()}
        if table.wait_for:
            draft.wait_for = tuple(_expand_paths(draft, "wait_for", table.wait_for, ctx=ctx))
        for entry in table.after:
            draft.after.extend(expand_entry(entry, values=values, lists=ctx.vars.lists))
        drafts.append(draft)
    return drafts


def _expand_paths(draft: Draft, key: str, entries: Sequence[Entry], *, ctx: Context) -> List[str]:
    """Placeholders and list vars expanded, each path checked and normalized."""
    out: List[str] = []
    lists = ctx.vars.lists
    for entry in entries:
        template = entry[1]
        if not entry[2] and len(template) == 1 and template[0].__class__ is str:
            paths: Sequence[str] = template  # a plain path, nothing to expand
        else:
            paths = expand_entry(entry, values=draft.values, lists=lists)
        for path in paths:
            clean = _usual_path(path)
            if clean is not None:
                out.append(clean)
                continue
            try:
                clean = clean_path(path)
            except PathError as exc:
                _path_problem(
                    draft, key, path, f"{exc}", hint=f"paths are relative to the project root {ctx.root}", ctx=ctx
                )
                continue
            if key != "inputs" and is_glob(clean):
                _path_problem(
                    draft,
                    key,
                    path,
                    "is a glob; only inputs may be globs",
                    hint="list the paths, or use a directory output ending in '/'",
                    ctx=ctx,
                )
                continue
            out.append(clean)
    return out


@functools.lru_cache(maxsize=1 << 18)
def _usual_path(path: str) -> Optional[str]:
    """`path` normalized when it is fine anywhere (valid, not a glob); else None, for the checks that say why."""
    try:
        clean = clean_path(path)
    except PathError:
        return None
    return None if is_glob(clean) else clean


def _path_problem(draft: Draft, key: str, path: str, what: str, *, hint: str, ctx: Context) -> None:
    kind = {"inputs": "input", "outputs": "output"}.get(key, key)
    ctx.problems.add(f"{kind} {path} of task {draft.table.name} {what}", at=("tasks", draft.table.name, key), hint=hint)
