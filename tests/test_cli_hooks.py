"""Run hooks and the webhook through the real CLI (issue 3, item 4).

on_failure / on_success commands get FLOWMAKE_RUN_ID, FLOWMAKE_RESULT,
FLOWMAKE_FAILED and FLOWMAKE_LOG_DIR; a failing hook is a warning, never a
different exit code. The webhook is tested against real servers on
127.0.0.1: one that records POST bodies, a closed port, and one that accepts
connections and never answers (the run must still end after the webhook's
short timeout).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from conftest import Project, wait_for

# A hook script: each FLOWMAKE_* variable and the working directory, one per line.
RECORD_HOOK = """\
#!/bin/sh
{
  echo "RUN_ID=$FLOWMAKE_RUN_ID"
  echo "RESULT=$FLOWMAKE_RESULT"
  echo "FAILED=$FLOWMAKE_FAILED"
  echo "LOG_DIR=$FLOWMAKE_LOG_DIR"
  echo "PWD=$(pwd)"
} > "$1"
"""

TASKS = """
[tasks.bad]
run = "echo first line; echo last line; exit 3"

[tasks.good]
outputs = ["good.txt"]
run = "echo good > good.txt"
"""


def hooks_project(project: Project, hooks: str, tasks: str = TASKS) -> None:
    project.write("hooks/record.sh", RECORD_HOOK)
    project.write("Flowfile.toml", "[hooks]\n" + hooks + "\n" + tasks, dedent=False)


def recorded(project: Project, name: str) -> Dict[str, str]:
    lines = project.read(name).splitlines()
    return dict(line.split("=", 1) for line in lines)


# -- on_failure / on_success ------------------------------------------------------------


def test_on_failure_hook_gets_run_id_result_failed_tasks_and_an_existing_log_dir(project: Project) -> None:
    hooks_project(project, 'on_failure = "sh hooks/record.sh alert.txt"\n'
                           'on_success = "sh hooks/record.sh success.txt"')
    result = project.json_run("-k")
    assert result.returncode == 1, result
    assert result.statuses == {"bad": "failed", "good": "ok"}
    env = recorded(project, "alert.txt")
    assert env["RUN_ID"] == result.run_id
    assert env["RESULT"] == "failed"
    assert env["FAILED"].split() == ["bad"]
    log_dir = Path(env["LOG_DIR"])
    assert log_dir.is_absolute() and log_dir.is_dir(), env
    assert log_dir.resolve() == (project.root / ".flowmake" / "logs" / result.run_id).resolve()
    assert (log_dir / "bad.log").read_text() == "first line\nlast line\n"
    assert Path(env["PWD"]).resolve() == project.root.resolve()
    assert not project.exists("success.txt")


def test_on_failure_hook_names_every_failed_variant(project: Project) -> None:
    hooks_project(project, 'on_failure = "sh hooks/record.sh alert.txt"', tasks="""
