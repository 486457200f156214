"""Pattern rules through the real CLI (issue 14, item 14): a matrix whose values are files.

`matrix = { book = { glob = "books/{book}.txt" } }` takes one value per
existing file, the part where `{book}` stands, sorted, re-read on every
load: a new file is a new variant (in `status`, in the next run, in a
fan-in's inputs), a removed one goes, the load cache never serves the old
list, and a file whose name cannot be a variant name is exit 2 naming it.
The project is Software Carpentry's make lesson (the Zipf pipeline).
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
from conftest import Project, shortcut_test

from flowmake.cli.fastpath import try_noop

COUNTWORDS = '''\
import collections, re, sys
words = re.findall(r"[a-z']+", open(sys.argv[1]).read().lower())
counts = collections.Counter(words)
with open(sys.argv[2], "w") as out:
    for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        out.write(f"{word} {n} {100 * n / len(words):.2f}\\n")
'''
PLOTCOUNTS = '''\
import sys
rows = [line.split() for line in open(sys.argv[1])][:10]
with open(sys.argv[2], "w") as out:
    for word, n, _ in rows:
        out.write(f"{word:>10} {'#' * int(n)}\\n")
'''
ZIPF_TEST = '''\
import os, sys
print("Book\\tFirst\\tSecond\\tRatio")
for path in sys.argv[1:]:
    counts = [int(line.split()[1]) for line in open(path)][:2]
    second = counts[1] if len(counts) > 1 else 1
    print(f"{os.path.basename(path)[:-4]}\\t{counts[0]}\\t{second}\\t{counts[0] / second:.2f}")
'''

ZIPF = """\
    [vars]
    python = {python}
    books = {{ glob = "books/{{book}}.txt" }}   # a list var of the same values, for the fan-in

    [tasks.count]
    help = "count the words of one book"
    matrix = {{ book = {{ glob = "books/{{book}}.txt" }} }}
    inputs = ["books/{{book}}.txt", "countwords.py"]
    outputs = ["dats/{{book}}.dat"]
    run = "{{python}} countwords.py {{inputs[0]}} {{outputs}}"

    [tasks.plot]
    matrix = {{ book = "{{books}}" }}
    inputs = ["dats/{{book}}.dat", "plotcounts.py"]
    outputs = ["plots/{{book}}.txt"]
    run = "{{python}} plotcounts.py {{inputs[0]}} {{outputs}}"

    [tasks.results]
    inputs = {{ dats = ["dats/{{books}}.dat"], script = ["zipf_test.py"] }}
    outputs = ["results.txt"]
    run = "{{python}} zipf_test.py {{inputs.dats}} > {{outputs}}"
