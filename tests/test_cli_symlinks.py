"""flowmake's own deletions never reach through a symbolic link out of the project (issue 22, item 4).

`sub/up` is a link to a folder outside the project (a cloned repository can
carry one) and a task declares `sub/up/victim.txt`: the path passes every
lexical check, but deleting it deletes someone else's file. `clean`, a failed
and an interrupted task must leave that file alone; a declared path that is
itself a link loses only the link; `check` warns. Reading inputs through such
a link, and a task writing through one, stay allowed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conftest import Project, wait_for_file

VICTIM = "someone else's data\n"


def outside_dir(project: Project) -> Path:
    """A folder next to the project, holding a file that is not the project's; sub/up links to it."""
    outside = project.root.parent / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text(VICTIM)
    project.path("sub").mkdir()
    os.symlink(outside, project.path("sub/up"))
    return outside


def victim_project(project: Project, run: str = "echo new > sub/up/victim.txt") -> Path:
    outside = outside_dir(project)
    project.flowfile(f"""\
        [tasks.make]
        outputs = ["sub/up/victim.txt"]
        run = "{run}"
    """)
    return outside


def test_clean_does_not_delete_an_output_a_link_leads_outside_the_project(project: Project) -> None:
    outside = victim_project(project)
    result = project.run("clean")
    assert result.returncode == 0, result
    assert (outside / "victim.txt").read_text() == VICTIM
    assert result.err_lines == [f"warning: not deleting sub/up/victim.txt: sub/up is a symbolic link to {outside},"
                                " outside the project"], result
    assert result.lines == ["removed 0 of 1 declared outputs of 1 tasks"], result
    assert project.path("sub/up").is_symlink()


def test_clean_dry_run_does_not_offer_to_delete_an_output_outside_the_project(project: Project) -> None:
    outside = victim_project(project)
    result = project.run("clean", "-n")
    assert result.returncode == 0, result
    assert "would remove sub/up/victim.txt" not in result.stdout, result
    assert result.lines == ["would remove 0 of 1 declared outputs of 1 tasks"], result
    assert f"sub/up is a symbolic link to {outside}" in result.stderr, result


def test_clean_after_a_run_that_wrote_through_the_link_still_keeps_the_file(project: Project) -> None:
    outside = victim_project(project)
    ran = project.json_run()
    assert ran.returncode == 0, ran
    assert (outside / "victim.txt").read_text() == "new\n"  # a task writing there itself is allowed
    result = project.run("clean")
    assert result.returncode == 0, result
    assert (outside / "victim.txt").read_text() == "new\n"
    assert project.status()["make"]["state"] == "stale"  # forgotten all the same: it runs again


def test_a_failing_task_leaves_the_file_outside_the_project(project: Project) -> None:
    outside = victim_project(project, run="exit 3")
    result = project.json_run()
    assert result.returncode == 1, result
    assert result.statuses == {"make": "failed"}
    assert (outside / "victim.txt").read_text() == VICTIM


def test_an_interrupted_task_leaves_the_file_outside_the_project(project: Project) -> None:
    outside = victim_project(project, run="echo $$ > started.pid; sleep 30")
    proc = project.popen("run", "--progress", "json")
    project.track_pid(int(wait_for_file(project.path("started.pid"), proc=proc)))
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("flowmake did not exit within 15 s of SIGINT")
    assert proc.returncode == 130, (out, err)
    assert (outside / "victim.txt").read_text() == VICTIM
    assert project.path("sub/up").is_symlink()


def test_clean_removes_only_the_link_when_the_declared_output_is_the_link(project: Project) -> None:
    outside = outside_dir(project)
    (outside / "tree").mkdir()
    (outside / "tree" / "kept.txt").write_text(VICTIM)
    os.symlink(outside / "victim.txt", project.path("out.txt"))
    os.symlink(outside / "tree", project.path("outdir"))
    project.flowfile("""\
        [tasks.file]
        outputs = ["out.txt"]
        run = "echo new > out.txt"

        [tasks.tree]
        outputs = ["outdir/"]
        run = "mkdir -p outdir && echo new > outdir/new.txt"
    """)
    result = project.run("clean")
    assert result.returncode == 0, result
    assert result.lines == ["removed out.txt", "removed outdir/", "removed 2 of 2 declared outputs of 2 tasks"]
    assert not os.path.lexists(project.path("out.txt")) and not os.path.lexists(project.path("outdir"))
    assert (outside / "victim.txt").read_text() == VICTIM
    assert (outside / "tree" / "kept.txt").read_text() == VICTIM


