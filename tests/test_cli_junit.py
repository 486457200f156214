"""`flowmake run --junit-xml PATH` and `[flow] junit_xml`: a run as JUnit XML (docs/ci.md).

Every file written here is validated against the published junit-10.xsd of
the Jenkins xunit plugin (the schema Jenkins reads and GitLab's parser
accepts), fetched by .ci/junit-xsd into .ci-cache/: CI always has it; a
checkout without it skips the schema check and says how to get it.
"""

from __future__ import annotations

import os
import signal
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import Project, wait_for_file

XSD = Path(__file__).resolve().parent.parent / ".ci-cache" / "junit-10.xsd"
IN_CI = bool(os.environ.get("CI"))


def validated(path: Path) -> ET.Element:
    """The file's root element, after checking it against the published JUnit XSD."""
    data = path.read_bytes()
    if XSD.exists():
        import xmlschema

        xmlschema.XMLSchema(str(XSD)).validate(str(path))
    elif IN_CI:
        pytest.fail(f"{XSD} is missing: .ci/run fetches it with .ci/junit-xsd")
    root = ET.fromstring(data)
    return root


def cases(root: ET.Element) -> dict:
    return {case.get("name"): case for case in root.iter("testcase")}


PIPELINE = """
    [flow]
    name = "study"

    [tasks.extract]
    outputs = ["build/raw.csv"]
    run = "echo 'extracting <rows> & more'; echo id > build/raw.csv"

    [tasks.validate]
    matrix = { study = ["S01", "S02"] }
    inputs = ["build/raw.csv"]
    run = "echo checking {study}; test {study} = S01 || (echo 'S02: 3 bad rows' >&2; exit 3)"

    [tasks.package]
    after = ["validate"]
    outputs = ["dist/out.zip"]
    run = "echo zip > dist/out.zip"
"""


