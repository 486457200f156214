"""`status --exit-code`, the CI gate: tasks that run on every run (`always = true`,
or neither inputs nor outputs) are shown as `always` and are not part of it."""

from __future__ import annotations

from conftest import Project, status_json

CONVERGES = """\
    [tasks.gen]
    inputs = ["src.txt"]
    outputs = ["a.txt"]
    run = "cp src.txt a.txt"

    [tasks.fetch]
    always = true
    outputs = ["f.txt"]
    run = "echo f > f.txt"

    [tasks.use]
    inputs = ["f.txt", "a.txt"]
    outputs = ["u.txt"]
    run = "cat f.txt a.txt > u.txt"

    [tasks.ping]
    run = "true"

    [tasks.after_ping]
    after = ["ping"]
    outputs = ["p.txt"]
    run = "echo p > p.txt"
"""


def converged(project: Project) -> None:
    project.flowfile(CONVERGES)
    project.write("src.txt", "one\n")
    result = project.run("run", "--progress", "plain")
    assert result.returncode == 0, result


def test_gate_passes_after_a_run_although_always_and_no_file_tasks_would_run_again(project: Project) -> None:
    converged(project)
    result = project.run("status", "--exit-code")
    assert result.returncode == 0, result
    assert result.lines == [
        "fresh    gen",
        "always   fetch       always",
        "fresh    use",
        "always   ping        no inputs or outputs",
        "fresh    after_ping",
        "5 tasks: 3 fresh, 0 stale, 0 blocked, 2 always",
    ]


def test_gate_still_fails_on_real_staleness_below_an_always_task(project: Project) -> None:
    converged(project)
    project.write("src.txt", "two\n")
    result = project.run("status", "--exit-code")
    assert result.returncode == 1, result
    assert result.lines[-1] == "5 tasks: 1 fresh, 1 stale, 1 blocked, 2 always"
    project.write("src.txt", "one\n")
    project.write("u.txt", "edited by hand\n")
    edited = project.run("status", "--exit-code")
    assert edited.returncode == 1, edited
    assert "stale    use         output modified: u.txt" in edited.lines


def test_status_json_names_the_state_always_and_the_gate_agrees(project: Project) -> None:
    converged(project)
    result = project.run("status", "--json", "--exit-code")
    assert result.returncode == 0, result
    rows = status_json(result)
    assert {name: row["state"] for name, row in rows.items()} == {
        "gen": "fresh", "fetch": "always", "use": "fresh", "ping": "always", "after_ping": "fresh"}
    assert rows["fetch"]["reasons"] == [{"kind": "always"}]
    assert rows["ping"]["reasons"] == [{"kind": "no inputs or outputs"}]


def test_a_run_still_waits_for_an_always_task_before_the_tasks_below_it(project: Project) -> None:
    converged(project)
    dry = project.run("run", "-n", "--progress", "plain")
    assert "maybe  use              may run after: fetch" in dry.lines, dry
    project.flowfile(CONVERGES.replace("echo f > f.txt", "echo g > f.txt"))
    ran = project.json_run()
    assert ran.returncode == 0, ran
    assert set(ran.ran) == {"fetch", "use", "ping"}
    assert project.read("u.txt") == "g\none\n"
