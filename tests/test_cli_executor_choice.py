"""Choosing where tasks run (executors/registry.py): `--executor`, `[flow] executor`, the scheduler's address.

Mistakes are usage errors (exit 2, one message, nothing run), with or
without the dask extra installed; the real cluster is tests/test_dask_executor.py's.
"""

from __future__ import annotations

from conftest import Project


def test_an_unknown_executor_is_a_usage_error(project: Project) -> None:
    project.flowfile("""
        [tasks.t]
        run = "touch ran"
    """)
    result = project.run("run", "--executor", "slurm")
    assert result.returncode == 2, result
    assert "unknown executor 'slurm'" in result.stderr and "local, dask" in result.stderr
    assert not project.exists("ran")


def test_a_scheduler_address_without_the_dask_executor_is_a_usage_error(project: Project) -> None:
    project.flowfile("""
        [tasks.t]
        run = "touch ran"
    """)
    result = project.run("run", "--scheduler-address", "tcp://127.0.0.1:8786")
    assert result.returncode == 2, result
    assert "--scheduler-address needs --executor dask" in result.stderr
    assert not project.exists("ran")


def test_the_flowfile_names_only_known_executors(project: Project) -> None:
    project.flowfile("""
        [flow]
        executor = "slurm"

        [tasks.t]
        run = "true"
    """)
    result = project.run("check")
    assert result.returncode == 2, result
    assert "Flowfile.toml:3" in result.stderr and "key `executor` must be one of local, dask" in result.stderr


def test_the_local_executor_records_this_host_as_each_attempts_worker(project: Project) -> None:
    import json
    import os

    project.flowfile("""
        [tasks.t]
        run = "true"
    """)
    ran = project.json_run("--executor", "local")
    assert ran.returncode == 0, ran
    attempts = json.loads(project.run("log", ran.run_id, "--json").stdout)["attempts"]
    assert [a["worker"] for a in attempts] == [os.uname().nodename]
    assert f"ran on      {os.uname().nodename}" in project.run("log", ran.run_id).stdout