"""

BOOKS = {
    "abyss": "the sea the sea the deep a whale the sea and a ship",
    "isles": "an isle an isle the isle of the sea the isle",
}


def zipf(project: Project, books: dict = BOOKS) -> None:
    project.write("countwords.py", COUNTWORDS, dedent=False)
    project.write("plotcounts.py", PLOTCOUNTS, dedent=False)
    project.write("zipf_test.py", ZIPF_TEST, dedent=False)
    project.flowfile(ZIPF.format(python=json.dumps(sys.executable)))
    for name, text in books.items():
        project.write(f"books/{name}.txt", text + "\n")


def result_rows(project: Project) -> list:
    return [line.split("\t")[0] for line in project.read("results.txt").splitlines()[1:]]


def test_zipf_pipeline_adding_a_book_adds_its_variant_and_its_row(project: Project) -> None:
    zipf(project)
    first = project.json_run()
    assert first.returncode == 0, first
    assert first.ran == ["count:abyss", "count:isles", "plot:abyss", "plot:isles", "results"]
    assert result_rows(project) == ["abyss", "isles"]
    assert project.read("results.txt").splitlines()[1] == "abyss\t4\t3\t1.33"
    assert project.status()["count:abyss"]["state"] == "fresh"  # also leaves the load cache behind

    project.write("books/last.txt", "last of the last of them\n")
    status = project.status()
    assert list(status) == ["count:abyss", "count:isles", "count:last", "plot:abyss", "plot:isles", "plot:last",
                            "results"]
    assert status["count:last"]["state"] == "stale"
    assert [r["kind"] for r in status["count:last"]["reasons"]] == ["never run"]
    assert status["count:abyss"]["state"] == "fresh"

    second = project.json_run()
    assert second.returncode == 0, second
    assert second.ran == ["count:last", "plot:last", "results"]
    assert result_rows(project) == ["abyss", "isles", "last"]
    assert project.read("plots/last.txt").startswith("      last ##\n")

    third = project.json_run()
    assert third.returncode == 0, third
    assert third.ran == []


def test_a_removed_book_takes_its_variants_and_its_row_with_it(project: Project) -> None:
    zipf(project)
    assert project.json_run().returncode == 0
    project.path("books/isles.txt").unlink()
    assert list(project.status()) == ["count:abyss", "plot:abyss", "results"]
    result = project.run("run", "plot:isles")
    assert result.returncode == 2, result
    assert "unknown target 'plot:isles'" in result.stderr
    result = project.json_run()
    assert result.ran == ["results"]
    assert result_rows(project) == ["abyss"]  # dats/isles.dat is still on disk, but no book names it


def test_glob_matrix_values_are_sorted_and_the_part_the_placeholder_marks(project: Project) -> None:
    project.flowfile("""\
        [vars]
        dir = "data"

        [tasks.lines]
        matrix = { sample = { glob = "{dir}/*/{sample}.reads.txt" }, mode = ["a", "b"] }
        outputs = ["out/{sample}-{mode}.txt"]
        run = "echo {sample} > {outputs}"
    """)
    for path in ("data/x/S2.reads.txt", "data/y/S1.reads.txt", "data/y/S10.reads.txt", "data/x/S1.reads.txt",
                 "data/S3.reads.txt", "data/x/S4.reads.csv"):
        project.write(path, "r\n")
    result = project.run("list")
    assert result.returncode == 0, result
    status = project.status()
    assert list(status) == ["lines:S1:a", "lines:S1:b", "lines:S10:a", "lines:S10:b", "lines:S2:a", "lines:S2:b"]


def test_check_says_how_many_values_each_glob_driven_matrix_has(project: Project) -> None:
    zipf(project, {"abyss": "a", "isles": "b", "last": "c"})
    result = project.run("check")
    assert result.returncode == 0, result
    assert result.lines == [
        "ok: Flowfile.toml is valid: 7 tasks in 3 groups",
        "  var `books` has 3 values from files matching books/{book}.txt",
        "  task count: matrix `book` has 3 values from files matching books/{book}.txt",
    ]


def test_a_file_whose_name_is_not_a_variant_name_is_exit_2_naming_the_file(project: Project) -> None:
    zipf(project)
    project.write("books/moby dick.txt", "call me\n")
    for command in (["check"], ["run"], ["status"]):
        result = project.run(*command)
        assert result.returncode == 2, result
        for line, what in ((3, "var `books`"), (7, "task count: matrix `book`")):
            assert (f"{project.path('Flowfile.toml')}:{line}: error: {what} value \"moby dick\" from file "
                    "books/moby dick.txt may only use letters, digits, '_', '.' and '-'") in result.err_lines, result
        assert "Traceback" not in result.stderr


@shortcut_test
def test_a_new_file_is_seen_although_the_load_cache_holds_the_old_list(project: Project) -> None:
    zipf(project)
    assert project.json_run().returncode == 0
    assert list(project.status())[:2] == ["count:abyss", "count:isles"]
    assert project.path(".flowmake/flowfile.cache").exists()
    project.write("books/zzz.txt", "z z\n")
    result = project.json_run("results")
    assert result.returncode == 0, result
    assert "count:zzz" in result.ran
    assert result_rows(project) == ["abyss", "isles", "zzz"]
    project.path("books/zzz.txt").unlink()
    assert "count:zzz" not in project.status()


def test_a_glob_matrix_matching_no_file_is_exit_2(project: Project) -> None:
    project.flowfile("""\
        [tasks.count]
        matrix = { book = { glob = "books/{book}.txt" } }
        outputs = ["dats/{book}.dat"]
        run = "touch {outputs}"
    """)
    result = project.run("check")
    assert result.returncode == 2, result
    assert result.err_lines == [
        f"{project.path('Flowfile.toml')}:2: error: task count: matrix `book` has no file matching "
        "\"books/{book}.txt\"",
        "  hint: the values come from existing files (paths relative to the project root): add one, "
        "or check the pattern",
    ]


def test_bad_glob_matrix_specs_are_exit_2_with_one_message_each(project: Project) -> None:
    project.write("books/a.txt", "a\n")
    cases = {
        '{ glob = "books/*.txt" }': "matrix `book` glob \"books/*.txt\" must use {book} exactly once",
        '{ glob = "{book}/{book}.txt" }': "matrix `book` glob \"{book}/{book}.txt\" must use {book} exactly once",
        '{ glob = "books/{nope}.txt" }': "matrix `book` glob \"books/{nope}.txt\" may use only {book} and text vars",
        '{ glob = "../{book}.txt" }': "matrix `book` glob \"../{book}.txt\" escapes the project root",
        '{ glob = 3 }': "matrix `book` needs `glob`, a string, got integer",
        '{ pattern = "books/{book}.txt" }': "matrix `book`: unknown key `pattern`",
    }
    for spec, message in cases.items():
        project.flowfile(f"""\
            [tasks.count]
            matrix = {{ book = {spec} }}
            outputs = ["dats/{{book}}.dat"]
            run = "touch {{outputs}}"
        """)
        result = project.run("check")
        assert result.returncode == 2, result
        assert f"error: task count: {message}" in result.err_lines[0], (spec, result)
        assert "Traceback" not in result.stderr


def test_a_glob_list_var_takes_its_items_from_files_for_a_fan_in(project: Project) -> None:
    project.flowfile("""\
        [vars]
        raw = "data/raw"
        samples = { glob = "{raw}/{sample}.csv" }

        [tasks.merge]
        inputs = ["{raw}/{samples}.csv"]
        outputs = ["merged.txt"]
        run = "echo {samples} > {outputs}"
    """)
    for name in ("b2", "a1", "c3"):
        project.write(f"data/raw/{name}.csv", "x\n")
    project.write("data/raw/notes.txt", "not a sample\n")
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.started_event("merge")["command"] == "echo a1 b2 c3 > merged.txt"
    assert project.run("check").lines[1] == "  var `samples` has 3 values from files matching {raw}/{sample}.csv"
    project.flowfile('[vars]\nraw = "data/raw"\nsamples = { glob = "{raw}/*.csv" }\n\n[tasks.t]\nrun = "true"\n')
    result = project.run("check")
    assert result.returncode == 2, result
    assert result.err_lines[0] == (
        f"{project.path('Flowfile.toml')}:3: error: var `samples` glob \"{{raw}}/*.csv\" must use one placeholder "
        "that is not a text var exactly once, where the value is: uses 0")


def test_the_no_op_fast_path_never_leaves_a_new_book_out(project: Project, capsys: pytest.CaptureFixture) -> None:
    zipf(project)
    assert project.json_run().returncode == 0
    past = time.time() - 30  # old enough for every stat to be trusted: only the glob keeps the fast path away
    for path in project.root.rglob("*"):
        if ".flowmake" not in path.parts and path.is_file():
            os.utime(path, (past, past))
    assert project.json_run().ran == []
    project.write("books/last.txt", "last of the last\n")
    assert try_noop(["-C", str(project.root), "run", "--progress", "json"]) is None
    capsys.readouterr()
    result = project.json_run()
    assert result.ran == ["count:last", "plot:last", "results"]
