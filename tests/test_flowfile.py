"""The Flowfile loader: what a valid file expands to, and how each mistake is reported.

Every test writes a real Flowfile.toml (and the files it names) into tmp_path
and calls `load`. Error tests assert the message content and the line it
points at, since that is what `flowmake check` shows the user.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterable, List

import pytest
from blake3 import blake3

from flowmake.errors import FlowError, FlowfileError, FlowfileErrors
from flowmake.load.flowfile import (
    find_flowfile,
    glob_to_regex,
    load,
    load_with_problems,
    parse_duration,
)
from flowmake.model import DEFAULT_SHELL, Flowfile


def write(root: Path, text: str, *, files: Iterable[str] = ()) -> Path:
    for name in files:
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
    flowfile = root / "Flowfile.toml"
    flowfile.write_text(textwrap.dedent(text).lstrip("\n"))
    return flowfile


def load_text(root: Path, text: str, *, files: Iterable[str] = ()) -> Flowfile:
    return load(write(root, text, files=files))


def errors_of(root: Path, text: str, *, files: Iterable[str] = ()) -> List[FlowError]:
    with pytest.raises(FlowfileErrors) as info:
        load_text(root, text, files=files)
    return info.value.errors


def only_error(root: Path, text: str, *, files: Iterable[str] = ()) -> FlowError:
    errors = errors_of(root, text, files=files)
    assert len(errors) == 1, [e.render() for e in errors]
    return errors[0]


# --------------------------------------------------------------------------
# finding the file


def test_find_flowfile_searches_parents(tmp_path: Path) -> None:
    write(tmp_path, "")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert find_flowfile(sub) == tmp_path / "Flowfile.toml"


def test_find_flowfile_explicit_path_is_relative_to_cwd(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "other.toml").write_text("")
    assert find_flowfile(tmp_path, Path("conf/other.toml")) == tmp_path / "conf" / "other.toml"


def test_find_flowfile_explicit_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FlowfileError, match="does not exist"):
        find_flowfile(tmp_path, Path("nope.toml"))


def test_find_flowfile_none_found_hints_at_init(tmp_path: Path) -> None:
    with pytest.raises(FlowfileError) as info:
        find_flowfile(tmp_path)
    # tmp_path's parents hold no Flowfile.toml in a sane test environment
    assert "no Flowfile.toml in" in info.value.message
    assert "flowmake init" in (info.value.hint or "")


# --------------------------------------------------------------------------
# what a valid file becomes


def test_spec_example_expands_matrix_list_vars_and_after(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [flow]
        name = "study-pipeline"
        default = ["package"]
        jobs = 4

        [vars]
        raw = "data/raw"
        studies = ["S01", "S02"]

        [env]
        TZ = "UTC"

        [tasks.extract]
        help = "Copy the export"
        matrix = { study = "{studies}" }
        inputs = ["{raw}/{study}/dm.csv", "scripts/extract.py"]
        outputs = ["build/{study}/dm.csv"]
        run = "python scripts/extract.py {inputs[0]} {outputs}"

        [tasks.validate]
        matrix = { study = "{studies}" }
        inputs = ["build/{study}/dm.csv"]
        run = "python scripts/validate.py {inputs[0]}"

        [tasks.package]
        after = ["validate"]
        inputs = ["build/{studies}/dm.csv"]
        outputs = ["dist/submission.zip"]
        run = "python scripts/package.py {outputs} {inputs}"
        """,
        files=["data/raw/S01/dm.csv", "data/raw/S02/dm.csv", "scripts/extract.py"],
    )
    assert list(flow.tasks) == ["extract:S01", "extract:S02", "validate:S01", "validate:S02", "package"]
    assert (flow.name, flow.default, flow.jobs, flow.root) == ("study-pipeline", ("package",), 4, tmp_path.resolve())
    extract = flow.tasks["extract:S02"]
    assert extract.group == "extract"
    assert extract.matrix == (("study", "S02"),)
    assert extract.inputs == ("data/raw/S02/dm.csv", "scripts/extract.py")
    assert extract.command == "python scripts/extract.py data/raw/S02/dm.csv build/S02/dm.csv"
    assert extract.env == (("TZ", "UTC"),)
    assert extract.help == "Copy the export"
    assert extract.line == 13
    package = flow.tasks["package"]
    assert package.after == ("validate:S01", "validate:S02")
    assert package.inputs == ("build/S01/dm.csv", "build/S02/dm.csv")
    assert package.command == "python scripts/package.py dist/submission.zip build/S01/dm.csv build/S02/dm.csv"
    assert flow.groups()["extract"] == ("extract:S01", "extract:S02")


