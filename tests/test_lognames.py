"""Log file names (layout.LogNames): portable, and distinct for distinct task attempts."""

from __future__ import annotations

import itertools
import random
import re

from flowmake.layout import LogNames, plain_log_stem

PORTABLE = re.compile(r"[A-Za-z0-9._-]+\.log")


def log_names(tasks: dict) -> LogNames:
    """LogNames over `tasks` (name -> most attempts), as build.py makes it."""
    return LogNames(tasks, tasks.__getitem__)


def every_name(tasks: dict) -> list:
    names = log_names(tasks)
    return [names.name(task, attempt) for task, most in tasks.items() for attempt in range(1, most + 1)]


def assert_distinct_and_portable(tasks: dict) -> list:
    files = every_name(tasks)
    folded = [f.casefold() for f in files]
    assert len(set(folded)) == len(folded), sorted(files)
    assert all(PORTABLE.fullmatch(f) for f in files), files
    assert not {"hook.on_failure.log", "hook.on_success.log"} & set(folded)
    assert not any(f.split(".")[0] in ("con", "prn", "aux", "nul", "com1", "lpt9") for f in folded), files
    assert all(len(f) <= 124 for f in files)
    return files


def test_plain_names_keep_their_name_and_colons_become_dots() -> None:
    names = log_names({"extract": 1, "fit:S01:EU": 3, "report": 1})
    assert names.name("extract", 1) == "extract.log"
    assert names.name("fit:S01:EU", 1) == "fit.S01.EU.log"
    assert names.name("fit:S01:EU", 3) == "fit.S01.EU.attempt3.log"


def test_each_kind_of_clash_is_resolved_by_a_hash_of_the_real_name() -> None:
    tasks = {"validate:S01": 1, "validate.S01": 1, "Build": 1, "build": 1, "con": 1, "aux:x": 1,
             "hook.on_failure": 1, "x": 2, "x.attempt2": 1, "a" * 200: 1, "y": 2, "y.attempt3": 1}
    files = assert_distinct_and_portable(tasks)
    names = log_names(tasks)
    assert names.name("y", 2) == "y.attempt2.log" and names.name("y.attempt3", 1) == "y.attempt3.log"
    assert names.name("validate:S01", 1).startswith("validate.S01-")
    assert names.name("x", 1) == "x.log" and names.name("x", 2).startswith("x.attempt2-")
    assert len(files) == 14


def test_a_name_is_the_same_whichever_way_the_clash_is_found() -> None:
    # Case twins send every lookup through the full count; without them, the
    # per-name search. Both must give every task the same file name.
    rng = random.Random(14)
    parts = ["a", "A", "b", "a.b", "attempt2", "attempt3", "con", "x"]
    for _ in range(300):
        tasks: dict = {}
        for _ in range(rng.randint(1, 6)):
            name = rng.choice(parts[:4] + ["c"])
            for _ in range(rng.randint(0, 2)):
                name += rng.choice([".", ":"]) + rng.choice(parts)
            tasks[name] = rng.randint(1, 3)
        assert_distinct_and_portable(tasks)
        slow = dict(tasks)
        slow["Zq"] = slow["zQ"] = 1  # forces the full count
        fast_names, slow_names = log_names(tasks), log_names(slow)
        for task, most in tasks.items():
            for attempt in range(1, most + 1):
                assert fast_names.name(task, attempt) == slow_names.name(task, attempt), (tasks, task, attempt)


def test_exhaustively_small_names_never_share_a_file() -> None:
    alphabet = ["a", "b", "A"]
    names = {"".join(p) for n in (1, 2) for p in itertools.product(alphabet, repeat=n)}
    names |= {f"{a}:{b}" for a in alphabet for b in ("b", "attempt2")} | {f"{a}.attempt2" for a in alphabet}
    assert_distinct_and_portable({n: 2 for n in sorted(names)})
    assert plain_log_stem("a:b", 1) == "a.b"


def test_naming_one_task_of_many_asks_no_other_task_for_its_retries() -> None:
    # build.py's most_attempts unpickles a task spec (loadcache.py): only clash candidates may be asked.
    tasks = {f"t{i}": 1 for i in range(1000)}
    tasks.update({"fit": 3, "fit.attempt2": 1})
    asked: list = []

    def most(task: str) -> int:
        asked.append(task)
        return tasks[task]

    names = LogNames(tasks, most)
    assert names.name("t5", 1) == "t5.log" and asked == []
    assert names.name("fit.attempt2", 1).startswith("fit.attempt2-") and asked == ["fit"]
