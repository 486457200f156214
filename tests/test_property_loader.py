"""Property: whatever the Flowfile holds, loading it gives a model or a Flowfile error (exit 2).

A fuzz of the loader (issue #22 item 7b) over three kinds of input:
structured TOML (random tables with the real keys and random ones, values
of every TOML type, plausible paths, templates and durations, nesting),
raw bytes, and byte-level mutations of real Flowfiles. The loader is
called in-process, as `flowmake check` and the commands that load a
project (`run`, `status`, ...) call it: the only allowed outcomes are a
loaded Flowfile and graph, or a `FlowError` whose exit code is 2 and
whose rendering names the problem. Anything else escaping (a TypeError,
a RecursionError, ...) is a bug: the CLI would end it as an internal
error, exit 70. A few examples also run the real `flowmake check` to tie
the in-process outcome to the exit code.

The budget comes from the hypothesis profile chosen in conftest.py.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from io import StringIO
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import tomli_w
from conftest import FLOWMAKE, RUN_TIMEOUT
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flowmake.cli.flowfiles import STARTER, check_flowfile
from flowmake.engine.graph import build_graph
from flowmake.errors import EXIT_USAGE, FlowError
from flowmake.load.flowfile import FLOW_KEYS, HOOK_KEYS, TASK_KEYS, TOP_KEYS, load

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_FLOWFILE = (REPO / "examples" / "Flowfile.toml").read_text()

# What the fuzzed project holds on disk, so that some inputs exist and some globs match: a few
# files of its own and those the example project's Flowfile reads.
PROJECT_FILES = ("src/a.txt", "src/b.csv", "src/sub/c.txt", "data/raw/S01/dm.csv", "scripts/x.py") + tuple(
    p.relative_to(REPO / "examples").as_posix() for d in ("raw", "scripts") for p in (REPO / "examples" / d).rglob("*")
    if p.is_file())

# -- values ---------------------------------------------------------------------------

FRAGMENTS = (
    "", " ", "src/a.txt", "src/b.csv", "src/*.txt", "src/**", "**/*.txt", "src/[ab].txt", "src/?.txt", "out/",
    "out/x.txt", "out", "src/sub/", "../x", "/abs/x", "~/x", ".", "./a/../b", ".flowmake/x", "a//b", "a\\b", "C:/x",
    "{inputs}", "{outputs}", "{outputs[0]}", "{inputs[3]}", "{inputs.g}", "{inputs.g[0]}", "{outputs.o}", "{x}",
    "{v}", "{studies}", "{raw}", "{", "}", "{{", "}}", "{inputs[-1]}", "{inputs[99999999999999999999]}", "${{HOME}}",
    "t1", "t2", "t1:x", "t2:a:b", "a.b", "bad name", "1h", "5s", "90", "1.5", "-5s", "1h30m", "500ms", "10 minutes",
    "sh -c", "bash -euo pipefail -c", "'", '"', "\\", "\t", "\n", "é", "\u202e", "\x7f", "https://h.invalid/x",
    "http://", "cat {inputs} > {outputs[0]}", "echo hi", "S01", "S02", "A-B", "_", "inputs", "outputs",
)
texts = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.lists(st.sampled_from(FRAGMENTS), min_size=2, max_size=4).map("".join),
    st.text(max_size=12),
)
names = st.one_of(  # keys: task names, var names, group names, env names
    st.sampled_from(("t1", "t2", "t3", "x", "v", "g", "o", "raw", "studies", "S01", "TZ", "A-B", "1BAD", "a.b", "",
                     "bad name", "inputs", "outputs", "_", "é", "t:x")),
    st.text(max_size=6),
)
scalars = st.one_of(
    texts,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from((0, 1, -1, 2**63 - 1)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(timezones=st.none() | st.just(datetime.timezone.utc)),
    st.dates(),
    st.times(),
)
# Nesting here stays shallow enough for tomli_w to write it; deep nesting is generated as text below.
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
                      max_leaves=12)
str_lists = st.lists(texts, max_size=4)


def plausible(key: str) -> st.SearchStrategy[Any]:
    """Values of roughly the right shape for a task key, so the loader gets past its type checks."""
    if key in ("inputs", "outputs"):
        return str_lists | st.dictionaries(names, str_lists, max_size=3)
    if key in ("after", "env_inputs", "secrets", "wait_for"):
        return str_lists
    if key == "env":
        return st.dictionaries(names, texts, max_size=3)
    if key == "matrix":
        return st.dictionaries(names, st.lists(st.sampled_from(("a", "b", "S01", "x.y", "a", "", "{studies}")),
                                               max_size=3) | texts, max_size=2)
    if key in ("wait_timeout", "wait_poll", "retry_delay", "timeout"):
        return texts | st.integers(-2, 10**6) | st.floats(allow_nan=True)
    if key == "retries":
        return st.integers(-2, 10)
    if key == "always":
        return st.booleans()
    return texts


task_tables = st.dictionaries(
    st.sampled_from(TASK_KEYS) | names,
    st.none(),  # filled in by the key below
    max_size=6,
).flatmap(lambda keys: st.fixed_dictionaries({k: st.one_of(plausible(k), values) for k in keys}))



@st.composite
def documents(draw: st.DrawFn) -> Dict[str, Any]:
    """A Flowfile document: mostly tasks, sometimes the other tables, rarely a wrong shape or key."""
    doc: Dict[str, Any] = {}
    if draw(st.integers(0, 9)) == 0:
        doc["tasks"] = draw(values)
    else:
        doc["tasks"] = draw(st.dictionaries(names, task_tables, max_size=5))
    optional = {
        "flow": st.fixed_dictionaries({}, optional={k: st.one_of(texts, str_lists, values) for k in FLOW_KEYS}),
        "vars": st.dictionaries(names, texts | str_lists | values, max_size=4),
        "env": st.dictionaries(names, texts | values, max_size=3),
        "hooks": st.fixed_dictionaries({}, optional={k: st.one_of(texts, values) for k in HOOK_KEYS}),
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 2)) == 0:
            doc[key] = draw(strategy)
    if draw(st.integers(0, 19)) == 0:
        doc[draw(st.sampled_from(("task", "Tasks", "flows")) | names)] = draw(values)
    return doc


def _nested(key: str, depth: int, kind: str) -> str:
    """`key` holding a value nested `depth` deep: inline arrays or inline tables; or a dotted key of `depth` parts."""
    if kind == "array":
        return f"{key} = " + "[" * depth + '"a"' + "]" * depth
    if kind == "table":
        return f"{key} = " + "{a = " * depth + '"a"' + "}" * depth
    return key + ".k" * depth + ' = "a"'


# Far past Python's recursion limit (1000): #22.6, nesting thousands deep must be a Flowfile
# error with its line, never a RecursionError.
MAX_DEPTH = 5000
deep = st.tuples(
    st.sampled_from(("top", "task")),
    st.builds(_nested, st.sampled_from(TASK_KEYS + ("x",)), st.integers(1, MAX_DEPTH),
              st.sampled_from(("array", "table", "dotted"))),
)


def with_deep(text: str, extra) -> str:
    """The document with each deep line at the top level (before any table) or in a task of its own."""
    for where, line in extra:
        text = f"{line}\n{text}" if where == "top" else f"{text}\n[tasks.deep_zz9]\n{line}\n"
    return text


def toml_text(document: Dict[str, Any]) -> Optional[str]:
    try:
        return tomli_w.dumps(document)
    except (TypeError, ValueError):  # a shape TOML cannot write (e.g. a list holding None)
        return None


# -- the property -----------------------------------------------------------------------


def make_project(base: Path) -> Path:
    """The project the examples of one test share (loading never writes in it): made on first use."""
    root = base / "proj"
    if not root.is_dir():
        for rel in PROJECT_FILES:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("x\n")
    return root


def assert_loads_or_flowfile_error(root: Path, data: bytes) -> Optional[str]:
    """Load Flowfile.toml holding `data` as `check` and `run` do; returns the error text, or None if valid."""
    path = root / "Flowfile.toml"
    path.write_bytes(data)
    outcomes = []
    for load_it in (lambda: check_flowfile(file=path, directory=None, out=StringIO()),
                    lambda: build_graph(load(path))):
        try:
            load_it()
        except FlowError as exc:
            assert exc.exit_code == EXIT_USAGE, exc.render()
            text = exc.render()
            assert "error: " in text and exc.message.strip(), text
            outcomes.append(text)
        else:
            outcomes.append(None)
    # check reports cycles and bad defaults that load leaves to the graph: both must agree it is valid or not.
    assert (outcomes[0] is None) == (outcomes[1] is None), outcomes
    # `pytest --hypothesis-show-statistics` shows how deep the examples got
    event("valid" if outcomes[0] is None else "error: " + outcomes[0].partition("error: ")[2][:25])
    return outcomes[0]


def scaled(factor: float) -> settings:
    """The profile's budget times `factor`: loading in-process costs a fraction of a CLI run."""
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)),
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@scaled(8)
@given(document=documents(), extra=st.lists(deep, max_size=1))
def test_structured_toml_loads_or_is_a_flowfile_error(tmp_path: Path, document: Dict[str, Any], extra) -> None:
    text = toml_text(document)
    if text is None:
        return
    root = make_project(tmp_path)
    assert_loads_or_flowfile_error(root, with_deep(text, extra).encode())


