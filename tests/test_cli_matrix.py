"""Matrix tasks and list vars through the real CLI (issue 3, item 1).

Variants are named TASK:V1[:V2..] in product order; a bare matrix name on the
command line, in `after`, in `status` and `graph` stands for all of them; a
list var expands an inputs/outputs entry once per item (the product over
several) and a `run` word like shell brace expansion. Bad matrices, unknown
variants, bad durations and negative retries are usage errors (exit 2) with
one clear message. A 200-study pipeline loads and plans (speed itself is
measured in benchmarks/, not here).
"""

from __future__ import annotations

import json

import pytest
from conftest import Project

TWO_KEYS = """\
    [vars]
    studies = ["S01", "S02"]

    [tasks.extract]
    help = "split by site"
    matrix = { study = "{studies}", site = ["EU", "US"] }
    inputs = ["in/{study}.csv"]
    outputs = ["build/{study}/{site}.csv"]
    run = "cp {inputs} {outputs}"
"""

ALL_EXTRACT = ["extract:S01:EU", "extract:S01:US", "extract:S02:EU", "extract:S02:US"]

# extract:S -> clean:S by file; package reads every clean variant through a list var.
CHAIN = """\
    [vars]
    studies = ["S01", "S02", "S03"]

    [tasks.extract]
    matrix = { study = "{studies}" }
    inputs = ["in/{study}.csv"]
    outputs = ["build/extract/{study}.csv"]
    run = "cp {inputs} {outputs}"

    [tasks.clean]
    matrix = { study = "{studies}" }
    inputs = ["build/extract/{study}.csv"]
    outputs = ["build/clean/{study}.csv"]
    run = "cp {inputs} {outputs}"

    [tasks.package]
    inputs = ["build/clean/{studies}.csv"]
    outputs = ["dist/all.csv"]
    run = "cat {inputs} > {outputs}"
"""


def sources(project: Project, *studies: str) -> None:
    for study in studies:
        project.write(f"in/{study}.csv", f"{study}\n")


def two_keys(project: Project) -> None:
    project.flowfile(TWO_KEYS)
    sources(project, "S01", "S02")


def chain(project: Project) -> None:
    project.flowfile(CHAIN)
    sources(project, "S01", "S02", "S03")


# -- names and selection ----------------------------------------------------------


def test_variants_are_named_task_and_values_in_product_order(project: Project) -> None:
    two_keys(project)
    result = project.json_run("-j", "1")
    assert result.returncode == 0, result
    assert result.one("run_started")["targets"] == ALL_EXTRACT
    assert result.started == ALL_EXTRACT  # -j 1: they start in that order
    for name in ALL_EXTRACT:
        _, study, site = name.split(":")
        assert project.read(f"build/{study}/{site}.csv") == f"{study}\n"
        assert result.started_event(name)["command"] == f"cp in/{study}.csv build/{study}/{site}.csv"


def test_run_with_the_bare_matrix_name_runs_every_variant(project: Project) -> None:
    two_keys(project)
    project.flowfile(TWO_KEYS + """
    [tasks.unrelated]
    outputs = ["u.txt"]
    run = "echo u > u.txt"
    """)
    result = project.json_run("extract")
    assert result.returncode == 0, result
    assert result.ran == sorted(ALL_EXTRACT)
    assert set(result.statuses) == set(ALL_EXTRACT)
    assert not project.exists("u.txt")


def test_run_one_variant_runs_only_it_and_its_upstream_closure(project: Project) -> None:
    chain(project)
    result = project.json_run("clean:S02")
    assert result.returncode == 0, result
    assert result.started == ["extract:S02", "clean:S02"]
    assert set(result.statuses) == {"extract:S02", "clean:S02"}
    assert result.one("run_started")["targets"] == ["clean:S02"]
    assert project.read("build/clean/S02.csv") == "S02\n"
    for study in ("S01", "S03"):
        assert not project.exists(f"build/extract/{study}.csv")
        assert not project.exists(f"build/clean/{study}.csv")
    assert not project.exists("dist/all.csv")


