"""The no-op fast path and its snapshot: taken only when stats prove nothing
changed, and invalidated by every change the full planner would notice.

`try_noop` is called in-process to tell which path served a run (it returns
None when it declines); everything else goes through the real CLI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Project, kinds, shortcut_test, wait_for_file

from flowmake.cli.fastpath import parse, try_noop
from flowmake.engine import prescan as prescans
from flowmake.engine import snapshot as snapshots

PIPELINE = """\
    [vars]
    greeting = "hello"

    [tasks.extract]
    inputs = ["src.txt"]
    outputs = ["build/a.txt"]
    env_inputs = ["STUDY_CUTOFF"]
    run = "cp {inputs} {outputs}; if [ -f slow ]; then echo $$ > started; sleep 30; fi"

    [tasks.clean]
    inputs = ["build/a.txt"]
    outputs = ["build/b.txt"]
    run = "tr a-z A-Z < {inputs} > {outputs}; echo {greeting} >> {outputs}"
"""

# Every test here is of the fast path and its snapshot, which FLOWMAKE_NO_SHORTCUTS turns off.
pytestmark = shortcut_test


def age_all(root: Path, seconds: float = 30) -> None:
    """Backdate every project file, so the stat cache may trust it at once."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if ".flowmake" not in path.parts and path.is_file():
            os.utime(path, (past, past))


def fresh_project(project: Project, pipeline: str = PIPELINE) -> None:
    """Build, age the files, then one all-fresh run that leaves the snapshot."""
    project.flowfile(pipeline)
    project.write("src.txt", "one\n")
    project.write("other.txt", "other\n")
    assert project.json_run().returncode == 0
    age_all(project.root)
    result = project.json_run()
    assert result.returncode == 0, result
    assert sorted(result.tasks_with("fresh")) == sorted(result.statuses)
    assert project.exists(".flowmake/noop.snapshot")


def noop(project: Project, capsys: pytest.CaptureFixture, *args: str):
    code = try_noop(["-C", str(project.root), "run", "--progress", "json", *args])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines() if line.strip()]


def test_unchanged_project_is_served_by_the_fast_path(project: Project, capsys) -> None:
    fresh_project(project)
    code, events = noop(project, capsys)
    assert code == 0
    # The notice: PIPELINE's task `clean` has a command's name, which a no-op says as a full run does.
    assert [e["event"] for e in events] == ["run_started", "notice", "task_finished", "task_finished",
                                            "run_finished"]
    assert {e["task"]: e["status"] for e in events if e["event"] == "task_finished"} == {
        "extract": "fresh", "clean": "fresh"}
    assert events[-1]["result"] == "success"


def test_fast_path_run_is_recorded_and_the_chain_stays_intact(project: Project, capsys) -> None:
    fresh_project(project)
    code, events = noop(project, capsys)
    assert code == 0
    runs = json.loads(project.run("log", "--json").stdout)
    assert runs[0]["id"] == events[0]["run_id"] and runs[0]["result"] == "success"
    assert project.run("audit", "verify").returncode == 0


def test_a_terminal_no_op_is_served_by_the_fast_path_with_the_trees_own_line(project: Project, capsys) -> None:
    # The tree's front (report/front.py) answers a calm run without rich: the no-op path needs no tree of its own.
    fresh_project(project)
    code = try_noop(["-C", str(project.root), "run", "--progress", "tree"])
    fast = capsys.readouterr().out
    assert code == 0
    full = project.run("run", "--progress", "tree", env={"FLOWMAKE_NO_SHORTCUTS": "1"})
    assert full.returncode == 0, full
    duration = re.compile(r"\(\d+\.\d+s\)")
    assert duration.sub("(T)", fast) == duration.sub("(T)", full.stdout) == "\u2713 nothing to do: 2 tasks fresh (T)\n"


def test_the_fast_path_fires_the_on_success_hook(project: Project, capsys) -> None:
    # Regression: the fast path imported the hooks from the wrong package and crashed (exit 70).
    fresh_project(project, PIPELINE.replace("[vars]", '[hooks]\non_success = "echo $FLOWMAKE_RESULT >> hook.txt"\n\n[vars]'))
    before = project.read("hook.txt").splitlines()
    code, events = noop(project, capsys)
    assert code == 0
    assert project.read("hook.txt").splitlines() == before + ["success"]
    assert events[-1]["result"] == "success"


