"""The command line: typer commands that wire the pieces together.

Thin by design: each command finds and loads the Flowfile, builds the graph,
opens the state and hands over to `build`, `commands` or a reporter. Errors
are rendered once, in `invocation.guarded`: a `FlowError` becomes `error:
...` and its exit code; anything else is a bug, reported in one line with
the path of the written traceback (exit 70). The commands that read history
and the unattended ones are in history_app.py and schedule_app.py; every
command is registered on `app` here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from .. import __version__
from ..errors import EXIT_USAGE, UsageError
from . import daemon_app, history_app, schedule_app
from .guard import exit_code_of
from .invocation import guarded, invocation, load_project
from .shorthand import HELP as SHORTHAND_HELP

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="flowmake: a make-like pipeline runner for data work. Run `flowmake run` in a project with a Flowfile.toml.",
    epilog=SHORTHAND_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)

GRAPH_FORMATS = ("text", "dot", "mermaid", "json")

def _version_callback(value: bool) -> None:
    if value:
        print(f"flowmake {__version__}")
        raise typer.Exit(0)


def _install_completion(value: bool) -> None:
    if value:
        from .completion import install

        raise typer.Exit(exit_code_of(lambda: install(None)) or 0)


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    file: Optional[Path] = typer.Option(None, "-f", "--file", help="Use this Flowfile instead of searching for Flowfile.toml (before or after the command)."),
    directory: Optional[Path] = typer.Option(None, "-C", "--directory", help="Change to this directory first (before or after the command)."),
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    install_completion: bool = typer.Option(
        False, "--install-completion", callback=_install_completion, is_eager=True,
        help="Install completion (commands, options, task names) for the current shell ($SHELL) and exit."),
) -> None:
    """flowmake: bring data pipelines up to date, and prove what ran."""
    invocation.file = file
    invocation.directory = directory
    if ctx.invoked_subcommand is None:
        # Bare `flowmake` is `flowmake run` with its defaults.
        ctx.invoke(run, targets=None, jobs=None, dry_run=False, keep_going=False, always_make=False, force=None,
                   progress="auto", output=None, wait=False, quiet=False, verbose=False, junit_xml=None, ci="auto")


# -- run ---------------------------------------------------------------------


@app.command(epilog=SHORTHAND_HELP)
@guarded
def run(
    targets: Optional[List[str]] = typer.Argument(None, help="Tasks, matrix variants or output paths (default: [flow] default, else every task)."),
    jobs: Optional[int] = typer.Option(None, "-j", "--jobs", help="Run N tasks at a time (default: flow.jobs, else the number of CPUs)."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Print what would run, why, and its command (secrets masked); run nothing."),
    keep_going: bool = typer.Option(False, "-k", "--keep-going", help="After a failure, keep running everything not downstream of it."),
    always_make: bool = typer.Option(False, "-B", "--always-make", help="Run every selected task, stale or not."),
    force: Optional[List[str]] = typer.Option(None, "--force", help="Run this task even if fresh (repeatable)."),
    progress: str = typer.Option("auto", "--progress", help="auto | tree | plain | json"),
    output: Optional[str] = typer.Option(
        None, "--output",
        help="What tasks print: prefixed (each line as \\[TASK] line) | interleaved | group (a block at its end) | "
             "none | auto (default: flow.output, else prefixed in plain logs, the latest line in the tree)."),
    wait: bool = typer.Option(False, "--wait", help="If another run holds the project, wait for it instead of exiting 3."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only failures and the final summary."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Also list fresh tasks."),
    junit_xml: Optional[Path] = typer.Option(
        None, "--junit-xml", metavar="PATH",
        help="Also write the run as JUnit XML here (one test case per task; default: [flow] junit_xml)."),
    ci: str = typer.Option(
        "auto", "--ci",
        help="CI log output: auto (GitHub Actions or GitLab CI when their variables say so, never at a terminal) | "
             "github | gitlab | none"),
    executor: Optional[str] = typer.Option(
        None, "--executor", metavar="NAME",
        help="Where tasks run: local (default: [flow] executor, else local) | dask (a Dask cluster, docs/scaling.md)."),
    scheduler_address: Optional[str] = typer.Option(
        None, "--scheduler-address", metavar="ADDRESS",
        help="The Dask scheduler, tcp://HOST:PORT (default: DASK_SCHEDULER_ADDRESS, else [flow] scheduler, "
             "else a local cluster)."),
    cache: Optional[str] = typer.Option(
        None, "--cache", metavar="URL",
        help="Restore stale tasks' outputs from this shared cache and store new ones there: a directory or a URL "
             "such as s3://bucket/prefix (default: FLOWMAKE_CACHE, else [flow] cache; docs/cache.md)."),
    cache_mode: str = typer.Option("readwrite", "--cache-mode", help="readwrite | read (never store) | write (never restore)"),
) -> int:
    """Bring the targets and what they need up to date."""
    from .commands import run_parsed
    from .fastpath import RunArgs, check

    # The RunArgs the fast path parses (fastpath.parse), checked and run the same way.
    args = RunArgs(file=invocation.file, directory=invocation.directory, targets=targets or [], jobs=jobs,
                   quiet=quiet, verbose=verbose, progress=progress, output=output, wait=wait, dry_run=dry_run,
                   keep_going=keep_going, always_make=always_make, force=force or [], argv=invocation.typed, ci=ci,
                   junit_xml=str(junit_xml) if junit_xml is not None else None, executor=executor,
                   scheduler_address=scheduler_address, cache=cache, cache_mode=cache_mode)
    check(args)
    return run_parsed(args)


# -- inspection ---------------------------------------------------------------


@app.command(epilog=SHORTHAND_HELP)
@guarded
def status(
    targets: Optional[List[str]] = typer.Argument(None, help="Tasks to show in full (default: every task, one line each)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {task, state, reasons}."),
    exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when anything is stale or blocked (for CI gates)."),
) -> int:
    """Each task: fresh, stale (with reasons) or blocked behind a stale task."""
    from .statuscmd import show_status

    return show_status(load_project(), targets or [], as_json=as_json, exit_code=exit_code)


@app.command("list", epilog=SHORTHAND_HELP)
@guarded
def list_tasks(
    as_json: bool = typer.Option(False, "--json", help="Print every task and variant as JSON (docs/json.md)."),
) -> int:
    """The tasks, with their help text."""
    from .listings import show_list

    return show_list(load_project(), as_json=as_json)


@app.command(epilog=SHORTHAND_HELP)
@guarded
def graph(
    targets: Optional[List[str]] = typer.Argument(None, help="Only these targets and what they need."),
    fmt: str = typer.Option("text", "--format", help="text | dot | mermaid | json"),
) -> int:
    """The dependency graph; edges point from a task to the tasks that depend on it."""
    if fmt not in GRAPH_FORMATS:
        raise UsageError(f"unknown graph format '{fmt}'", hint="use one of: " + ", ".join(GRAPH_FORMATS))
    from .listings import show_graph

    return show_graph(load_project(), targets or [], fmt=fmt)


@app.command(epilog=SHORTHAND_HELP)
@guarded
def clean(
    targets: Optional[List[str]] = typer.Argument(None, help="Tasks whose outputs to delete (default: every task)."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Print what would be deleted; delete nothing."),
    wait: bool = typer.Option(False, "--wait", help="Wait for a running flowmake instead of exiting 3."),
) -> int:
    """Delete the declared outputs of tasks (never anything else) and forget their records."""
    from .commands import clean_outputs

    return clean_outputs(load_project(), targets or [], dry_run=dry_run, wait=wait)


@app.command(epilog=SHORTHAND_HELP)
@guarded
def check() -> int:
    """Load and validate the Flowfile; print every problem; run nothing."""
    from .flowfiles import check_flowfile

    return check_flowfile(file=invocation.file, directory=invocation.directory)


@app.command(epilog=SHORTHAND_HELP)
@guarded
def init(force: bool = typer.Option(False, "--force", help="Overwrite an existing Flowfile.toml.")) -> int:
    """Write a starter Flowfile.toml in the current directory."""
    from .flowfiles import write_starter

    return write_starter(directory=invocation.directory, overwrite=force)


@app.command(epilog=SHORTHAND_HELP)
@guarded
def completion(
    shell: str = typer.Argument(..., help="bash | zsh | fish"),
    install: bool = typer.Option(False, "--install", help="Write it where the shell finds completions, instead of printing it."),
) -> int:
    """Print the shell completion script: commands, options, and the Flowfile's tasks, variants and outputs."""
    from .completion import install as install_script, script

    if install:
        script(shell)  # an unknown shell is exit 2 before anything is written
        return install_script(shell)
    sys.stdout.write(script(shell))
    return 0


