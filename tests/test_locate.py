"""The line index: a task's line from the headers' scan is the full index's, whatever the text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flowmake.load.locate import LineIndex, _task_headers

NAMES = ("a", "b", "a-1", "c_2")

# Lines a Flowfile may hold, plain and awkward: what the headers' scan must either read as the
# full index does or give up on.
LINES = st.sampled_from([
    "[flow]", "[vars]", "[tasks.a]", "[tasks.b]", "[tasks.a-1]", "[tasks.c_2]", "[tasks.a.env]",
    "[[tasks.b]]", "[tasks]", "  [tasks.b]", "\t[tasks.c_2]", '[tasks."a"]', "[ tasks.b ]", "['tasks'.c_2]",
    "[tasks.a] # the first", "[tasks.b] junk", 'run = "echo"', "a.run = 'x'", "tasks.b.run = 'y'",
    'tasks = { c_2 = { run = "z" } }', '"tasks".a.run = "q"', "inputs = [", '  ["a"],', "[1]", "]",
    'help = """', '"""', "help = '''", "'''", "# [tasks.a]", "", "x = 1", "tasks_done = 2",
])


def _text(lines, crlf: bool) -> str:
    return ("\r\n" if crlf else "\n").join(lines)


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES, max_size=14), st.booleans())
def test_task_line_is_the_full_index_line(lines, crlf) -> None:
    text = _text(lines, crlf)
    for name in NAMES:
        assert LineIndex(text).task_line(name) == LineIndex(text).find(("tasks", name))[0], (text, name)


def test_a_plain_flowfile_is_answered_by_the_headers_alone() -> None:
    text = '[flow]\nname = "x"\n\n[tasks.a]\nrun = "echo"\n# [tasks.b]\n[tasks.b]\nrun = "b"\n[tasks.a.env]\nX = "1"\n'
    assert _task_headers(text) == {"a": 4, "b": 7}
    index = LineIndex(text)
    assert (index.task_line("a"), index.task_line("b")) == (4, 7)
    assert index._built is None  # the full index was never needed


def test_texts_the_headers_cannot_tell_fall_back_to_the_full_index() -> None:
    for text in ('[tasks]\na.run = "x"\n', '[tasks.a]\nhelp = """\n[tasks.b]\n"""\n', '  [tasks.a]\n',
                 'tasks.a.run = "x"\n', '[tasks."a"]\n'):
        assert _task_headers(text) == {}, text


@settings(max_examples=200, deadline=None)
@given(st.lists(LINES, max_size=14), st.booleans())
def test_task_lines_are_task_line_for_each(lines, crlf) -> None:
    text = _text(lines, crlf)
    assert LineIndex(text).task_lines(NAMES) == {name: LineIndex(text).task_line(name) for name in NAMES}