def test_defaults_name_is_root_dir_and_shell_is_sh_c(tmp_path: Path) -> None:
    flow = load_text(tmp_path, '[tasks.hello]\nrun = "echo hi"\n')
    spec = flow.tasks["hello"]
    assert flow.name == tmp_path.name
    assert flow.default is None and flow.jobs is None
    assert spec.shell == DEFAULT_SHELL
    assert (spec.wait_timeout, spec.wait_poll, spec.retries, spec.retry_delay, spec.timeout) == (
        3600.0,
        5.0,
        0,
        0.0,
        None,
    )
    assert spec.command == "echo hi"


def test_source_hash_is_blake3_of_the_file_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, '[tasks.hello]\nrun = "echo hi"\n')
    assert load(path).source_hash == blake3(path.read_bytes()).hexdigest()


def test_file_lists_in_run_are_shell_quoted_and_vars_are_raw(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [vars]
        opts = "--fast --level 3"
        [tasks.t]
        inputs = ["my data.csv", "it's.csv"]
        outputs = ["out/x y.txt"]
        run = "tool {opts} {inputs} -o {outputs[0]} {{literal}}"
        """,
        files=["my data.csv", "it's.csv"],
    )
    assert flow.tasks["t"].command == "tool --fast --level 3 'my data.csv' 'it'\"'\"'s.csv' -o 'out/x y.txt' {literal}"


def test_list_var_in_run_expands_its_word_like_brace_expansion(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [vars]
        studies = ["S01", "S02"]
        sites = ["EU", "US"]
        [tasks.t]
        run = "cat sorted/{studies}.bam | x {studies}-{sites}.txt  end"
        """,
    )
    assert (
        flow.tasks["t"].command
        == "cat sorted/S01.bam sorted/S02.bam | x S01-EU.txt S01-US.txt S02-EU.txt S02-US.txt  end"
    )


def test_list_vars_in_inputs_expand_to_their_product_in_order(tmp_path: Path) -> None:
    files = [f"d/{s}_{x}.csv" for s in ("a", "b") for x in ("1", "2")]
    flow = load_text(
        tmp_path,
        """
        [vars]
        s = ["a", "b"]
        x = ["1", "2"]
        [tasks.t]
        inputs = ["d/{s}_{x}.csv"]
        run = "true"
        """,
        files=files,
    )
    assert flow.tasks["t"].inputs == tuple(files)


def test_input_and_output_groups_give_named_placeholders(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [tasks.align]
        inputs = { bam = ["s/a.bam", "s/b.bam"], index = ["genome.fa.fai", "s/a.bam"] }
        outputs = { table = ["out/t.tsv"], log = ["out/run.log"] }
        run = "tool {inputs.bam} --first {inputs.bam[1]} > {outputs.table} 2> {outputs.log[0]}"
        """,
        files=["s/a.bam", "s/b.bam", "genome.fa.fai"],
    )
    spec = flow.tasks["align"]
    assert spec.inputs == ("s/a.bam", "s/b.bam", "genome.fa.fai")  # duplicates dropped, first kept
    assert spec.input_groups == {"bam": ("s/a.bam", "s/b.bam"), "index": ("genome.fa.fai", "s/a.bam")}
    assert spec.outputs == ("out/t.tsv", "out/run.log")
    assert spec.output_groups == {"table": ("out/t.tsv",), "log": ("out/run.log",)}
    assert spec.command == "tool s/a.bam s/b.bam --first s/b.bam > out/t.tsv 2> out/run.log"


def test_matrix_variants_follow_product_order_of_declared_keys(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [tasks.fit]
        matrix = { study = ["S01", "S02"], site = ["EU", "US"] }
        outputs = ["out/{study}-{site}.txt"]
        run = "fit {study} {site} > {outputs}"
        """,
    )
    assert list(flow.tasks) == ["fit:S01:EU", "fit:S01:US", "fit:S02:EU", "fit:S02:US"]
    spec = flow.tasks["fit:S02:EU"]
    assert spec.matrix == (("study", "S02"), ("site", "EU"))
    assert spec.command == "fit S02 EU > out/S02-EU.txt"