def test_clean_of_a_directory_output_keeps_what_links_inside_it_point_to(project: Project) -> None:
    outside = outside_dir(project)
    project.flowfile("""\
        [tasks.tree]
        outputs = ["outdir/"]
        run = "mkdir -p outdir && echo new > outdir/new.txt"
    """)
    assert project.json_run().returncode == 0
    os.symlink(outside, project.path("outdir/up"))
    result = project.run("clean")
    assert result.returncode == 0, result
    assert not project.exists("outdir")
    assert (outside / "victim.txt").read_text() == VICTIM


def test_a_link_inside_the_project_is_followed_for_deletion(project: Project) -> None:
    project.write("real/inner.txt", "old\n")
    os.symlink("../real", project.path("sub").mkdir() or project.path("sub/in"))
    project.flowfile("""\
        [tasks.make]
        outputs = ["sub/in/inner.txt"]
        run = "echo new > sub/in/inner.txt"
    """)
    result = project.run("clean")
    assert result.returncode == 0, result
    assert result.lines == ["removed sub/in/inner.txt", "removed 1 of 1 declared outputs of 1 tasks"]
    assert not project.exists("real/inner.txt")


def test_check_warns_about_outputs_that_resolve_outside_the_project(project: Project) -> None:
    outside = outside_dir(project)
    os.symlink(outside / "victim.txt", project.path("linked.txt"))
    project.write("local/a.txt", "a\n")
    os.symlink("local", project.path("inside"))
    project.flowfile("""\
        [tasks.make]
        outputs = ["sub/up/victim.txt", "linked.txt", "inside/b.txt"]
        run = "true"

        [tasks.read]
        inputs = ["sub/up/victim.txt"]
        outputs = ["copy.txt"]
        run = "cp sub/up/victim.txt copy.txt"
    """)
    result = project.run("check")
    assert result.returncode == 0, result
    assert result.err_lines == [
        f"warning: output sub/up/victim.txt of task make resolves outside the project: sub/up is a symbolic link"
        f" to {outside}; the task writes there, `clean` will not delete it",
        f"warning: output linked.txt of task make is a symbolic link to {outside / 'victim.txt'}, outside the"
        " project: the task writes through it; `clean` removes only the link",
    ], result
    assert result.lines == ["ok: Flowfile.toml is valid: 2 tasks"], result


def test_inputs_are_read_through_a_link_to_a_folder_outside_the_project(project: Project) -> None:
    outside = outside_dir(project)
    project.flowfile("""\
        [tasks.copy]
        inputs = ["sub/up/victim.txt"]
        outputs = ["copy.txt"]
        run = "cp sub/up/victim.txt copy.txt"
    """)
    result = project.json_run()
    assert result.returncode == 0, result
    assert project.read("copy.txt") == VICTIM
    (outside / "victim.txt").write_text("changed\n")
    again = project.json_run()
    assert again.ran == ["copy"], again
    assert project.run("check").stderr == ""


def test_prune_deletes_old_logs_in_a_logs_folder_linked_to_another_disk(project: Project) -> None:
    # flowmake's own files stay its own wherever .flowmake/logs is linked to:
    # their boundary is the logs folder, not the project.
    project.flowfile("""\
        [tasks.talk]
        always = true
        run = "echo hello"
    """)
    first = project.json_run()
    second = project.json_run()
    assert first.returncode == 0 and second.returncode == 0
    elsewhere = project.root.parent / "big-disk-logs"
    os.rename(project.path(".flowmake/logs"), elsewhere)
    os.symlink(elsewhere, project.path(".flowmake/logs"))
    result = project.run("log", "--prune", "1")
    assert result.returncode == 0, result
    assert result.stderr == "", result
    assert sorted(p.name for p in elsewhere.iterdir()) == [second.run_id]