[tasks.check]
matrix = { study = ["S01", "S02", "S03"] }
run = "[ {study} = S02 ]"
""")
    result = project.json_run("-k")
    assert result.returncode == 1, result
    assert sorted(recorded(project, "alert.txt")["FAILED"].split()) == ["check:S01", "check:S03"]


def test_on_success_hook_runs_after_a_successful_run_and_after_a_no_op_run(project: Project) -> None:
    hooks_project(project, 'on_success = "echo $FLOWMAKE_RESULT $FLOWMAKE_RUN_ID >> hook.txt"\n'
                           'on_failure = "echo failure >> failure.txt"')
    run_ids = []
    for expected in ("ok", "fresh", "fresh"):  # the second no-op may take the no-op fast path
        result = project.json_run("good")
        assert result.returncode == 0, result
        assert result.statuses == {"good": expected}
        run_ids.append(result.run_id)
    assert project.read("hook.txt").splitlines() == [f"success {run_id}" for run_id in run_ids]
    assert not project.exists("failure.txt")

    plain = project.plain_run("good")
    assert plain.returncode == 0, plain
    assert len(project.read("hook.txt").splitlines()) == 4


def test_hooks_do_not_run_on_a_dry_run(project: Project) -> None:
    hooks_project(project, 'on_success = "echo hook >> hook.txt"')
    result = project.json_run("-n", "good")
    assert result.returncode == 0, result
    assert not project.exists("hook.txt")


def test_a_failing_on_success_hook_warns_on_stderr_and_exit_stays_0(project: Project) -> None:
    hooks_project(project, 'on_success = "echo hook ran > hook.txt; exit 4"')
    result = project.plain_run("good")
    assert result.returncode == 0, result
    assert project.read("hook.txt") == "hook ran\n"
    warnings = [line for line in result.err_lines if line.startswith("warning:")]
    assert warnings and "on_success" in warnings[0], result
    assert "Traceback" not in result.stderr


def test_a_failing_on_failure_hook_warns_on_stderr_and_exit_stays_1(project: Project) -> None:
    hooks_project(project, 'on_failure = "exit 4"')
    result = project.plain_run("bad")
    assert result.returncode == 1, result
    warnings = [line for line in result.err_lines if line.startswith("warning:")]
    assert warnings and "on_failure" in warnings[0], result
    assert "Traceback" not in result.stderr


# -- the webhook --------------------------------------------------------------------------


class Recorder(BaseHTTPRequestHandler):
    posts: List[Dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.posts.append({  # type: ignore[attr-defined]
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        })
        status = 503 if self.path.endswith("/down") else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on 127.0.0.1 that records every POST (server.posts, server.url)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.daemon_threads = True
    server.posts = []  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; yields its URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: List[socket.socket] = []

    def accept_and_sleep() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            held.append(conn)  # read nothing, answer nothing

    thread = threading.Thread(target=accept_and_sleep, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """A server on 127.0.0.1 that reads the request, then answers one byte every 0.3 s, forever.

    No single read ever waits long, so only a deadline on the whole delivery
    (not a per-read socket timeout) ends it.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer_slowly(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            data = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: yes\r\n" * 1000
            for byte in data:
                if stop.wait(0.3):
                    break
                conn.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            conn.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=answer_slowly, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def closed_port_url() -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}/hook"


def test_failing_run_posts_a_json_summary_to_the_webhook(project: Project, webhook) -> None:
    hooks_project(project, f'webhook = "{webhook.url}"')
    result = project.json_run("-k")
    assert result.returncode == 1, result
    assert len(webhook.posts) == 1, webhook.posts
    post = webhook.posts[0]
    assert post["path"] == "/hook"
    assert post["headers"]["content-type"].startswith("application/json")
    assert post["headers"].get("user-agent", "").startswith("flowmake")
    summary = json.loads(post["body"])
    assert summary["run_id"] == result.run_id
    assert summary["result"] == "failed"
    assert isinstance(summary["duration"], (int, float)) and summary["duration"] >= 0
    assert [f["task"] for f in summary["failed"]] == ["bad"]
    failed = summary["failed"][0]
    assert failed["exit_code"] == 3
    assert failed["tail"][-2:] == ["first line", "last line"]
    assert failed["log"] == f".flowmake/logs/{result.run_id}/bad.log"
    assert summary["counts"] == {"ok": 1, "failed": 1, "fresh": 0, "skipped": 0, "interrupted": 0}
    assert "Traceback" not in result.stderr and "warning" not in result.stderr


def test_webhook_is_not_called_after_a_successful_run(project: Project, webhook) -> None:
    hooks_project(project, f'webhook = "{webhook.url}"')
    for _ in range(2):  # a run that builds, then a no-op run
        result = project.json_run("good")
        assert result.returncode == 0, result
    assert webhook.posts == []


