"""The dependency graph: who depends on whom, cycles, targets and closures.

Pure: built from a loaded `Flowfile`, no I/O. Task B depends on task A when
an input of B is an output of A, lies inside a directory output of A, is a
directory input holding an output of A (a file, or a directory output
nested in it), or B lists A in `after`. Edges are kept both ways (deps and dependents) because
the scheduler walks down and the planner and `clean` walk up.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import posixpath

from ..errors import FlowfileError, FlowfileErrors, UsageError, did_you_mean
from ..model import Flowfile
from ..records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing stays off the no-op path (records.py)
    from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple


class Graph(NamedTuple):
    order: Tuple[str, ...]  # topological, declaration order breaking ties
    deps: Mapping[str, Tuple[str, ...]]
    dependents: Mapping[str, Tuple[str, ...]]
    producers: Mapping[str, str]  # file output path -> task
    dir_producers: Mapping[str, str]  # directory output ("out/") -> task
    readers: Mapping[str, Tuple[str, ...]]  # input path, as declared -> the tasks that read it

    def producer_of(self, path: str) -> Optional[str]:
        """The task whose declared output is `path` or contains it, if any."""
        task = self.producers.get(path)
        if task is not None or not self.dir_producers:
            return task
        if path in self.dir_producers:
            return self.dir_producers[path]
        if path + "/" in self.dir_producers:
            return self.dir_producers[path + "/"]
        parent = posixpath.dirname(path.rstrip("/"))
        while parent and parent != "/":  # "/" is its own dirname: an absolute path would never end
            task = self.dir_producers.get(parent + "/")
            if task is not None:
                return task
            parent = posixpath.dirname(parent)
        return None


def build_graph(flowfile: Flowfile) -> Graph:
    """Edges from declared files and `after`; raises on cycles (all of them)."""
    producers: Dict[str, str] = {}
    dir_producers: Dict[str, str] = {}
    for spec in flowfile.tasks.values():
        for out in spec.outputs:
            (dir_producers if out.endswith("/") else producers)[out] = spec.name
    partial = Graph((), {}, {}, producers, dir_producers, {})
    # Every output, sorted, made only when some input is a directory: what it holds is a range of them.
    outputs: Optional[List[str]] = None

    deps: Dict[str, List[str]] = {}
    readers: Dict[str, List[str]] = {}
    # Without directory outputs a producer is a dict lookup: the usual graph of 100,000 tasks spends its time here.
    producer_of = partial.producer_of if dir_producers else producers.get
    for spec in flowfile.tasks.values():
        seen: Set[str] = set()
        mine: List[str] = []
        for path in spec.inputs:
            found = readers.get(path)
            if found is None:
                readers[path] = [spec.name]
            else:
                found.append(spec.name)
            producer = producer_of(path)
            if producer is not None and producer != spec.name and producer not in seen:
                seen.add(producer)
                mine.append(producer)
            if path.endswith("/"):
                if outputs is None:
                    outputs = sorted(itertools.chain(producers, dir_producers))
                for producer in _producers_within(path, outputs, producers, dir_producers):
                    if producer != spec.name and producer not in seen:
                        seen.add(producer)
                        mine.append(producer)
        for name in spec.after:
            if name not in seen and name != spec.name:
                seen.add(name)
                mine.append(name)
        deps[spec.name] = mine

    order = _topological_order(flowfile, deps)
    dependents: Dict[str, List[str]] = {name: [] for name in flowfile.tasks}
    for name in order:
        for dep in deps[name]:
            dependents[dep].append(name)
    return Graph(
        order=tuple(order),
        deps={k: tuple(v) for k, v in deps.items()},
        dependents={k: tuple(v) for k, v in dependents.items()},
        producers=producers,
        dir_producers=dir_producers,
        readers={k: tuple(v) for k, v in readers.items()},
    )


def _producers_within(directory: str, outputs: Sequence[str], producers: Mapping[str, str],
                      dir_producers: Mapping[str, str]) -> Iterable[str]:
    """The tasks declaring an output strictly inside `directory` ("src/"), from the sorted `outputs`."""
    for i in range(bisect.bisect_right(outputs, directory), len(outputs)):
        path = outputs[i]
        if not path.startswith(directory):
            break
        yield producers.get(path) or dir_producers[path]


def _topological_order(flowfile: Flowfile, deps: Mapping[str, Sequence[str]]) -> List[str]:
    position = {name: i for i, name in enumerate(flowfile.tasks)}
    if all(position[dep] < at for name, at in position.items() for dep in deps[name]):
        # Declared producers first (as generated Flowfiles are): the heap below would
        # hand the tasks out in declaration order, one by one.
        return list(position)
    waiting = {name: len(d) for name, d in deps.items()}
    users: Dict[str, List[str]] = {name: [] for name in deps}
    for name, d in deps.items():
        for dep in d:
            users[dep].append(name)
    heap = [(position[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(heap)
    order: List[str] = []
    while heap:
        _, name = heapq.heappop(heap)
        order.append(name)
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(heap, (position[user], user))
    if len(order) < len(deps):
        raise _cycle_errors(flowfile, deps, set(deps) - set(order))
    return order


def _cycle_errors(flowfile: Flowfile, deps: Mapping[str, Sequence[str]], stuck: Set[str]) -> FlowfileErrors:
    """Find each distinct cycle among the tasks that could not be ordered."""
    errors: List[FlowfileError] = []
    reported: Set[str] = set()
    for start in sorted(stuck, key=list(flowfile.tasks).index):
        if start in reported:
            continue
        found = _find_cycle_from(start, deps, stuck)
        if found is None or reported.intersection(found):
            continue
        reported.update(found)
        positions = list(flowfile.tasks)
        start_at = min(range(len(found)), key=lambda i: positions.index(found[i]))
        cycle = found[start_at:] + found[:start_at]  # begin at the first declared task
        first = flowfile.tasks[cycle[0]]
        errors.append(
            FlowfileError(
                "dependency cycle: " + " -> ".join(cycle + [cycle[0]]),
                file=flowfile.source_of(first.group),
                line=first.line,
                hint="a task cannot need its own outputs; remove one of these dependencies "
                "(an input, an output or an `after` entry)",
            )
        )
    return FlowfileErrors(errors)


def _find_cycle_from(start: str, deps: Mapping[str, Sequence[str]], stuck: Set[str]) -> Optional[List[str]]:
    # Iterative DFS restricted to the unorderable tasks; the first back edge
    # found closes a cycle. Reported in dependency order: a -> b means b needs a.
    path: List[str] = []
    on_path: Dict[str, int] = {}
    done: Set[str] = set()
    stack: List[Tuple[str, Iterable[str]]] = [(start, iter(deps[start]))]
    path.append(start)
    on_path[start] = 0
    while stack:
        node, it = stack[-1]
        advanced = False
        for dep in it:
            if dep not in stuck or dep in done:
                continue
            if dep in on_path:
                cycle = path[on_path[dep]:]
                cycle.reverse()  # deps point backwards; print producer first
                return cycle
            on_path[dep] = len(path)
            path.append(dep)
            stack.append((dep, iter(deps[dep])))
            advanced = True
            break
        if not advanced:
            stack.pop()
            done.add(node)
            del on_path[path.pop()]
    return None


def resolve_targets(flowfile: Flowfile, graph: Graph, names: Sequence[str]) -> Tuple[str, ...]:
    """Task names for command-line targets: tasks, groups (all variants), outputs."""
    groups = flowfile.groups()
    resolved: List[str] = []
    for name in names:
        if name in flowfile.tasks:
            resolved.append(name)
        elif name in groups:
            resolved.extend(groups[name])
        else:
            path = _target_path(flowfile, name)
            producer = graph.producers.get(path) or graph.dir_producers.get(path.rstrip("/") + "/")
            if producer is None:
                choices = list(flowfile.tasks) + list(groups) + list(graph.producers)
                raise UsageError(
                    f"unknown target '{name}': no task, matrix variant or declared output has that name",
                    file=flowfile.path,
                    hint=did_you_mean(name, choices) or "`flowmake list` shows the tasks",
                )
            resolved.append(producer)
    return tuple(dict.fromkeys(resolved))


def _target_path(flowfile: Flowfile, name: str) -> str:
    """A target given as a path, relative to the root; an absolute one must lie inside the project."""
    if posixpath.isabs(name):
        from ..layout import in_project

        rel = in_project(flowfile.root, name)
        if rel is None:
            raise UsageError(f"target {name} is not inside the project (its root is {flowfile.root})",
                             hint="name a task, or a declared output relative to the project root")
        name = rel
    return posixpath.normpath(name[2:] if name.startswith("./") else name)


def default_targets(flowfile: Flowfile, graph: Graph) -> Tuple[str, ...]:
    if flowfile.default is None:
        return tuple(flowfile.tasks)
    return resolve_targets(flowfile, graph, flowfile.default)


def closure(graph: Graph, roots: Iterable[str]) -> Tuple[str, ...]:
    """The roots and everything they need, in topological order."""
    stack = list(roots)
    if len(stack) == len(graph.order) and stack == list(graph.order) or len(set(stack)) == len(graph.order):
        # Every task (the usual default, often in the graph's own order: compared, not hashed): nothing to walk.
        return tuple(graph.order)
    wanted: Set[str] = set()
    while stack:
        name = stack.pop()
        if name in wanted:
            continue
        wanted.add(name)
        stack.extend(graph.deps[name])
    return tuple(n for n in graph.order if n in wanted)


def downstream(graph: Graph, roots: Iterable[str]) -> Set[str]:
    """Everything that depends on the roots, directly or not (roots excluded)."""
    seen: Set[str] = set()
    stack = [d for r in roots for d in graph.dependents[r]]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(graph.dependents[name])
    return seen