@scaled(4)
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_raw_bytes_load_or_are_a_flowfile_error(tmp_path: Path, data: bytes) -> None:
    root = make_project(tmp_path)
    assert_loads_or_flowfile_error(root, data)


# Real Flowfiles, mutated: most mutants stay close to valid TOML and reach deep into loading.
SEEDS = (EXAMPLE_FLOWFILE, STARTER.format(name='"p"'))
mutations = st.lists(
    st.tuples(st.sampled_from(("replace", "insert", "delete", "duplicate")), st.integers(0, 10**6),
              st.integers(1, 40), st.text(min_size=1, max_size=4).map(str.encode) | st.sampled_from(
                  [f.encode() for f in FRAGMENTS if f] + [b"[", b"]", b"=", b"\n", b"\"", b"[tasks.x]\n", b"#"])
              | st.binary(min_size=1, max_size=4)),
    min_size=1, max_size=4,
)


def mutate(seed: bytes, steps) -> bytes:
    data = bytearray(seed)
    for how, at, length, piece in steps:
        at %= len(data) + 1
        if how == "replace":
            data[at:at + len(piece)] = piece
        elif how == "insert":
            data[at:at] = piece
        elif how == "delete":
            del data[at:at + length]
        else:
            data[at:at] = data[at:at + length]
    return bytes(data)


