"""`flowmake list` and `flowmake graph`: what the Flowfile declares, as text or JSON.

Both read only the loaded model and the graph (no state, no files). The
JSON shapes are documented in docs/json.md and only grow; `LIST_VERSION`
and `GRAPH_VERSION` are the shape versions that page gives.
"""

from __future__ import annotations

import json
import sys
from typing import Dict, List, Sequence, TextIO

from ..engine.graph import closure, resolve_targets
from ..model import TaskSpec
from .commands import Project

LIST_VERSION = 1
GRAPH_VERSION = 1


def show_list(project: Project, *, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    flowfile = project.flowfile
    if as_json:
        rows = [task_json(project, spec) for spec in flowfile.tasks.values()]
        out.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return 0
    groups = flowfile.groups()
    width = max((len(g) for g in groups), default=0)
    for group, variants in groups.items():
        spec = flowfile.tasks[variants[0]]
        text = spec.help
        if len(variants) > 1 or variants[0] != group:
            text = (text + "  " if text else "") + f"[{len(variants)} variants: {_shorten(variants)}]"
        out.write(f"{group:<{width}}  {text}".rstrip() + "\n")
    return 0


def task_json(project: Project, spec: TaskSpec) -> Dict[str, object]:
    """One task or matrix variant as `list --json` shows it."""
    flowfile = project.flowfile
    source = flowfile.source_of(spec.group)
    try:
        rel = source.relative_to(flowfile.root).as_posix()
    except ValueError:
        rel = source.name
    return {
        "name": spec.name,
        "group": spec.group,
        "help": spec.help,
        "matrix": dict(spec.matrix),
        "inputs": list(spec.inputs),
        "outputs": list(spec.outputs),
        "after": list(spec.after),
        "deps": list(project.graph.deps[spec.name]),
        "always": spec.always,
        "file": rel,
        "line": spec.line,
    }


def show_graph(project: Project, names: Sequence[str], *, fmt: str, out: TextIO = sys.stdout) -> int:
    graph = project.graph
    tasks = closure(graph, resolve_targets(project.flowfile, graph, names)) if names else graph.order
    selected = set(tasks)
    edges = [(dep, name) for name in tasks for dep in graph.deps[name] if dep in selected]
    linked = {n for e in edges for n in e}
    lone = [n for n in tasks if n not in linked]
    if fmt == "json":
        out.write(json.dumps(graph_json(project, tasks, edges), indent=2, ensure_ascii=False) + "\n")
    elif fmt == "dot":
        out.write("digraph flowmake {\n  rankdir=LR;\n  node [shape=box];\n")
        for n in lone:
            out.write(f"  {_dot_id(n)};\n")
        for a, b in edges:
            out.write(f"  {_dot_id(a)} -> {_dot_id(b)};\n")
        out.write("}\n")
    elif fmt == "mermaid":
        ids = {n: f"t{i}" for i, n in enumerate(tasks)}
        out.write("graph LR\n")
        for n in tasks:
            label = n.replace('"', "#quot;")
            out.write(f'  {ids[n]}["{label}"]\n')
        for a, b in edges:
            out.write(f"  {ids[a]} --> {ids[b]}\n")
    else:
        for n in lone:
            out.write(f"{n}\n")
        for a, b in edges:
            out.write(f"{a} -> {b}\n")
    return 0


def graph_json(project: Project, tasks: Sequence[str], edges: Sequence[tuple]) -> Dict[str, object]:
    """Nodes in dependency order; each edge with the files that make it (none for an `after`-only edge)."""
    flowfile, graph = project.flowfile, project.graph
    nodes = [{"name": n, "group": flowfile.tasks[n].group} for n in tasks]
    links: List[Dict[str, object]] = []
    for a, b in edges:
        spec = flowfile.tasks[b]
        files = [path for path in spec.inputs if graph.producer_of(path) == a]
        links.append({"from": a, "to": b, "files": files, "after": a in spec.after})
    return {"version": GRAPH_VERSION, "nodes": nodes, "edges": links}


def _shorten(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … +{len(names) - limit}" if len(names) > limit else "")


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
