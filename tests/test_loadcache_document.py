"""The load cache across an edit that leaves the parsed documents as they were (load/document.py).

A comment, a blank line or re-spaced keys keep the cached load, with every
task (and schedule) at its line in the text as it is now; any other edit
loads afresh. The rule that holds for every Flowfile and every edit: a
cached load equals a fresh load of the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowmake.engine.graph import build_graph
from flowmake.load import loadcache
from flowmake.load.flowfile import load_observed
from flowmake.store.state import ensure_state_dir


def _cached(path: Path):
    flowfile, graph = loadcache.load_cached(path, path.parent / ".flowmake", build_graph)
    return flowfile._replace(tasks=dict(flowfile.tasks)), graph


def _fresh(path: Path):
    flowfile, _disk = load_observed(path)
    return flowfile, build_graph(flowfile)


def _same(cached, fresh) -> None:
    assert list(cached[0].tasks) == list(fresh[0].tasks)
    assert cached == fresh


@st.composite
def flowfiles(draw) -> List[str]:
    """A Flowfile's lines: a few tasks reading sources and each other's outputs, a matrix, maybe a schedule."""
    lines = ["[flow]", 'name = "p"', ""]
    if draw(st.booleans()):
        lines += ["[vars]", 'kind = "x"', ""]
    count = draw(st.integers(1, 5))
    plain: List[int] = []  # the tasks without a matrix, whose one output others may read
    for i in range(count):
        lines.append(f"[tasks.t{i}]")
        reads = [f'"src/s{i}.txt"'] + [f'"out/t{j}.txt"' for j in plain if draw(st.booleans())]
        lines.append(f"inputs = [{', '.join(reads)}]")
        if draw(st.booleans()) and i:
            lines += ['matrix = { k = ["a", "b"] }', f'outputs = ["out/t{i}-{{k}}.txt"]']
        else:
            lines.append(f'outputs = ["out/t{i}.txt"]')
            plain.append(i)
        if draw(st.booleans()):
            lines += ['help = """', f"[tasks.fake{i}]", '"""']  # a header-like line the scan must not take
        lines += ['run = "cat {inputs} > {outputs}"', ""]
    if draw(st.booleans()):
        lines += ["[schedules.nightly]", 'cron = "0 3 * * *"', 'targets = ["t0"]']
    return lines


# Edits that keep the documents, and edits that do not.
KEEPING = ["# a comment", "", "   ", "# [tasks.t0]"]


@st.composite
def edits(draw, lines: List[str]) -> List[str]:
    edited = list(lines)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "insert", "respace", "change", "reorder"]))
        at = draw(st.integers(0, len(edited)))
        if kind == "insert":
            # Between tables or keys only, never inside a multi-line string.
            if all(line not in ('help = """', '"""') for line in edited[max(at - 2, 0):at + 1]):
                edited.insert(at, draw(st.sampled_from(KEEPING)))
        elif kind == "respace" and at < len(edited) and " = " in edited[at]:
            edited[at] = edited[at].replace(" = ", "   =\t", 1)
        elif kind == "change" and at < len(edited) and edited[at].startswith("run = "):
            edited[at] = 'run = "cp {inputs} {outputs}"'
        elif kind == "reorder":
            starts = [i for i, line in enumerate(edited) if line.startswith("[tasks.t")]
            if len(starts) >= 2:
                cut = starts[-1]
                edited = edited[:starts[0]] + edited[cut:] + [""] + edited[starts[0]:cut]
    return edited


def _project(root: Path, lines: List[str]) -> Path:
    (root / "src").mkdir(exist_ok=True)
    for i in range(6):
        (root / "src" / f"s{i}.txt").write_text("x")
    ensure_state_dir(root)
    path = root / "Flowfile.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_cached_load_equals_a_fresh_load_after_any_edit(tmp_path_factory: pytest.TempPathFactory, data) -> None:
    lines = data.draw(flowfiles())
    path = _project(tmp_path_factory.mktemp("p"), lines)
    _same(_cached(path), _fresh(path))  # the first load, cached
    for _ in range(2):  # an edit, then another on top of what the first one left in the cache
        path.write_text("\n".join(data.draw(edits(lines))) + "\n")
        _same(_cached(path), _fresh(path))
        _same(_cached(path), _fresh(path))  # and again, now found by the bytes


def _counting(monkeypatch: pytest.MonkeyPatch) -> List[Path]:
    calls: List[Path] = []
    import flowmake.load.flowfile as loader

    real = loader.load_observed
    monkeypatch.setattr(loader, "load_observed", lambda path: calls.append(path) or real(path))
    return calls


FLOW = ['[flow]', 'name = "p"', '', '[tasks.t0]', 'inputs = ["src/s0.txt"]', 'outputs = ["out/t0.txt"]',
        'run = "cat {inputs} > {outputs}"', '', '[tasks.t1]', 'inputs = ["out/t0.txt"]', 'outputs = ["out/t1.txt"]',
        'run = "cat {inputs} > {outputs}"']


def test_a_comment_keeps_the_cached_load_and_moves_the_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _project(tmp_path, FLOW)
    assert _cached(path)[0].tasks["t1"].line == 9
    calls = _counting(monkeypatch)
    path.write_text("# one\n# two\n" + path.read_text())
    flowfile, _ = _cached(path)
    assert calls == []  # no full load
    assert (flowfile.tasks["t0"].line, flowfile.tasks["t1"].line) == (6, 11)
    assert flowfile.source_hash == _fresh(path)[0].source_hash


def test_an_edit_of_a_command_loads_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _project(tmp_path, FLOW)
    _cached(path)
    calls = _counting(monkeypatch)
    path.write_text(path.read_text().replace('run = "cat {inputs} > {outputs}"', 'run = "cp {inputs} {outputs}"', 1))
    assert _cached(path)[0].tasks["t0"].command == "cp src/s0.txt out/t0.txt"
    assert calls == [path]


def test_a_comment_in_an_included_file_keeps_the_cached_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _project(tmp_path, [*FLOW[:2], 'include = ["more.toml"]', *FLOW[2:]])
    more = tmp_path / "more.toml"
    more.write_text('[tasks.t2]\ninputs = ["out/t1.txt"]\noutputs = ["out/t2.txt"]\nrun = "cat {inputs} > {outputs}"\n')
    assert _cached(path)[0].tasks["t2"].line == 1
    calls = _counting(monkeypatch)
    more.write_text("# moved down\n\n" + more.read_text())
    flowfile, graph = _cached(path)
    assert calls == []
    assert flowfile.tasks["t2"].line == 3
    _same((flowfile, graph), _fresh(path))
    more.write_text(more.read_text().replace("out/t1.txt", "out/t0.txt"))  # a real edit of the included file
    _same(_cached(path), _fresh(path))
    assert calls == [path]


def test_a_comment_with_a_source_gone_loads_afresh_and_fails(tmp_path: Path) -> None:
    from flowmake.errors import FlowfileErrors

    path = _project(tmp_path, FLOW)
    _cached(path)
    (tmp_path / "src" / "s0.txt").unlink()
    path.write_text("# c\n" + path.read_text())
    with pytest.raises(FlowfileErrors, match="src/s0.txt"):
        _cached(path)


def test_after_a_comment_the_last_snapshot_still_proves_every_task(project) -> None:
    """A run after a comment edit plans nothing: the no-op proof holds by the documents' hash (engine/proof.py)."""
    import os

    from flowmake.engine.proof import proven_fresh
    from flowmake.store.state import State

    project.write("src/s0.txt", "x")
    path = project.flowfile("\n".join(FLOW) + "\n")
    first = project.json_run()
    assert first.ran == ["t0", "t1"], first
    assert project.json_run().ran == []  # leaves the snapshot
    path.write_text("# a comment\n" + path.read_text())

    def proof():
        flowfile, graph = loadcache.load_cached(path, path.parent / ".flowmake", build_graph)
        state = State.open(project.root, warn=lambda message: None)
        return proven_fresh(flowfile, graph, list(graph.order), state_identity=state.identity, target_names=(),
                            environ=dict(os.environ))

    from flowmake.engine.snapshot import shortcuts_off

    if not shortcuts_off(os.environ):  # FLOWMAKE_NO_SHORTCUTS=1 leaves no snapshot to prove from
        proven, cone = proof()
        assert set(proven) == {"t0", "t1"} and cone is not None and cone[1] == set()
    result = project.json_run()
    assert result.returncode == 0 and result.ran == []
    path.write_text(path.read_text().replace('"cat {inputs} > {outputs}"', '"cp {inputs} {outputs}"', 1))
    assert proof()[0] == {}  # a real edit: nothing proven
    assert project.json_run().ran == ["t0"]  # its output is the same: t1 stays fresh (early cutoff)


def test_an_edit_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parse that found the documents changed is the full load's too (a 100,000-task parse is ~1 s)."""
    import flowmake.load.flowfile as loader

    path = _project(tmp_path, FLOW)
    _cached(path)
    parses: List[str] = []
    real = loader.tomllib.loads
    monkeypatch.setattr(loader.tomllib, "loads", lambda text: parses.append(text) or real(text))
    path.write_text(path.read_text().replace('"cat {inputs} > {outputs}"', '"cp {inputs} {outputs}"', 1))
    _same(_cached(path), _fresh(path))
    assert len(parses) == 2  # the cached load's look, then _fresh's own: none in between
    assert loader._parsed == {}
