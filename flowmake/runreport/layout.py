"""Where things go on the page: the graph's columns and rows, the timeline's lanes.

Pure geometry over the report document, no I/O and no markup, so that it
is tested with plain values. The graph is laid out left to right by depth
(a task's column is one more than its deepest dependency's) and each column
is ordered by the mean row of what feeds it, sweeping a few times, which
keeps most edges short and uncrossed without a graph-layout library. Matrix
variants can be folded into one node per task table (`group_nodes`), which
is what keeps a 200-task run readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence, Tuple

from .collect import STATUS_ORDER

NODE_WIDTH = 150
NODE_HEIGHT = 28
COLUMN_GAP = 46
ROW_GAP = 10
MARGIN = 16


@dataclass
class Node:
    id: str
    label: str
    status: str  # the worst of its members' (STATUS_ORDER)
    depth: int
    critical: bool
    members: List[str]  # the tasks it stands for (one, or a matrix group's variants)
    counts: Dict[str, int] = field(default_factory=dict)  # status -> members with it
    x: float = 0.0
    y: float = 0.0


@dataclass
class GraphLayout:
    nodes: List[Node]
    edges: List[Tuple[str, str, bool]]  # (from, to, on the critical path)
    width: float
    height: float


def task_nodes(tasks: Sequence[Mapping]) -> Tuple[List[Node], List[Tuple[str, str]]]:
    nodes = [Node(t["name"], t["name"], t["status"], t["depth"], t["critical"], [t["name"]], {t["status"]: 1})
             for t in tasks]
    edges = [(d, t["name"]) for t in tasks for d in t["deps"]]
    return nodes, edges


def group_nodes(tasks: Sequence[Mapping]) -> Tuple[List[Node], List[Tuple[str, str]]]:
    """One node per task table: a matrix task's variants become one node."""
    members: Dict[str, List[Mapping]] = {}
    for t in tasks:
        members.setdefault(t["group"], []).append(t)
    owner = {t["name"]: t["group"] for t in tasks}
    nodes = []
    for group, ts in members.items():
        counts: Dict[str, int] = {}
        for t in ts:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        worst = min(counts, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else len(STATUS_ORDER))
        label = group if len(ts) == 1 and ts[0]["name"] == group else f"{group} ×{len(ts)}"
        nodes.append(Node(group, label, worst, min(t["depth"] for t in ts), any(t["critical"] for t in ts),
                          [t["name"] for t in ts], counts))
    edges = list(dict.fromkeys((owner[d], owner[t["name"]]) for t in tasks for d in t["deps"]
                               if owner[d] != owner[t["name"]]))
    # Columns again on the folded graph, so a group sits right of everything feeding it.
    depth = {n.id: n.depth for n in nodes}
    for _ in range(len(nodes)):
        changed = False
        for a, b in edges:
            if depth[b] <= depth[a] and depth[a] + 1 <= len(nodes):
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    for n in nodes:
        n.depth = depth[n.id]
    return nodes, edges


def layout_graph(nodes: List[Node], edges: Sequence[Tuple[str, str]], critical: Sequence[str]) -> GraphLayout:
    columns: Dict[int, List[Node]] = {}
    for n in nodes:
        columns.setdefault(n.depth, []).append(n)
    feeds: Dict[str, List[str]] = {n.id: [] for n in nodes}
    fed: Dict[str, List[str]] = {n.id: [] for n in nodes}
    for a, b in edges:
        feeds[b].append(a)
        fed[a].append(b)
    row: Dict[str, float] = {}
    for depth in sorted(columns):
        for i, n in enumerate(columns[depth]):
            row[n.id] = float(i)
    for _ in range(4):  # barycentre sweeps: down the columns by what feeds, back up by what is fed
        for depth in sorted(columns):
            _order(columns[depth], feeds, row)
        for depth in sorted(columns, reverse=True):
            _order(columns[depth], fed, row)
    for depth in sorted(columns):
        _order(columns[depth], feeds, row)
    tallest = max((len(c) for c in columns.values()), default=0)
    for depth, column in columns.items():
        # Each column centred on the tallest, so a short one sits beside what it joins.
        offset = (tallest - len(column)) * (NODE_HEIGHT + ROW_GAP) / 2
        for i, n in enumerate(column):
            n.x = MARGIN + depth * (NODE_WIDTH + COLUMN_GAP)
            n.y = MARGIN + offset + i * (NODE_HEIGHT + ROW_GAP)
    on_path = set(zip(critical, critical[1:]))
    members = {n.id: set(n.members) for n in nodes}
    marked = [(a, b, any((x, y) in on_path for x in members[a] for y in members[b])) for a, b in edges]
    width = MARGIN * 2 + (max(columns, default=0) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + max(tallest, 1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return GraphLayout(nodes, marked, width, height)


def _order(column: List[Node], neighbours: Mapping[str, List[str]], row: Dict[str, float]) -> None:
    def key(n: Node) -> Tuple[float, float]:
        near = [row[m] for m in neighbours[n.id] if m in row]
        return (sum(near) / len(near) if near else row[n.id], row[n.id])

    column.sort(key=key)
    for i, n in enumerate(column):
        row[n.id] = float(i)


# -- timeline ------------------------------------------------------------------


@dataclass
class Bar:
    task: str
    attempt: int
    status: str  # the attempt's: ok, failed, interrupted
    start: float  # seconds into the run
    end: float
    lane: int
    retry: bool  # a later attempt of a task that failed before
    wait: bool = False  # a sensor's wait (not a process)


def timeline_lanes(tasks: Sequence[Mapping]) -> Tuple[List[Bar], int]:
    """Every attempt and sensor wait on the fewest lanes with no two overlapping.

    Lanes rather than a row per task: the number of lanes in use at a moment
    is the parallelism, and 200 tasks do not make 200 rows.
    """
    bars: List[Bar] = []
    for t in tasks:
        # A sensor that timed out is itself the failed attempt: no separate wait.
        if t.get("wait") and not (t["attempts"] and t["attempts"][0]["start"] < t["wait"][1] - 1e-3):
            start, end = t["wait"]
            bars.append(Bar(t["name"], 0, "wait", start, end, 0, False, wait=True))
        for a in t["attempts"]:
            bars.append(Bar(t["name"], a["attempt"], a["status"], a["start"], max(a["end"], a["start"]), 0,
                            a["attempt"] > 1))
    bars.sort(key=lambda b: (b.start, b.end))
    lane_ends: List[float] = []
    for b in bars:
        for i, end in enumerate(lane_ends):
            if end <= b.start + 1e-6:
                b.lane = i
                lane_ends[i] = b.end
                break
        else:
            b.lane = len(lane_ends)
            lane_ends.append(b.end)
    return bars, len(lane_ends)


def ticks(length: float, *, count: int = 8) -> List[float]:
    """Round tick positions (seconds) across [0, length]."""
    if length <= 0:
        return [0.0]
    raw = length / count
    step = next(s for s in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120,
                            300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400, float("inf")) if s >= raw)
    if step == float("inf"):
        step = length
    out = []
    t = 0.0
    while t <= length + 1e-9:
        out.append(round(t, 6))
        t += step
    return out
