"""`flowmake list --json` and `flowmake graph --format json` (docs/json.md)."""

from __future__ import annotations

import json

from conftest import Project

FLOWFILE = """
    [flow]
    include = ["more.toml"]

    [tasks.extract]
    help = "Copy the raw files"
    matrix = { study = ["S01", "S02"], site = ["EU"] }
    inputs = ["raw/{study}.csv"]
    outputs = ["build/{study}/{site}.csv"]
    run = "cp {inputs} {outputs}"

    [tasks.package]
    after = ["extract"]
    inputs = ["build/S01/EU.csv"]
    outputs = ["dist/"]
    run = "mkdir -p dist"
"""

MORE = """
    [tasks.publish]
    inputs = ["dist/"]
    always = true
    run = "true"
"""


def write(project: Project) -> None:
    project.flowfile(FLOWFILE)
    project.write("more.toml", MORE)
    project.write("raw/S01.csv", "a\n")
    project.write("raw/S02.csv", "b\n")


def test_list_json_has_every_variant_with_its_values_paths_deps_and_place(project: Project) -> None:
    write(project)
    result = project.run("list", "--json")
    assert result.returncode == 0, result
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert list(rows) == ["extract:S01:EU", "extract:S02:EU", "package", "publish"]
    assert rows["extract:S02:EU"] == {
        "name": "extract:S02:EU", "group": "extract", "help": "Copy the raw files",
        "matrix": {"study": "S02", "site": "EU"}, "inputs": ["raw/S02.csv"], "outputs": ["build/S02/EU.csv"],
        "after": [], "deps": [], "always": False, "file": "Flowfile.toml", "line": 5}
    assert rows["package"]["after"] == ["extract:S01:EU", "extract:S02:EU"]
    assert sorted(rows["package"]["deps"]) == ["extract:S01:EU", "extract:S02:EU"]
    assert (rows["publish"]["file"], rows["publish"]["line"], rows["publish"]["always"]) == ("more.toml", 2, True)


def test_graph_json_names_the_files_behind_each_edge(project: Project) -> None:
    write(project)
    result = project.run("graph", "package", "--format", "json")
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data["version"] == 1
    assert [n["name"] for n in data["nodes"]] == ["extract:S01:EU", "extract:S02:EU", "package"]
    assert data["edges"] == [
        {"from": "extract:S01:EU", "to": "package", "files": ["build/S01/EU.csv"], "after": True},
        {"from": "extract:S02:EU", "to": "package", "files": [], "after": True},
    ]
    full = json.loads(project.run("graph", "--format", "json").stdout)
    assert {"from": "package", "to": "publish", "files": ["dist/"], "after": False} in full["edges"]


def test_an_unknown_graph_format_lists_json_among_the_choices(project: Project) -> None:
    write(project)
    result = project.run("graph", "--format", "yaml")
    assert result.returncode == 2
    assert "use one of: text, dot, mermaid, json" in result.stderr