def test_after_with_a_matrix_name_waits_for_every_variant(project: Project) -> None:
    # The variants take different times; `fin` may start only after the slowest.
    project.flowfile("""\
        [tasks.extract]
        matrix = { study = ["S01", "S02", "S03"] }
        outputs = ["t/{study}.end"]
        run = "case {study} in S01) sleep 0.4;; S02) sleep 0.1;; esac; date +%s.%N > t/{study}.end"

        [tasks.fin]
        after = ["extract"]
        outputs = ["t/fin.start"]
        run = "date +%s.%N > t/fin.start"
    """)
    result = project.json_run("-j", "4", "fin")
    assert result.returncode == 0, result
    variants = ["extract:S01", "extract:S02", "extract:S03"]
    assert result.ran == sorted(variants + ["fin"])
    events = result.events
    fin_started = next(i for i, e in enumerate(events) if e["event"] == "task_started" and e["task"] == "fin")
    for name in variants:
        done = next(i for i, e in enumerate(events) if e["event"] == "task_finished" and e["task"] == name)
        assert done < fin_started, f"fin started before {name} finished\n{result!r}"
    fin_start = float(project.read("t/fin.start"))
    for study in ("S01", "S02", "S03"):
        assert float(project.read(f"t/{study}.end")) <= fin_start


def test_after_with_a_matrix_placeholder_pairs_each_variant_with_its_own(project: Project) -> None:
    project.flowfile("""\
        [tasks.prep]
        matrix = { study = ["S01", "S02"] }
        outputs = ["prep/{study}.txt"]
        run = "echo {study} > prep/{study}.txt"

        [tasks.load]
        matrix = { study = ["S01", "S02"] }
        after = ["prep:{study}"]
        outputs = ["load/{study}.txt"]
        run = "cp prep/{study}.txt load/{study}.txt"
    """)
    graph = project.run("graph")
    assert graph.returncode == 0, graph
    assert {line.strip() for line in graph.lines if "->" in line} == {
        "prep:S01 -> load:S01", "prep:S02 -> load:S02"}, graph
    result = project.json_run("load:S02")
    assert result.returncode == 0, result
    assert result.started == ["prep:S02", "load:S02"]


def test_force_with_a_matrix_name_forces_every_variant(project: Project) -> None:
    chain(project)
    assert project.json_run().returncode == 0
    result = project.json_run("--force", "extract")
    assert result.returncode == 0, result
    assert result.ran == ["extract:S01", "extract:S02", "extract:S03"]
    for name in result.ran:
        assert [r["kind"] for r in result.reasons(name)] == ["forced"]


def test_the_tree_groups_variants_under_their_task(project: Project) -> None:
    chain(project)
    result = project.run("run", "--progress", "tree")
    assert result.returncode == 0, result
    lines = result.lines
    group = next(i for i, line in enumerate(lines) if line.lstrip("├└│─ ").startswith("extract "))
    children = lines[group + 1:group + 4]
    assert [line.split()[-2] for line in children] == ["extract:S01", "extract:S02", "extract:S03"], result
    assert all(line.index("extract:") > lines[group].index("extract") for line in children), result


# -- list vars ----------------------------------------------------------------------


def test_list_var_in_inputs_expands_the_entry_once_per_item(project: Project) -> None:
    project.flowfile("""\
        [vars]
        studies = ["S01", "S02", "S03"]

        [tasks.merge]
        inputs = ["in/{studies}.csv"]
        outputs = ["all.csv"]
        run = "cat {inputs} > {outputs}"
    """)
    sources(project, "S01", "S02", "S03")
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.started_event("merge")["command"] == "cat in/S01.csv in/S02.csv in/S03.csv > all.csv"
    assert project.read("all.csv") == "S01\nS02\nS03\n"
    run_id = result.run_id
    attempt = project.run("log", run_id, "--json")
    assert attempt.returncode == 0, attempt
    inputs = json.loads(attempt.stdout)["attempts"][0]["inputs"]
    assert sorted(inputs) == ["in/S01.csv", "in/S02.csv", "in/S03.csv"]