def test_flowfile_edit_invalidates_it(project: Project, capsys) -> None:
    fresh_project(project)
    project.flowfile(PIPELINE.replace('greeting = "hello"', 'greeting = "bonjour"'))
    code, _ = noop(project, capsys)
    assert code is None
    result = project.json_run()
    assert result.ran == ["clean"]
    assert kinds(result.reasons("clean")) == ["command changed"]


def test_changed_env_input_invalidates_it(project: Project, capsys, monkeypatch) -> None:
    fresh_project(project)
    monkeypatch.setenv("STUDY_CUTOFF", "2026-11-01")
    code, _ = noop(project, capsys)
    assert code is None
    result = project.json_run(env={"STUDY_CUTOFF": "2026-11-01"})
    assert result.ran == ["extract"]
    assert {"kind": "env changed", "path": "STUDY_CUTOFF"} in result.reasons("extract")


def test_changed_input_invalidates_it(project: Project, capsys) -> None:
    fresh_project(project)
    project.write("src.txt", "two\n")
    assert noop(project, capsys)[0] is None
    assert sorted(project.json_run().ran) == ["clean", "extract"]


def test_deleted_output_invalidates_it(project: Project, capsys) -> None:
    fresh_project(project)
    project.path("build/b.txt").unlink()
    assert noop(project, capsys)[0] is None
    result = project.json_run()
    assert result.ran == ["clean"]
    assert kinds(result.reasons("clean")) == ["output missing"]


def test_other_targets_do_not_use_it(project: Project, capsys) -> None:
    fresh_project(project)
    assert noop(project, capsys, "extract")[0] is None


def snapshot_of(project: Project):
    from flowmake.engine.snapshot import read

    snap = read(project.path(".flowmake"))
    assert snap is not None
    return snap


def ahead(path: Path, seconds: float = 10) -> None:
    """Stamp a file ahead of the file system's clock: as if written in the tick flowmake hashed it in."""
    future = time.time() + seconds
    os.utime(path, (future, future))


def test_the_first_run_after_a_build_is_served_by_the_fast_path(project: Project, capsys) -> None:
    # What the run wrote was hashed after the file system's clock had passed
    # it (or settled at its end), so its stats vouch for it at once: no 2 s wait.
    fresh_project(project)
    project.write("src.txt", "two\n")
    assert project.json_run().ran == ["clean", "extract"]
    snap = snapshot_of(project)
    assert snap.suspects == ()
    assert sorted(snap.files.paths) == ["build/a.txt", "build/b.txt", "src.txt"]
    assert noop(project, capsys)[0] == 0


def test_a_file_the_clock_has_not_passed_is_a_suspect_until_it_has(project: Project, capsys) -> None:
    fresh_project(project)
    project.write("src.txt", "two\n")
    ahead(project.path("src.txt"))
    assert project.json_run().ran == ["clean", "extract"]
    assert snapshot_of(project).suspects == ("src.txt",)
    assert noop(project, capsys)[0] is None  # a suspect's content cannot be vouched for by its stat
    age_all(project.root)
    assert sorted(project.json_run().tasks_with("fresh")) == ["clean", "extract"]
    assert snapshot_of(project).suspects == ()
    assert noop(project, capsys)[0] == 0


def test_globs_keep_it_from_being_written(project: Project) -> None:
    # A new file matching the glob changes the inputs without changing any known stat.
    project.flowfile("""\
        [tasks.cat]
        inputs = ["data/*.csv"]
        outputs = ["all.csv"]
        run = "cat {inputs} > {outputs}"
    """)
    project.write("data/a.csv", "1\n")
    assert project.json_run().returncode == 0
    age_all(project.root)
    assert project.json_run().tasks_with("fresh") == ["cat"]
    assert not project.exists(".flowmake/noop.snapshot")
    project.write("data/b.csv", "2\n")
    assert project.json_run().ran == ["cat"]


