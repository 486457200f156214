"""Where things are in the Flowfile's raw text: lines and columns for errors.

tomllib gives no positions for values, and on Python 3.9-3.13 gives those of
syntax errors only inside its message text. So the loader finds the line of
a semantic problem (an unknown key, a bad value) by scanning the raw text
once for table headers and `key =` lines (`LineIndex`), and parses the line
and column of a syntax error out of tomllib's message (`syntax_error`).
Nothing here reads files or knows what the keys mean.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

from ..errors import FlowfileError

_TOML_POSITION_RE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_TOML_HINTS = {
    "Invalid value": 'strings need quotes: key = "value"',
    "Cannot overwrite a value": "a key or table is defined twice",
    "Cannot declare": "a table is defined twice",
    "Expected '=' after a key": "each line in a table is `key = value`",
}


def syntax_error(exc: Exception, *, path: Path, text: str) -> FlowfileError:
    """The error for tomllib's `exc`, at the line and column its message names."""
    # Python 3.14+ has .msg/.lineno/.colno; 3.9-3.13 only put them in the text.
    message = str(getattr(exc, "msg", None) or exc)
    line: Optional[int] = getattr(exc, "lineno", None)
    col: Optional[int] = getattr(exc, "colno", None)
    found = _TOML_POSITION_RE.search(message)
    if found:
        message = message[: found.start()]
        if found.group(1):
            line, col = int(found.group(1)), int(found.group(2))
        elif line is None:
            line = text.count("\n") + 1
    hint = next((h for start, h in _TOML_HINTS.items() if message.startswith(start)), None)
    return FlowfileError(f"invalid TOML: {message}", file=path, line=line, col=col, hint=hint)


_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_DOTTED_KEY = rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*"
# At line starts, a [table] header or a `key =`. When the text holds
# multi-line strings, triple quotes anywhere too: there are no keys inside.
_LINE_START = (
    rf"^[ \t]*(?:(?P<header>\[\[?)[ \t]*(?P<table>{_DOTTED_KEY})[ \t]*\]\]?[ \t]*(?:\#[^\n]*)?$"
    rf"|(?P<key>{_DOTTED_KEY})[ \t]*=)"
)
_SCAN_RE = re.compile(_LINE_START, re.MULTILINE)
_SCAN_QUOTES_RE = re.compile(r"(?P<quote>\"\"\"|''')|" + _LINE_START, re.MULTILINE)
_KEY_PART_RE = re.compile(_KEY_PART)


def _split_key(dotted: str) -> Tuple[str, ...]:
    if '"' not in dotted and "'" not in dotted:
        return tuple(part.strip() for part in dotted.split(".")) if "." in dotted else (dotted,)
    parts = []
    for match in _KEY_PART_RE.finditer(dotted):
        part = match.group(0)
        if part.startswith('"'):
            try:
                part = json.loads(part)
            except ValueError:  # a TOML-only escape such as \e: close enough for locating
                part = part[1:-1]
        elif part.startswith("'"):
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


