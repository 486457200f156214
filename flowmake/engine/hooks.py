"""Alerts after a run: the `[hooks]` commands and the webhook.

Run once per run, after every task has finished and before flowmake exits.
A hook that fails, hangs or cannot be delivered is reported as a warning and
never changes the run's exit code: an alert channel being down must not turn
a good run into a failed one, nor hide why a bad one failed.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

from ..events import RunResult, TaskFinished, iso_time
from ..executors.spawn import run_hook
from ..model import Hooks
from ..records import NamedTuple

HOOK_TIMEOUT = 300.0  # seconds: a hook is an alert, not a pipeline step
WEBHOOK_TIMEOUT = 5.0


class RunSummary(NamedTuple):
    run_id: str
    flow: str
    result: RunResult
    started: float
    finished: float
    counts: Mapping[str, int]
    failures: Tuple[TaskFinished, ...]
    log_dir: str  # project-relative

    def to_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "result": self.result.value,
            "started": iso_time(self.started),
            "finished": iso_time(self.finished),
            "duration": round(self.finished - self.started, 3),
            "counts": dict(self.counts),
            "failed": [
                {"task": f.task, "exit_code": f.exit_code, "message": f.message, "log": f.log, "tail": list(f.tail)}
                for f in self.failures
            ],
        }


def fire(hooks: Hooks, summary: RunSummary, *, root: Path, shell: Sequence[str],
         environ: Mapping[str, str], secret_names: Iterable[str] = ()) -> List[str]:
    """Run the hooks due for this result; returns warnings for the user.

    Hook output is masked with the values of every task's `secrets`: the
    hook sees the whole environment, and its log lands under .flowmake.
    """
    secrets = sorted({environ[n] for n in secret_names if environ.get(n)})
    warnings: List[str] = []
    command = hooks.on_success if summary.result is RunResult.SUCCESS else hooks.on_failure
    which = "on_success" if summary.result is RunResult.SUCCESS else "on_failure"
    if command:
        env = dict(environ)
        env.update({
            "FLOWMAKE_RUN_ID": summary.run_id,
            "FLOWMAKE_RESULT": summary.result.value,
            "FLOWMAKE_FAILED": " ".join(f.task for f in summary.failures),
            "FLOWMAKE_LOG_DIR": str(root / summary.log_dir),
            # Log names are not the task names (layout.LogNames): say which file is whose.
            "FLOWMAKE_FAILED_LOGS": " ".join(f.log.rsplit("/", 1)[-1] if f.log else "-" for f in summary.failures),
        })
        log = root / summary.log_dir / f"hook.{which}.log"
        try:
            code, last = run_hook(command, shell=shell, cwd=root, env=env, log_path=log, timeout=HOOK_TIMEOUT,
                                  secrets=secrets)
        except OSError as exc:
            warnings.append(f"hook {which} could not start: {exc}")
        else:
            rel = f"{summary.log_dir}/{log.name}"
            if code is None:
                warnings.append(f"hook {which} timed out after {HOOK_TIMEOUT:g}s and was killed (log: {rel})")
            elif code != 0:
                detail = f": {last}" if last else ""
                warnings.append(f"hook {which} failed with exit code {code}{detail} (log: {rel})")
    if hooks.webhook and summary.result is not RunResult.SUCCESS:
        problem = post_webhook(hooks.webhook, summary.to_json())
        if problem:
            warnings.append(f"webhook {hooks.webhook} not delivered: {problem}")
    return warnings


def post_webhook(url: str, payload: dict, *, timeout: float = WEBHOOK_TIMEOUT) -> Optional[str]:
    """POST the summary as JSON; None when delivered, else what went wrong.

    urllib's timeout bounds each socket read, not the exchange: a server that
    trickles bytes could hold the run forever. So the POST runs in a daemon
    thread and is given up on when the whole exchange exceeds `timeout`.
    """
    outcome: List[Optional[str]] = ["timed out after %gs" % timeout]

    def deliver() -> None:
        outcome[0] = _post(url, payload, timeout=timeout)

    worker = threading.Thread(target=deliver, name="flowmake webhook", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if not worker.is_alive() else f"timed out after {timeout:g}s"


def _post(url: str, payload: dict, *, timeout: float) -> Optional[str]:
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "flowmake"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{reason}"
    except Exception as exc:  # a malformed answer (http.client.HTTPException and kin)
        return f"bad answer: {type(exc).__name__}: {exc}"
    if not 200 <= status < 300:
        return f"HTTP {status}"
    return None
