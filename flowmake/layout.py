"""Where flowmake's own files are in a project: the Flowfile, `.flowmake/`, run logs.

A leaf with nothing but `os`, so that the no-op fast path can find the
project without importing the loader.
"""

from __future__ import annotations

import os
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


def run_log_dir(run_id: str) -> str:
    """Project-relative directory of one run's task and hook logs."""
    return f"{STATE_DIR}/logs/{run_id}"
