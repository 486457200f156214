"""The JSON Schema of the Flowfile, for editors: help on hover, completion, errors as you type.

`flowfile.schema.json` (package data beside this module) describes every key
the loader accepts, with its type and a description, and rejects what the
loader rejects wherever a schema can say so (unknown keys, wrong types, bad
names and values); what only loading can tell (placeholders, missing files,
cycles) is left to `flowmake check`. tests/test_schema.py feeds the same
Flowfiles to both and checks that they agree. The schema is a file in the
package, not generated: editors read it as it is.

Editors find it through the `#:schema` line `flowmake init` writes at the
top of the Flowfile, which points at the copy in `.flowmake/` that `init`
and `check` keep current (docs/flowfile.md, "Editor support").
"""

from __future__ import annotations

from pathlib import Path

SCHEMA_FILE = "flowfile.schema.json"
# What the Flowfile's `#:schema` line names, relative to the Flowfile (taplo / Even Better TOML).
SCHEMA_DIRECTIVE = f"#:schema .flowmake/{SCHEMA_FILE}"


def schema_text() -> str:
    return (Path(__file__).parent / SCHEMA_FILE).read_text(encoding="utf-8")


def write_project_copy(root: Path) -> Path:
    """`.flowmake/flowfile.schema.json` of the project at `root`, rewritten only when it differs."""
    from ..store.state import ensure_state_dir

    path = ensure_state_dir(root) / SCHEMA_FILE
    text = schema_text()
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except OSError:
        pass
    tmp = path.with_name(f".{SCHEMA_FILE}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
