"""A task's `matrix`: each key's values, from a list, a list var or the files a glob finds.

Read once per table by drafts.py, before the table is expanded into one draft
per combination; every problem is reported against the table's `matrix` key.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Tuple

from ..errors import did_you_mean
from .patterns import VALUE_HINT, VALUE_RE, PatternError, values_from_files
from .problems import check_keys, describe, is_str_list, toml_type
from .templates import FILES, IDENT_RE

if TYPE_CHECKING:  # drafts.py imports this module: its reader is named for type checkers only
    from .drafts import _TaskReader as TaskReader

_LIST_VAR_REF_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_matrix(reader: TaskReader) -> Optional[List[Tuple[str, Tuple[str, ...]]]]:
    raw = reader.table.get("matrix")
    if raw is None:
        return []
    if not isinstance(raw, dict) or not raw:
        got = "an empty table" if raw == {} else toml_type(raw)
        reader.error(
            "matrix", f"`matrix` must be a table of lists, got {got}", hint='write matrix = { study = ["S01", "S02"] }'
        )
        return None
    matrix = [(key, _matrix_values(reader, key, spec)) for key, spec in raw.items()]
    if any(values is None for _, values in matrix):
        return None
    return matrix  # type: ignore[return-value]


def _matrix_values(reader: TaskReader, key: str, spec: object) -> Optional[Tuple[str, ...]]:
    vars = reader.ctx.vars
    if not IDENT_RE.fullmatch(key) or key in FILES:
        reader.error(
            "matrix", f"matrix key `{key}` is not a usable placeholder name", hint="use letters, digits and '_'"
        )
        return None
    if key in vars.scalars or key in vars.lists:
        reader.error(
            "matrix", f"matrix key `{key}` shadows the var of the same name", hint="rename the matrix key or the var"
        )
        return None
    if isinstance(spec, dict):
        return _matrix_glob(reader, key, spec)
    if isinstance(spec, str):
        values = _matrix_list_var(reader, key, spec)
        if values is None:
            return None
        empty = f"matrix `{key}` uses list var `{spec[1:-1]}`, which is empty"
    elif is_str_list(spec):
        values = tuple(spec)  # type: ignore[arg-type]
        empty = f"matrix `{key}` is an empty list"
    else:
        reader.error(
            "matrix",
            f"matrix `{key}` must be a list of strings, got {describe(spec)}",
            hint=f'write {key} = ["a", "b"], {key} = "{{LISTVAR}}" or {key} = {{ glob = "dir/{{{key}}}.txt" }}',
        )
        return None
    if not values:
        reader.error("matrix", empty, hint="a matrix key needs at least one value")
        return None
    bad = [v for v in values if not VALUE_RE.fullmatch(v)]
    if bad:
        reader.error(
            "matrix",
            f"matrix `{key}` value {json.dumps(bad[0])} may only use letters, digits, '_', '.' and '-'",
            hint=VALUE_HINT,
        )
        return None
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        reader.error("matrix", f"matrix `{key}` lists `{repeated[0]}` twice")
        return None
    return values


def _matrix_glob(reader: TaskReader, key: str, spec: Mapping[str, Any]) -> Optional[Tuple[str, ...]]:
    """The values of `matrix = { key = { glob = "books/{key}.txt" } }`, from the files on disk now."""
    check_keys(spec, ("glob",), problems=reader.problems, at=reader.at("matrix"), label=f"task {reader.name}: matrix `{key}`: ")
    pattern = spec.get("glob")
    if not isinstance(pattern, str):
        got = "nothing" if pattern is None else describe(pattern)
        reader.error("matrix", f"matrix `{key}` needs `glob`, a string, got {got}",
                     hint=f'write {key} = {{ glob = "dir/{{{key}}}.txt" }}')
        return None
    try:
        values = values_from_files(pattern, key=key, scalars=reader.ctx.vars.scalars, disk=reader.ctx.disk)
    except PatternError as exc:
        reader.error("matrix", f"matrix `{key}` {exc.message}", hint=exc.hint)
        return None
    reader.ctx.file_values.append((f"task {reader.name}: matrix `{key}`", pattern, len(values)))
    return values


def _matrix_list_var(reader: TaskReader, key: str, spec: str) -> Optional[Tuple[str, ...]]:
    """The values of `matrix = { key = "{LISTVAR}" }`."""
    vars = reader.ctx.vars
    ref = _LIST_VAR_REF_RE.fullmatch(spec)
    if ref is None:
        reader.error("matrix", f'matrix `{key}` must be a list of values or "{{LISTVAR}}", got "{spec}"')
        return None
    var = ref.group(1)
    if var in vars.scalars:
        reader.error(
            "matrix",
            f"matrix `{key}` uses {{{var}}}, which is a text var, not a list var",
            hint=f'write {var} = ["...", "..."] in [vars]',
        )
        return None
    if var not in vars.lists:
        known = ", ".join(sorted(vars.lists)) or "(none)"
        reader.error(
            "matrix",
            f"matrix `{key}` uses unknown list var {{{var}}} (list vars: {known})",
            hint=did_you_mean(var, vars.lists),
        )
        return None
    return tuple(vars.lists[var])
