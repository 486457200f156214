"""Smoke test of the benchmark generator (benchmarks/generate.py).

The benchmark suite itself is not part of the tests (it takes minutes and
needs the peers); this only checks that the generator writes Flowfiles that
flowmake loads, with the intended task count and, for the layered shape, the
intended depth, and that it writes a build file for every peer.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "benchmarks" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


generate = _load_generator()

try:
    from flowmake.engine.graph import build_graph
    from flowmake.load import flowfile
except ImportError as exc:  # flowmake's core not importable yet: nothing to check against
    pytest.skip(f"flowmake.load.flowfile cannot be imported ({exc})", allow_module_level=True)

N = 20


def _depths(deps: Dict[str, tuple]) -> Dict[str, int]:
    """Longest chain of dependencies ending at each task (1 = reads only sources)."""
    depth: Dict[str, int] = {}

    def visit(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((visit(d) for d in deps[name]), default=0)
        return depth[name]

    for name in deps:
        visit(name)
    return depth


@pytest.mark.parametrize("shape", generate.SHAPES)
def test_generated_flowfile_loads(tmp_path: Path, shape: str) -> None:
    dag = generate.generate(shape, N, "flowmake", tmp_path, 16)
    loaded = flowfile.load(tmp_path / "Flowfile.toml")
    assert len(loaded.tasks) == N
    graph = build_graph(loaded)
    # the graph flowmake sees is the generator's DAG
    for task in dag.tasks:
        assert set(graph.deps[task.name]) == set(dag.deps(task))
        assert loaded.tasks[task.name].outputs == (task.output,)
    expected_depth = {"layered": generate.LAYERS, "wide": 1, "chain": N}[shape]
    assert max(_depths(graph.deps).values()) == expected_depth


def test_layered_layers_read_two_or_three_of_the_layer_above(tmp_path: Path) -> None:
    dag = generate.generate("layered", N, "flowmake", tmp_path, 16)
    graph = build_graph(flowfile.load(tmp_path / "Flowfile.toml"))
    layer_of = {t.name: t.layer for t in dag.tasks}
    assert sorted(set(layer_of.values())) == list(range(generate.LAYERS))
    for task in dag.tasks:
        assert 2 <= len(task.inputs) <= 3 or N // generate.LAYERS < 3
        assert all(layer_of[d] == task.layer - 1 for d in graph.deps[task.name])
    assert all(p.startswith("src/") for t in dag.tasks if t.layer == 0 for p in t.inputs)


def test_every_peer_gets_a_build_file(tmp_path: Path) -> None:
    for tool, (name, _) in generate.WRITERS.items():
        generate.generate("layered", N, tool, tmp_path / tool, 16)
        text = (tmp_path / tool / name).read_text()
        assert "19" in text, tool  # the last task is in every build file
        assert len(list((tmp_path / tool / "src").iterdir())) == N // generate.LAYERS


def _load(name: str) -> ModuleType:
    """A benchmarks/ module by its own name (run.py imports its siblings so)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    import importlib

    return importlib.import_module(name)


def test_big_targets_name_the_tree_target_and_why_a_peer_has_no_figures() -> None:
    run = _load("run")
    args = run.parse_args(["--big", "--sizes", "1000", "--big-sizes", "2000", "--tool-max", "doit=1000"])
    assert args.sizes == "1000,2000" and args.caps == {"task": 10_000, "snakemake": 1000, "doit": 1000}
    results = run.Results(big_sizes=(2000,))
    for scenario, seconds in (("noop", 0.05), ("full-tree", 10.4), ("full-json", 10.0), ("full-plain", 9.9),
                              ("cpu-tree", 8.0), ("cpu-json", 8.2), ("cpu-plain", 7.9)):
        results.times[("layered", 2000, scenario, "flowmake")] = [seconds]
    results.missing[("layered", 2000, "doit")] = "skipped above 1000 tasks (--tool-max doit=1000)"
    lines = run.targets(results)
    assert any(line.startswith("PASS  tree layered 2000:") and "ratio 1.040" in line for line in lines), lines
    assert any(line.startswith("PASS  plain layered 2000:") for line in lines), lines
    assert any(line.startswith("SKIP") and "doit skipped above 1000 tasks" in line for line in lines), lines
    results.times[("layered", 2000, "full-tree", "flowmake")] = [11.5]
    assert any(line.startswith("FAIL  tree layered 2000:") for line in run.targets(results))


def test_without_the_tree_builds_the_tree_target_says_where_it_comes_from() -> None:
    run = _load("run")
    results = run.Results(big_sizes=(100_000,))
    results.times[("layered", 100_000, "noop", "flowmake")] = [0.4]
    line = next(line for line in run.targets(results) if " tree layered " in line)
    assert line.startswith("SKIP") and "tree_pty.py --tasks 100000" in line
