"""Where flowmake's own files are in a project: the Flowfile, `.flowmake/`, run logs.

Light (nothing but `os`, `pathlib` and the error types), so that the fast
paths can find the project without importing the loader.
"""

from __future__ import annotations

import os

from .errors import FlowfileError
from .records import TYPE_CHECKING

if TYPE_CHECKING:  # typing and pathlib would cost the no-op path ~6 ms to import (records.py)
    from pathlib import Path
    from typing import Optional

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


def run_log_dir(run_id: str) -> str:
    """Project-relative directory of one run's task and hook logs."""
    return f"{STATE_DIR}/logs/{run_id}"
