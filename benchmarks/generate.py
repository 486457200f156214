#!/usr/bin/env python3
"""Generate equivalent benchmark projects for flowmake and its peers.

One DAG, written out for each tool: flowmake (Flowfile.toml), GNU make
(Makefile with explicit rules), ninja (build.ninja), doit (dodo.py with
file_dep/targets), Snakemake (Snakefile) and go-task (Taskfile.yml with
sources/generates and `method: checksum`). Every task is a trivial
`cat INPUTS > out/tN.txt`; source files live under src/.

Shapes (N tasks in all):

* ``layered``: 10 layers of ~N/10 tasks. Task j of a layer reads 2 or 3
  outputs of the layer above (j, j+1 and, for even j, j+2, modulo the layer
  width: deterministic and local, so one changed source reaches a bounded
  cone of ~2 tasks per layer instead of the whole graph); layer 0 reads the
  source files the same way. One source per layer-0 task.
* ``wide``: N independent tasks, task i reads src/s{i}.txt.
* ``chain``: a linear chain; task 0 reads src/s0.txt, task i reads the
  output of task i-1.

Because `cat` concatenates, layered outputs grow ~2.6x per layer: keep
``--input-size`` small for that shape (the default 8 bytes gives ~185 MB of
outputs at N = 10,000); use ``wide`` or ``chain`` for large inputs.

Usable from Python too: ``generate(shape, n, tool, out, input_size)`` returns
the `Dag` it wrote. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Set

SHAPES = ("layered", "wide", "chain")
TOOLS = ("flowmake", "make", "ninja", "doit", "snakemake", "task")
LAYERS = 10
DEFAULT_INPUT_SIZE = 8


@dataclass
class Task:
    name: str
    inputs: List[str]
    output: str
    layer: int = 0

    @property
    def command(self) -> str:
        return "cat " + " ".join(self.inputs) + " > " + self.output


@dataclass
class Dag:
    """The tool-independent workload: sources and tasks in topological order."""

    shape: str
    sources: List[str]
    tasks: List[Task]
    layers: int = 1
    producer: Dict[str, str] = field(default_factory=dict)  # output path -> task name

    def __post_init__(self) -> None:
        self.producer = {t.output: t.name for t in self.tasks}

    def deps(self, task: Task) -> List[str]:
        """Names of the tasks whose outputs `task` reads."""
        return [self.producer[p] for p in task.inputs if p in self.producer]

    def affected_by(self, source: str) -> List[Task]:
        """Tasks that must run again when `source` changes (in order)."""
        dirty: Set[str] = {source}
        out: List[Task] = []
        for task in self.tasks:
            if any(p in dirty for p in task.inputs):
                dirty.add(task.output)
                out.append(task)
        return out

    def change_source(self) -> str:
        """The leaf source that the one-file-change scenario edits."""
        return self.sources[len(self.sources) // 2]


def layer_widths(n: int, layers: int = LAYERS) -> List[int]:
    """Split n tasks over `layers` layers, the first ones taking the remainder."""
    if n < layers:
        raise ValueError(f"the layered shape needs at least {layers} tasks, got {n}")
    base, extra = divmod(n, layers)
    return [base + (1 if i < extra else 0) for i in range(layers)]


def _parents(j: int, width_above: int) -> List[int]:
    """Indices in the layer above read by task j: 2 or 3, local, deduplicated."""
    picks = [j, j + 1] + ([j + 2] if j % 2 == 0 else [])
    return list(dict.fromkeys(p % width_above for p in picks))


def make_dag(shape: str, n: int) -> Dag:
    if n < 1:
        raise ValueError("--tasks must be at least 1")
    out = lambda i: f"out/t{i}.txt"  # noqa: E731
    src = lambda i: f"src/s{i}.txt"  # noqa: E731
    tasks: List[Task] = []
    if shape == "wide":
        sources = [src(i) for i in range(n)]
        tasks = [Task(f"t{i}", [src(i)], out(i)) for i in range(n)]
        return Dag(shape, sources, tasks, layers=1)
    if shape == "chain":
        sources = [src(0)]
        tasks = [Task(f"t{i}", [src(0) if i == 0 else out(i - 1)], out(i), layer=i) for i in range(n)]
        return Dag(shape, sources, tasks, layers=n)
    if shape == "layered":
        widths = layer_widths(n)
        sources = [src(i) for i in range(widths[0])]
        above: List[str] = sources
        index = 0
        for layer, width in enumerate(widths):
            current: List[str] = []
            for j in range(width):
                inputs = [above[p] for p in _parents(j, len(above))]
                tasks.append(Task(f"t{index}", inputs, out(index), layer=layer))
                current.append(out(index))
                index += 1
            above = current
        return Dag(shape, sources, tasks, layers=len(widths))
    raise ValueError(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")


# ---------------------------------------------------------------------------
# Writers, one per tool. Each returns the build file's text.


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string of plain ASCII is a valid TOML basic string


def flowfile(dag: Dag) -> str:
    lines = [f'[flow]\nname = "bench-{dag.shape}"\n']
    for t in dag.tasks:
        lines.append(
            f"[tasks.{t.name}]\n"
            f"inputs = [{', '.join(_toml_str(p) for p in t.inputs)}]\n"
            f"outputs = [{_toml_str(t.output)}]\n"
            'run = "cat {inputs} > {outputs}"\n'
        )
    return "\n".join(lines)


def makefile(dag: Dag) -> str:
    lines = [
        "# GNU make: explicit rules, one per task.",
        ".SUFFIXES:",
        "MAKEFLAGS += --no-builtin-rules",
        ".PHONY: all",
        "all: " + " ".join(t.output for t in dag.tasks),
        "",
    ]
    for t in dag.tasks:
        lines.append(f"{t.output}: {' '.join(t.inputs)}\n\tcat $^ > $@")
    return "\n".join(lines) + "\n"


def ninja(dag: Dag) -> str:
    lines = ["rule cat", "  command = cat $in > $out", ""]
    for t in dag.tasks:
        lines.append(f"build {t.output}: cat {' '.join(t.inputs)}")
    return "\n".join(lines) + "\n"


def dodo(dag: Dag) -> str:
    table = ",\n".join(f"    ({t.name!r}, {t.inputs!r}, {t.output!r})" for t in dag.tasks)
    return f'''"""doit: one sub-task per DAG task, file_dep/targets, md5 checks (doit's default)."""

DOIT_CONFIG = {{"default_tasks": ["t"], "verbosity": 0}}

TASKS = [
{table},
]


def task_t():
    for name, inputs, output in TASKS:
        yield {{
            "name": name,
            "file_dep": inputs,
            "targets": [output],
            "actions": ["cat " + " ".join(inputs) + " > " + output],
        }}
'''


def snakefile(dag: Dag) -> str:
    table = ",\n".join(f"    {t.name[1:]!r}: {t.inputs!r}" for t in dag.tasks)
    return f'''# Snakemake: one wildcard rule, inputs looked up per task.
INPUTS = {{
{table},
}}

rule all:
    input: [f"out/t{{i}}.txt" for i in INPUTS]

rule t:
    input: lambda wildcards: INPUTS[wildcards.i]
    output: "out/t{{i}}.txt"
    shell: "cat {{input}} > {{output}}"
'''


def taskfile(dag: Dag) -> str:
    def ylist(items: Sequence[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    lines = [
        "# go-task: deps for ordering, sources/generates with checksums for staleness.",
        "version: '3'",
        "method: checksum",
        "run: once",
        "silent: true",
        "tasks:",
        "  default:",
        "    deps: " + ylist([t.name for t in dag.tasks]),
    ]
    for t in dag.tasks:
        lines.append(f"  {t.name}:")
        deps = dag.deps(t)
        if deps:
            lines.append(f"    deps: {ylist(deps)}")
        lines.append(f"    sources: {ylist(t.inputs)}")
        lines.append(f"    generates: {ylist([t.output])}")
        lines.append(f"    cmds: [{json.dumps(t.command)}]")
    return "\n".join(lines) + "\n"


WRITERS = {
    "flowmake": ("Flowfile.toml", flowfile),
    "make": ("Makefile", makefile),
    "ninja": ("build.ninja", ninja),
    "doit": ("dodo.py", dodo),
    "snakemake": ("Snakefile", snakefile),
    "task": ("Taskfile.yml", taskfile),
}


def source_content(i: int, size: int) -> bytes:
    """Deterministic, distinct content for source i: `size` bytes, or just "s{i}\\n" if that is longer."""
    head = f"s{i} ".encode()
    if size <= len(head):
        return head[:-1] + b"\n"
    filler = b"0123456789abcdef" * (size // 16 + 1)
    return head + filler[: size - len(head) - 1] + b"\n"


def generate(shape: str, n: int, tool: str, out: Path | str, input_size: int = DEFAULT_INPUT_SIZE) -> Dag:
    """Write the project for `tool` into `out` (created; src/ and out/ inside) and return its DAG."""
    if tool not in WRITERS:
        raise ValueError(f"unknown tool {tool!r}: choose one of {', '.join(TOOLS)}")
    dag = make_dag(shape, n)
    root = Path(out)
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "out").mkdir(exist_ok=True)  # make, doit and go-task do not create output dirs
    for i, path in enumerate(dag.sources):
        (root / path).write_bytes(source_content(i, input_size))
    name, writer = WRITERS[tool]
    (root / name).write_text(writer(dag))
    return dag


def estimated_output_bytes(dag: Dag, input_size: int) -> int:
    sizes: Dict[str, int] = {p: input_size for p in dag.sources}
    for t in dag.tasks:
        sizes[t.output] = sum(sizes[p] for p in t.inputs)
    return sum(sizes[t.output] for t in dag.tasks)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=SHAPES, required=True)
    parser.add_argument("--tasks", type=int, required=True, metavar="N")
    parser.add_argument("--tool", choices=TOOLS, required=True)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE, metavar="BYTES",
                        help=f"size of each source file (default {DEFAULT_INPUT_SIZE})")
    args = parser.parse_args(argv)
    try:
        dag = make_dag(args.shape, args.tasks)
        total = estimated_output_bytes(dag, args.input_size)
        if total > 4 << 30:
            print(f"warning: the outputs will take about {total / 2**30:.1f} GiB", file=sys.stderr)
        generate(args.shape, args.tasks, args.tool, args.out, args.input_size)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"{args.tool}: {len(dag.tasks)} tasks, {len(dag.sources)} sources, {dag.layers} layers -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
