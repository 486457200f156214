"""The load cache's paged dicts (load/pages.py): a lookup unpickles one bucket, and the whole dict is the one packed."""

from __future__ import annotations

import pickle

import pytest

from flowmake.load import pages
from flowmake.load.pages import PagedDict, paged, paged_fields


def _packed(n: int) -> dict:
    return {f"task{i}": tuple(f"dep{j}" for j in range(i % 3)) for i in range(n)}


def test_a_lookup_unpickles_only_its_bucket() -> None:
    plain = _packed(1000)
    cached = pickle.loads(pickle.dumps(paged(plain)))
    assert type(cached) is PagedDict and len(cached) == 1000
    assert cached["task7"] == plain["task7"]
    assert 0 < dict.__len__(cached) <= 4 * pages.BUCKET  # one bucket's entries, not the thousand
    assert cached.get("task8") == plain["task8"] and "task9" in cached
    assert cached.get("nope") is None and cached.get("nope", ()) == () and "nope" not in cached
    with pytest.raises(KeyError):
        cached["nope"]
    assert 1 not in cached and cached.get(1) is None  # not a str: in no bucket


def test_the_whole_dict_is_the_one_packed_in_its_order() -> None:
    plain = _packed(700)
    cached = pickle.loads(pickle.dumps(paged(plain)))
    cached["task3"]  # partly loaded first
    assert list(cached) == list(plain)
    assert list(cached.items()) == list(plain.items()) and list(cached.values()) == list(plain.values())
    assert cached == plain and plain == cached and not (cached != plain)
    other = pickle.loads(pickle.dumps(paged(plain)))
    assert other == cached  # both filled to compare
    assert cached.copy() == plain and type(cached.copy()) is dict
    assert dict(pickle.loads(pickle.dumps(paged(plain)))) == plain
    assert sorted(pickle.loads(pickle.dumps(paged(plain)))) == sorted(plain)
    changed = dict(plain, task5=("x",))
    assert pickle.loads(pickle.dumps(paged(plain))) != changed


def test_pickled_again_after_lookups_it_is_the_same() -> None:
    plain = _packed(500)
    cached = pickle.loads(pickle.dumps(paged(plain)))
    cached["task1"]
    again = pickle.loads(pickle.dumps(cached))
    assert again == plain and len(again) == 500


def test_small_dicts_and_other_values_stay_as_they_are() -> None:
    small = _packed(pages.PAGED_FROM - 1)
    assert paged(small) is small
    assert paged(("a",) * 1000) == ("a",) * 1000
    mixed = {**_packed(500), 3: ()}
    assert paged(mixed) is mixed  # a key that is not a str: kept whole


def test_a_graph_keeps_its_fields_with_its_big_maps_paged() -> None:
    from flowmake.engine.graph import Graph

    deps = _packed(400)
    graph = Graph(tuple(deps), deps, deps, {}, {}, {})
    cached = pickle.loads(pickle.dumps(paged_fields(graph)))
    assert type(cached.deps) is PagedDict and type(cached.producers) is dict
    assert cached == graph and cached.order == graph.order


def test_looked_up_across_the_board_it_loads_the_rest_at_once() -> None:
    plain = _packed(2000)
    cached = pickle.loads(pickle.dumps(paged(plain)))
    buckets = len(cached._buckets)
    for name in list(plain)[:3]:
        cached[name]
    assert dict.__len__(cached) < 2000  # a few buckets
    for name in plain:  # as a full plan looks up every task's deps
        assert cached[name] == plain[name]
    assert dict.__len__(cached) == 2000 and len(cached._loaded) == buckets
    assert "nope" not in cached and cached.get("nope") is None
    assert list(cached) == list(plain)  # and in its order once iterated