def test_after_accepts_groups_variants_and_matrix_placeholders(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [tasks.a]
        matrix = { s = ["x", "y"] }
        run = "true"
        [tasks.b]
        matrix = { s = ["x", "y"] }
        after = ["a:{s}"]
        run = "true"
        [tasks.all]
        after = ["a", "b:y", "a:x"]
        """,
    )
    assert flow.tasks["b:y"].after == ("a:y",)
    assert flow.tasks["all"].after == ("a:x", "a:y", "b:y")
    assert flow.tasks["all"].command is None  # a pure group task


def test_globs_match_files_and_other_tasks_outputs_sorted(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [tasks.make]
        outputs = ["data/b_made.csv", "data/sub/deep.csv"]
        run = "true"
        [tasks.use]
        inputs = ["data/*.csv", "data/**/*.csv"]
        outputs = ["data/own.csv"]
        run = "cat {inputs}"
        """,
        files=["data/c.csv", "data/a.csv", "data/own.csv", "data/x.txt", ".flowmake/data/z.csv"],
    )
    spec = flow.tasks["use"]
    # data/**/*.csv also matches data/*.csv (** may be empty); own output excluded
    assert spec.inputs == ("data/a.csv", "data/b_made.csv", "data/c.csv", "data/sub/deep.csv")


def test_glob_translator_keeps_star_within_one_directory() -> None:
    assert glob_to_regex("a/*.csv").fullmatch("a/x.csv")
    assert not glob_to_regex("a/*.csv").fullmatch("a/b/x.csv")
    assert glob_to_regex("a/**/x.csv").fullmatch("a/x.csv")
    assert glob_to_regex("a/**/x.csv").fullmatch("a/b/c/x.csv")
    assert glob_to_regex("a/[!b]?.csv").fullmatch("a/cd.csv")
    assert not glob_to_regex("a/[!b]?.csv").fullmatch("a/bd.csv")


def test_inputs_may_be_missing_when_a_task_produces_them_or_a_sensor_waits(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [tasks.unpack]
        outputs = ["build/tree/"]
        run = "true"
        [tasks.use]
        inputs = ["build/tree/part.csv", "build/tree/", "drop/today.csv", "conf/"]
        wait_for = ["drop/today.csv"]
        wait_timeout = "2h"
        wait_poll = "90s"
        run = "true"
        """,
        files=["conf/"],
    )
    spec = flow.tasks["use"]
    assert spec.inputs == ("build/tree/part.csv", "build/tree/", "drop/today.csv", "conf/")
    assert spec.wait_for == ("drop/today.csv",)
    assert (spec.wait_timeout, spec.wait_poll) == (7200.0, 90.0)
    assert flow.tasks["unpack"].dir_outputs == ("build/tree/",)


def test_paths_are_normalized_keeping_directory_slash(tmp_path: Path) -> None:
    flow = load_text(tmp_path, '[tasks.t]\noutputs = ["./out//a/../b.txt", "out/dir/./"]\nrun = "true"\n')
    assert flow.tasks["t"].outputs == ("out/b.txt", "out/dir/")


def test_task_env_overrides_flow_env_and_is_sorted(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [env]
        TZ = "UTC"
        LANG = "C"
        [tasks.t]
        env = { TZ = "Europe/Paris", A = "1" }
        env_inputs = ["API_URL"]
        secrets = ["TOKEN"]
        run = "true"
        """,
    )
    spec = flow.tasks["t"]
    assert spec.env == (("A", "1"), ("LANG", "C"), ("TZ", "Europe/Paris"))
    assert (spec.env_inputs, spec.secrets) == (("API_URL",), ("TOKEN",))