def test_a_flowfile_the_clock_has_not_passed_leaves_no_snapshot(project: Project, capsys) -> None:
    # An edit in the tick the run read it in would keep its stat: not vouched for.
    project.flowfile(PIPELINE)
    project.write("src.txt", "one\n")
    ahead(project.path("Flowfile.toml"))
    assert project.json_run().returncode == 0
    assert not project.exists(".flowmake/noop.snapshot")
    assert noop(project, capsys)[0] is None
    age_all(project.root)
    assert sorted(project.json_run().tasks_with("fresh")) == ["clean", "extract"]
    assert noop(project, capsys)[0] == 0


def test_a_killed_run_leaves_no_snapshot_behind(project: Project, capsys) -> None:
    fresh_project(project)
    project.write("slow")
    project.write("src.txt", "two\n")
    proc = project.popen("run", "--progress", "json")
    project.track_pid(int(wait_for_file(project.path("started"), proc=proc)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert not project.exists(".flowmake/noop.snapshot")
    project.path("slow").unlink()
    assert noop(project, capsys)[0] is None
    result = project.json_run()
    assert "extract" in result.ran


@pytest.mark.parametrize(
    "argv, understood",
    [
        ([], True),
        (["run"], True),
        (["run", "-j", "4", "-q", "--progress", "plain"], True),
        (["-C", "proj", "run", "--jobs=2", "package"], True),
        (["run", "-n", "-k", "-B", "--force", "x", "--force=y"], True),
        (["run", "--force"], False),
        (["status"], False),
        (["-q"], False),
        (["run", "-j", "0"], False),
        (["run", "--progress", "fancy"], False),
    ],
)
def test_only_plain_runs_are_understood(argv, understood) -> None:
    assert (parse(argv) is not None) is understood


def test_run_options_are_parsed_as_typer_would() -> None:
    args = parse(["-f", "F.toml", "run", "-n", "-k", "-B", "--force", "x", "--force=y", "-j3", "-v", "--", "-t"])
    assert args is not None
    assert (args.file, args.dry_run, args.keep_going, args.always_make, args.force, args.jobs, args.verbose,
            args.targets) == ("F.toml", True, True, True, ["x", "y"], 3, True, ["-t"])


@pytest.mark.parametrize("option", [["-n"], ["-B"], ["--force", "extract"]])
def test_dry_and_forced_runs_never_take_the_noop_path(project: Project, capsys, option) -> None:
    fresh_project(project)
    assert noop(project, capsys, *option)[0] is None
    assert noop(project, capsys)[0] == 0


# -- the full path plans only the cone below what changed ------------------------

WITH_OTHER = PIPELINE + """
    [tasks.other]
    inputs = ["other.txt"]
    outputs = ["build/o.txt"]
    run = "cp {inputs} {outputs}"
"""


def proven_fresh(project: Project) -> set:
    """The tasks a full run would take as fresh from the snapshot, without planning them."""
    from flowmake.cli.commands import Project as Loaded
    from flowmake.cli.commands import open_state
    from flowmake.engine.graph import closure
    from flowmake.engine.proof import proven_fresh as proof

    loaded = Loaded.load(file=project.path("Flowfile.toml"), directory=None)
    state = open_state(loaded)
    try:
        proven, _cone = proof(loaded.flowfile, loaded.graph, closure(loaded.graph, loaded.targets([])),
                              state_identity=state.identity, target_names=(), environ=os.environ)
        return set(proven)
    finally:
        state.close()


def test_a_changed_source_leaves_only_the_tasks_below_it_to_plan(project: Project) -> None:
    fresh_project(project, WITH_OTHER)
    assert proven_fresh(project) == {"extract", "clean", "other"}
    project.write("src.txt", "two\n")
    assert proven_fresh(project) == {"other"}
    result = project.json_run()
    assert result.returncode == 0, result
    assert result.ran == ["clean", "extract"]
    assert result.statuses["other"] == "fresh"
    assert project.read("build/b.txt") == "TWO\nhello\n"


def test_an_edited_output_puts_its_task_and_those_below_in_the_cone(project: Project) -> None:
    fresh_project(project, WITH_OTHER)
    project.write("build/a.txt", "tampered\n")
    assert proven_fresh(project) == {"other"}
    result = project.json_run()
    assert result.ran == ["extract"]  # restores a.txt byte for byte: clean is cut off
    assert {"kind": "output modified", "path": "build/a.txt"} in [
        {k: r[k] for k in ("kind", "path")} for r in result.reasons("extract")]
    assert result.statuses["clean"] == "fresh"


def test_a_started_over_state_database_voids_the_snapshot(project: Project, capsys) -> None:
    fresh_project(project, WITH_OTHER)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if project.exists(f".flowmake/{name}"):
            project.path(f".flowmake/{name}").unlink()
    assert proven_fresh(project) == set()  # opening it made a new, empty database
    assert noop(project, capsys)[0] is None
    result = project.json_run()
    assert result.ran == ["clean", "extract", "other"]


def test_a_suspect_stays_in_the_cone_until_it_can_be_trusted(project: Project, capsys) -> None:
    fresh_project(project, WITH_OTHER)
    project.write("src.txt", "two\n")
    ahead(project.path("src.txt"))
    assert project.json_run().ran == ["clean", "extract"]
    assert proven_fresh(project) == {"other"}  # src.txt is re-checked by content, and what it feeds
    result = project.json_run()
    assert sorted(result.tasks_with("fresh")) == ["clean", "extract", "other"]
    age_all(project.root)
    assert project.json_run().tasks_with("fresh") == ["clean", "extract", "other"]
    # The snapshot, rebuilt from the cone and the records kept outside it, covers every file again.
    snap = snapshot_of(project)
    assert snap.suspects == () and sorted(snap.files.paths) == [
        "build/a.txt", "build/b.txt", "build/o.txt", "other.txt", "src.txt"]
    assert noop(project, capsys)[0] == 0


def test_a_reader_gone_before_the_noop_is_reported_leaves_it_recorded(project: Project) -> None:
    import subprocess

    from conftest import FLOWMAKE

    fresh_project(project)
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write flowmake makes gets EPIPE
    try:
        done = subprocess.run(FLOWMAKE + ["run", "--progress", "json"], cwd=project.root, env=project.env(),
                              stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    runs = json.loads(project.run("log", "--json").stdout)
    assert runs[0]["result"] == "success"  # its end is in the journal, as a full run's would be
    assert project.run("audit", "verify").returncode == 0


@pytest.mark.parametrize("mode", ["plain", "json"])
@pytest.mark.parametrize("work", [False, True], ids=["noop", "one-change"])
def test_a_run_imports_no_dataclasses_and_a_no_op_no_typing(project: Project, mode: str, work: bool) -> None:
    # dataclasses, typer and rich cost every run milliseconds; the no-op does without typing and pathlib
    # too (records.py), where they are ~9 ms of ~60; a run with work pays typing's ~4 ms (benchmarks/README.md).
    fresh_project(project)
    if work:
        project.write("src.txt", "changed\n")
    heavy = ["dataclasses", "inspect", "typer", "rich"] + ([] if work else ["typing", "pathlib"])
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"  # an editable install's finder imports pathlib as Python starts
        "from flowmake.__main__ import main\n"
        f"code = main(['run', '--progress', '{mode}'])\n"
        f"print(code, [m for m in {heavy!r} if m in sys.modules and m not in before], file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=project.root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "0 []", done.stderr


def test_a_prescan_finds_the_files_changed_since_the_snapshot(project: Project, monkeypatch) -> None:
    monkeypatch.setattr(prescans, "PRESCAN_MIN_FILES", 0)
    fresh_project(project)
    snap = snapshots.read(project.root / ".flowmake")
    assert snap is not None and "src.txt" in snap.files.paths
    project.write("src.txt", "edited\n")
    os.remove(project.root / "build" / "b.txt")
    prescan = prescans.start_prescan(snap.files, str(project.root))
    assert prescan is not None
    assert changed_by(prescan, snap.files, project) == {"src.txt", "build/b.txt"}
    prescan.close()  # already taken: nothing left to end


@pytest.mark.parametrize("child", ["runs", "stalls"])
def test_a_prescan_and_the_run_share_the_scan_and_miss_nothing(project: Project, monkeypatch, child: str) -> None:
    # Reports after every file; a stalled child (stopped at once) leaves the
    # whole scan to the run, which then must not wait for it.
    monkeypatch.setattr(prescans, "PRESCAN_MIN_FILES", 0)
    monkeypatch.setattr(prescans, "PRESCAN_CHUNK", 1)
    fresh_project(project)
    snap = snapshots.read(project.root / ".flowmake")
    assert snap is not None and len(snap.files.paths) >= 3
    first, last = snap.files.paths[0], snap.files.paths[-1]
    for path in (first, last):
        os.remove(project.root / path)
    prescan = prescans.start_prescan(snap.files, str(project.root))
    assert prescan is not None
    if child == "stalls":
        os.kill(prescan._pid, signal.SIGSTOP)
    else:
        time.sleep(0.2)  # long enough for it to report every file
    assert changed_by(prescan, snap.files, project) == {first, last}


def changed_by(prescan: prescans.Prescan, files: snapshots.Files, project: Project):
    root_fd = os.open(project.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return prescan.changed(files, root_fd)
    finally:
        os.close(root_fd)


def test_a_prescan_answers_only_for_the_records_it_scanned(project: Project, monkeypatch) -> None:
    monkeypatch.setattr(prescans, "PRESCAN_MIN_FILES", 0)
    fresh_project(project)
    snap = snapshots.read(project.root / ".flowmake")
    assert snap is not None
    prescan = prescans.start_prescan(snap.files, str(project.root))
    assert prescan is not None
    other = snap.files.without({"src.txt"})
    assert changed_by(prescan, other, project) is None  # a run in between rewrote the snapshot, say
    assert changed_by(prescan, snap.files, project) is None  # and the child is gone


def test_a_run_after_an_edit_plans_from_the_no_op_paths_scan(project: Project, monkeypatch, capsys) -> None:
    from flowmake.__main__ import main

    fresh_project(project)
    project.write("src.txt", "edited\n")
    monkeypatch.chdir(project.root)  # main applies -C to this process
    monkeypatch.setattr(prescans, "PRESCAN_MIN_FILES", 0)
    answers = []
    real_changed = prescans.Prescan.changed

    def spy(self, files, root_fd):
        answers.append(real_changed(self, files, root_fd))
        return answers[-1]

    monkeypatch.setattr(prescans.Prescan, "changed", spy)
    assert main(["-C", str(project.root), "run", "--progress", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert answers == [{"src.txt"}]
    assert {e["task"]: e["status"] for e in events if e["event"] == "task_finished"} == {
        "extract": "ok", "clean": "ok"}


@pytest.mark.parametrize("child", ["runs", "stalls"])
@pytest.mark.parametrize("changed", [None, "first", "last"])
def test_a_shared_scan_finds_a_change_on_either_side(project: Project, monkeypatch, changed, child) -> None:
    # The no-op path's check: the child stats from the first file on, this
    # process from the last one back; a stalled child leaves it all to this one.
    for i in range(6):
        project.write(f"f{i}.txt", f"{i}\n")
    names = [f"f{i}.txt" for i in range(6)]
    stats = [os.stat(project.root / n) for n in names]
    records = snapshots.Files(names, [v for st in stats for v in (st.st_size, st.st_mtime_ns, st.st_ctime_ns)],
                              [st.st_ino for st in stats])
    if changed is not None:
        project.write(names[0] if changed == "first" else names[-1], "a different size\n")
    monkeypatch.setattr(prescans, "PRESCAN_MIN_FILES", 0)
    monkeypatch.setattr(prescans, "PRESCAN_CHUNK", 1)
    prescan = prescans.start_prescan(records, str(project.root))
    assert prescan is not None
    if child == "stalls":
        os.kill(prescan._pid, signal.SIGSTOP)
    root_fd = os.open(project.root, os.O_RDONLY)
    try:
        assert prescan.unchanged(root_fd) is (changed is None)
        if changed is not None:  # and the scan goes on for the run that follows, which needs every change
            assert prescan.changed(records, root_fd) == {names[0] if changed == "first" else names[-1]}
    finally:
        os.close(root_fd)
        prescan.close()


@pytest.mark.parametrize("edit", [False, True], ids=["unchanged", "edited"])
def test_a_no_op_shares_its_scan_with_a_child_that_reads_the_snapshot_itself(project: Project, monkeypatch,
                                                                             capsys, edit: bool) -> None:
    monkeypatch.setattr(prescans, "SCAN_MIN_BYTES", 0)
    monkeypatch.setattr(prescans, "PRESCAN_CHUNK", 1)
    monkeypatch.setattr(prescans, "cpus", lambda: 2)
    fresh_project(project)
    started = []
    real_start = prescans.start_scan
    monkeypatch.setattr(prescans, "start_scan", lambda *a: started.append(real_start(*a)) or started[-1])
    if edit:
        project.write("src.txt", "edited\n")
    handed: list = []
    code = try_noop(["-C", str(project.root), "run", "--progress", "json"], hand_over=handed)
    out = capsys.readouterr().out
    assert len(started) == 1 and started[0] is not None
    if not edit:
        assert code == 0 and not handed
        assert {json.loads(line)["event"] for line in out.splitlines()} >= {"run_started", "run_finished"}
        return
    assert code is None and out == "" and handed == started  # nothing shown; the scan goes on for the run
    try:
        assert changed_by(handed[0], handed[0].files, project) == {"src.txt"}
    finally:
        handed[0].close()


@pytest.mark.parametrize("changed", [False, True])
def test_a_child_that_finds_another_snapshot_file_leaves_the_scan_to_the_run(project: Project, monkeypatch,
                                                                              changed: bool) -> None:
    monkeypatch.setattr(prescans, "PRESCAN_CHUNK", 1)
    fresh_project(project)
    state = project.root / ".flowmake"
    snap = snapshots.read(state)
    assert snap is not None
    if changed:
        os.remove(project.root / snap.files.paths[len(snap.files.paths) // 2])
    stamp = snapshots.stat_key(snapshots.path_in(state))
    scan = prescans.start_scan(str(state), str(project.root), (stamp[0] + 1, *stamp[1:]))  # not this file
    assert scan is not None
    scan.scanning(snap.files)
    root_fd = os.open(project.root, os.O_RDONLY)
    try:
        assert scan.unchanged(root_fd) is not changed
    finally:
        os.close(root_fd)
        scan.close()


def test_the_no_op_paths_snapshot_is_handed_over_only_while_its_file_is_unchanged(project: Project,
                                                                                     monkeypatch) -> None:
    monkeypatch.setattr(prescans, "PRESCAN_MIN_FILES", 0)
    fresh_project(project)
    state = project.root / ".flowmake"
    snap = snapshots.read(state)
    assert snap is not None
    prescan = prescans.start_prescan(snap.files, str(project.root))
    assert prescan is not None
    try:
        assert prescan.snapshot_if_current(state) is None  # nothing handed over
        prescan.snapshot, prescan.stamp = snap, snapshots.stat_key(snapshots.path_in(state))
        assert prescan.snapshot_if_current(state) is snap
        copy = state / "copy"
        copy.write_bytes(Path(snapshots.path_in(state)).read_bytes())
        os.replace(copy, snapshots.path_in(state))  # as a run writes a new one
        assert prescan.snapshot_if_current(state) is None
    finally:
        prescan.close()


@pytest.mark.parametrize("dropped", [3, 70], ids=["in-place", "rebuilt"])
def test_files_keep_each_paths_size_mtime_ctime_and_inode_together(dropped: int) -> None:
    names = [f"f{i}" for i in range(100)]
    files = snapshots.Files(names, [v for i in range(100) for v in (i, 1000 + i, 2000 + i)],
                            [5000 + i for i in range(100)])

    def entries(f: snapshots.Files) -> list:
        return [(p, tuple(f.stats[3 * i:3 * i + 3]), f.inodes[i]) for i, p in enumerate(f.paths)]

    out = {i for i in range(100) if (i * 37) % 100 < dropped}  # scattered; past 64, the other branch
    kept = [i for i in range(100) if i not in out]
    smaller = files.without({f"f{i}" for i in out})
    assert len(smaller.paths) == 100 - dropped
    assert entries(smaller) == [(f"f{i}", (i, 1000 + i, 2000 + i), 5000 + i) for i in kept]
    assert entries(files.part(2, 4)) == [("f2", (2, 1002, 2002), 5002), ("f3", (3, 1003, 2003), 5003)]
    assert entries(files.part(0, 1).plus(files.part(99, 100))) == [("f0", (0, 1000, 2000), 5000),
                                                                     ("f99", (99, 1099, 2099), 5099)]