def test_unreachable_webhook_warns_keeps_exit_code_1_and_returns_promptly(project: Project) -> None:
    url = closed_port_url()
    hooks_project(project, f'webhook = "{url}"')
    t0 = time.monotonic()
    result = project.plain_run("bad")
    elapsed = time.monotonic() - t0
    assert result.returncode == 1, result
    assert elapsed < 15, f"an unreachable webhook kept flowmake {elapsed:.1f}s"
    warnings = [line for line in result.err_lines if line.startswith("warning:")]
    assert warnings and "webhook" in warnings[0] and url in warnings[0], result
    assert "Traceback" not in result.stderr


def test_webhook_server_that_never_answers_does_not_hang_the_run(project: Project, silent_server: str) -> None:
    hooks_project(project, f'webhook = "{silent_server}"')
    t0 = time.monotonic()
    result = project.plain_run("bad", timeout=40)
    elapsed = time.monotonic() - t0
    assert result.returncode == 1, result
    assert elapsed < 15, f"a silent webhook server kept flowmake {elapsed:.1f}s"
    warnings = [line for line in result.err_lines if line.startswith("warning:")]
    assert warnings and "webhook" in warnings[0], result
    assert "Traceback" not in result.stderr


def test_webhook_answering_503_warns_and_keeps_exit_code_1(project: Project, webhook) -> None:
    url = webhook.url + "/down"
    hooks_project(project, f'webhook = "{url}"')
    result = project.plain_run("bad")
    assert result.returncode == 1, result
    assert len(webhook.posts) == 1
    warnings = [line for line in result.err_lines if line.startswith("warning:")]
    assert warnings and "webhook" in warnings[0] and "503" in warnings[0], result


def test_webhook_tail_masks_secrets(project: Project, webhook) -> None:
    token = "tok-webhook-5ecret"
    hooks_project(project, f'webhook = "{webhook.url}"', tasks="""
[tasks.upload]
secrets = ["API_TOKEN"]
run = "echo using $API_TOKEN; exit 2"
""")
    result = project.json_run(env={"API_TOKEN": token})
    assert result.returncode == 1, result
    assert len(webhook.posts) == 1
    body = webhook.posts[0]["body"].decode()
    assert token not in body
    assert json.loads(body)["failed"][0]["tail"] == ["using ***"]


def test_on_failure_hook_and_webhook_fire_with_result_interrupted_on_sigterm(project: Project, webhook) -> None:
    hooks_project(project, 'on_failure = "sh hooks/record.sh alert.txt"\n'
                           f'webhook = "{webhook.url}"', tasks="""
[tasks.hold]
outputs = ["held.txt"]
run = "touch started.marker; sleep 20; echo ok > held.txt"
""")
    proc = project.popen("run", "--progress", "json")
    wait_for_file_to_exist(project.path("started.marker"), proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, (out, err)
    env = recorded(project, "alert.txt")
    assert env["RESULT"] == "interrupted", env
    assert len(webhook.posts) == 1, (out, err)
    assert json.loads(webhook.posts[0]["body"])["result"] == "interrupted"
    assert not project.exists("held.txt")


def wait_for_file_to_exist(path: Path, proc) -> None:
    def there() -> bool:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"flowmake exited ({proc.returncode}) early\n{out}\n{err}")
        return path.exists()
    wait_for(there, what=str(path))


def test_webhook_server_that_answers_one_byte_at_a_time_does_not_hang_the_run(
        project: Project, trickling_server: str) -> None:
    hooks_project(project, f'webhook = "{trickling_server}"')
    t0 = time.monotonic()
    try:
        result = project.plain_run("bad", timeout=12)
    except subprocess.TimeoutExpired:
        raise AssertionError("a webhook server answering one byte every 0.3s kept flowmake running "
                             "for more than 12s (the webhook's timeout must bound the whole delivery)") from None
    elapsed = time.monotonic() - t0
    assert result.returncode == 1, result
    assert elapsed < 12
    warnings = [line for line in result.err_lines if line.startswith("warning:")]
    assert warnings and "webhook" in warnings[0], result
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
