"""Who and when: run ids, the user and the host recorded with every run."""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import time
from typing import Optional


def new_run_id(now: Optional[float] = None) -> str:
    """Sortable id: UTC time to the millisecond, then 4 random hex digits."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}Z-{secrets.token_hex(2)}"


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry for this uid (containers)
        return str(os.getuid())


def host_name() -> str:
    return socket.gethostname()