@scaled(8)
@given(seed=st.sampled_from(SEEDS), steps=mutations)
def test_mutated_flowfiles_load_or_are_a_flowfile_error(tmp_path: Path, seed: str, steps) -> None:
    root = make_project(tmp_path)
    assert_loads_or_flowfile_error(root, mutate(seed.encode(), steps))


@scaled(0.4)
@given(document=documents(), steps=mutations, which=st.sampled_from(("structured", "mutated")))
def test_flowmake_check_exits_0_or_2_with_a_message(tmp_path: Path, document, steps, which: str) -> None:
    """The real CLI agrees with the in-process outcome: exit 0, or exit 2 and the error on stderr.

    `status` loads through the load cache (a pickled model) as `run` does: it too exits 0 or 2.
    """
    if which == "structured":
        text = toml_text(document)
        if text is None:
            return
        data = text.encode()
    else:
        data = mutate(EXAMPLE_FLOWFILE.encode(), steps)
    root = make_project(tmp_path)
    expected = assert_loads_or_flowfile_error(root, data)
    proc = subprocess.run(FLOWMAKE + ["check"], cwd=str(root), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    if expected is None:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == EXIT_USAGE, proc.stderr
        assert "internal error" not in proc.stderr
        # The Flowfile, or a file it includes (errors name the file they are in).
        assert proc.stderr.startswith(str(root) + "/") or proc.stderr.startswith("error:"), \
            proc.stderr
    status = subprocess.run(FLOWMAKE + ["status", "--json"], cwd=str(root), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert status.returncode in (0, EXIT_USAGE) and "internal error" not in status.stderr, status.stderr
    if expected is None:
        assert status.returncode == 0, status.stderr