def test_two_list_vars_in_one_output_entry_give_their_product(project: Project) -> None:
    project.flowfile("""\
        [vars]
        studies = ["S01", "S02"]
        domains = ["dm", "vs", "ae"]

        [tasks.split]
        outputs = ["out/{studies}_{domains}.txt"]
        run = "for f in {outputs}; do echo $f > $f; done"
    """)
    result = project.json_run()
    assert result.returncode == 0, result
    expected = [f"out/{s}_{d}.txt" for s in ("S01", "S02") for d in ("dm", "vs", "ae")]
    assert result.started_event("split")["command"] == f"for f in {' '.join(expected)}; do echo $f > $f; done"
    for path in expected:
        assert project.read(path) == f"{path}\n"


def test_list_var_in_a_run_word_repeats_the_word_like_brace_expansion(project: Project) -> None:
    project.flowfile("""\
        [vars]
        studies = ["S01", "S02"]

        [tasks.show]
        inputs = ["in/S01.csv", "in/S02.csv"]
        outputs = ["shown.txt"]
        run = "cat in/{studies}.csv > shown.txt"
    """)
    sources(project, "S01", "S02")
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.started_event("show")["command"] == "cat in/S01.csv in/S02.csv > shown.txt"
    assert project.read("shown.txt") == "S01\nS02\n"


# -- list, status, graph --------------------------------------------------------------


def test_list_shows_a_matrix_task_once_with_its_variants(project: Project) -> None:
    two_keys(project)
    result = project.run("list")
    assert result.returncode == 0, result
    lines = [line for line in result.lines if line.split()[:1] == ["extract"]]
    assert len(lines) == 1, result
    line = lines[0]
    assert "split by site" in line
    assert "4 variants" in line
    positions = [line.index(name) for name in ALL_EXTRACT]
    assert positions == sorted(positions), f"variants not in product order: {line}"


def test_status_shows_every_variant_and_a_bare_name_selects_them_all(project: Project) -> None:
    chain(project)
    everything = project.status()
    for study in ("S01", "S02", "S03"):
        assert f"extract:{study}" in everything and f"clean:{study}" in everything
    assert "package" in everything
    assert "extract" not in everything and "clean" not in everything

    assert project.json_run("clean:S01").returncode == 0
    only_extract = project.status("extract")
    assert set(only_extract) == {"extract:S01", "extract:S02", "extract:S03"}
    assert only_extract["extract:S01"]["state"] == "fresh"
    assert only_extract["extract:S02"]["state"] == "stale"

    text = project.run("status")
    assert text.returncode == 0, text
    shown = {line.split()[1]: line.split()[0] for line in text.lines if len(line.split()) > 1
             and line.split()[0] in ("fresh", "stale", "blocked")}
    assert shown["clean:S01"] == "fresh" and shown["clean:S02"] in ("stale", "blocked"), text


def test_graph_has_an_edge_from_each_variant_to_its_own_downstream_variant(project: Project) -> None:
    chain(project)
    result = project.run("graph")
    assert result.returncode == 0, result
    edges = {line.strip() for line in result.lines if "->" in line}
    for study in ("S01", "S02", "S03"):
        assert f"extract:{study} -> clean:{study}" in edges, result
        assert f"clean:{study} -> package" in edges, result
    assert "extract:S01 -> clean:S02" not in edges
    assert not any(e.startswith("extract ") or e.endswith(" clean") for e in edges), result
    assert len(edges) == 6, result


# -- errors -----------------------------------------------------------------------------

