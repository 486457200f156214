"""Commands that need no shell: run them without one, as make does.

A task's command runs with `sh -c`. When it is only words the shell would
pass on unchanged, optionally with its output sent to one file
(`cat a b > out`, `python clean.py raw.csv clean.csv`), starting the shell
first changes nothing but the cost: the shell's start and exec are half of
what a trivial task costs the machine (~0.8 of 1.6 ms of CPU here). GNU make
execs such commands directly; flowmake does too, and also takes over the one
`> FILE` redirection that most data commands end with.

The test is strict: every word made only of characters no POSIX shell treats
specially, the first word neither a shell keyword nor a builtin (the
shell's `echo` is not /bin/echo), no variable assignment. Anything else, and
any failure to start (not found, not executable, a script without `#!`, an
unwritable redirect), goes through the shell, which then behaves and reports
exactly as it always does.
"""

from __future__ import annotations

import re
from typing import List, NamedTuple, Optional, Sequence


# Characters no POSIX shell (dash, bash as sh, ksh, zsh as sh) expands, splits
# on or gives a meaning to, in any position of a word. The ones shlex.quote
# leaves bare, so `{inputs}` / `{outputs}` of plain paths stay in.
_WORD = r"[A-Za-z0-9_@%+=:,./-]+"
_SIMPLE = re.compile(rf"[ \t]*({_WORD}(?:[ \t]+{_WORD})*)(?:[ \t]+>[ \t]*({_WORD}))?[ \t]*")
_BLANKS = re.compile(r"[ \t]+")

# Words a shell runs itself in first position: keywords, special and regular
# builtins of dash, bash and ksh (those with a same-named program, such as
# echo, printf, test, kill and pwd, behave differently from it).
SHELL_WORDS = frozenset("""
    . : alias bg bind break builtin caller case cd command compgen complete compopt continue coproc declare
    dirs disown do done echo elif else enable esac eval exec exit export false fc fg fi for function getopts
    hash help history if in jobs kill let local logout mapfile newgrp popd printf pushd pwd read readarray
    readonly return select set shift shopt source suspend test then time times trap true type typeset ulimit
    umask unalias unset until wait while
""".split())


class SimpleCommand(NamedTuple):
    argv: List[str]
    stdout_path: Optional[str]  # `> FILE`: opened as the shell would (truncated, created 0666 less umask)


def simple_command(command: str) -> Optional[SimpleCommand]:
    """`command` as argv (and its `> FILE`) when running it needs no shell, else None."""
    match = _SIMPLE.fullmatch(command)
    if match is None:
        return None
    argv = _BLANKS.split(match.group(1))
    if argv[0] in SHELL_WORDS or "=" in argv[0]:  # NAME=value is an assignment
        return None
    return SimpleCommand(argv, match.group(2))


def is_plain_sh(shell: Sequence[str]) -> bool:
    """True for the default shell, `sh -c`, whose behaviour simple_command mirrors."""
    return len(shell) == 2 and shell[0] == "sh" and shell[1] == "-c"
