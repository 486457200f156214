"""Imports point one way: each package sits on a floor and never imports from a floor above.

The floors (docs/architecture.md draws them): the shared vocabulary, then
store, load, executors, engine, reporters, the readers of history, and the
CLI on top. Every module of the package must have a floor: a new module or
package that is not in FLOORS fails here until it is placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flowmake"

FLOORS = {
    # 0: plain data and leaves every floor may use
    "__init__": 0, "records": 0, "errors": 0, "model": 0, "events": 0, "layout": 0,
    "masking": 0, "removal": 0,
    "store": 1,  # hashing, state, snapshot, lock, identity
    "cache": 1,  # the shared output cache: blobs and entries in a directory or at an fsspec URL
    "load": 2,  # the Flowfile to a validated model
    "executors": 3,  # where a task's command runs
    "engine": 4,  # graph, rebuilder, ready-queue, loop, hooks, fast path
    "report": 5,  # live reporters: consumers of events only
    "history": 6, "runreport": 6,  # readers of the recorded runs
    "unattended": 6,  # schedules and watch: drive runs through a function the CLI passes in
    "cli": 7, "__main__": 7,
    "daemon": 7,  # the resident watcher: runs the fast path's no-op for a client (cli/fastpath.py)
}
# Pure modules: no flowmake import beyond the shared leaves, and no I/O library.
PURE = {"engine.schedule", "engine.plan", "engine.graph", "executors.shellfree", "executors.messages", "masking",
        "removal"}
LEAVES = {name for name, floor in FLOORS.items() if floor == 0}
# third-party / stdlib modules allowed in one place only
ONLY_IN = {
    "typer": {"cli"},
    "sqlite3": {"store.state", "store.database", "store.journal"},
    "subprocess": {"executors"},
    "rich": {"report", "history"},
    "fsspec": {"cache.backends"},
    "s3fs": {"cache.backends"},
    "inotify_simple": {"daemon.watches"},
}


def imports_of(path: Path, package_root: Path = PACKAGE) -> set:
    """Absolute names of everything a module imports (relative ones resolved)."""
    package = ["flowmake", *path.relative_to(package_root).parent.parts]
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                if node.module:
                    found.add(".".join(base + [node.module]))
                else:
                    found.update(".".join(base + [alias.name]) for alias in node.names)
            else:
                found.add(node.module or "")
    return found


def module_files():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = rel.parts[:-1] if rel.parts[-1] == "__init__" and len(rel.parts) > 1 else rel.parts
        yield ".".join(parts), path


def floor_of(name: str) -> int:
    top = name.split(".")[0]
    assert top in FLOORS, f"flowmake.{name} has no floor: add its package to FLOORS and docs/architecture.md"
    return FLOORS[top]


def internal_imports(path: Path) -> set:
    """flowmake's own modules a file imports, as dotted names below `flowmake`."""
    return {i[len("flowmake."):] for i in imports_of(path) if i.startswith("flowmake.")}


