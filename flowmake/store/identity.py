"""Who and when: run ids, the user and the host recorded with every run.

Kept to `os` and `time` alone: the no-op fast path records a run too, and
`secrets`, `socket` and `getpass` would cost it several milliseconds.
"""

from __future__ import annotations

import os
import time

from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Optional


def new_run_id(now: Optional[float] = None) -> str:
    """Sortable id: UTC time to the millisecond, then 4 random hex digits."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}Z-{os.urandom(2).hex()}"


def current_user() -> str:
    """As getpass.getuser(): the login environment first, then the password database."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # no passwd entry for this uid (containers)
        return str(os.getuid())


def host_name() -> str:
    return os.uname().nodename
