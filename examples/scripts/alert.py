#!/usr/bin/env python3
"""Alert: the on_failure hook; write what failed where someone will see it.

    [hooks]
    on_failure = "python3 scripts/alert.py"

flowmake runs it in the project root after a run that failed or was
interrupted, with FLOWMAKE_RUN_ID, FLOWMAKE_RESULT, FLOWMAKE_FAILED (failed
task names, space-separated), FLOWMAKE_LOG_DIR (the run's log directory) and
FLOWMAKE_FAILED_LOGS (each failed task's last log file name, in the same
order) in the environment. It writes alerts/RUN_ID.txt with the run's result and,
for each failed task, the last lines of its log (the last attempt's log when
the task was retried), and copies it to alerts/latest.txt. A real pipeline
would mail or page someone here instead; the file stands in for that.

    python3 scripts/alert.py [--dir alerts] [--lines 20]

Standard library only.
"""

import argparse
import os
import sys


def shown(path):
    """The path relative to the project root (the hook's directory) when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def tail(path, lines):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()[-lines:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="alerts", help="where to write (default: alerts)")
    parser.add_argument("--lines", type=int, default=20, help="log lines per task (default: 20)")
    args = parser.parse_args()

    run_id = os.environ.get("FLOWMAKE_RUN_ID", "")
    if not run_id:
        sys.exit("alert: FLOWMAKE_RUN_ID is not set; this script is a flowmake hook")
    result = os.environ.get("FLOWMAKE_RESULT", "unknown")
    failed = os.environ.get("FLOWMAKE_FAILED", "").split()
    log_dir = os.environ.get("FLOWMAKE_LOG_DIR", "")
    logs = dict(zip(failed, os.environ.get("FLOWMAKE_FAILED_LOGS", "").split()))

    out = ["flowmake run %s: %s" % (run_id, result),
           "failed tasks: %s" % (" ".join(failed) if failed else "(none)"),
           "logs: %s" % (shown(log_dir) if log_dir else "(unknown)"), ""]
    for task in failed:
        name = logs.get(task, "-")
        path = os.path.join(log_dir, name) if log_dir and name != "-" else None
        if path is None or not os.path.exists(path):
            out += ["--- %s: no log" % task, ""]
            continue
        lines = tail(path, args.lines)
        out += ["--- %s, last %d line(s) of %s:" % (task, len(lines), shown(path))] + lines + [""]
    text = "\n".join(out)

    os.makedirs(args.dir, exist_ok=True)
    for name in (run_id + ".txt", "latest.txt"):
        path = os.path.join(args.dir, name)
        with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    print("alert: %s %s -> %s" % (result, " ".join(failed), os.path.join(args.dir, run_id + ".txt")))


if __name__ == "__main__":
    main()
