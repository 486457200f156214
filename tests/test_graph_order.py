"""The topological order: declaration order breaking ties, whichever way the order is found."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from flowmake.engine.graph import build_graph
from test_graph import flow, task


def _reference_order(deps):
    """The earliest-declared ready task first, one at a time: what the order promises."""
    position = {name: i for i, name in enumerate(deps)}
    waiting = {name: len(set(d)) for name, d in deps.items()}
    users = {name: [] for name in deps}
    for name, d in deps.items():
        for dep in set(d):
            users[dep].append(name)
    heap = [(position[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, name = heapq.heappop(heap)
        order.append(name)
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(heap, (position[user], user))
    return tuple(order)


@st.composite
def dags(draw):
    n = draw(st.integers(1, 12))
    edges = {i: draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set() for i in range(n)}
    declared = draw(st.permutations(range(n)))  # any declaration order, producers first or not
    return [task(f"t{i}", [f"o{j}" for j in sorted(edges[i])], [f"o{i}"]) for i in declared]


@settings(max_examples=300, deadline=None)
@given(dags())
def test_order_is_the_earliest_declared_ready_task_first(specs) -> None:
    graph = build_graph(flow(*specs))
    assert graph.order == _reference_order({s.name: graph.deps[s.name] for s in specs})
