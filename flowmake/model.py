"""Plain data: the validated Flowfile, rebuild reasons and recorded traces.

Everything here is frozen and does no I/O, so that every other module can
share these values freely (between threads too) and tests can build them by
hand. The records here, like the events, are NamedTuples rather than frozen
dataclasses: every no-op imports this module, and dataclasses would cost it
~25 ms (benchmarks/README.md, "Typing on the no-op path"); a tuple is also
four times as fast to build. The loader (`flowfile.py`) is the only producer of `Flowfile` and
`TaskSpec`; the state store is the only producer of `Trace`.
"""

from __future__ import annotations

import enum

from .records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Mapping, Optional, Tuple

DEFAULT_SHELL: Tuple[str, ...] = ("sh", "-c")
# How a run shows what its tasks print (`--output`, `[flow] output`; docs/cli.md).
OUTPUT_MODES: Tuple[str, ...] = ("interleaved", "prefixed", "group", "none")
# Where tasks can run ([flow] executor, --executor): executors/registry.py has one of each.
EXECUTOR_NAMES: Tuple[str, ...] = ("local", "dask")
# The groups of a task whose inputs or outputs are a plain list: one shared,
# never mutated, so that the load cache pickles (and unpickles) it once, not
# twice per task (~4 ms of a 10,000-task run).
NO_GROUPS: Mapping[str, Tuple[str, ...]] = {}


class TaskSpec(NamedTuple):
    """One runnable task after expansion (a matrix variant is its own spec).

    Paths are project-relative POSIX strings; a directory output ends in '/'.
    `inputs` and `outputs` keep declaration order (globs expanded and sorted
    in place); the groups map a group name to its part of them.
    """

    name: str  # "extract" or, for a matrix variant, "extract:S01:EU"
    group: str  # the task's table name, "extract"; equal to name without matrix
    command: Optional[str]  # `run` with every placeholder expanded; None for a pure group
    shell: Tuple[str, ...] = DEFAULT_SHELL
    inputs: Tuple[str, ...] = ()
    input_groups: Mapping[str, Tuple[str, ...]] = NO_GROUPS
    outputs: Tuple[str, ...] = ()
    output_groups: Mapping[str, Tuple[str, ...]] = NO_GROUPS
    after: Tuple[str, ...] = ()  # task names (variants already expanded)
    help: str = ""
    env: Tuple[Tuple[str, str], ...] = ()  # flow [env] merged with the task's, sorted
    env_inputs: Tuple[str, ...] = ()
    always: bool = False
    matrix: Tuple[Tuple[str, str], ...] = ()  # (key, value) of this variant
    wait_for: Tuple[str, ...] = ()
    wait_timeout: float = 3600.0  # seconds
    wait_poll: float = 5.0
    retries: int = 0
    retry_delay: float = 0.0
    timeout: Optional[float] = None
    secrets: Tuple[str, ...] = ()
    line: Optional[int] = None  # line of the [tasks.NAME] header in the Flowfile
    cache: bool = True  # `cache = false`: never restored from nor stored in the shared cache (docs/cache.md)
    # `resources = { gpu = 1, memory = "8GB" }`: what a worker must have (sizes in bytes), sorted; a cluster routes by it.
    resources: Tuple[Tuple[str, float], ...] = ()

    @property
    def dir_outputs(self) -> Tuple[str, ...]:
        return tuple(o for o in self.outputs if o.endswith("/"))


class Hooks(NamedTuple):
    on_failure: Optional[str] = None
    on_success: Optional[str] = None
    webhook: Optional[str] = None


OVERLAP_POLICIES: Tuple[str, ...] = ("skip", "queue")


class ScheduleSpec(NamedTuple):
    """One `[schedules.NAME]` table, checked: when its targets run unattended (docs/schedules.md)."""

    name: str
    cron: str  # five fields, shorthands (@daily) expanded
    targets: Tuple[str, ...] = ()  # as written; () means the [flow] default targets
    timezone: str = "UTC"  # an IANA name
    overlap: str = "skip"  # one of OVERLAP_POLICIES: a slot due while a run is in progress
    catch_up: bool = False  # after downtime, run the latest missed slot once
    line: Optional[int] = None  # of the table's header


