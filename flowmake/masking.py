"""Secret values replaced by `***`: the one masker every writer of text uses.

Replacing the values one after another leaks whatever the first replacement
cut out of a later, overlapping value: with `abcd` masked before
`abcd-efgh`, `abcd-efgh` shows as `***-efgh`. So every occurrence of every
value is found first (a look-ahead at each position, longest value first,
so overlapping and nested occurrences are all seen) and each run of
overlapping occurrences becomes one `***`. Text masked in two pieces reads
as the whole masked at once when it is split where `split_point` allows.

Values shorter than MIN_LENGTH are refused by the task that lists them
(engine/secrets.py): masking `ab` everywhere ruins a log and still tells a reader
where the value was; not masking it leaks it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Pattern, Sequence, TypeVar

if TYPE_CHECKING:  # names for type checkers only
    AnyStr = TypeVar("AnyStr", str, bytes)

MIN_LENGTH = 4  # characters: the shortest secret value a task may run with
STARS = "***"


class Mask:
    """Masks the given secret values in text and in output bytes."""

    __slots__ = ("values", "longest", "spans_lines", "_text", "_bytes", "_encoded")

    def __init__(self, values: Iterable[str]) -> None:
        # Longest first: at a position where two values start, the look-ahead
        # takes the first alternative that matches, which must be the longer.
        self.values: Sequence[str] = sorted({v for v in values if v}, key=len, reverse=True)
        self._encoded = [v.encode("utf-8", "surrogateescape") for v in self.values]
        self.longest = max(map(len, self._encoded), default=0)
        # A value holding a line break can straddle the line-sized pieces output is written in.
        self.spans_lines = any(b"\n" in v for v in self._encoded)
        if self.values:
            import re  # only runs with secrets compile it

            self._text: Pattern[str] | None = re.compile(
                "(?=(" + "|".join(map(re.escape, self.values)) + "))", re.DOTALL)
            self._bytes: Pattern[bytes] | None = re.compile(
                b"(?=(" + b"|".join(map(re.escape, self._encoded)) + b"))", re.DOTALL)
        else:
            self._text = self._bytes = None

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        return _cover(self._text, text, STARS) if self._text is not None else text

    def data(self, data: bytes) -> bytes:
        return _cover(self._bytes, data, STARS.encode()) if self._bytes is not None else data

    def split_point(self, data: bytes, end: int) -> int:
        """The largest point <= end at which `data` can be masked in two pieces.

        No occurrence may straddle it, and nothing before it may be the start
        of a value whose rest has not arrived yet (data is a stream's bytes
        so far). Masking data[:point] now and the rest with what follows
        then gives what masking everything at once would.
        """
        if self._bytes is None:
            return end
        cut = end
        size = len(data)
        for value in self._encoded:  # a value begun at the very end of what arrived so far
            start = data.find(value[:1], max(0, size - len(value) + 1), cut)
            while start != -1:
                if value.startswith(data[start:]):
                    cut = start
                    break
                start = data.find(value[:1], start + 1, cut)
        moved = True
        while moved:  # an occurrence across the cut moves it back to that occurrence's start
            moved = False
            for match in self._bytes.finditer(data, max(0, cut - self.longest + 1)):
                if match.start() >= cut:
                    break
                if match.end(1) > cut:
                    cut = match.start()
                    moved = True
                    break
        return cut


def _cover(pattern: Pattern[AnyStr], text: AnyStr, stars: AnyStr) -> AnyStr:
    """`text` with each run of overlapping occurrences replaced by `stars`."""
    pieces: List[AnyStr] = []
    kept = 0  # text[:kept] is dealt with
    start = end = -1  # the run of occurrences being merged
    for match in pattern.finditer(text):
        if match.start() < end:
            end = max(end, match.end(1))
            continue
        if end >= 0:
            pieces += (text[kept:start], stars)
            kept = end
        start, end = match.start(), match.end(1)
    if end < 0:
        return text
    pieces += (text[kept:start], stars, text[end:])
    return text[:0].join(pieces)
