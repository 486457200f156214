"""Reaching a Dask cluster: the scheduler at an address (or a local cluster), its workers, and their view of the files.

Everything here fails as a usage error (exit 2, one message): a scheduler
that does not answer within CONNECT_TIMEOUT, a cluster without workers,
workers that cannot import flowmake or do not see the project root. Nothing
has started by then, so nothing is left to undo.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ...errors import UsageError

CONNECT_TIMEOUT = 5.0  # seconds to reach the scheduler: an unreachable one is exit 2 this soon
WORKER_WAIT = 10.0  # seconds to wait for a first worker of a cluster that has none yet
SCALING_DOC = "docs/scaling.md"


def connect(address: Optional[str], *, root: Path) -> Tuple[Any, Any]:
    """(a connected Client, the LocalCluster started for it or None), with every worker checked."""
    try:
        import distributed
    except ImportError:
        raise UsageError("--executor dask needs Dask's `distributed` package, which is not installed",
                         hint="pip install 'flowmake[dask]'") from None
    # Dask's own warnings (a worker's heartbeat missed, ...) are not this run's output.
    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = _local_cluster(distributed) if address is None else None
    target = cluster if cluster is not None else address
    try:
        client = distributed.Client(target, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise UsageError(f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT:g}s: {exc}",
                         hint="start one (`dask scheduler`, then `dask worker ADDRESS` on each machine), or fix "
                              f"--scheduler-address, DASK_SCHEDULER_ADDRESS or [flow] scheduler ({SCALING_DOC})"
                         ) from None
    try:
        _wait_for_a_worker(client, address)
        check_workers(client, root)
    except BaseException:
        close(client, cluster)
        raise
    return client, cluster


def _local_cluster(distributed: Any) -> Any:
    """A cluster of worker processes on this machine, one thread each, as many as CPUs (no dashboard).

    Its worker processes are started with SIGINT ignored: a Ctrl-C at the
    terminal reaches the whole foreground process group, and it is
    flowmake's to act on (cancel, then kill the commands), not theirs to die of.
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return distributed.LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                        dashboard_address=None, scheduler_port=0, silence_logs=logging.ERROR)
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait_for_a_worker(client: Any, address: Optional[str]) -> None:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except (TimeoutError, OSError) as exc:
        raise UsageError(f"the Dask scheduler at {address} has no workers (waited {WORKER_WAIT:g}s): {exc}",
                         hint=f"start workers with `dask worker {address}` ({SCALING_DOC})") from None
    except Exception as exc:  # WorkerStartTimeoutError in some versions
        raise UsageError(f"the Dask scheduler at {address} has no workers (waited {WORKER_WAIT:g}s): {exc}",
                         hint=f"start workers with `dask worker {address}` ({SCALING_DOC})") from None


def check_workers(client: Any, root: Path, workers: Optional[List[str]] = None) -> None:
    """Every worker (or these) reads a sentinel file the client wrote under the project root, at the same path.

    The cluster shares the project through a file system (NFS, Lustre, a
    mounted bucket): a worker that does not see it would fail each task it
    gets, or worse write outputs where no one looks. Fails naming them.
    """
    from .remote import SENTINEL_DIR, sees_sentinel

    token = os.urandom(16).hex()
    folder = root / SENTINEL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    sentinel = folder / f"sentinel-{token}"
    sentinel.write_text(token, encoding="utf-8")
    try:
        answers: Dict[str, Any] = client.run(sees_sentinel, str(sentinel), token, workers=workers,
                                             on_error="return")
    finally:
        sentinel.unlink()
    blind = {w: a for w, a in answers.items() if a is not None}
    if not blind:
        return
    if all(isinstance(a, BaseException) for a in blind.values()):
        first = next(iter(blind.values()))
        if isinstance(first, (ImportError, ModuleNotFoundError)) or "flowmake" in str(first):
            raise UsageError(f"Dask workers cannot run flowmake's code: {', '.join(sorted(blind))} ({first})",
                             hint=f"install flowmake (the same version) where the workers run ({SCALING_DOC})")
    listed = "; ".join(f"{w}: {a}" for w, a in sorted(blind.items(), key=lambda item: item[0]))
    raise UsageError(f"{len(blind)} of {len(answers)} Dask worker(s) do not see the project root {root}: {listed}",
                     hint="the workers must see the project at the same path, through a shared file system "
                          f"(NFS, Lustre, a mounted bucket) ({SCALING_DOC})")


def close(client: Any, cluster: Any) -> None:
    """Let go of the client (and stop the local cluster), quietly: the scheduler may be gone already."""
    try:
        client.close(timeout=2)
    except Exception:  # noqa: BLE001 - whatever a half-dead connection raises, the run is over
        pass
    if cluster is not None:
        try:
            cluster.close(timeout=5)
        except Exception:  # noqa: BLE001
            pass