class LineIndex:
    """Line and column of each table header and `key =` in the raw text.

    Keys are paths such as ("tasks", "extract", "inputs"). Built in one
    regex pass, and only when a problem asks for a position (`find`): a
    valid Flowfile of 100,000 tasks never pays for it. Every task's own line
    (`task_line`, asked for every task) comes from a scan of the table
    headers alone, whenever the text is plain enough for that scan to give
    what the full index would; otherwise from the full index.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._built: Optional[Dict[Tuple[str, ...], Tuple[int, int]]] = None
        self._headers: Optional[Dict[str, int]] = None  # task name -> line, from the headers' scan

    @property
    def _where(self) -> Dict[Tuple[str, ...], Tuple[int, int]]:
        if self._built is None:
            self._built = _scan(self._text)
        return self._built

    def find(self, path: Sequence[str]) -> Tuple[Optional[int], Optional[int]]:
        """Position of `path`, else of its nearest written parent, else (None, None)."""
        where = self._where
        for end in range(len(path), 0, -1):
            hit = where.get(tuple(path[:end]))
            if hit is not None:
                return hit
        return None, None

    def task_lines(self, names: Iterable[str]) -> Dict[str, Optional[int]]:
        """{name: task_line(name)}, for many names at once."""
        headers = self._header_lines()
        return {name: headers[name] if name in headers else self.find(("tasks", name))[0] for name in names}

    def task_line(self, name: str) -> Optional[int]:
        """`find(("tasks", name))[0]`, without building the full index when the headers tell."""
        line = self._header_lines().get(name)
        return line if line is not None else self.find(("tasks", name))[0]

    def _header_lines(self) -> Dict[str, int]:
        if self._headers is None:
            self._headers = _task_headers(self._text) if self._built is None else {}
        return self._headers


def _scan(text: str) -> Dict[Tuple[str, ...], Tuple[int, int]]:
    where: Dict[Tuple[str, ...], Tuple[int, int]] = {}
    text = text.replace("\r\n", "\n")
    quotes = '"""' in text or "'''" in text
    table: Tuple[str, ...] = ()
    open_quote: Optional[str] = None  # inside a multi-line string
    line, counted = 1, 0
    for match in (_SCAN_QUOTES_RE if quotes else _SCAN_RE).finditer(text):
        if quotes:
            quote = match.group("quote")
            if quote is not None:
                if open_quote is None:
                    open_quote = quote
                elif quote == open_quote:
                    open_quote = None
                continue
            if open_quote is not None:
                continue
        pos = match.start()
        line += text.count("\n", counted, pos)
        counted = pos
        key = match.group("key")
        if key is None:
            table = _split_key(match.group("table"))
            _note(where, table, start=0, line=line, col=match.start("header") - pos + 1)
        elif key.isidentifier():  # the common bare key: nothing to split, one entry
            where.setdefault(table + (key,), (line, match.start("key") - pos + 1))
        else:
            _note(where, table + _split_key(key), start=len(table), line=line, col=match.start("key") - pos + 1)
    return where


def _note(where: Dict[Tuple[str, ...], Tuple[int, int]], path: Tuple[str, ...], *, start: int, line: int,
          col: int) -> None:
    # Dotted keys and headers define their parents too: `tasks.x.run = ...`
    # is where task x is, when it has no header of its own.
    for end in range(start + 1, len(path) + 1):
        where.setdefault(path[:end], (line, col))


# After a newline, so that the regex engine skips ahead to each candidate line (3x faster than `^`);
# indented headers are left to the full index (_INDENTED_RE).
_HEADER_RE = re.compile(
    rf"\n\[\[?[ \t]*(?P<table>{_DOTTED_KEY})[ \t]*\]\]?[ \t]*(?:\#[^\n]*)?$", re.MULTILINE)
_INDENTED_RE = re.compile(r"\n[ \t]+\[")
_PLAIN_HEADER_RE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
# Ways of placing a task other than a [tasks.NAME...] header: a [tasks] table, a `tasks` key (dotted or inline).
_TASKS_KEY_RE = re.compile(r"""^[ \t]*["']?tasks["']?[ \t]*[.=]""", re.MULTILINE)


def _task_headers(text: str) -> Dict[str, int]:
    """Task name -> the line of its first header, when headers are the only way tasks are placed; else {}.

    The full index (`_scan`) notes ("tasks", NAME) at the first header or
    key that defines it. In a text with no multi-line strings, no [tasks]
    table and no `tasks` key, and whose headers are all plain dotted names,
    that is the first `[tasks.NAME...]` header: this scan finds the same
    line from the headers alone. In any other text it gives up ({}), and
    the full index answers.
    """
    if '"""' in text or "'''" in text or _TASKS_KEY_RE.search(text):
        return {}
    text = "\n" + text.replace("\r\n", "\n")  # a header on the first line follows a newline too
    if _INDENTED_RE.search(text):
        return {}
    tables = _HEADER_RE.findall(text)
    # Every header starts a piece; when every piece but the first starts at a header, the pieces' newlines number them.
    chunks = text.split("\n[")
    if len(chunks) != len(tables) + 1 or "tasks" in tables or not all(map(_PLAIN_HEADER_RE.fullmatch, tables)):
        return {}
    firsts = [table.split(".", 2)[1] for table in tables if table.startswith("tasks.")]
    header_lines = itertools.accumulate(map(_count_newlines, chunks[:-1]))
    lines: Dict[str, int] = {}
    for name, line in zip(firsts, (n for t, n in zip(tables, header_lines) if t.startswith("tasks."))):
        lines.setdefault(name, line)
    return lines


def _count_newlines(chunk: str) -> int:
    return chunk.count("\n") + 1  # the one split off before the next piece
