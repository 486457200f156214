"""Where flowmake's own files are in a project: the Flowfile, `.flowmake/`, run logs.

Light (nothing but `os`, `pathlib` and the error types), so that the fast
paths can find the project without importing the loader.
"""

from __future__ import annotations

import os

from .errors import FlowfileError
from .records import TYPE_CHECKING

if TYPE_CHECKING:  # typing and pathlib stay off the no-op path (records.py)
    from pathlib import Path
    from typing import Callable, Collection, Dict, List, Optional

FLOWFILE_NAME = "Flowfile.toml"
STATE_DIR = ".flowmake"


def nearest_flowfile(cwd: str) -> Optional[str]:
    """Absolute path of Flowfile.toml in `cwd` or its nearest parent, if any."""
    here = os.path.abspath(cwd)
    while True:
        candidate = os.path.join(here, FLOWFILE_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def find_flowfile(cwd: Path, explicit: Optional[Path] = None) -> Path:
    """The Flowfile to use: `explicit` (-f, relative to cwd) or the nearest Flowfile.toml upwards."""
    from pathlib import (
        Path,  # here, not at the top: the no-op path uses this module without it
    )

    cwd = Path(os.path.abspath(cwd))
    if explicit is not None:
        path = Path(os.path.abspath(cwd / explicit))
        if path.is_dir():
            raise FlowfileError(
                f"{path} is a directory, not a Flowfile",
                hint=f"pass -f {path / FLOWFILE_NAME}, or -C {path} to run there",
            )
        if not path.is_file():
            raise FlowfileError(f"Flowfile {path} does not exist", hint="check the -f path")
        return path
    found = nearest_flowfile(str(cwd))
    if found is not None:
        return Path(found)
    raise FlowfileError(
        f"no {FLOWFILE_NAME} in {cwd} or any parent",
        hint="run `flowmake init` to write a starter one, or pass -f PATH",
    )


def find_history_root(cwd: Path, explicit: Optional[Path] = None) -> Path:
    """The project root for commands that read only the state (log, lineage, audit).

    They must work when today's Flowfile does not load, or is gone: with `-f`,
    the root is that file's directory, whether the file exists or not; else
    the nearest directory upwards holding a Flowfile.toml or a `.flowmake/`.
    """
    from pathlib import Path

    cwd = Path(os.path.abspath(cwd))
    if explicit is not None:
        path = Path(os.path.abspath(cwd / explicit))
        if path.is_dir():
            raise FlowfileError(f"{path} is a directory, not a Flowfile",
                                hint=f"pass -f {path / FLOWFILE_NAME}, or -C {path}")
        if not path.is_file() and not os.path.isdir(path.parent / STATE_DIR):
            raise FlowfileError(f"Flowfile {path} does not exist and {path.parent} has no {STATE_DIR}/",
                                hint="check the -f path")
        return path.parent
    here = str(cwd)
    while True:
        if os.path.isfile(os.path.join(here, FLOWFILE_NAME)) or os.path.isdir(os.path.join(here, STATE_DIR)):
            return Path(here)
        parent = os.path.dirname(here)
        if parent == here:
            raise FlowfileError(f"no {FLOWFILE_NAME} or {STATE_DIR}/ in {cwd} or any parent",
                                hint="run this in a flowmake project, or pass -C DIR or -f PATH")
        here = parent


def in_project(root: Path, path: str) -> Optional[str]:
    """`path` as a project-relative path ('/'-separated, a trailing '/' kept), or None if outside.

    A relative path is relative to the root already (`..` may not leave it). An absolute one is
    taken lexically first, then through symlinks (a root reached through a
    link, as /tmp is on macOS), so that `$PWD/out.txt` names out.txt.
    The root itself is not a path in the project.
    """
    if not os.path.isabs(path):
        norm = os.path.normpath(path)
        if norm in (".", "..") or norm.startswith(".." + os.sep):
            return None
        return norm.replace(os.sep, "/") + ("/" if path.endswith("/") else "")
    trailing = "/" if path.endswith("/") else ""
    for base, full in ((os.path.abspath(root), os.path.abspath(path)),
                       (os.path.realpath(root), os.path.realpath(path))):
        rel = os.path.relpath(full, base)
        if rel != "." and rel != ".." and not rel.startswith(".." + os.sep):
            return rel.replace(os.sep, "/") + trailing
    return None


def run_log_dir(run_id: str) -> str:
    """Project-relative directory of one run's task and hook logs."""
    return f"{STATE_DIR}/logs/{run_id}"


# Windows refuses these as file names, with any extension (`con.log`, `aux.S01.log`).
_WINDOWS_DEVICES = frozenset(["con", "prn", "aux", "nul"] + [f"{d}{i}" for d in ("com", "lpt") for i in range(10)])
HOOK_LOG_STEMS = ("hook.on_failure", "hook.on_success")  # hooks.py writes these beside the tasks' logs
_HOOK_KEYS = frozenset(s.casefold() for s in HOOK_LOG_STEMS)
_LONGEST_STEM = 120  # well under 255 bytes a name, and room in Windows' 260-character paths


def plain_log_stem(task: str, attempt: int) -> str:
    """A log's name without `.log`, before any clash is resolved: `:` (matrix) becomes `.`."""
    stem = task.replace(":", ".")
    return stem if attempt == 1 else f"{stem}.attempt{attempt}"


class LogNames:
    """Portable, distinct log file names for the task attempts of one run.

    Task names use letters, digits, `_`, `-`, `.` and (matrix variants) `:`,
    which artifact uploaders and Windows refuse; so `:` becomes `.`
    (`validate:S01` writes `validate.S01.log`, its second attempt
    `validate.S01.attempt2.log`). That alone could give two tasks one file
    (`validate:S01` and a task named `validate.S01`; `Build` and `build` on a
    case-insensitive disk), or a name Windows reserves (`con.log`) or one too
    long: each of those gets a short hash of its real name instead
    (`validate.S01-1f0c9a2e.log`). Every name stays in the POSIX portable
    set; the attempt records keep the path, which is how `flowmake log`
    maps a file back to its task.
    """

    def __init__(self, tasks: Collection[str], most_attempts: Callable[[str], int]) -> None:
        """`tasks`: every task of the Flowfile; `most_attempts(task)`: retries + 1.

        Asked only of the few tasks whose names could clash: a loaded
        Flowfile unpickles each task on first use (loadcache.py), and a run
        that starts one task of 10,000 must not pay for the other 9,999.
        """
        self._tasks = tasks
        self._most_attempts = most_attempts
        # One pass over the names (~2 ms for 10,000); which stems clash is then asked per started task.
        self._folded = set(map(str.casefold, tasks))
        self._counts: Optional[Dict[str, int]] = None  # every stem's count: only when names differ by case alone

    def name(self, task: str, attempt: int) -> str:
        stem = plain_log_stem(task, attempt)
        key = stem.casefold()
        if (key in _HOOK_KEYS or len(stem) > _LONGEST_STEM or key.split(".", 1)[0] in _WINDOWS_DEVICES
                or self._clashes(task, attempt, key)):
            import hashlib  # only for the rare clash: not on every run's path

            digest = hashlib.blake2b(f"{task}\0{attempt}".encode(), digest_size=8).hexdigest()
            first, dot, rest = stem[:_LONGEST_STEM - 17].partition(".")
            for size in (8, 16):  # longer only if the short form is itself someone's plain name
                if first.casefold() in _WINDOWS_DEVICES:  # the device name must not stand alone before a dot
                    stem = f"{first}-{digest[:size]}{dot}{rest}"
                else:
                    stem = f"{first}{dot}{rest}-{digest[:size]}"
                if not self._clashes(task, attempt, stem.casefold()):
                    break
        return stem + ".log"

    def _clashes(self, task: str, attempt: int, key: str) -> bool:
        """Whether another task attempt's plain stem is `key`, ignoring case."""
        own = task.casefold()
        if self._counts is None and len(self._folded) == len(self._tasks) and key.count(".") <= 8:
            # The names whose stem could be `key`: `key` itself, or it with some
            # dots standing for matrix colons; as a first attempt or a retry.
            base, retry = key, 1
            head, dot, tail = key.rpartition(".attempt")
            if dot and tail.isdigit() and int(tail) > 1:
                retry = int(tail)
            for stem, b in ((key, 1), (head, retry)) if retry > 1 else ((key, 1),):
                for candidate in _colon_forms(stem):
                    if candidate in self._folded and (candidate, b) != (own, attempt):
                        if b == 1 or self._most(candidate) >= b:
                            return True
            return False
        if self._counts is None:
            counts: Dict[str, int] = {}
            for name in self._tasks:
                for n in range(1, self._most_attempts(name) + 1):
                    k = plain_log_stem(name, n).casefold()
                    counts[k] = counts.get(k, 0) + 1
            self._counts = counts
        mine = plain_log_stem(task, attempt).casefold() == key
        return self._counts.get(key, 0) > (1 if mine else 0)

    def _most(self, folded: str) -> int:
        # Without case twins, exactly one task folds to `folded`.
        return next(self._most_attempts(name) for name in self._tasks if name.casefold() == folded)


def _colon_forms(stem: str) -> List[str]:
    """`stem` with each subset of its dots turned back into colons."""
    forms = [""]
    for part_index, part in enumerate(stem.split(".")):
        if part_index == 0:
            forms = [part]
        else:
            forms = [f + sep + part for f in forms for sep in (".", ":")]
    return forms