@app.command(epilog=SHORTHAND_HELP)
@guarded
def schema(
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write it to this file instead of stdout."),
) -> int:
    """Print the JSON Schema of the Flowfile, for editors (docs/flowfile.md#editor-support)."""
    from .flowfiles import print_schema

    return print_schema(output=output)


# -- what was recorded (history_app.py), runs no one types (schedule_app.py) ----------

for command in (history_app.log, history_app.lineage, history_app.report, schedule_app.watch):
    app.command(epilog=SHORTHAND_HELP)(command)
app.add_typer(history_app.audit_app, name="audit")
app.add_typer(schedule_app.schedule_app, name="schedule")
app.add_typer(daemon_app.daemon_app, name="daemon")


cache_app = typer.Typer(help="The shared output cache (docs/cache.md): what it holds, and trimming it.",
                        no_args_is_help=True, epilog=SHORTHAND_HELP)
app.add_typer(cache_app, name="cache")
CACHE_HELP = "The cache: a directory or URL (default: FLOWMAKE_CACHE, else [flow] cache)."


@cache_app.command("stats", epilog=SHORTHAND_HELP)
@guarded
def cache_stats(
    cache: Optional[str] = typer.Option(None, "--cache", metavar="URL", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """Entries, blobs and bytes in the cache, and the hit rate of the recent runs that used it."""
    from .cachecmd import cache_stats as stats

    return stats(cache, file=invocation.file, directory=invocation.directory, as_json=as_json)


@cache_app.command("gc", epilog=SHORTHAND_HELP)
@guarded
def cache_gc(
    max_size: Optional[str] = typer.Option(None, "--max-size", metavar="SIZE", help="Trim to this size, least recently used first, e.g. 10GB."),
    older_than: Optional[str] = typer.Option(None, "--older-than", metavar="AGE", help="Remove entries not used for this long, e.g. 30d."),
    cache: Optional[str] = typer.Option(None, "--cache", metavar="URL", help=CACHE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """Remove entries least recently used first, then the blobs no entry names (safe beside running writers)."""
    from .cachecmd import cache_gc as collect

    return collect(cache, file=invocation.file, directory=invocation.directory, max_size=max_size,
                   older_than=older_than, as_json=as_json)


def main(argv: Optional[List[str]] = None, *, typed: Optional[List[str]] = None) -> int:
    """`argv` as shorthand.expand made it (expanded here when not); `typed`, as given, is what a run records."""
    from .shorthand import expand

    given = sys.argv[1:] if argv is None else argv
    invocation.typed = list(given if typed is None else typed)
    try:
        app(args=expand(given), prog_name="flowmake")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    return 0
