"""Imports point one way: loading -> graph -> state -> planning -> execution -> reporting -> CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flowmake"

# module -> flowmake modules it must never import. `records` (NamedTuple
# without typing) is a language shim below every layer: anyone may import it.
SHIM = "records"
FORBIDDEN = {
    "records": {"*"},
    "errors": {"*"},
    "model": {"flowfile", "graph", "state", "build", "runner", "report", "cli", "commands", "history"},
    "events": {"flowfile", "graph", "state", "build", "runner", "report", "cli", "commands", "history"},
    "flowfile": {"graph", "state", "plan", "build", "runner", "report", "cli", "commands", "history"},
    "locate": {"flowfile", "graph", "state", "plan", "build", "runner", "report", "cli", "commands", "history"},
    "problems": {"flowfile", "graph", "state", "plan", "build", "runner", "report", "cli", "commands", "history"},
    "templates": {"flowfile", "graph", "state", "plan", "build", "runner", "report", "cli", "commands", "history"},
    "paths": {"flowfile", "graph", "state", "plan", "build", "runner", "report", "cli", "commands", "history"},
    "sections": {"flowfile", "graph", "state", "plan", "build", "runner", "report", "cli", "commands", "history"},
    "drafts": {"flowfile", "graph", "state", "plan", "build", "runner", "report", "cli", "commands", "history"},
    "producers": {"flowfile", "graph", "state", "plan", "build", "runner", "report", "cli", "commands", "history"},
    "graph": {"state", "plan", "build", "runner", "report", "cli", "commands", "hashing"},
    "plan": {"state", "build", "runner", "report", "cli", "commands", "flowfile"},
    "schedule": {"*"},
    "shellfree": {"*"},
    "masking": {"*"},
    "removal": {"*"},
    "state": {"build", "runner", "report", "cli", "commands", "history"},
    "build": {"report", "cli", "commands", "history"},
    # The run report reads the state after the fact: it never runs tasks or drives the CLI.
    "runreport": {"build", "runner", "cli", "fastpath", "hooks", "lock"},
}
# Nothing below the run report imports it; only the CLI reaches it.
for _module, _forbidden in FORBIDDEN.items():
    if "*" not in _forbidden and _module != "runreport":
        _forbidden.add("runreport")
# third-party / stdlib modules allowed in one place only
ONLY_IN = {"typer": {"cli"}, "sqlite3": {"state"}, "subprocess": {"runner"}, "rich": {"report", "history"}}


def imports_of(path: Path) -> set:
    """Absolute names of everything a module imports (relative ones resolved)."""
    package = ["flowmake", *path.relative_to(PACKAGE).parent.parts]
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
        yield ".".join(rel.parts), path


@pytest.mark.parametrize("name, path", list(module_files()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_imports_point_one_way(name: str, path: Path) -> None:
    own = imports_of(path)
    internal = {i.split(".")[1] for i in own if i.startswith("flowmake.") and i.count(".") >= 1 and i != "flowmake."}
    internal.discard(SHIM)
    forbidden = FORBIDDEN.get(name, FORBIDDEN.get(name.split(".")[0], set()))
    if "*" in forbidden:
        assert not internal, f"{name} must be a leaf but imports {internal}"
    else:
        assert not (internal & forbidden), f"{name} imports {internal & forbidden}"
    top = name.split(".")[0]
    for lib, homes in ONLY_IN.items():
        if any(i == lib or i.startswith(lib + ".") for i in own):
            assert top in homes, f"{lib} may only be imported in {homes}, found in {name}"


def test_reporters_see_only_events() -> None:
    for path in (PACKAGE / "report").glob("*.py"):
        internal = {i.split(".")[1] for i in imports_of(path) if i.startswith("flowmake.") and i != "flowmake."}
        assert internal <= {"events", "model", "report", "errors", SHIM}, f"{path.name} imports {internal}"
