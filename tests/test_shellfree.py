"""Which commands flowmake may start without `sh -c` (shellfree.py): plain words, one `> FILE`."""

from __future__ import annotations

import pytest

from flowmake.executors.shellfree import (
    SHELL_WORDS,
    SimpleCommand,
    is_plain_sh,
    simple_command,
)


def test_plain_words_are_split_into_argv() -> None:
    assert simple_command("cat src/a.csv src/b.csv") == SimpleCommand(["cat", "src/a.csv", "src/b.csv"], None)


def test_blanks_and_tabs_separate_words_and_may_surround_the_command() -> None:
    assert simple_command("  python3\tclean.py   raw.csv  ") == SimpleCommand(["python3", "clean.py", "raw.csv"], None)


@pytest.mark.parametrize("command", ["cat a b > out/c.txt", "cat a b >out/c.txt", "cat a b \t>  out/c.txt  "])
def test_one_trailing_redirect_becomes_the_stdout_path(command: str) -> None:
    assert simple_command(command) == SimpleCommand(["cat", "a", "b"], "out/c.txt")


def test_words_may_hold_the_characters_shlex_quote_leaves_bare() -> None:
    command = simple_command("tool --level=3 a,b:c user@host 50% +x ./rel/../p_q-r.txt")
    assert command is not None
    assert command.argv[1:] == ["--level=3", "a,b:c", "user@host", "50%", "+x", "./rel/../p_q-r.txt"]


@pytest.mark.parametrize("command", [
    "cat 'a b'", 'cat "a"', "cat a\\ b", "cat $HOME", "cat ${X}", "cat `ls`", "cat $(ls)",
    "cat *.csv", "cat a?.csv", "cat [ab].csv", "cat ~/a", "cat a # note", "cat a; cat b", "cat a && cat b",
    "cat a || true", "cat a | sort", "cat a &", "sort < a", "cat a >> log", "cat a 2> err", "cat a 2>&1",
    "cat a >| out", "cat a > out > out2", "cat a >", "> out", "cat a\ncat b", "(cat a)", "{ cat a; }",
    "cat {a,b}", "! cat a", "cat données.csv", "", "   ", "cat a>out",
])
def test_anything_with_shell_syntax_goes_through_the_shell(command: str) -> None:
    assert simple_command(command) is None


@pytest.mark.parametrize("word", ["echo", "printf", "test", "cd", "export", "exit", "true", "false", "kill",
                                  "pwd", ".", ":", "if", "for", "exec", "eval", "set", "read", "type"])
def test_shell_keywords_and_builtins_go_through_the_shell(word: str) -> None:
    assert word in SHELL_WORDS
    assert simple_command(f"{word} a > out.txt") is None


def test_an_assignment_before_the_command_goes_through_the_shell() -> None:
    assert simple_command("LC_ALL=C sort a.txt") is None
    assert simple_command("sort --key=2 a.txt") is not None  # `=` past the first word is an argument


def test_only_the_default_shell_is_bypassed() -> None:
    assert is_plain_sh(("sh", "-c"))
    assert is_plain_sh(["sh", "-c"])
    assert not is_plain_sh(("/bin/sh", "-c"))  # the documented way to always have a shell
    assert not is_plain_sh(("bash", "-c"))
    assert not is_plain_sh(("sh", "-ec"))
    assert not is_plain_sh(("sh",))
