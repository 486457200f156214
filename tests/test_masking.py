"""The secret masker (flowmake/masking.py): overlapping values, and masking a stream in pieces."""

from __future__ import annotations

import itertools
import random

import pytest

from flowmake.masking import Mask


@pytest.mark.parametrize("values, text, masked", [
    # Listed short first, the long value must still be masked whole (issue 22, item 2).
    (["abcd", "abcdefgh"], "token=abcdefgh", "token=***"),
    (["abcdefgh", "abcd"], "token=abcdefgh and abcd", "token=*** and ***"),
    # Overlapping without nesting: the shorter one starts first; neither may show a piece of the other.
    (["pq-1234", "1234-rs"], "x=pq-1234-rs;", "x=***;"),
    (["aaaa"], "aaaaaa", "***"),  # overlapping occurrences of one value
    (["abcd"], "abcdabcd", "******"),  # adjacent ones stay apart, as when split between them
    (["a.b*"], "a.b* axbb", "*** axbb"),  # values are text, not patterns
    (["line-one\nline-two"], "k=line-one\nline-two\n", "k=***\n"),
    ([], "nothing", "nothing"),
    ([""], "nothing", "nothing"),
])
def test_mask_covers_every_occurrence_of_every_value(values, text, masked) -> None:
    mask = Mask(values)
    assert mask.text(text) == masked
    assert mask.data(text.encode()) == masked.encode()


def test_mask_matches_the_value_as_bytes_however_it_is_encoded() -> None:
    mask = Mask(["pässwörd"])
    assert mask.data("x=pässwörd\n".encode()) == b"x=***\n"


def _split_safely(mask: Mask, data: bytes, end: int) -> int:
    point = mask.split_point(data, end)
    assert 0 <= point <= end
    return point


@pytest.mark.parametrize("values", [["abab", "bab"], ["ab\nab", "b\na"], ["aaab", "aab"], ["ba", "abba", "bbbb"]])
def test_masking_in_pieces_split_where_allowed_equals_masking_at_once(values) -> None:
    # Every text over a small alphabet, split at every point and continued by
    # every suffix: the piece written now plus the rest masked later must read
    # as the whole masked at once.
    mask = Mask(values)
    rng = random.Random(22)
    alphabet = b"ab\n"
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        end = rng.randint(0, len(data))
        point = _split_safely(mask, data, end)
        for more in (b"".join(p) for n in range(4) for p in itertools.product([b"a", b"b", b"\n"], repeat=n)):
            whole = data + more
            assert mask.data(data[:point]) + mask.data(data[point:] + more) == mask.data(whole), \
                (values, data, end, point, more)


def test_split_point_holds_back_only_what_may_begin_a_value() -> None:
    mask = Mask(["secret-value"])
    assert mask.split_point(b"plain line\n", 11) == 11
    assert mask.split_point(b"x" * 20 + b"secr", 24) == 20
    assert mask.split_point(b"x" * 20 + b"secret-value", 26) == 20  # straddled: back to its start
