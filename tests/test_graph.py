"""The dependency graph from hand-built specs: edges, cycles, targets, closures."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmake.engine.graph import (
    build_graph,
    closure,
    default_targets,
    downstream,
    resolve_targets,
)
from flowmake.errors import FlowfileErrors, UsageError
from flowmake.model import Flowfile, TaskSpec


def flow(*specs: TaskSpec, default=None) -> Flowfile:
    return Flowfile(path=Path("/p/Flowfile.toml"), root=Path("/p"), name="t", default=default, jobs=None,
                    tasks={s.name: s for s in specs})


def task(name: str, inputs=(), outputs=(), after=(), group=None, line=None) -> TaskSpec:
    return TaskSpec(name=name, group=group or name, command="true", inputs=tuple(inputs), outputs=tuple(outputs),
                    after=tuple(after), line=line)


PIPE = flow(
    task("extract", ["raw.csv"], ["build/a.csv"]),
    task("clean", ["build/a.csv"], ["build/b.csv"]),
    task("report", ["build/b.csv", "build/tables/t1.csv"], ["dist/r.md"]),
    task("tables", [], ["build/tables/"]),
    task("ping", after=["clean"]),
)


def test_edges_come_from_outputs_directory_outputs_and_after() -> None:
    g = build_graph(PIPE)
    assert g.deps["clean"] == ("extract",)
    assert set(g.deps["report"]) == {"clean", "tables"}  # tables via its directory output
    assert g.deps["ping"] == ("clean",)
    assert set(g.dependents["clean"]) == {"report", "ping"}


def test_topological_order_respects_declaration_order() -> None:
    assert build_graph(PIPE).order == ("extract", "clean", "tables", "report", "ping")


def test_cycle_is_printed_in_dependency_direction() -> None:
    f = flow(task("a", ["c.out"], ["a.out"], line=3), task("b", ["a.out"], ["b.out"]), task("c", ["b.out"], ["c.out"]))
    with pytest.raises(FlowfileErrors) as info:
        build_graph(f)
    (err,) = info.value.errors
    assert "a -> b -> c -> a" in err.message
    assert err.location.line == 3


def test_two_separate_cycles_are_both_reported() -> None:
    f = flow(task("a", after=["b"]), task("b", after=["a"]), task("x", after=["y"]), task("y", after=["x"]))
    with pytest.raises(FlowfileErrors) as info:
        build_graph(f)
    assert len(info.value.errors) == 2


def test_targets_resolve_tasks_groups_and_output_paths() -> None:
    f = flow(task("extract:S01", outputs=["s1.csv"], group="extract"), task("extract:S02", outputs=["s2.csv"], group="extract"),
             task("report", ["s1.csv", "s2.csv"], ["dist/r.md"]))
    g = build_graph(f)
    assert resolve_targets(f, g, ["extract"]) == ("extract:S01", "extract:S02")
    assert resolve_targets(f, g, ["dist/r.md"]) == ("report",)
    assert resolve_targets(f, g, ["./s2.csv", "extract:S02"]) == ("extract:S02",)


def test_unknown_target_suggests_closest_name() -> None:
    g = build_graph(PIPE)
    with pytest.raises(UsageError) as info:
        resolve_targets(PIPE, g, ["claen"])
    assert "unknown target 'claen'" in info.value.message
    assert "clean" in (info.value.hint or "")


def test_closure_and_downstream() -> None:
    g = build_graph(PIPE)
    assert closure(g, ["report"]) == ("extract", "clean", "tables", "report")
    assert downstream(g, ["extract"]) == {"clean", "report", "ping"}


def test_default_targets_all_tasks_unless_declared() -> None:
    assert default_targets(PIPE, build_graph(PIPE)) == tuple(PIPE.tasks)
    f = flow(*PIPE.tasks.values(), default=("clean",))
    assert default_targets(f, build_graph(f)) == ("clean",)


def test_readers_index_each_input_path_to_the_tasks_that_read_it() -> None:
    g = build_graph(flow(task("a", inputs=["src.txt"], outputs=["a.txt"]),
                         task("b", inputs=["a.txt", "src.txt"], outputs=["b.txt"]),
                         task("c", after=["b"])))
    assert g.readers == {"src.txt": ("a", "b"), "a.txt": ("b",)}


def test_a_directory_input_depends_on_every_output_inside_it_and_on_directory_outputs_around_it() -> None:
    g = build_graph(flow(
        task("gen", [], ["src/gen.txt"]),
        task("deep", [], ["src/a/b/deep.txt"]),
        task("nested", [], ["src/parts/"]),
        task("outer", [], ["build/"]),
        task("beside", [], ["srcx/other.txt", "src.txt"]),  # shares the prefix, lies outside src/
        task("count", ["src/"], ["count.txt"]),
        task("inner", ["build/sub/"], ["inner.txt"]),
    ))
    assert set(g.deps["count"]) == {"gen", "deep", "nested"}
    assert g.deps["inner"] == ("outer",)
    assert g.order.index("gen") < g.order.index("count")
