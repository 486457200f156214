"""Property: an incremental build equals a clean build, and runs only what changed.

A hypothesis state machine (issue #22 item 7a) keeps a tiny project in a
temporary directory (3 to 6 tasks over four source files) and applies random
edit sequences to it: sources edited in place, deleted, recreated, renamed
and touched, with old, restored, fresh or future mtimes and the same or
another size; outputs edited, deleted and touched by hand; the Flowfile's
commands, `[env]` and task `env`, inputs, tasks and matrix values changed
(the Flowfile too may be rewritten with its mtime put back); `clean`; and
runs of the real `flowmake` CLI with random targets and `-j`. After each run
it checks that:

- every output of the selected tasks equals what a clean build of the same
  sources gives (a copy built from scratch in another directory, same
  targets and `-j`), and the same tasks were selected;
- no task ran whose command, environment, input contents and outputs were
  what they were at its last success, and every task reported fresh has
  exactly those (the model keeps each task's last successful fingerprint);
- `flowmake status --json`, asked just before the run, agrees with it: a
  `stale` task runs, a `fresh` one does not (`blocked` may go either way);
- the command each started task reports is the one the model expects.

Every CLI call is a subprocess of the installed flowmake, as in
tests/test_cli_*.py. The budget comes from the hypothesis profile chosen in
conftest.py ("ci" by default, "long" for a campaign: see README's
Development section).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from conftest import FLOWMAKE, RUN_TIMEOUT, Result
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

SOURCES = ("a", "b", "c", "d")  # src/NAME.txt; d starts out missing
TASK_NAMES = ("t1", "t2", "t3", "t4", "t5", "t6", "t7")
MATRIX_VALUES = ("x", "y", "z")
STYLES = ("cat", "cp", "echo")  # cat and cp need no shell (shellfree.py); echo goes through sh
TAGS = tuple(f"k{i}" for i in range(6))  # all one length: changing a tag keeps the Flowfile's size
ENV_VALUES = (None, "e0", "e1", "e2")
# "restore" puts the mtime back after a rewrite (cp -p, rsync -t, tar x): the edit the stat cache can miss.
MTIME_MODES = ("natural", "restore", "restore", "old", "future")
MAX_TASKS = 6
TALLY: Counter = Counter()  # what the examples did, printed by the test (`pytest -s`)
# Clean builds by (every source file, targets): examples often build the same tree again.
CLEAN_BUILDS: Dict[tuple, Tuple[int, Dict[str, Optional[bytes]], List[str]]] = {}

# The tiny contents sources take; a short alphabet makes same-size rewrites and undone edits likely.
contents = st.text(alphabet="ab\n", max_size=6)


@dataclass(frozen=True)
class TaskModel:
    """One task table. Its inputs are refs: "src:NAME", "glob" (src/*.txt) or "task:NAME"."""

    name: str
    rank: int  # a task reads only tasks of lower rank, so the graph has no cycle
    refs: Tuple[str, ...]
    style: str
    tag: str
    env: Optional[str]  # the task's `env = { V = ... }`, or no env table
    matrix: Tuple[str, ...] = ()  # `matrix = { v = [...] }`; empty: a plain task

    def variants(self) -> List[Tuple[str, Optional[str]]]:
        """(task name as flowmake reports it, matrix value) for each variant."""
        if not self.matrix:
            return [(self.name, None)]
        return [(f"{self.name}:{v}", v) for v in self.matrix]

    def output(self, value: Optional[str]) -> str:
        return f"out/{self.name}.txt" if value is None else f"out/{self.name}-{value}.txt"

    def outputs(self) -> List[str]:
        return [self.output(v) for _, v in self.variants()]


@dataclass(frozen=True)
class Fingerprint:
    command: str
    env: Tuple[Tuple[str, str], ...]
    inputs: Tuple[Tuple[str, Optional[bytes]], ...]


@dataclass
class Success:
    """What the model knows of a task's last success: its fingerprint and its output's bytes."""

    fingerprint: Fingerprint
    output: Optional[bytes]


@dataclass
class Model:
    tasks: Dict[str, TaskModel] = field(default_factory=dict)
    global_env: Optional[str] = None  # `[env] G = ...`, or no [env]

    def ordered(self) -> List[TaskModel]:
        return sorted(self.tasks.values(), key=lambda t: t.rank)

    def input_paths(self, task: TaskModel, src_files: Sequence[str]) -> List[str]:
        """The task's inputs as flowmake expands them: declaration order, globs sorted, each path once."""
        paths: List[str] = []
        for ref in task.refs:
            kind, _, arg = ref.partition(":")
            if kind == "src":
                found = [f"src/{arg}.txt"]
            elif kind == "glob":
                found = sorted(f"src/{n}" for n in src_files)
            else:
                upstream = self.tasks.get(arg)
                found = upstream.outputs() if upstream is not None else []
            paths.extend(p for p in found if p not in paths)
        return paths

    def template(self, task: TaskModel, has_inputs: bool) -> str:
        style = task.style if has_inputs else "echo"
        if style == "cat":
            return "cat {inputs} > {outputs[0]}"
        if style == "cp":
            return "cp {inputs[0]} {outputs[0]}"
        words = f'echo {task.tag}{" {v}" if task.matrix else ""} "$G" "$V"'
        return f"cat {{inputs}} > {{outputs[0]}} && {words} >> {{outputs[0]}}" if has_inputs \
            else f"{words} > {{outputs[0]}}"

    def command(self, task: TaskModel, value: Optional[str], inputs: Sequence[str]) -> str:
        """The command as flowmake expands it (no path here needs shell quoting)."""
        text = self.template(task, bool(inputs))
        text = text.replace("{inputs}", " ".join(inputs)).replace("{outputs[0]}", task.output(value))
        if inputs:
            text = text.replace("{inputs[0]}", inputs[0])
        return text.replace("{v}", value or "")

    def env_of(self, task: TaskModel) -> Tuple[Tuple[str, str], ...]:
        env = []
        if self.global_env is not None:
            env.append(("G", self.global_env))
        if task.env is not None:
            env.append(("V", task.env))
        return tuple(env)

    def flowfile_text(self) -> str:
        lines = ['[flow]', 'name = "prop"', '']
        if self.global_env is not None:
            lines += ['[env]', f'G = "{self.global_env}"', '']
        for task in self.ordered():
            inputs = self.input_refs(task)
            lines.append(f"[tasks.{task.name}]")
            if inputs:
                lines.append("inputs = [" + ", ".join(json.dumps(p) for p in inputs) + "]")
            if task.matrix:
                lines.append("matrix = { v = [" + ", ".join(json.dumps(v) for v in task.matrix) + "] }")
                lines.append(f'outputs = ["out/{task.name}-{{v}}.txt"]')
            else:
                lines.append(f'outputs = ["out/{task.name}.txt"]')
            if task.env is not None:
                lines.append(f'env = {{ V = "{task.env}" }}')
            lines.append("run = " + json.dumps(self.template(task, bool(inputs))))
            lines.append("")
        return "\n".join(lines)

    def input_refs(self, task: TaskModel) -> List[str]:
        """The `inputs` entries as written in the Flowfile."""
        written: List[str] = []
        for ref in task.refs:
            kind, _, arg = ref.partition(":")
            if kind == "src":
                written.append(f"src/{arg}.txt")
            elif kind == "glob":
                written.append("src/*.txt")
            elif arg in self.tasks:
                written.extend(self.tasks[arg].outputs())
        return list(dict.fromkeys(written))

    def valid(self, src_files: Sequence[str]) -> bool:
        """Whether flowmake can load the Flowfile: every named source exists, every glob matches."""
        for task in self.tasks.values():
            for ref in task.refs:
                kind, _, arg = ref.partition(":")
                if kind == "src" and f"{arg}.txt" not in src_files:
                    return False
                if kind == "glob" and not src_files:
                    return False
        return True


# -- the project on disk -----------------------------------------------------------


def run_cli(root: Path, *args: str) -> Result:
    proc = subprocess.run(FLOWMAKE + list(args), cwd=str(root), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT)
    return Result(list(args), proc.returncode, proc.stdout, proc.stderr)


def read_or_none(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def set_mtime(path: Path, mode: str, *, before: Optional[int]) -> None:
    """Give `path` the mtime `mode` asks for; `before` is its mtime (ns) before the edit."""
    if mode == "natural":
        return
    if mode == "restore":
        if before is None:
            return
        ns = before
    elif mode == "old":
        ns = time.time_ns() - 3600 * 10**9  # well outside the stat cache's racy window
    else:
        ns = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(ns, ns))


def tree_files(root: Path, *, skip: Sequence[str]) -> Dict[str, bytes]:
    """Every file under root but .flowmake/ and the paths in `skip`, by relative path."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (dirpath == str(root) and d == ".flowmake")]
        for name in filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if rel not in skip:
                files[rel] = full.read_bytes()
    return files


class IncrementalEqualsClean(RuleBasedStateMachine):
    base: Path  # set by the test: where each example makes its directories

    def __init__(self) -> None:
        super().__init__()
        TALLY["examples"] += 1
        if TALLY["examples"] % 100 == 0:  # a long campaign's progress (shown with -s)
            print(f"\n{time.strftime('%H:%M:%S')} incremental == clean:", summary(), flush=True)
        self.dir = Path(tempfile.mkdtemp(dir=self.base))
        self.root = self.dir / "proj"
        (self.root / "src").mkdir(parents=True)
        self.model = Model()
        self.successes: Dict[str, Success] = {}
        self.mtimes: Dict[str, int] = {}  # last mtime seen per path, for "restore" after a delete
        self.flowfile_mtime_mode = "natural"

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------

    def src_files(self) -> List[str]:
        return sorted(p.name for p in (self.root / "src").iterdir() if p.name.endswith(".txt"))

    def write_file(self, rel: str, data: str, mtime_mode: str) -> None:
        path = self.root / rel
        before = path.stat().st_mtime_ns if path.exists() else self.mtimes.get(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:  # in place: the inode stays
            f.write(data)
        set_mtime(path, mtime_mode, before=before)
        self.mtimes[rel] = path.stat().st_mtime_ns

    def write_flowfile(self, mtime_mode: str) -> None:
        self.write_file("Flowfile.toml", self.model.flowfile_text(), mtime_mode)

    def pick(self, items: Sequence, index: int):
        return items[index % len(items)]

    def fingerprint(self, task: TaskModel, value: Optional[str]) -> Fingerprint:
        inputs = self.model.input_paths(task, self.src_files())
        return Fingerprint(
            command=self.model.command(task, value, inputs),
            env=self.model.env_of(task),
            inputs=tuple(sorted((p, read_or_none(self.root / p)) for p in inputs)),
        )

    def variants(self) -> Dict[str, Tuple[TaskModel, Optional[str]]]:
        return {name: (task, value) for task in self.model.ordered() for name, value in task.variants()}

    # -- the project -----------------------------------------------------------

    @initialize(
        sources=st.fixed_dictionaries({s: contents for s in SOURCES[:3]}),
        tasks=st.lists(
            st.tuples(
                st.lists(st.sampled_from(["src:a", "src:b", "src:c", "glob", "up", "up2"]), max_size=3, unique=True),
                st.sampled_from(STYLES), st.sampled_from(TAGS), st.sampled_from(ENV_VALUES),
                st.sampled_from([(), ("x",), ("x", "y")]),
            ),
            min_size=3, max_size=MAX_TASKS,
        ),
        global_env=st.sampled_from(ENV_VALUES),
    )
    def make_project(self, sources, tasks, global_env) -> None:
        # Old mtimes, as a real project's sources have: the stat cache trusts what it hashes of them,
        # so an edit that keeps size, mtime and inode is one it must still see.
        for name, text in sources.items():
            self.write_file(f"src/{name}.txt", text, "old")
        for rank, (refs, style, tag, env, matrix) in enumerate(tasks):
            name = TASK_NAMES[rank]
            # "up" reads the task just before, "up2" the one two before: chains and diamonds
            concrete = []
            for ref in refs:
                back = {"up": 1, "up2": 2}.get(ref)
                if back is None:
                    concrete.append(ref)
                elif rank - back >= 0:
                    concrete.append(f"task:{TASK_NAMES[rank - back]}")
            self.model.tasks[name] = TaskModel(name, rank, tuple(concrete), style, tag, env, matrix)
        self.model.global_env = global_env
        self.write_flowfile("old")
        self.run(picks=[], jobs=2)  # a built project, so that the first edits can meet traces and outputs

    # -- edits to sources --------------------------------------------------------
    # Few rules, each with many kinds of edit, so that about a third of the
    # steps are runs: a run is what costs time, and what checks.

    @rule(op=st.sampled_from(("edit", "edit", "delete", "rename", "touch")), source=st.sampled_from(SOURCES),
          to=st.sampled_from(SOURCES), text=contents, same_size=st.booleans(), mtime=st.sampled_from(MTIME_MODES))
    def change_source(self, op: str, source: str, to: str, text: str, same_size: bool, mtime: str) -> None:
        """Rewrite (or recreate), delete, rename or touch a source; "restore" puts its mtime back."""
        TALLY[f"source {op}s"] += 1
        rel = f"src/{source}.txt"
        path = self.root / rel
        if op == "edit":
            if same_size and path.exists():
                old = path.read_text()
                text = (text + "ab" * len(old))[: len(old)]
            self.write_file(rel, text, mtime)
        elif not path.exists():
            return
        elif op == "delete":
            self.mtimes[rel] = path.stat().st_mtime_ns  # a recreated file may get it back (inode reuse)
            path.unlink()
        elif op == "rename":
            if source != to:
                path.rename(self.root / "src" / f"{to}.txt")
        elif mtime == "natural":
            os.utime(path)
        else:
            set_mtime(path, "old" if mtime == "restore" else mtime, before=None)

    # -- edits to outputs, by hand -----------------------------------------------

    @rule(index=st.integers(0, 20), how=st.sampled_from(("append", "delete", "same-size", "touch-old")),
          mtime=st.sampled_from(MTIME_MODES))
    def tamper_output(self, index: int, how: str, mtime: str) -> None:
        outputs = sorted(p.relative_to(self.root).as_posix() for p in (self.root / "out").glob("*")) \
            if (self.root / "out").is_dir() else []
        if not outputs:
            return
        TALLY["output edits"] += 1
        rel = self.pick(outputs, index)
        path = self.root / rel
        if how == "delete":
            path.unlink()
        elif how == "touch-old":
            set_mtime(path, "old", before=None)
        else:
            old = path.read_text()
            new = old + "z\n" if how == "append" else old[::-1] if len(set(old)) > 1 else "q" * len(old)
            self.write_file(rel, new, mtime)

    # -- edits to the Flowfile ---------------------------------------------------

    @rule(index=st.integers(0, 20),
          change=st.one_of(
              st.tuples(st.just("style"), st.sampled_from(STYLES)),
              st.tuples(st.just("tag"), st.sampled_from(TAGS)),
              st.tuples(st.just("env"), st.sampled_from(ENV_VALUES)),
              st.tuples(st.just("global_env"), st.sampled_from(ENV_VALUES)),
              st.tuples(st.just("add_ref"), st.sampled_from(["src:a", "src:b", "src:c", "src:d", "glob", "task"])),
              st.tuples(st.just("drop_ref"), st.integers(0, 5)),
              st.tuples(st.just("add_value"), st.sampled_from(MATRIX_VALUES)),
              st.tuples(st.just("drop_value"), st.sampled_from(MATRIX_VALUES)),
              st.tuples(st.just("add_task"), st.sampled_from(STYLES)),
              st.tuples(st.just("remove_task"), st.none()),
          ),
          mtime=st.sampled_from(MTIME_MODES))
    def edit_flowfile(self, index: int, change: Tuple[str, object], mtime: str) -> None:
        """Change one thing in the Flowfile and write it in place; "restore" puts its mtime back."""
        what, arg = change
        TALLY["Flowfile edits"] += 1
        task = self.pick(self.model.ordered(), index)
        if what == "style":
            task = replace(task, style=arg)
        elif what == "tag":
            task = replace(task, tag=arg)
        elif what == "env":
            task = replace(task, env=arg)
        elif what == "global_env":
            self.model.global_env = arg  # type: ignore[assignment]
        elif what == "add_ref":
            if arg == "task":
                lower = [t.name for t in self.model.ordered() if t.rank < task.rank]
                if not lower:
                    return
                arg = f"task:{self.pick(lower, index)}"
            if arg in task.refs:
                return
            task = replace(task, refs=task.refs + (arg,))
        elif what == "drop_ref":
            if not task.refs:
                return
            i = int(arg) % len(task.refs)  # type: ignore[call-overload]
            task = replace(task, refs=task.refs[:i] + task.refs[i + 1:])
        elif what == "add_value":
            if arg in task.matrix:
                return
            task = replace(task, matrix=task.matrix + (arg,))
        elif what == "drop_value":
            if arg not in task.matrix:
                return
            task = replace(task, matrix=tuple(v for v in task.matrix if v != arg))
        elif what == "add_task":
            if len(self.model.tasks) >= MAX_TASKS:
                return
            name = next(n for n in TASK_NAMES if n not in self.model.tasks)
            rank = max(t.rank for t in self.model.tasks.values()) + 1
            refs = ("glob", f"task:{task.name}")[: 1 + index % 2]  # a new source reader, or below `task`
            task = TaskModel(name, rank, refs, str(arg), TAGS[index % len(TAGS)], None)
        elif what == "remove_task":
            if len(self.model.tasks) <= 3:
                return
            # Tasks that read it lose that input; its output file stays on disk.
            del self.model.tasks[task.name]
            for other in list(self.model.tasks.values()):
                if f"task:{task.name}" in other.refs:
                    self.model.tasks[other.name] = replace(
                        other, refs=tuple(r for r in other.refs if r != f"task:{task.name}"))
            self.write_flowfile(mtime)
            return
        self.model.tasks[task.name] = task
        self.write_flowfile(mtime)

    # -- flowmake ----------------------------------------------------------------

    @rule(picks=st.lists(st.integers(0, 50), max_size=2))
    def clean(self, picks: List[int]) -> None:
        """`flowmake clean [TARGETS]`: removes outputs and forgets those tasks' traces."""
        if not self.model.valid(self.src_files()):
            return
        groups = [t.name for t in self.model.ordered()]
        names = sorted({self.pick(groups, p) for p in picks})
        TALLY["cleans"] += 1
        result = run_cli(self.root, "clean", *names)
        assert result.returncode == 0, result
        for name in names or groups:
            for variant, _ in self.model.tasks[name].variants():
                self.successes.pop(variant, None)

    @rule(jobs=st.sampled_from([1, 2, 3]))
    def run_default(self, jobs: int) -> None:
        """`flowmake run` of every task: a second rule, so that runs are frequent."""
        self.run(picks=[], jobs=jobs)

    @rule(picks=st.lists(st.integers(0, 50), min_size=1, max_size=2), jobs=st.sampled_from([1, 2, 3]))
    def run(self, picks: List[int], jobs: int) -> None:
        variants = self.variants()
        choices = [t.name for t in self.model.ordered()] + list(variants) + \
            [o for t in self.model.ordered() for o in t.outputs()]
        targets = sorted({self.pick(choices, p) for p in picks})
        valid = self.model.valid(self.src_files())
        outputs_before = {name: read_or_none(self.root / task.output(value))
                          for name, (task, value) in variants.items()}

        status = run_cli(self.root, "status", "--json")
        result = run_cli(self.root, "run", "--progress", "json", "-j", str(jobs), *targets)
        clean_code, clean_outputs, clean_ran = self.clean_build(targets, jobs)

        TALLY["runs" if valid else "runs of an invalid Flowfile"] += 1
        if not valid:
            assert (status.returncode, result.returncode, clean_code) == (2, 2, 2), (status, result)
            assert "error" in result.stderr, result
            return
        assert status.returncode == 0, status
        assert result.returncode == 0, result
        assert clean_code == 0
        selected = sorted(result.statuses)
        assert selected == clean_ran, f"selected {selected}, a clean build ran {clean_ran}\n{result!r}"

        # 1. incremental == clean, for every selected task
        for name in selected:
            task, value = variants[name]
            got = read_or_none(self.root / task.output(value))
            assert got == clean_outputs[name], \
                f"{task.output(value)}: incremental {got!r}, clean {clean_outputs[name]!r}\n{result!r}"

        # 2. ran iff its fingerprint or its output moved since its last success
        for name in selected:
            task, value = variants[name]
            now = self.fingerprint(task, value)
            last = self.successes.get(name)
            unchanged = last is not None and last.fingerprint == now and last.output == outputs_before[name]
            state = result.statuses[name]
            if state == "ok":
                assert result.started_event(name)["command"] == now.command, result
                assert not unchanged, f"{name} ran although nothing it depends on changed\n{result!r}"
                self.successes[name] = Success(now, read_or_none(self.root / task.output(value)))
            else:
                assert state == "fresh", result
                assert unchanged, (f"{name} reported fresh, but since its last success "
                                   f"{self.what_moved(last, now, outputs_before[name])}\n{result!r}")

        TALLY["tasks run"] += len(result.ran)
        TALLY["tasks fresh"] += len(selected) - len(result.ran)
        # 3. status agrees with the run
        rows = {row["task"]: row for row in json.loads(status.stdout)}
        for name in selected:
            word = rows[name]["state"]
            if word == "stale":
                assert result.statuses[name] == "ok", f"status said {name} is stale\n{status.stdout}\n{result!r}"
            elif word == "fresh":
                assert result.statuses[name] == "fresh", f"status said {name} is fresh\n{status.stdout}\n{result!r}"

    @staticmethod
    def what_moved(last: Optional[Success], now: Fingerprint, output: Optional[bytes]) -> str:
        if last is None:
            return "it never succeeded"
        moved = [part for part in ("command", "env", "inputs") if getattr(last.fingerprint, part) != getattr(now, part)]
        if last.output != output:
            moved.append(f"its output (was {last.output!r}, is {output!r})")
        return "changed: " + ", ".join(moved)

    def clean_build(self, targets: Sequence[str], jobs: int) -> Tuple[int, Dict[str, Optional[bytes]], List[str]]:
        """Exit code, outputs by task and the tasks run, of a build from scratch of a copy of the sources."""
        declared = [o for t in self.model.tasks.values() for o in t.outputs()]
        files = tree_files(self.root, skip=declared)
        key = (tuple(sorted(files.items())), tuple(targets))
        if key in CLEAN_BUILDS:
            return CLEAN_BUILDS[key]
        copy = self.dir / "clean"
        shutil.rmtree(copy, ignore_errors=True)
        for rel, data in files.items():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            (copy / rel).write_bytes(data)
        result = run_cli(copy, "run", "--progress", "json", "-j", str(jobs), *targets)
        variants = self.variants()
        outputs = {name: read_or_none(copy / task.output(value)) for name, (task, value) in variants.items()}
        if result.returncode == 0:
            assert set(result.statuses.values()) == {"ok"}, result
        answer = (result.returncode, outputs, result.ran)
        CLEAN_BUILDS[key] = answer
        return answer


def summary() -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(TALLY.items()))


def test_incremental_build_equals_clean_build(tmp_path: Path) -> None:
    IncrementalEqualsClean.base = tmp_path
    TALLY.clear()
    CLEAN_BUILDS.clear()
    try:
        run_state_machine_as_test(IncrementalEqualsClean)
    finally:
        print("\nincremental == clean:", summary())
