"""Hostile Flowfile shapes are Flowfile errors (exit 2, file and line), never internal ones."""

from __future__ import annotations

import pytest
from conftest import Project

TASK = '[tasks.a]\nrun = "true"\n'

SHAPES = {
    "inline-arrays-5000-deep": (TASK + "x = " + "[" * 5000 + "]" * 5000 + "\n", 3),
    "inline-tables-3000-deep": (TASK + "x = " + "{a=" * 3000 + "1" + "}" * 3000 + "\n", 3),
    "dotted-key-of-5000-parts": (TASK + ".".join(["k"] * 5000) + " = 1\n", 3),
    "dotted-var-key-of-5000-parts": ("[vars]\n" + ".".join(["k"] * 5000) + " = 1\n" + TASK, 2),
    "deep-array-in-env": (TASK + "env = { X = " + "[" * 2000 + "]" * 2000 + " }\n", 3),
}


@pytest.mark.parametrize("command", ["check", "run", "status"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_deeply_nested_flowfile_is_exit_2_with_file_and_line(project: Project, shape: str, command: str) -> None:
    text, line = SHAPES[shape]
    project.write("Flowfile.toml", text, dedent=False)
    result = project.run(command)
    assert result.returncode == 2, result
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, result
    assert f"Flowfile.toml:{line}: error: too deep for a Flowfile" in result.stderr, result
    assert "hint:" in result.stderr, result
