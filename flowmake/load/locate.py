"""Where things are in the Flowfile's raw text: lines and columns for errors.

tomllib gives no positions for values, and on Python 3.9-3.13 gives those of
syntax errors only inside its message text. So the loader finds the line of
a semantic problem (an unknown key, a bad value) by scanning the raw text
once for table headers and `key =` lines (`LineIndex`), and parses the line
and column of a syntax error out of tomllib's message (`syntax_error`).
Nothing here reads files or knows what the keys mean.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

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
    regex pass, so that finding the line of any error costs a dict lookup
    even for a Flowfile of thousands of tasks.
    """

    def __init__(self, text: str) -> None:
        self._where: Dict[Tuple[str, ...], Tuple[int, int]] = {}
        where = self._where
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
                self._note(table, start=0, line=line, col=match.start("header") - pos + 1)
            elif key.isidentifier():  # the common bare key: nothing to split, one entry
                where.setdefault(table + (key,), (line, match.start("key") - pos + 1))
            else:
                self._note(table + _split_key(key), start=len(table), line=line, col=match.start("key") - pos + 1)

    def _note(self, path: Tuple[str, ...], *, start: int, line: int, col: int) -> None:
        # Dotted keys and headers define their parents too: `tasks.x.run = ...`
        # is where task x is, when it has no header of its own.
        for end in range(start + 1, len(path) + 1):
            self._where.setdefault(path[:end], (line, col))

    def find(self, path: Sequence[str]) -> Tuple[Optional[int], Optional[int]]:
        """Position of `path`, else of its nearest written parent, else (None, None)."""
        for end in range(len(path), 0, -1):
            hit = self._where.get(tuple(path[:end]))
            if hit is not None:
                return hit
        return None, None