def test_a_failed_run_writes_one_case_per_task_with_failure_skipped_and_log(project: Project) -> None:
    project.flowfile(PIPELINE)
    result = project.run("run", "-k", "--junit-xml", "reports/junit.xml")
    assert result.returncode == 1, result
    root = validated(project.path("reports/junit.xml"))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "study"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("4", "1", "0", "1")
    found = cases(root)
    assert list(found) == ["extract", "validate:S01", "validate:S02", "package"]
    assert found["validate:S02"].get("classname") == "validate"
    assert found["extract"].get("classname") == "extract"
    failure = found["validate:S02"].find("failure")
    assert failure is not None
    assert failure.get("type") == "exit code 3" and failure.get("message") == "exit code 3"
    assert "S02: 3 bad rows" in (failure.text or "")
    assert "extracting <rows> & more" in (found["extract"].findtext("system-out") or "")
    skipped = found["package"].find("skipped")
    assert skipped is not None and "upstream failed: validate:S02" in (skipped.get("message") or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["result"] == "failed" and props["run_id"] == suite.get("id")


def test_fresh_tasks_are_skipped_cases_that_say_they_are_up_to_date(project: Project) -> None:
    project.flowfile(PIPELINE.replace("test {study} = S01 ||", "true ||"))
    assert project.run("run").returncode == 0
    result = project.run("run", "--junit-xml", "junit.xml")
    assert result.returncode == 0, result
    found = cases(validated(project.path("junit.xml")))
    for case in found.values():
        skipped = case.find("skipped")
        assert skipped is not None and skipped.get("message") == "fresh: up to date, did not run"


def test_retries_show_as_rerun_failures_and_a_late_pass_as_flaky(project: Project) -> None:
    project.flowfile("""
        [tasks.flaky]
        retries = 2
        run = "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; echo try $n; [ $n -ge 1 ]"

        [tasks.broken]
        retries = 1
        run = "echo nope; exit 2"
    """)
    result = project.run("run", "-k", "--junit-xml", "j.xml")
    assert result.returncode == 1, result
    found = cases(validated(project.path("j.xml")))
    flaky = found["flaky"]
    assert flaky.find("failure") is None
    assert [e.get("message") for e in flaky.findall("flakyFailure")] == ["attempt 1: exit code 1"]
    broken = found["broken"]
    assert broken.find("failure") is not None
    reruns = broken.findall("rerunFailure")
    assert [e.get("message") for e in reruns] == ["attempt 1: exit code 2"]
    assert "nope" in (reruns[0].findtext("system-out") or "")


def test_the_flow_key_writes_it_relative_to_the_project_root_even_from_a_subdirectory(project: Project) -> None:
    project.flowfile("""
        [flow]
        junit_xml = "build/reports/junit.xml"

        [tasks.ok]
        run = "echo fine"
    """)
    sub = project.path("sub")
    sub.mkdir()
    result = project.run("run", cwd=sub)
    assert result.returncode == 0, result
    assert cases(validated(project.path("build/reports/junit.xml")))["ok"].find("failure") is None
    # The command line names another file, relative to where flowmake was started.
    assert project.run("-C", "..", "run", "--junit-xml", "here.xml", cwd=sub).returncode == 0
    assert (sub / "here.xml").exists()


def test_a_no_op_run_with_the_flow_key_still_writes_the_file(project: Project) -> None:
    """The no-op fast path writes no JUnit file, so a run that must write one never leaves it a snapshot."""
    project.flowfile("""
        [flow]
        junit_xml = "junit.xml"

        [tasks.a]
        inputs = ["in.txt"]
        outputs = ["out.txt"]
        run = "cp in.txt out.txt"
    """)
    project.write("in.txt", "x\n")
    assert project.run("run").returncode == 0
    project.path("junit.xml").unlink()
    result = project.run("run")
    assert result.returncode == 0 and "nothing to do" in result.stdout, result
    assert cases(validated(project.path("junit.xml")))["a"].find("skipped") is not None


def test_an_unwritable_path_is_exit_2_before_anything_runs(project: Project) -> None:
    project.flowfile("""
        [tasks.a]
        outputs = ["ran.txt"]
        run = "touch ran.txt"
    """)
    project.write("blocker", "a file, not a folder\n")
    result = project.run("run", "--junit-xml", "blocker/junit.xml")
    assert result.returncode == 2, result
    blocker = project.path("blocker")
    assert result.stderr.startswith(f"error: cannot write the JUnit XML file {blocker}/junit.xml: {blocker} is a file,"
                                    " not a folder\n  hint: "), result
    assert "Traceback" not in result.stderr
    assert not project.exists("ran.txt")
    project.path("adir").mkdir()
    result = project.run("run", "--junit-xml", "adir")
    assert result.returncode == 2 and "it is a directory" in result.stderr, result


def test_a_bad_flow_key_is_a_flowfile_error_with_its_line(project: Project) -> None:
    project.flowfile("""
        [flow]
        junit_xml = 3

        [tasks.a]
        run = "true"
    """)
    result = project.run("run")
    assert result.returncode == 2, result
    assert "Flowfile.toml:3" in result.stderr and "`junit_xml` must be a file path" in result.stderr


def test_an_interrupted_run_writes_a_whole_file_with_the_running_task_as_an_error(project: Project) -> None:
    project.flowfile("""
        [tasks.quick]
        run = "echo quick"

        [tasks.slow]
        after = ["quick"]
        run = "echo started > started.txt; sleep 30"

        [tasks.later]
        after = ["slow"]
        run = "echo never"
    """)
    proc = project.popen("run", "-j", "1", "--junit-xml", "j.xml")
    wait_for_file(project.path("started.txt"), proc=proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    found = cases(validated(project.path("j.xml")))
    assert found["quick"].find("failure") is None and found["quick"].find("skipped") is None
    error = found["slow"].find("error")
    assert error is not None and error.get("type") == "interrupted"
    assert found["later"].find("skipped") is not None
    leftovers = [p.name for p in project.root.iterdir() if p.name.startswith(".flowmake-")]
    assert leftovers == []


def test_output_that_xml_cannot_hold_is_escaped_and_long_logs_are_capped(project: Project) -> None:
    project.flowfile("""
        [tasks.colour]
        run = "printf 'bell\\\\007 \\\\033[31mred\\\\033[0m\\\\n'"

        [tasks.noisy]
        run = "yes line | head -c 200000; echo; echo the end"
    """)
    assert project.run("run", "--junit-xml", "j.xml").returncode == 0
    found = cases(validated(project.path("j.xml")))
    assert found["colour"].findtext("system-out") == "bell\\x07 \\x1b[31mred\\x1b[0m\n"
    out = found["noisy"].findtext("system-out") or ""
    assert out.startswith("[… the first ") and "bytes are left out: the whole log is .flowmake/logs/" in out
    assert out.splitlines()[1] == "line"
    assert out.rstrip().endswith("the end")
    assert len(out) < 70_000


def test_a_dry_run_writes_no_file(project: Project) -> None:
    project.flowfile("""
        [tasks.a]
        run = "true"
    """)
    assert project.run("run", "-n", "--junit-xml", "j.xml").returncode == 0
    assert not project.exists("j.xml")