def test_durations_retries_shell_and_hooks_are_read(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [flow]
        shell = "bash -euo pipefail -c"
        [hooks]
        on_failure = "python alert.py"
        on_success = "echo done"
        webhook = "https://hooks.example.org/x"
        [tasks.t]
        run = "true"
        retries = 2
        retry_delay = "1m30s"
        timeout = 45
        always = true
        [tasks.u]
        run = "true"
        shell = "python -c"
        timeout = "500ms"
        """,
    )
    t, u = flow.tasks["t"], flow.tasks["u"]
    assert (t.retries, t.retry_delay, t.timeout, t.always) == (2, 90.0, 45.0, True)
    assert t.shell == ("bash", "-euo", "pipefail", "-c")
    assert (u.shell, u.timeout) == (("python", "-c"), 0.5)
    assert flow.hooks.on_failure == "python alert.py"
    assert flow.hooks.webhook == "https://hooks.example.org/x"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        (12, 12.0),
        (1.5, 1.5),
    ],
)
def test_parse_duration_accepts_units_and_numbers(text: object, seconds: float) -> None:
    assert parse_duration(text, file=None, line=None, what="timeout") == seconds


def test_var_may_use_another_text_var(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [vars]
        out = "{base}/out"
        base = "build"
        [tasks.t]
        outputs = ["{out}/x.txt"]
        run = "true"
        """,
    )
    assert flow.tasks["t"].outputs == ("build/out/x.txt",)


def test_quoted_task_names_get_their_header_line(tmp_path: Path) -> None:
    flow = load_text(tmp_path, '# c\n\n[tasks."v1.2-build"]\nrun = "true"\n')
    assert flow.tasks["v1.2-build"].line == 3


def test_long_chain_of_tasks_loads_with_every_input_resolved(tmp_path: Path) -> None:
    # Load speed is measured in benchmarks/; this pins correctness at size.
    parts = ['[vars]\nraw = "data"\n']
    for i in range(2_000):
        previous = f', "out/{i - 1}.csv"' if i else ""
        parts.append(
            f'[tasks.t{i}]\ninputs = ["{{raw}}/in.csv"{previous}]\n'
            f'outputs = ["out/{i}.csv"]\nrun = "cp {{inputs[0]}} {{outputs}}"\n'
        )
    path = write(tmp_path, "\n".join(parts), files=["data/in.csv"])
    flow = load(path)
    assert len(flow.tasks) == 2_000
    assert flow.tasks["t1999"].inputs == ("data/in.csv", "out/1998.csv")
    assert flow.tasks["t1999"].command == "cp data/in.csv out/1999.csv"


# --------------------------------------------------------------------------
# mistakes: one message each, naming the thing, with its line


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[tasks.t]\nrun = "true"\ninputs = [data.csv]\n')
    with pytest.raises(FlowfileError) as info:
        load(path)
    error = info.value
    assert not isinstance(error, FlowfileErrors)
    assert error.message.startswith("invalid TOML: ")
    assert "(at line" not in error.message
    assert (error.location.file, error.location.line, error.location.col) == (path, 3, 11)


