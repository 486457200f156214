"""A real S3 API on 127.0.0.1: moto's server mode, started as its own process and always stopped.

The tests talk to it through s3fs, as flowmake talks to any S3: no
in-process mock. Skipped, saying why, when moto or s3fs is not installed
(`pip install -e '.[test,s3]'`; .ci/run installs both).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest

NEEDS = [m for m in ("moto", "s3fs", "flask") if importlib.util.find_spec(m) is None]
skip_without_s3 = pytest.mark.skipif(bool(NEEDS), reason=f"needs {', '.join(NEEDS)}: pip install -e '.[test,s3]'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_env(endpoint: str) -> dict:
    """What an S3 client needs to reach the server: any credentials, and its address."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint}


def serve() -> Iterator[str]:
    """Start the server; yield its endpoint URL; stop it, whatever happened."""
    port = free_port()
    log = open(os.devnull, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto's server did not start (exit {proc.poll()})")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def make_bucket(endpoint: str, name: str) -> None:
    import s3fs

    env = s3_env(endpoint)
    fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                           client_kwargs={"endpoint_url": endpoint},
                           skip_instance_cache=True)
    fs.mkdir(name)