BAD_FLOWFILES = {
    "matrix_over_unknown_var": ('matrix = { study = "{sutdies}" }', ["sutdies"]),
    "empty_matrix_list": ('matrix = { study = [] }', ["study", "empty"]),
    "bad_duration": ('timeout = "10 minutes"', ["timeout", "10 minutes"]),
    "bad_wait_duration": ('wait_for = ["x"]\nwait_poll = "10 minutes"', ["wait_poll", "10 minutes"]),
    "negative_retries": ('retries = -1', ["retries", "-1"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FLOWFILES))
def test_invalid_matrix_duration_or_retries_exit_2_with_one_clear_message(project: Project, case: str) -> None:
    line, words = BAD_FLOWFILES[case]
    project.write("Flowfile.toml", (
        '[vars]\nstudies = ["S01", "S02"]\n\n[tasks.t]\n' + line
        + '\noutputs = ["ran.txt"]\nrun = "echo ran > ran.txt"\n'), dedent=False)
    result = project.json_run()
    assert result.returncode == 2, result
    assert result.stdout == ""
    errors = [l for l in result.err_lines if "error:" in l]
    assert len(errors) == 1, result
    assert "Flowfile.toml" in errors[0] and "task t" in errors[0], result
    for word in words:
        assert word in errors[0], result
    assert "Traceback" not in result.stderr
    assert not project.exists("ran.txt")
    assert not project.path(".flowmake/logs").exists()


def test_a_variant_that_does_not_exist_is_an_unknown_target_with_did_you_mean(project: Project) -> None:
    project.flowfile("""\
        [tasks.extract]
        matrix = { study = ["alpha", "beta"] }
        outputs = ["{study}.txt"]
        run = "echo {study} > {study}.txt"
    """)
    result = project.json_run("extract:betta")
    assert result.returncode == 2, result
    assert result.stdout == ""
    errors = [l for l in result.err_lines if "error:" in l]
    assert len(errors) == 1, result
    assert "extract:betta" in errors[0]
    assert "did you mean 'extract:beta'?" in result.stderr, result
    assert "Traceback" not in result.stderr
    assert not project.exists("alpha.txt") and not project.exists("beta.txt")

    missing = project.json_run("extract:gamma")
    assert missing.returncode == 2, missing
    assert "extract:gamma" in missing.stderr and "did you mean" in missing.stderr, missing


def test_after_naming_a_variant_that_does_not_exist_is_a_flowfile_error(project: Project) -> None:
    project.flowfile("""\
        [tasks.extract]
        matrix = { study = ["alpha", "beta"] }
        run = "true"

        [tasks.fin]
        after = ["extract:gamma"]
        run = "true"
    """)
    result = project.json_run()
    assert result.returncode == 2, result
    errors = [l for l in result.err_lines if "error:" in l]
    assert len(errors) == 1 and "extract:gamma" in errors[0], result


# -- scale -------------------------------------------------------------------------------


def test_a_200_study_matrix_of_5_steps_loads_and_plans(project: Project) -> None:
    studies = [f"S{i:03d}" for i in range(200)]
    for study in studies:
        project.write(f"raw/{study}.csv", f"{study}\n")
    steps = ["extract", "clean", "transform", "validate", "package"]
    text = "[vars]\nstudies = [" + ", ".join(f'"{s}"' for s in studies) + "]\n"
    previous = "raw/{study}.csv"
    for step in steps:
        output = f"build/{step}/{{study}}.csv"
        text += (f'\n[tasks.{step}]\nmatrix = {{ study = "{{studies}}" }}\n'
                 f'inputs = ["{previous}"]\noutputs = ["{output}"]\nrun = "cp {{inputs}} {{outputs}}"\n')
        previous = output
    project.write("Flowfile.toml", text, dedent=False)

    result = project.json_run("-n")
    assert result.returncode == 0, result
    started = result.one("run_started")
    assert started["task_count"] == 1000
    plan = started["plan"]
    assert len(plan) == 1000
    assert {row["task"] for row in plan} == {f"{step}:{s}" for step in steps for s in studies}
    assert result.one("run_finished")["dry_run"] is True
    assert not project.path("build").exists()

    listing = project.run("list")
    assert listing.returncode == 0, listing
    rows = {line.split()[0]: line for line in listing.lines if line.strip()}
    assert sorted(rows) == sorted(steps), listing
    assert all("200 variants" in line for line in rows.values()), listing
