"""The Flowfile's JSON Schema agrees with the loader (flowmake/load/schema.py).

The corpus is every Flowfile the project has: the example, and every TOML
document written as a string in the tests (valid ones and the invalid
fixtures of the error tests alike). Each goes through the loader and the
schema. The loader's problems are sorted into those a schema can express
(an unknown key, a wrong type, a bad name or value) and those it cannot
(an unknown placeholder, a missing file, a cycle). Then:

- a Flowfile with an expressible problem must fail the schema;
- a Flowfile with none must pass it: editors must never flag what loads.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional

import jsonschema
import pytest
import tomli

from conftest import Project
from hypothesis import given
from test_property_loader import documents, make_project, scaled, toml_text
from flowmake.errors import FlowfileError
from flowmake.model import OVERLAP_POLICIES
from flowmake.load.drafts import TASK_KEYS
from flowmake.load.flowfile import TOP_KEYS, load_with_problems
from flowmake.load.schedules import SCHEDULE_KEYS
from flowmake.load.schema import SCHEMA_DIRECTIVE, schema_text
from flowmake.load.sections import FLOW_KEYS, HOOK_KEYS

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads(schema_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)

# Loader messages a schema can express: the key, the type, the shape, a name or value pattern.
EXPRESSIBLE = re.compile("|".join([
    r"unknown key `", r"must be a table", r"must be a string", r"must be a list", r"must be an integer",
    r"must be true or false", r"must be one of", r"must be a file path", r"must be a duration",
    r"is not a duration", r"must be a positive duration", r"must be more than zero", r"must be 0 or more",
    r"task name `[^`]*` is not valid", r"is not a valid environment variable name", r"is not a valid variable name",
    r"var name `[^`]*` (is reserved|must be)", r"group name `[^`]*` must be", r"is an empty list",
    r"may only use letters, digits", r"lists `[^`]*` twice", r"is not a usable placeholder name",
    r"is not an http:// or https:// URL", r"`shell` is empty", r"needs `glob`", r"has no `run`",
    r"declares outputs but has no `run`", r"must be a list of values or", r"must be a table of lists",
    r"needs `cron`", r"unknown `overlap` value", r"schedule name `[^`]*` must be",
    r"must be a positive number or a size", r"resource name `[^`]*` must be", r"must be a scheduler address",
    r"must be a directory or URL",
]))


def toml_strings() -> Dict[str, str]:
    """Every string constant in tests/*.py that is a TOML document with a Flowfile table, by where it is."""
    found: Dict[str, str] = {}
    for source in sorted((REPO / "tests").glob("*.py")):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            text = textwrap.dedent(node.value)
            if not re.search(r"^\[(flow|vars|env|hooks|tasks[.\]])", text, flags=re.M):
                continue
            try:
                tomli.loads(text)
            except tomli.TOMLDecodeError:
                continue
            found.setdefault(text, f"{source.name}:{node.lineno}")
    return {where: text for text, where in found.items()}


def corpus() -> Dict[str, str]:
    cases = {"examples/Flowfile.toml": (REPO / "examples" / "Flowfile.toml").read_text()}
    cases.update(toml_strings())
    return cases


CASES = corpus()


def loader_problems(text: str, root: Path) -> Optional[List[str]]:
    path = root / "Flowfile.toml"
    path.write_text(text)
    try:
        _flowfile, problems = load_with_problems(path)
    except FlowfileError:
        return None  # unreadable as a whole: nothing for a schema to compare
    return [p.message for p in problems]


def test_the_corpus_is_large_and_has_both_kinds() -> None:
    assert len(CASES) > 200, len(CASES)


@pytest.mark.parametrize("where", sorted(CASES))
def test_the_schema_and_the_loader_agree(where: str, project: Project) -> None:
    text = CASES[where]
    if where.startswith("examples/"):
        import shutil

        shutil.copytree(REPO / "examples", project.root, dirs_exist_ok=True)
    why = disagreement(project.root, text)
    assert why is None, f"{where}: {why}\n{text}"


def test_the_schema_has_exactly_the_loaders_keys() -> None:
    props = SCHEMA["properties"]
    assert sorted(props) == sorted(TOP_KEYS)
    assert sorted(props["flow"]["properties"]) == sorted(FLOW_KEYS)
    assert sorted(props["hooks"]["properties"]) == sorted(HOOK_KEYS)
    assert sorted(props["tasks"]["additionalProperties"]["properties"]) == sorted(TASK_KEYS)
    assert sorted(props["schedules"]["additionalProperties"]["properties"]) == sorted(SCHEDULE_KEYS)
    assert props["schedules"]["additionalProperties"]["properties"]["overlap"]["enum"] == list(OVERLAP_POLICIES)


def test_every_key_has_a_description_for_editors() -> None:
    def walk(node: dict, where: str) -> None:
        for key, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{where}.{key} has no description"
            walk(sub, f"{where}.{key}")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            walk(extra, where + ".*")

    walk(SCHEMA, "")
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_flowmake_schema_prints_it_and_init_points_editors_at_it(project: Project) -> None:
    result = project.run("schema")
    assert result.returncode == 0 and json.loads(result.stdout) == SCHEMA, result
    assert project.run("init").returncode == 0
    flowfile = project.read("Flowfile.toml")
    assert flowfile.splitlines()[0] == SCHEMA_DIRECTIVE
    copy = project.path(".flowmake/flowfile.schema.json")
    assert json.loads(copy.read_text()) == SCHEMA
    VALIDATOR.validate(tomli.loads(flowfile))
    copy.write_text("{}")
    assert project.run("check").returncode == 0
    assert json.loads(copy.read_text()) == SCHEMA  # check brings the editors' copy up to date


def test_schema_o_writes_a_file(project: Project) -> None:
    assert project.run("schema", "-o", "out/flowfile.schema.json").returncode == 0
    assert json.loads(project.read("out/flowfile.schema.json")) == SCHEMA


def disagreement(root: Path, text: str) -> Optional[str]:
    """Why the loader and the schema disagree about `text`, or None when they agree."""
    problems = loader_problems(text, root)
    if problems is None:
        return None
    expressible = [m for m in problems if EXPRESSIBLE.search(m)]
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(tomli.loads(text))]
    if expressible and not errors:
        return f"the loader says {expressible}, the schema accepts it"
    if not expressible and errors:
        return f"the loader accepts it (or finds only {problems}), the schema says {errors}"
    return None


@scaled(4)
@given(document=documents())
def test_fuzzed_flowfiles_the_schema_and_the_loader_agree(tmp_path: Path, document: Dict[str, Any]) -> None:
    text = toml_text(document)
    if text is None:
        return
    why = disagreement(make_project(tmp_path), text)
    assert why is None, f"{why}\n{text}"


# One problem each (and their valid neighbours): every rule the schema encodes is tried on its own.
SINGLE = [
    '[tasks.t]\nrun = "x"\nresources = { gpu = 1, memory = "8GB" }', '[tasks.t]\nrun = "x"\nresources = { gpu = 0 }',
    '[tasks.t]\nrun = "x"\nresources = { memory = "0GB" }', '[tasks.t]\nrun = "x"\nresources = { memory = "8 parsecs" }',
    '[tasks.t]\nrun = "x"\nresources = { "a b" = 1 }', '[tasks.t]\nrun = "x"\nresources = 2',
    '[flow]\nexecutor = "dask"\nscheduler = "tcp://h:1"\n[tasks.t]\nrun = "x"', '[flow]\nexecutor = "slurm"\n[tasks.t]\nrun = "x"',
    '[flow]\nscheduler = ""\n[tasks.t]\nrun = "x"',
    '[tasks.t]\nrun = "x"\nretries = -1', '[tasks.t]\nrun = "x"\nretries = 0',
    '[tasks.t]\nrun = "x"\ntimeout = "0s"', '[tasks.t]\nrun = "x"\ntimeout = "1h30m"', '[tasks.t]\nrun = "x"\ntimeout = 0',
    '[tasks.t]\nrun = "x"\nretry_delay = 0', '[tasks.t]\nrun = "x"\nretry_delay = "90"', '[tasks.t]\nrun = "x"\nwait_poll = true',
    '[tasks.t]\nrun = "x"\nmatrix = { s = ["a", "a"] }', '[tasks.t]\nrun = "x {s}"\nmatrix = { s = ["a", "b c"] }',
    '[tasks.t]\nrun = "x"\nmatrix = {}', '[tasks.t]\nrun = "x"\nmatrix = { s = [] }',
    '[tasks.t]\nrun = "x"\nmatrix = { inputs = ["a"] }', '[tasks.t]\nrun = "x"\nmatrix = { s = { glob = 3 } }',
    '[vars]\nl = ["a"]\n[tasks.t]\nrun = "x {s}"\nmatrix = { s = "{l}" }', '[tasks.t]\nrun = "x"\nmatrix = { s = "l" }',
    '[tasks.t]\nafter = ["u"]\n[tasks.u]\nrun = "x"', '[tasks.t]\nhelp = "no run"', '[tasks.t]\nafter = []',
    '[tasks.t]\nafter = ["u"]\noutputs = ["o"]\n[tasks.u]\nrun = "x"',
    '[tasks.t]\nafter = ["u"]\noutputs = []\n[tasks.u]\nrun = "x"',
    '[tasks."bad name"]\nrun = "x"', '[tasks.t]\nrun = "x"\nenv = { "1X" = "a" }', '[tasks.t]\nrun = "x"\nenv = { X = 1 }',
    '[tasks.t]\nrun = "x"\nsecrets = ["A-B"]', '[tasks.t]\nrun = "x"\nenv_inputs = ["HOME"]',
    '[tasks.t]\nrun = "x"\noutputs = { "a-b" = ["o"] }', '[tasks.t]\nrun = "x"\noutputs = { o = ["o"] }',
    '[tasks.t]\nrun = "x"\nshell = "  "', '[tasks.t]\nrun = "x"\nshell = "bash -c"', '[tasks.t]\nrun = "x"\nalways = 1',
    '[tasks.t]\nrun = "x"\nrunn = "y"', '[flow]\njobs = 0\n[tasks.t]\nrun = "x"', '[flow]\njobs = 3\n[tasks.t]\nrun = "x"',
    '[flow]\noutput = "all"\n[tasks.t]\nrun = "x"', '[flow]\ndefault = "t"\n[tasks.t]\nrun = "x"',
    '[flow]\njunit_xml = ""\n[tasks.t]\nrun = "x"', '[flow]\nname = 1\n[tasks.t]\nrun = "x"',
    '[vars]\ninputs = "x"\n[tasks.t]\nrun = "x"', '[vars]\nv = 1\n[tasks.t]\nrun = "x"',
    '[vars]\nv = { glob = "src/{i}.txt", x = 1 }\n[tasks.t]\nrun = "x"', '[env]\nTZ = "UTC"\n[tasks.t]\nrun = "x"',
    '[hooks]\nwebhook = "ftp://x"\n[tasks.t]\nrun = "x"', '[hooks]\non_success = "echo ok"\n[tasks.t]\nrun = "x"',
    'tasks = 3', '[tasks]\nt = 3', '[other]\n[tasks.t]\nrun = "x"',
    '[schedules.n]\ncron = "0 5 * * *"\ntargets = ["t"]\n[tasks.t]\nrun = "x"',
    '[schedules.n]\ntargets = "t"\n[tasks.t]\nrun = "x"', '[schedules.n]\ncron = "0 5 * * *"\novrlap = 1\n[tasks.t]\nrun = "x"',
    '[schedules.n]\ncron = "0 5 * * *"\noverlap = "wait"\n[tasks.t]\nrun = "x"',
    '[schedules."n x"]\ncron = "0 5 * * *"\n[tasks.t]\nrun = "x"', 'schedules = 1\n[tasks.t]\nrun = "x"',
]


@pytest.mark.parametrize("text", SINGLE)
def test_one_rule_at_a_time_the_schema_and_the_loader_agree(text: str, tmp_path: Path) -> None:
    why = disagreement(make_project(tmp_path), text + "\n")
    assert why is None, f"{why}\n{text}"
