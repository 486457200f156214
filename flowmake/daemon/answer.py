"""A `flowmake run` answered inside the daemon: the fast path's own no-op run, on the client's streams.

The client sent its argv, working directory, environment and its stdout and
stderr; for the length of the request they are this process's, and the
fast path's `_NoopRun` records the run (under the project lock, in the same
audit trail) and reports it through the same reporters, so the output, the
record and the exit code are the ones the client itself would have made.
Every check the fast path makes before its stats is made here again
against the client's arguments and environment; the stats are replaced by
the watches' proof (proof.py). Anything else declines: nothing shown,
nothing recorded, and the client takes its ordinary path.
"""

from __future__ import annotations

import os
import sys

from .. import __version__
from ..cli import fastpath
from ..cli.guard import exit_code_of
from ..engine import snapshot as snapshots
from ..errors import LockHeldError
from ..store.lock import ProjectLock

DECLINE = ("decline", "")


def answer_run(proof, request, fds, still_asked=lambda: True) -> tuple:
    """The reply to a run request: ("done", exit code) or ("decline", why).

    `still_asked`: whether the client still waits (it gives up after a timeout and runs on its own).
    """
    (_, version, argv, typed, cwd, flowfile, environ, encodings) = request
    if len(fds) != 2:
        return ("decline", "the client's streams did not arrive")
    streams = [open(fd, "w", encoding=enc or "utf-8", errors=errors or "strict", closefd=True)
               for fd, (enc, errors) in zip(fds, encodings)]
    saved = (sys.stdout, sys.stderr, os.getcwd())
    try:
        sys.stdout, sys.stderr = streams
        if os.environ != environ:  # the daemon reads none of it between requests: left as the last client's
            _replace_environ(environ)
        os.chdir(cwd)
        outcome = []
        code = exit_code_of(lambda: _noop(proof, argv, typed, flowfile, outcome, still_asked))
        return ("done", code) if code is not None else ("decline", outcome[0] if outcome else "")
    finally:
        for stream in streams:
            try:
                stream.close()  # flushed: the client reads what the run printed before it gets the reply
            except OSError:
                pass  # a reader gone away, as the fast path survives it
        sys.stdout, sys.stderr = saved[0], saved[1]
        os.chdir(saved[2])


def _replace_environ(environ) -> None:
    # In place: the reporters and the recorder were handed os.environ itself.
    os.environ.clear()
    os.environ.update(environ)


def _noop(proof, argv, typed, flowfile: str, outcome: list, still_asked):
    args = fastpath.parse(argv, typed=typed)
    why = _unsuitable(args)
    if why:
        outcome.append(why)
        return None
    mode = fastpath.progress_mode(args.progress)
    lock = ProjectLock(os.path.join(proof.state_dir, "lock"))
    try:
        lock.acquire(wait=False)
    except LockHeldError:
        outcome.append("another run holds the project lock")  # the client waits, or says who holds it
        return None
    try:
        # Under the lock: a run that just ended had its changes queued before it let go.
        proof.refresh()
        snap = proof.snap
        if snap is None or not proof.holds_for(flowfile):
            outcome.append(proof.why_not or "another project, or it moved")
            return None
        if not snapshots.applies(snap, version=__version__, flowfile=flowfile, targets=args.targets,
                                 environ=os.environ):
            outcome.append("the snapshot is for other targets or env_inputs values")
            return None
        if not still_asked():
            outcome.append("the client gave up waiting")  # and runs on its own: not twice
            return None
        run = fastpath._NoopRun.prepare(snap, args, mode, proof.root, False)
        if run is None:
            outcome.append("the state database is not one a no-op can record in")
            return None
        code = run.report()
        if code is None:
            outcome.append("the state database could not record the run")
        return code
    finally:
        lock.release()


def _unsuitable(args) -> str:
    """Why the fast path itself would not answer these arguments in this environment ("" when it would)."""
    if args is None or args.dry_run or args.always_make or args.force:
        return "not a plain run"
    if snapshots.shortcuts_off(os.environ):
        return "shortcuts are off"
    if os.environ.get("GITHUB_ACTIONS") == "true" or os.environ.get("GITLAB_CI"):
        return "CI output is the full path's"
    if fastpath._cache_url_to_check(args.cache or os.environ.get("FLOWMAKE_CACHE") or ""):
        return "a cache URL to check"
    return ""