def test_unknown_task_key_suggests_the_closest_one(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\nouputs = ["x"]\n')
    assert error.message == "task t: unknown key `ouputs`"
    assert error.hint == "did you mean 'outputs'?"
    assert (error.location.line, error.location.col) == (3, 1)


def test_unknown_top_level_and_flow_keys_are_errors(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, '[flow]\nnmae = "x"\n\n[task.t]\nrun = "true"\n')
    assert [(e.message, e.hint, e.location.line) for e in errors] == [
        ("[flow]: unknown key `nmae`", "did you mean 'name'?", 2),
        ("top level: unknown key `task`", "did you mean 'tasks'?", 4),
    ]


def test_wrong_type_names_task_key_and_type(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\ninputs = 5\n')
    assert error.message == "task t: key `inputs` must be a list of strings or a table of lists, got integer"
    assert error.location.line == 3


def test_env_value_that_is_not_a_string_hints_to_quote_it(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[env]\nN = 5\n[tasks.t]\nrun = "true"\n')
    assert error.message == "[env]: env `N` must be a string, got integer"
    assert error.hint == 'quote it: N = "5"'
    assert error.location.line == 2


def test_unknown_placeholder_lists_the_names_that_exist(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[vars]\nraw = "d"\n[tasks.t]\n\nrun = "cat {rwa}"\n')
    assert error.message == "task t: unknown placeholder {rwa} in `run` (known: inputs, outputs, raw)"
    assert error.hint == "did you mean 'raw'?"
    assert error.location.line == 5


def test_inputs_placeholder_is_not_allowed_inside_outputs(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\noutputs = ["{inputs}.bak"]\nrun = "true"\n')
    assert "{inputs} cannot be used in `outputs`" in error.message
    assert error.location.line == 2


def test_index_out_of_range_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\noutputs = ["a"]\nrun = "x {outputs[1]}"\n')
    assert error.message == "task t: `run` uses {outputs[1]} but there is only 1 output"
    assert error.location.line == 3


def test_missing_input_names_task_and_path(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.extract]\ninputs = ["data/x.csv"]\nrun = "true"\n')
    assert error.message == "input data/x.csv of task extract does not exist and no task produces it"
    assert error.location.line == 2


def test_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\ninputs = ["data/*.csv"]\nrun = "true"\n')
    assert error.message == "input glob data/*.csv of task t matches no file"
    assert error.location.line == 2


def test_duplicate_output_names_both_tasks(tmp_path: Path) -> None:
    error = only_error(
        tmp_path, '[tasks.a]\noutputs = ["o.txt"]\nrun = "true"\n[tasks.b]\noutputs = ["./o.txt"]\nrun = "true"\n'
    )
    assert error.message == "output o.txt is declared by both task a and task b"
    assert error.location.line == 5


def test_file_output_inside_another_tasks_directory_output_is_an_error(tmp_path: Path) -> None:
    error = only_error(
        tmp_path, '[tasks.a]\noutputs = ["build/"]\nrun = "true"\n[tasks.b]\noutputs = ["build/x.txt"]\nrun = "true"\n'
    )
    assert error.message == "output build/x.txt of task b lies inside directory output build/ of task a"
    assert error.location.line == 5


def test_path_escaping_root_is_an_error_with_root_hint(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\noutputs = ["out/../../x.txt"]\nrun = "true"\n')
    assert error.message == "output out/../../x.txt of task t escapes the project root"
    assert error.hint == f"paths are relative to the project root {tmp_path.resolve()}"
    assert error.location.line == 2


def test_absolute_path_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\ninputs = ["/etc/passwd"]\n')
    assert error.message == "input /etc/passwd of task t is absolute"
    assert error.location.line == 3


def test_path_inside_state_dir_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\noutputs = [".flowmake/x"]\n')
    assert "is inside .flowmake/" in error.message


def test_unknown_after_suggests_a_task(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.extract]\nrun = "true"\n[tasks.t]\nafter = ["extrct"]\n')
    assert error.message == "task t: `after` names unknown task `extrct`"
    assert error.hint == "did you mean 'extract'?"
    assert error.location.line == 4


def test_task_listing_itself_in_after_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\nafter = ["t"]\n')
    assert error.message == "task t lists itself in `after`"


def test_matrix_over_a_text_var_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[vars]\nraw = "d"\n[tasks.t]\nmatrix = { s = "{raw}" }\nrun = "echo {s}"\n')
    assert error.message == "task t: matrix `s` uses {raw}, which is a text var, not a list var"
    assert error.location.line == 4


def test_matrix_over_unknown_var_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[vars]\nstudies = ["a"]\n[tasks.t]\nmatrix = { s = "{studys}" }\nrun = "echo {s}"\n')
    assert error.message == "task t: matrix `s` uses unknown list var {studys} (list vars: studies)"
    assert error.hint == "did you mean 'studies'?"


def test_matrix_with_bad_value_characters_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nmatrix = { s = ["ok", "S 01"] }\nrun = "true"\n')
    assert 'value "S 01" may only use letters, digits' in error.message
    assert error.location.line == 2


def test_empty_matrix_list_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\nmatrix = { s = [] }\n')
    assert error.message == "task t: matrix `s` is an empty list"
    assert error.location.line == 3


def test_matrix_key_shadowing_a_var_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[vars]\ns = "x"\n[tasks.t]\nmatrix = { s = ["a"] }\nrun = "true"\n')
    assert error.message == "task t: matrix key `s` shadows the var of the same name"


def test_bad_duration_text_is_an_error_with_hint(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\ntimeout = "10 minutes"\n')
    assert error.message == 'task t: `timeout` is not a duration: "10 minutes"'
    assert '"10m"' in (error.hint or "")
    assert error.location.line == 3


def test_negative_retries_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\nretries = -1\n')
    assert error.message == "task t: `retries` must be 0 or more, got -1"
    assert error.location.line == 3


def test_missing_run_without_after_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nhelp = "x"\n')
    assert error.message == "task t: has no `run`"
    assert error.location.line == 1


def test_invalid_task_name_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks."1st"]\nrun = "true"\n')
    assert error.message == "task name `1st` is not valid"
    assert error.location.line == 1


def test_bad_webhook_url_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[hooks]\nwebhook = "hooks.example.org"\n')
    assert "is not an http:// or https:// URL" in error.message
    assert error.location.line == 2


def test_unmatched_brace_in_run_hints_at_doubling(tmp_path: Path) -> None:
    error = only_error(tmp_path, "[tasks.t]\nrun = \"awk '{print $1}' f\"\n")
    assert "`{print $1}` is not a placeholder" in error.message
    assert "{{" in (error.hint or "")


def test_several_errors_are_reported_together_in_file_order(tmp_path: Path) -> None:
    errors = errors_of(
        tmp_path,
        """
        [tasks.a]
        run = "cat {nope}"
        retries = -2

        [tasks.b]
        inputs = ["missing.csv"]
        timout = "1m"
        run = "true"
        """,
    )
    assert [e.location.line for e in errors] == [2, 3, 6, 7]
    assert "unknown placeholder {nope}" in errors[0].message
    assert "retries" in errors[1].message
    assert "missing.csv" in errors[2].message
    assert "unknown key `timout`" in errors[3].message
    assert all(e.location.file == tmp_path / "Flowfile.toml" for e in errors)


def test_directory_input_without_trailing_slash_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\ninputs = ["conf"]\nrun = "true"\n', files=["conf/"])
    assert error.message == "input conf of task t is a directory"
    assert error.hint == "write conf/ to depend on its whole tree"


def test_group_placeholder_on_a_plain_input_list_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\ninputs = ["a"]\nrun = "cat {inputs.bam}"\n', files=["a"])
    assert error.message == "task t: `run` uses {inputs.bam} but `inputs` is a plain list, not a table of named lists"
    assert error.location.line == 3


def test_var_cycle_is_an_error(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[vars]\na = "{b}"\nb = "{a}/x"\n')
    assert error.message == "var `a` refers to itself: a -> b -> a"
    assert error.location.line == 2


def test_default_target_may_be_an_output_but_not_an_unknown_name(tmp_path: Path) -> None:
    text = '[flow]\ndefault = ["dist/x.zip", "pakage"]\n[tasks.package]\noutputs = ["dist/x.zip"]\nrun = "true"\n'
    error = only_error(tmp_path, text)
    assert error.message == "[flow]: default target `pakage` is not a task, a variant or a declared output"
    assert error.hint == "did you mean 'package'?"
    assert error.location.line == 2


def test_lines_are_right_after_multiline_strings_and_with_crlf(tmp_path: Path) -> None:
    text = '[tasks.a]\r\nrun = """\r\n[tasks.fake]\r\nretries = 1\r\n"""\r\nretries = -1\r\n'
    error = only_error(tmp_path, text)
    assert error.message == "task a: `retries` must be 0 or more, got -1"
    assert error.location.line == 6


def test_list_var_in_after_names_each_task(tmp_path: Path) -> None:
    flow = load_text(
        tmp_path,
        """
        [vars]
        steps = ["a", "b"]
        [tasks.a]
        run = "true"
        [tasks.b]
        run = "true"
        [tasks.all]
        after = ["{steps}"]
        """,
    )
    assert flow.tasks["all"].after == ("a", "b")


def test_wait_for_cannot_name_inputs_placeholder(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nrun = "true"\nwait_for = ["{inputs}"]\n')
    assert "{inputs} cannot be used in `wait_for`" in error.message
    assert error.location.line == 3


def test_errors_in_one_matrix_table_are_reported_once_not_per_variant(tmp_path: Path) -> None:
    error = only_error(tmp_path, '[tasks.t]\nmatrix = { s = ["a", "b", "c"] }\nrun = "echo {nope}"\n')
    assert "unknown placeholder {nope}" in error.message


def test_load_with_problems_returns_the_good_tasks_and_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, '[tasks.good]\nrun = "true"\n[tasks.bad]\nrun = "cat {nope}"\nretries = -1\n')
    flow, problems = load_with_problems(path)
    assert flow.tasks["good"].command == "true"
    assert flow.tasks["bad"].command is None
    assert [p.location.line for p in problems] == [4, 5]