class Flowfile(NamedTuple):
    path: Path  # absolute path of Flowfile.toml
    root: Path  # absolute project root (the directory holding it)
    name: str
    default: Optional[Tuple[str, ...]]  # None: every task
    jobs: Optional[int]
    tasks: Mapping[str, TaskSpec]  # in declaration order, variants in matrix order
    hooks: Hooks = Hooks()
    source_hash: str = ""  # content hash of the Flowfile's bytes
    # Whether any input came from a glob: then the file set itself can change
    # without any known file changing, which the no-op snapshot cannot see.
    uses_globs: bool = True
    shell: Tuple[str, ...] = DEFAULT_SHELL  # [flow] shell: hooks run with it
    # Matrix keys and list vars whose values came from files: (what, pattern, how many values), for `check`.
    file_values: Tuple[Tuple[str, str, int], ...] = ()
    includes: Tuple[str, ...] = ()  # project-relative paths of the files [flow] include added, in load order
    task_files: Mapping[str, str] = NO_GROUPS  # task table -> the included file declaring it (if not this one)
    output: Optional[str] = None  # [flow] output, one of OUTPUT_MODES; None: the progress mode's default
    junit_xml: Optional[str] = None  # [flow] junit_xml: where each run writes its JUnit XML (root-relative)
    schedules: Mapping[str, ScheduleSpec] = NO_GROUPS  # [schedules.NAME] in declaration order
    cache: Optional[str] = None  # [flow] cache: the shared output cache's URL (docs/cache.md)
    executor: Optional[str] = None  # [flow] executor: where tasks run ("local", "dask"); None: local
    scheduler: Optional[str] = None  # [flow] scheduler: the Dask scheduler's address
    # The hash of the parsed documents (this file's and its includes'): the same after an edit of
    # comments or layout, which loads the same tasks (load/document.py).
    document_hash: str = ""

    @property
    def has_secrets(self) -> bool:
        return any(spec.secrets for spec in self.tasks.values())

    def source_of(self, group: str) -> Path:
        """The file declaring the task table `group`: this one, or an included file."""
        rel = self.task_files.get(group)
        return self.path if rel is None else self.root / rel

    def groups(self) -> Mapping[str, Tuple[str, ...]]:
        """Task table name -> the names of its variants (itself when no matrix)."""
        known = getattr(self.tasks, "groups", None)  # a cached load's (load/loadcache.py): no spec unpickled
        if known is not None:
            return known()
        out: dict = {}
        for spec in self.tasks.values():
            out.setdefault(spec.group, []).append(spec.name)
        return {k: tuple(v) for k, v in out.items()}


class ReasonKind(str, enum.Enum):
    """Why a task runs. The value is the stable text used in JSON and logs."""

    FORCED = "forced"
    ALWAYS = "always"
    NO_FILES = "no inputs or outputs"
    NEVER_RUN = "never run"
    LAST_ATTEMPT_FAILED = "last attempt failed"  # failed, interrupted or killed since its last success
    COMMAND_CHANGED = "command changed"
    ENV_CHANGED = "env changed"
    INPUT_CHANGED = "input changed"
    INPUTS_ADDED_REMOVED = "inputs added/removed"
    OUTPUT_MISSING = "output missing"
    OUTPUT_MODIFIED = "output modified"
    # Only in previews (dry run, status): an upstream task will run first, so
    # whether this one runs is decided when its inputs exist (early cutoff).
    UPSTREAM_STALE = "upstream stale"


class Reason(NamedTuple):
    kind: ReasonKind
    path: Optional[str] = None  # a file path, an env var name or an upstream task
    old: Optional[str] = None
    new: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.path}" if self.path else self.kind.value

    def to_json(self) -> dict:
        out: dict = {"kind": self.kind.value}
        if self.path is not None:
            out["path"] = self.path
        if self.old is not None:
            out["old"] = self.old
        if self.new is not None:
            out["new"] = self.new
        return out


class Observation(NamedTuple):
    """What is true now for one task: the parts of its fingerprint and its outputs.

    `inputs` maps each input path to its content hash (None when missing);
    `outputs` maps each declared output to its hash (None when missing);
    `env` maps each env name (flow/task env and env_inputs) to a hash of its value.
    """

    command_hash: str
    env: Mapping[str, str]
    inputs: Mapping[str, Optional[str]]
    outputs: Mapping[str, Optional[str]]


# The fingerprint of a trace whose task was started since its last success:
# it never matches, yet the trace keeps its parts so reasons stay specific.
INVALIDATED = ""


class Trace(NamedTuple):
    """What the last successful run of a task recorded (the verifying trace)."""

    task: str
    fingerprint: str
    command_hash: str
    env: Mapping[str, str]
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    run_id: str


class RunRecord(NamedTuple):
    id: str  # sortable: UTC time to the millisecond, then random
    started: float
    user: str
    host: str
    version: str
    flowfile_hash: str
    argv: Tuple[str, ...]
    targets: Tuple[str, ...]
    finished: Optional[float] = None
    result: Optional[str] = None  # RunResult value; None while running or after a crash
    # A finished run that did not succeed: the tasks it did not start, and why (None: not recorded).
    skipped: Optional[Mapping[str, str]] = None
    # What started the run when no one typed it: {"schedule": NAME, "slot": ISO time, ...} (docs/schedules.md).
    trigger: Optional[Mapping[str, object]] = None


class AttemptRecord(NamedTuple):
    run_id: str
    task: str
    attempt: int
    status: str  # "ok", "failed", "interrupted"
    reasons: Tuple[Reason, ...]
    command: Optional[str]  # secrets masked
    started: float
    finished: float
    exit_code: Optional[int]
    inputs: Mapping[str, Optional[str]]
    outputs: Mapping[str, Optional[str]]
    log: Optional[str]  # project-relative
    log_hash: Optional[str]
    message: Optional[str] = None  # e.g. "did not produce build/x.csv"
    # A wait_for task's first attempt: (from, until) it waited for its files (wall clock).
    waited: Optional[Tuple[float, float]] = None
    worker: Optional[str] = None  # where it ran: the host, or a cluster worker's address; None: not started
    # A "restored" attempt: where its outputs came from (the cache, the entry, the run and host that produced
    # them: engine/sharedcache.SharedCache.provenance); its `outputs` are the hashes restored.
    restored: Optional[Mapping[str, object]] = None
