"""make's habits on the command line, as rewrites of argv before anything parses it.

`flowmake TARGET...`, `flowmake -n`, `flowmake -j4 package` mean `flowmake run
...`, as `make TARGET` and `make -n` do: when the first word after the global
options is not a command, `run` is put in front of it. A command's name wins
over a task of the same name (`flowmake run NAME` reaches the task). The
global options `-f` and `-C` are also accepted after the command (`flowmake
status -C dir`): they are moved before it, where typer and the no-op fast
path expect them. Pure and import-free: it runs before the no-op fast path.
"""

from __future__ import annotations

from ..records import TYPE_CHECKING

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Container, List, Sequence

# Every command of cli.py (tests/test_cli_shorthand.py keeps the two in step).
COMMANDS = frozenset({"run", "status", "list", "graph", "clean", "check", "init", "log", "lineage", "report", "audit",
                      "schedule", "watch", "schema", "completion", "cache", "daemon"})
# Words the top level answers itself, never targets.
_TOP_LEVEL = frozenset({"-h", "--help", "--version", "--install-completion"})
_GLOBAL_WITH_VALUE = ("-f", "--file", "-C", "--directory")

HELP = ("Make-style shorthand: `flowmake TARGET...`, `flowmake -n`, `flowmake -j4 package` mean `flowmake run ...` "
        "(a command's name wins over a task's: `flowmake run NAME` reaches the task). "
        "-f FILE and -C DIR go before or after the command.")


def _global_option_width(args: Sequence[str], i: int) -> int:
    """How many words the global option at args[i] takes (0: it is none)."""
    item = args[i]
    if item in _GLOBAL_WITH_VALUE:
        return 2 if i + 1 < len(args) else 1
    if item.startswith(("--file=", "--directory=")) or (item[:2] in ("-f", "-C") and len(item) > 2):
        return 1
    return 0


def expand(argv: Sequence[str]) -> List[str]:
    """argv with `run` made explicit and the global options moved before the command."""
    args = list(argv)
    i = 0
    while i < len(args):
        width = _global_option_width(args, i)
        if not width:
            break
        i += width
    if i == len(args) or args[i] in _TOP_LEVEL:
        return args  # bare `flowmake` is `run` already; help and version are the top level's
    head, command, rest = args[:i], args[i], args[i + 1:]
    if command not in COMMANDS:
        command, rest = "run", args[i:]
    moved: List[str] = []
    kept: List[str] = []
    j = 0
    while j < len(rest):
        if rest[j] == "--":
            kept.extend(rest[j:])  # targets only from here: `flowmake run -- -C` names a target
            break
        width = _global_option_width(rest, j)
        if width and not (width == 1 and rest[j] in _GLOBAL_WITH_VALUE):  # no value: typer says so in place
            moved.extend(rest[j:j + width])
            j += width
        else:
            kept.append(rest[j])
            j += 1
    return head + moved + [command] + kept


def shadowed_commands(task_groups: Container[str]) -> List[str]:
    """Tasks (or matrix tasks) named like a command: `flowmake NAME` runs the command, not them."""
    # Each command looked up, not every group iterated: a cached load's groups are unpickled as asked (load/pages.py).
    return sorted(name for name in COMMANDS if name in task_groups)


def shadow_warning(name: str) -> str:
    return (f"task '{name}' has the name of a command: `flowmake {name}` runs the command; "
            f"`flowmake run {name}` runs the task (or rename it)")
