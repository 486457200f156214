"""Run history, lineage and the hash-chained audit trail through the real CLI (issue 3, item 6).

`flowmake log` (runs newest first, one run's attempts with hashes), `flowmake
lineage` (back from a file to its source files, by content), `flowmake audit
verify` (exit 1 naming the first bad record after the database or a kept log
was tampered with), `log --prune` and `audit export`.

Most tests start from one built project, made once per module and copied:
two runs of a two-step pipeline (`raw.csv` changed between them), so the
journal holds records 1-4 (run 1: run, attempt clean, attempt report,
run_end) and 5-8 (run 2).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from blake3 import blake3
from conftest import Project, isolation_env, wait_for

import flowmake

PIPELINE = """\
    [tasks.clean]
    inputs = ["raw.csv"]
    outputs = ["build/clean.csv"]
    run = "tr a-z A-Z < raw.csv > build/clean.csv; echo cleaned"

    [tasks.report]
    inputs = ["build/clean.csv", "tmpl.txt"]
    outputs = ["dist/report.txt"]
    run = "cat tmpl.txt build/clean.csv > dist/report.txt; echo reported"
"""


def b3(path: Path) -> str:
    return blake3(path.read_bytes()).hexdigest()


@dataclass
class Built:
    root: Path
    run_ids: List[str]  # oldest first


@pytest.fixture(scope="module")
def built_template(tmp_path_factory: pytest.TempPathFactory, _pycache: Path) -> Built:
    base = tmp_path_factory.mktemp("audit-template")
    root = base / "proj"
    root.mkdir()
    template = Project(root)
    env = isolation_env(base, _pycache)
    template.flowfile(PIPELINE)
    template.write("raw.csv", "abc\n")
    template.write("tmpl.txt", "REPORT\n")
    run_ids = []
    for raw in ("abc\n", "def\n"):
        template.write("raw.csv", raw)
        result = template.json_run(env=env)
        assert result.returncode == 0, result
        assert result.ran == ["clean", "report"], result
        run_ids.append(result.run_id)
    return Built(root, run_ids)


@pytest.fixture
def built(project: Project, built_template: Built) -> Built:
    shutil.copytree(built_template.root, project.root, dirs_exist_ok=True)
    return Built(project.root, list(built_template.run_ids))


def journal(project: Project) -> sqlite3.Connection:
    return sqlite3.connect(str(project.path(".flowmake/state.db")))


def verify_fails_at(project: Project, record: str) -> str:
    result = project.run("audit", "verify")
    assert result.returncode == 1, result
    failed = [line for line in result.err_lines if "FAILED" in line]
    assert failed, result
    assert record in failed[0], f"the first failure does not name {record}\n{result!r}"
    assert "Traceback" not in result.stderr
    return failed[0]


def export_json(project: Project) -> Dict[str, Any]:
    result = project.run("audit", "export", "--format", "json")
    assert result.returncode == 0, result
    return json.loads(result.stdout)


# -- log ---------------------------------------------------------------------------------


def test_log_lists_runs_newest_first(project: Project, built: Built) -> None:
    project.write("raw.csv", "ghi\n")
    third = project.json_run()
    assert third.returncode == 0, third
    no_op = project.json_run()  # nothing to do: still a recorded run
    assert no_op.returncode == 0 and no_op.ran == [], no_op
    newest_first = [no_op.run_id, third.run_id] + built.run_ids[::-1]
    assert sorted(newest_first, reverse=True) == newest_first  # run ids sort by time

    text = project.run("log")
    assert text.returncode == 0, text
    positions = [text.stdout.index(run_id) for run_id in newest_first]
    assert positions == sorted(positions), text

    listed = json.loads(project.run("log", "--json").stdout)
    assert [run["id"] for run in listed] == newest_first


def test_log_shortens_a_long_target_list_that_json_keeps_whole(project: Project) -> None:
    # Without flow.default, a run's targets are every task: hundreds of names.
    project.flowfile("".join(f'[tasks.step_{i:03d}]\nrun = "true"\n' for i in range(300)))
    run = project.json_run()
    assert run.returncode == 0, run
    table = project.run("log")
    row = [line for line in table.stdout.splitlines() if line.startswith(run.run_id)][0]
    assert "step_000 step_001" in row and "… +" in row and "step_299" not in row, row
    assert len(row) < 160, row
    detail = project.run("log", run.run_id).stdout
    (targets,) = [line for line in detail.splitlines() if line.startswith("  targets")]
    assert "more" in targets and len(targets) < 420, targets
    listed = json.loads(project.run("log", "--json").stdout)
    assert listed[0]["targets"] == [f"step_{i:03d}" for i in range(300)]


def test_log_json_lists_runs_with_id_started_finished_result_targets_user_host(
        project: Project, built: Built) -> None:
    result = project.run("log", "--json")
    assert result.returncode == 0, result
    runs = json.loads(result.stdout)
    assert len(runs) == 2
    for run in runs:
        assert {"id", "started", "finished", "result", "targets", "user", "host"} <= set(run), run
        assert run["result"] == "success"
        assert run["targets"] == ["clean", "report"]
        assert isinstance(run["started"], str) and isinstance(run["finished"], str)
        assert run["started"] <= run["finished"]
        assert isinstance(run["user"], str) and run["user"]
        assert isinstance(run["host"], str) and run["host"]
    assert runs[0]["id"] == built.run_ids[1]


def test_log_run_id_json_shows_every_attempt_with_command_times_exit_code_and_hashes(
        project: Project, built: Built) -> None:
    run_id = built.run_ids[1]
    result = project.run("log", run_id, "--json")
    assert result.returncode == 0, result
    run = json.loads(result.stdout)
    assert run["id"] == run_id and run["result"] == "success"
    assert run["argv"] == ["run", "--progress", "json"]
    flowfile = project.path("Flowfile.toml").read_bytes()
    # SPEC §4 says only "Flowfile hash"; docs/json.md says SHA-256, the code records BLAKE3.
    assert run["flowfile_hash"] in (hashlib.sha256(flowfile).hexdigest(), blake3(flowfile).hexdigest())
    assert run["version"] == flowmake.__version__
    attempts = {a["task"]: a for a in run["attempts"]}
    assert set(attempts) == {"clean", "report"}
    for attempt in attempts.values():
        for key in ("task", "attempt", "reasons", "command", "started", "finished", "exit_code",
                    "inputs", "outputs", "log"):
            assert key in attempt, (key, attempt)
        assert attempt["attempt"] == 1 and attempt["exit_code"] == 0
        assert attempt["started"] <= attempt["finished"]
        assert project.path(attempt["log"]).is_file()
        assert attempt["log_hash"] == b3(project.path(attempt["log"]))
        assert attempt["log"].startswith(f".flowmake/logs/{run_id}/")
    clean, report = attempts["clean"], attempts["report"]
    assert clean["command"] == "tr a-z A-Z < raw.csv > build/clean.csv; echo cleaned"
    assert {"kind": "input changed", "path": "raw.csv"}.items() <= clean["reasons"][0].items()
    assert clean["inputs"] == {"raw.csv": b3(project.path("raw.csv"))}
    assert clean["outputs"] == {"build/clean.csv": b3(project.path("build/clean.csv"))}
    assert report["inputs"] == {"build/clean.csv": b3(project.path("build/clean.csv")),
                                "tmpl.txt": b3(project.path("tmpl.txt"))}
    assert report["outputs"] == {"dist/report.txt": b3(project.path("dist/report.txt"))}
    assert project.read(report["log"]) == "reported\n"


def test_log_accepts_a_unique_run_id_prefix(project: Project, built: Built) -> None:
    run_id = built.run_ids[0]
    prefix = run_id.split("-")[0]  # the time part, to the millisecond
    assert not built.run_ids[1].startswith(prefix)
    result = project.run("log", prefix, "--json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["id"] == run_id

    text = project.run("log", prefix)
    assert text.returncode == 0 and run_id in text.stdout, text


def test_log_with_an_unknown_or_ambiguous_run_id_exits_2(project: Project, built: Built) -> None:
    unknown = project.run("log", "19990101T000000000Z-dead")
    assert unknown.returncode == 2, unknown
    assert "19990101T000000000Z-dead" in unknown.stderr and "Traceback" not in unknown.stderr
    common = built.run_ids[0][:4]
    ambiguous = project.run("log", common, "--json")
    assert ambiguous.returncode == 2, ambiguous
    assert ambiguous.stdout == ""


# -- lineage ----------------------------------------------------------------------------------


def test_lineage_shows_the_producing_task_and_run(project: Project, built: Built) -> None:
    result = project.run("lineage", "dist/report.txt")
    assert result.returncode == 0, result
    lines = result.lines
    assert lines[0].startswith("dist/report.txt")
    assert "report" in lines[1] and built.run_ids[1] in lines[1], result
    assert any("clean" in line and built.run_ids[1] in line for line in lines[2:]), result
    assert any("raw.csv" in line and "source" in line for line in lines), result


def walk(node: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    yield node
    for child in node.get("inputs", []):
        yield from walk(child)


def test_lineage_json_nests_inputs_back_to_source_files_with_their_blake3(project: Project, built: Built) -> None:
    result = project.run("lineage", "dist/report.txt", "--json")
    assert result.returncode == 0, result
    tree = json.loads(result.stdout)
    assert tree["path"] == "dist/report.txt"
    assert tree["hash"] == b3(project.path("dist/report.txt")) == tree["current_hash"]
    assert tree["source"] is False
    assert tree["produced_by"]["task"] == "report"
    assert tree["produced_by"]["run_id"] == built.run_ids[1]

    inputs = {node["path"]: node for node in tree["inputs"]}
    assert set(inputs) == {"build/clean.csv", "tmpl.txt"}
    clean = inputs["build/clean.csv"]
    assert clean["source"] is False and clean["produced_by"]["task"] == "clean"
    assert clean["hash"] == b3(project.path("build/clean.csv"))
    assert [node["path"] for node in clean["inputs"]] == ["raw.csv"]

    sources = {node["path"]: node for node in walk(tree) if node["source"]}
    assert set(sources) == {"raw.csv", "tmpl.txt"}
    for path, node in sources.items():
        assert node["hash"] == b3(project.path(path)) == node["current_hash"], node
        assert "produced_by" not in node and "inputs" not in node


def test_lineage_sources_lists_the_source_files_with_their_hashes(project: Project, built: Built) -> None:
    result = project.run("lineage", "dist/report.txt", "--sources")
    assert result.returncode == 0, result
    rows = [line.split() for line in result.lines if line.strip()]
    assert rows == [[b3(project.path("raw.csv")), "raw.csv"], [b3(project.path("tmpl.txt")), "tmpl.txt"]], result

    listed = project.run("lineage", "dist/report.txt", "--sources", "--json")
    assert listed.returncode == 0, listed
    assert [(s["path"], s["hash"]) for s in json.loads(listed.stdout)] == [
        ("raw.csv", b3(project.path("raw.csv"))), ("tmpl.txt", b3(project.path("tmpl.txt")))]


def test_lineage_follows_the_new_content_after_a_rebuild_with_changed_input(project: Project, built: Built) -> None:
    before = json.loads(project.run("lineage", "dist/report.txt", "--json").stdout)
    project.write("raw.csv", "xyz\n")
    rebuilt = project.json_run()
    assert rebuilt.returncode == 0 and rebuilt.ran == ["clean", "report"], rebuilt

    tree = json.loads(project.run("lineage", "dist/report.txt", "--json").stdout)
    assert tree["hash"] == b3(project.path("dist/report.txt")) != before["hash"]
    assert tree["produced_by"]["run_id"] == rebuilt.run_id
    raw = next(node for node in walk(tree) if node["path"] == "raw.csv")
    assert raw["hash"] == blake3(b"xyz\n").hexdigest()
    clean = next(node for node in walk(tree) if node["path"] == "build/clean.csv")
    assert clean["produced_by"]["run_id"] == rebuilt.run_id
    sources = project.run("lineage", "dist/report.txt", "--sources")
    assert f"{blake3(b'xyz' + bytes([10])).hexdigest()}  raw.csv" in sources.stdout, sources
    assert blake3(b"def\n").hexdigest() not in sources.stdout, sources


def test_lineage_of_a_file_changed_since_its_run_says_no_run_wrote_its_content(
        project: Project, built: Built) -> None:
    recorded = b3(project.path("dist/report.txt"))
    with open(project.path("dist/report.txt"), "a") as f:
        f.write("edited by hand\n")
    tree = json.loads(project.run("lineage", "dist/report.txt", "--json").stdout)
    assert tree["current_hash"] == b3(project.path("dist/report.txt")) != recorded
    assert tree["hash"] == recorded
    assert tree["produced_by"]["run_id"] == built.run_ids[1]
    assert "no recorded run wrote the current content" in tree.get("note", ""), tree
    text = project.run("lineage", "dist/report.txt")
    assert text.returncode == 0 and "no recorded run wrote the current content" in text.stdout, text


def test_lineage_of_an_unknown_path_exits_2(project: Project, built: Built) -> None:
    result = project.run("lineage", "dist/nothing.txt")
    assert result.returncode == 2, result
    assert "dist/nothing.txt" in result.stderr and "Traceback" not in result.stderr


# -- audit verify ---------------------------------------------------------------------------------


def test_audit_verify_exits_0_on_an_untouched_project(project: Project, built: Built) -> None:
    result = project.run("audit", "verify")
    assert result.returncode == 0, result
    assert "FAILED" not in result.stdout + result.stderr
    assert export_json(project)["head"] in result.stdout


def test_audit_verify_fails_naming_a_record_whose_body_was_updated(project: Project, built: Built) -> None:
    with journal(project) as db:
        (body,) = db.execute("SELECT body FROM journal WHERE seq = 3").fetchone()
        record = json.loads(body)
        assert record["task"] == "report"
        record["exit_code"] = 1
        db.execute("UPDATE journal SET body = ? WHERE seq = 3",
                   (json.dumps(record, sort_keys=True, separators=(",", ":")),))
    db.close()
    verify_fails_at(project, "#3")


def test_audit_verify_fails_naming_the_record_after_one_deleted_in_the_middle(
        project: Project, built: Built) -> None:
    with journal(project) as db:
        db.execute("DELETE FROM journal WHERE seq = 3")
    db.close()
    verify_fails_at(project, "#4")


def test_audit_verify_fails_after_a_forged_record_is_inserted_in_the_middle(project: Project, built: Built) -> None:
    # The forger knows the public formula: the forged record itself verifies,
    # but the record after it no longer does.
    with journal(project) as db:
        rows = db.execute("SELECT seq FROM journal WHERE seq >= 3 ORDER BY seq DESC").fetchall()
        for (seq,) in rows:
            db.execute("UPDATE journal SET seq = ? WHERE seq = ?", (seq + 1, seq))
        (prev,) = db.execute("SELECT hash FROM journal WHERE seq = 2").fetchone()
        run_id = built.run_ids[0]
        body = json.dumps({"attempt": 1, "command": "echo forged", "exit_code": 0, "task": "forged",
                           "run_id": run_id, "status": "ok"}, sort_keys=True, separators=(",", ":"))
        digest = blake3("\n".join([prev, "3", "attempt", run_id, "forged", body]).encode()).hexdigest()
        db.execute("INSERT INTO journal (seq, kind, run_id, task, body, prev_hash, hash) "
                   "VALUES (3, 'attempt', ?, 'forged', ?, ?, ?)", (run_id, body, prev, digest))
    db.close()
    verify_fails_at(project, "#4")


def test_audit_verify_fails_after_two_records_swap_their_seq(project: Project, built: Built) -> None:
    with journal(project) as db:
        db.execute("UPDATE journal SET seq = -1 WHERE seq = 2")
        db.execute("UPDATE journal SET seq = 2 WHERE seq = 3")
        db.execute("UPDATE journal SET seq = 3 WHERE seq = -1")
    db.close()
    verify_fails_at(project, "#2")


@pytest.mark.parametrize("seq, body", [(3, "not json"), (1, '{"a":1}')], ids=["garbage", "wrong-shape"])
def test_a_corrupted_record_body_is_reported_by_verify_log_and_export_without_an_internal_error(
        project: Project, built: Built, seq: int, body: str) -> None:
    with journal(project) as db:
        db.execute("UPDATE journal SET body = ? WHERE seq = ?", (body, seq))
    db.close()
    verify_fails_at(project, f"#{seq}")
    for args in (["log"], ["log", "--json"], ["audit", "export"]):
        result = project.run(*args)
        assert result.returncode != 70 and "internal error" not in result.stderr, result
        assert "Traceback" not in result.stderr


def test_audit_verify_fails_after_a_kept_log_file_is_edited(project: Project, built: Built) -> None:
    log = f".flowmake/logs/{built.run_ids[0]}/report.log"
    with open(project.path(log), "a") as f:
        f.write("edited afterwards\n")
    line = verify_fails_at(project, log)
    assert "report" in line


def test_audit_verify_fails_when_a_kept_log_file_is_deleted(project: Project, built: Built) -> None:
    log = f".flowmake/logs/{built.run_ids[1]}/clean.log"
    project.path(log).unlink()
    line = verify_fails_at(project, log)
    assert "missing" in line


def test_a_run_killed_with_sigkill_shows_as_died_and_the_trail_still_verifies(
        project: Project, built: Built) -> None:
    project.write("raw.csv", "killed\n")
    project.flowfile(PIPELINE.replace("tr a-z A-Z < raw.csv", "echo $$ > clean.pid; sleep 20; tr a-z A-Z < raw.csv"))
    proc = project.popen("run", "--progress", "json")
    wait_for(lambda: project.exists("clean.pid") and project.read("clean.pid").endswith("\n")
             or proc.poll() is not None, what="clean.pid")
    project.track_pid(int(project.read("clean.pid")))
    proc.kill()
    proc.communicate(timeout=30)
    runs = json.loads(project.run("log", "--json").stdout)
    assert len(runs) == 3, runs
    assert runs[0]["result"] is None and runs[0]["finished"] is None, runs[0]
    assert "(died)" in project.run("log").stdout
    verify = project.run("audit", "verify")
    assert verify.returncode == 0, verify


# -- prune and export ---------------------------------------------------------------------------------


def test_log_prune_1_deletes_older_runs_log_dirs_and_verify_still_passes(project: Project, built: Built) -> None:
    logs = project.path(".flowmake/logs")
    assert sorted(p.name for p in logs.iterdir()) == built.run_ids
    pruned = project.run("log", "--prune", "1")
    assert pruned.returncode == 0, pruned
    assert [p.name for p in logs.iterdir()] == [built.run_ids[1]]

    verify = project.run("audit", "verify")
    assert verify.returncode == 0, verify
    old = project.run("log", built.run_ids[0], "--json")
    assert old.returncode == 0, old
    assert {a["task"] for a in json.loads(old.stdout)["attempts"]} == {"clean", "report"}
    assert [r["kind"] for r in export_json(project)["records"]][-1] == "prune"


def test_audit_export_json_contains_every_record_with_hash_and_prev_hash(project: Project, built: Built) -> None:
    with journal(project) as db:
        rows = db.execute("SELECT seq, kind, run_id, task, hash, prev_hash FROM journal ORDER BY seq").fetchall()
    db.close()
    trail = export_json(project)
    records = trail["records"]
    assert [(r["seq"], r["kind"], r["run_id"], r["task"], r["hash"], r["prev_hash"]) for r in records] == rows
    assert [r["seq"] for r in records] == list(range(1, 9))
    assert trail["chain_ok"] is True and trail["head"] == records[-1]["hash"]
    prev = "0" * 64
    for r in records:  # the public formula of docs/state.md
        body = json.dumps(r["record"], sort_keys=True, separators=(",", ":"))
        text = "\n".join([prev, str(r["seq"]), r["kind"], r["run_id"], r["task"] or "", body])
        assert r["prev_hash"] == prev
        assert blake3(text.encode()).hexdigest() == r["hash"], r
        prev = r["hash"]


def test_audit_export_csv_to_a_file_contains_every_record_with_hash_and_prev_hash(
        project: Project, built: Built) -> None:
    records = export_json(project)["records"]
    out = project.path("evidence/trail.csv")
    out.parent.mkdir()
    result = project.run("audit", "export", "--format", "csv", "-o", "evidence/trail.csv")
    assert result.returncode == 0, result
    assert f"wrote {len(records)} records" in result.stdout, result
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:6] == ["seq", "kind", "run_id", "task", "hash", "prev_hash"]
        rows = list(reader)
    assert [(int(r["seq"]), r["kind"], r["hash"], r["prev_hash"]) for r in rows] == [
        (r["seq"], r["kind"], r["hash"], r["prev_hash"]) for r in records]
    assert {r["task"] for r in rows if r["kind"] == "attempt"} == {"clean", "report"}