@pytest.mark.parametrize("name, path", list(module_files()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_imports_point_down(name: str, path: Path) -> None:
    own_floor = floor_of(name)
    for target in internal_imports(path):
        if target == "__version__":
            continue
        assert floor_of(target) <= own_floor, f"{name} (floor {own_floor}) imports {target} (floor {floor_of(target)})"
    if name in PURE:
        reached = {t.split(".")[0] for t in internal_imports(path)} - LEAVES
        own_package = name.split(".")[0]
        # A pure module may use its own package's pure siblings and the store's hash of text.
        assert all(t == own_package or t == "store" for t in reached), f"{name} must stay pure, imports {reached}"
    own = imports_of(path)
    for lib, homes in ONLY_IN.items():
        if any(i == lib or i.startswith(lib + ".") for i in own):
            assert any(name == h or name.startswith(h + ".") for h in homes), f"{lib} may only be imported in {homes}, found in {name}"


def test_every_module_has_a_floor() -> None:
    names = [name for name, _ in module_files()]
    assert len(names) > 40
    for name in names:
        floor_of(name)


def test_reporters_see_only_events() -> None:
    for path in (PACKAGE / "report").glob("*.py"):
        internal = {t.split(".")[0] for t in internal_imports(path)}
        assert internal <= {"events", "model", "report", "errors", "records"}, f"{path.name} imports {internal}"


def test_the_floor_check_catches_an_upward_import(tmp_path: Path) -> None:
    # The rule itself must be able to fail: a store module importing the engine is caught.
    bad = tmp_path / "flowmake" / "store" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..engine.build import Build\n")
    targets = {i[len("flowmake."):] for i in imports_of(bad, tmp_path / "flowmake")}
    assert targets == {"engine.build"}
    assert floor_of("engine.build") > floor_of("store.bad")


MAX_MODULE_LINES = 420  # "about 400" (docs/architecture.md): one noun per file, split when one grows
MAX_FUNCTION_LINES = 80


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_modules_are_short() -> None:
    over = {str(path.relative_to(PACKAGE)): _lines(path) for _, path in module_files()}
    over = {rel: n for rel, n in over.items() if n > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them by noun): " + ", ".join(
        f"{rel} ({n})" for rel, n in sorted(over.items()))


def test_functions_are_short() -> None:
    long = []
    for _, path in module_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: " + ", ".join(long)


NOOP_PROJECT = """\
[flow]
cache = "cache"

[tasks.a]
inputs = ["src.txt"]
outputs = ["build/a.txt"]
run = "cat src.txt > build/a.txt"

[tasks.b]
inputs = ["build/a.txt"]
outputs = ["build/b.txt"]
run = "cat build/a.txt > build/b.txt"

[hooks]
on_success = "true"
"""
_PROBE = ("import json, sys\nfrom flowmake.__main__ import main\nmain(sys.argv[2:])\n"
          "names = sorted(m[len('flowmake.'):] for m in sys.modules if m.startswith('flowmake.'))\n"
          "open(sys.argv[1], 'w').write(json.dumps(names))\n")  # a file: Tab's answer leaves stderr closed


def _imported_by(root: Path, *argv: str) -> set:
    import json
    import os
    import subprocess
    import sys

    out = root.parent / "imported.json"
    env = {k: v for k, v in os.environ.items() if k != "FLOWMAKE_NO_SHORTCUTS"}  # the fast path is the point
    done = subprocess.run([sys.executable, "-c", _PROBE, str(out), *argv], cwd=root, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text()))


def test_records_is_used_only_where_a_no_op_imports_it(tmp_path: Path) -> None:
    # records.py keeps typing (and pathlib) off the commands users feel most:
    # the no-op that the snapshot proves, `--version` and the shell's Tab,
    # where they would cost ~9 ms of 18-110. A run that goes further (the full
    # path, work to do, a Flowfile to parse) takes 130 ms and more, in which
    # typing's ~4 ms are noise (benchmarks/README.md): modules only such runs
    # import use typing as Python reads it.
    tmp_path = tmp_path / "project"
    tmp_path.mkdir()
    (tmp_path / "Flowfile.toml").write_text(NOOP_PROJECT)
    (tmp_path / "src.txt").write_text("one\n")
    _imported_by(tmp_path, "run", "--progress", "plain")  # the first run: everything runs, not counted
    paid = _imported_by(tmp_path, "run", "--progress", "plain")  # the fast path, hooks and all
    paid |= _imported_by(tmp_path, "run", "--progress", "json")
    paid |= _imported_by(tmp_path, "run", "--progress", "tree")  # a terminal's no-op: one line, no rich (report/front.py)
    paid |= _imported_by(tmp_path, "--version")
    paid |= _imported_by(tmp_path, "__complete", "bash", "run", "")
    users = {name for name, path in module_files() if "flowmake.records" in imports_of(path)}
    unpaid = sorted(users - paid - {"records"})
    assert not unpaid, ("these modules use records.py but neither the no-op fast path, --version nor Tab "
                        "imports them; import from typing instead: " + ", ".join(unpaid))
