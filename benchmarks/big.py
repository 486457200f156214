"""The big-pipeline scenarios of issue 16, for `run.py --big`.

`--big` adds 50,000 and 100,000 tasks (layered and wide; `--big-sizes`
changes them, e.g. to 2000 for a quick check of the suite) to the sizes and,
at every size from 10,000 up and at those sizes, these scenarios after the
usual ones:

| scenario | what it measures |
|---|---|
| `tomli` | the interpreter flowmake runs in parsing the Flowfile with tomli alone (`tomli.load`, the garbage collector on, as a script would) |
| `tomli-nogc` | the same with the collector off, as flowmake parses (its `__main__` turns it off) |
| `check` | `flowmake check`: a cold load (check never uses the load cache) |
| `status` | `flowmake status` after the build |
| `run-n` | `flowmake run -n` after the build |
| `edit-comment` | a run after a new comment line at the top of each tool's build file (Flowfile.toml, Makefile, build.ninja, dodo.py): nothing should run |
| `edit-command` | a run after the command of the first task changed: it runs, the rest is cut off early (its output is the same) |
| `full-tree`, `full-json`, `full-plain` | at the largest big size, layered: flowmake's full build -j2 from clean with `--progress tree` on a pseudo-terminal (tree_pty.py's 50 x 160), and with json and plain on a pipe, interleaved (issue 16.6) |

Every one is timed through GNU time (the full-* builds through wait4, as
tree_pty.py times them), so each has its own peak RSS (`rss-SCENARIO` in
the JSON). At the big sizes the touch run (make and ninja rebuild
everything) is skipped, and full builds run once.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence

if TYPE_CHECKING:
    from run import Bench, Project, Results

BIG_SIZES = (50_000, 100_000)
EXTRA_FROM = 10_000  # the flowmake scenarios below run from this size up
FLOWMAKE_ONLY = ("tomli", "tomli-nogc", "check", "status", "run-n")
EDITS = ("edit-comment", "edit-command")
# The line comment of each tool's build file.
COMMENT = {"flowmake": "#", "make": "#", "ninja": "#", "doit": "#", "snakemake": "#", "task": "#"}


def _tomli(gc: bool) -> Callable[["Project"], List[str]]:
    off = "" if gc else "import gc; gc.disable(); "
    code = f"{off}import tomli; tomli.load(open('Flowfile.toml', 'rb'))"
    return lambda p: [sys.executable, "-c", code]


def extra_at(n: int, big_sizes: Sequence[int]) -> bool:
    """Whether the scenarios above run at size n."""
    return n >= EXTRA_FROM or n in big_sizes


def run_scenarios(bench: "Bench", shape: str, n: int, projects: Dict[str, "Project"]) -> None:
    """The scenarios above, after the build and the no-op; each tool's project is built."""
    if not extra_at(n, bench.results.big_sizes):
        return
    flowmake = {name: p for name, p in projects.items() if name == "flowmake"}
    if flowmake:
        commands: Dict[str, Callable[["Project"], List[str]]] = {
            "tomli": _tomli(True),
            "tomli-nogc": _tomli(False),
            "check": lambda p: p.tool.argv("check"),
            "status": lambda p: p.tool.argv("status"),
            "run-n": lambda p: p.tool.argv("run", "-n"),
        }
        for name in FLOWMAKE_ONLY:
            bench.scenario(shape, n, name, flowmake, commands[name], lambda p, rep: None, 1, rss_each=True)

    def comment(p: "Project", rep: int) -> None:
        path = p.root / _build_file(p)
        path.write_text(f"{COMMENT[p.tool.name]} edit {rep}\n" + path.read_text())

    bench.scenario(shape, n, "edit-comment", projects, lambda p: p.tool.build(2), comment, 0, rss_each=True)
    edited = {name: p for name, p in projects.items() if name in ("flowmake", "make", "ninja")}

    def command(p: "Project", rep: int) -> None:
        path = p.root / _build_file(p)
        path.write_text(_edit_first_command(p.tool.name, path.read_text(), rep))

    bench.scenario(shape, n, "edit-command", edited, lambda p: p.tool.build(2), command, 0, rss_each=True)
    if shape == "layered" and n == max(bench.results.big_sizes) and "flowmake" in projects:
        tree_builds(bench, shape, n, projects["flowmake"])


TREE_MODES = ("tree", "json", "plain")


def tree_builds(bench: "Bench", shape: str, n: int, project: "Project") -> None:
    """Full builds with each progress mode, as tree_pty.py runs them: tree on a pty, json and plain on a pipe."""
    import tree_pty

    reps = bench.reps_for(n, "full-j2")
    for rep in range(reps):
        for mode in TREE_MODES[rep % 3:] + TREE_MODES[: rep % 3]:
            project.clean()
            argv = project.tool.argv("run", "-j", "2", "--progress", mode)
            timeout = max(bench.args.timeout, bench.args.build_timeout)
            seconds, cpu, nbytes, code = tree_pty.run_build(argv, project.root, tree_pty.pty_env(bench.env), mode, timeout)
            if code != 0 or not project.built():
                why = "timed out" if code == -1 else f"exit {code}" if code else "outputs missing"
                bench.results.notes.append(f"flowmake {shape} {n} full-{mode}: {why}; no tree figures")
                return
            bench.results.times.setdefault((shape, n, f"full-{mode}", "flowmake"), []).append(seconds)
            bench.results.times.setdefault((shape, n, f"cpu-{mode}", "flowmake"), []).append(cpu)
            bench.say(f"  {shape} {n} full-{mode}: {seconds:.2f}s (cpu {cpu:.2f}s, {nbytes} bytes)")


def _build_file(p: "Project") -> str:
    import generate

    return generate.WRITERS[p.tool.name][0]


def _edit_first_command(tool: str, text: str, rep: int) -> str:
    """The first task's command, changed without changing what it writes (a no-op `:` after it)."""
    marker = {"flowmake": 'run = "', "make": "\t", "ninja": "  command = "}[tool]
    if tool == "ninja":
        # One rule for every task: a rule of its own for t0 changes only its command.
        rule = f"rule cat{rep}\n  command = cat $in > $out && : {rep}\n"
        return re.sub(r"^build (out/t0\.txt): cat\w*", f"build \\1: cat{rep}", rule + text, count=1, flags=re.M)
    start = text.index(marker, text.index("out/t0.txt"))
    end = text.index("\n", start)
    line = text[start:end]
    line = line[:-1] + f' && : {rep}"' if tool == "flowmake" else line + f" && : {rep}"
    return text[:start] + line + text[end:]


def big_targets(results: "Results", verdict: Callable[[Optional[bool], str], None], fmt: Callable) -> None:
    """Issue 16's targets, as ratios within this run."""
    med = results.median
    sizes = sorted({n for (s, n, _, _) in results.times if s != "startup"})
    big = results.big_sizes
    for shape in ("layered", "wide"):
        for n in [n for n in sizes if extra_at(n, big)]:
            check, tomli, nogc = (med(shape, n, s, "flowmake") for s in ("check", "tomli", "tomli-nogc"))
            if check is not None and tomli is not None and nogc is not None:
                verdict(check <= 3 * tomli, f"cold check {shape} {n}: flowmake {fmt(check)} <= 3x tomli {fmt(tomli)}"
                        f" (ratio {check / tomli:.2f}; {check / nogc:.2f}x tomli with gc off, {fmt(nogc)})")
            comment, noop = med(shape, n, "edit-comment", "flowmake"), med(shape, n, "noop", "flowmake")
            if comment is not None and tomli is not None:
                verdict(comment <= 2 * tomli, f"comment edit {shape} {n}: flowmake {fmt(comment)} <= 2x tomli"
                        f" {fmt(tomli)} (ratio {comment / tomli:.2f}; {comment / nogc:.2f}x tomli with gc off)")
            edit = med(shape, n, "edit-command", "flowmake")
            if edit is not None and check is not None:
                verdict(edit <= 2 * check, f"command edit {shape} {n}: flowmake {fmt(edit)} <= 2x cold check"
                        f" {fmt(check)} (ratio {edit / check:.2f})")
            status = med(shape, n, "status", "flowmake")
            if status is not None and noop is not None:
                verdict(status <= 3 * noop, f"status {shape} {n}: flowmake {fmt(status)} <= 3x no-op {fmt(noop)}"
                        f" (ratio {status / noop:.2f})")
            make = med(shape, n, "noop", "make")
            if noop is not None and make is not None:
                verdict(noop <= make, f"no-op {shape} {n}: flowmake {fmt(noop)} <= 1.0x make {fmt(make)}"
                        f" (ratio {noop / make:.2f})")
            elif noop is not None:
                verdict(None, f"no-op {shape} {n}: flowmake {fmt(noop)} <= 1.0x make (make {results.why_missing(shape, n, 'make')})")
            full, full_make = med(shape, n, "full-j2", "flowmake"), med(shape, n, "full-j2", "make")
            if full is not None and full_make is not None and n in big:
                verdict(full <= 1.1 * full_make, f"full {shape} {n} -j2: flowmake {fmt(full)} <= 1.1x make"
                        f" {fmt(full_make)} (ratio {full / full_make:.2f})")
        extra = [n for n in sizes if extra_at(n, big)]
        if len(extra) >= 2:
            small, large = (med(shape, n, "check", "flowmake") for n in (extra[0], extra[-1]))
            bound = extra[-1] / extra[0] * 1.1
            if small is not None and large is not None:
                verdict(large / small <= bound, f"cold check {shape} growth: check({extra[-1]}) / check({extra[0]})"
                        f" = {large / small:.1f} <= {bound:.0f}")
    for (shape, n, scenario, tool), kb in sorted(results.scenario_rss.items()):
        if tool == "flowmake" and big and n >= max(big) and not scenario.startswith("tomli"):
            verdict(kb / 1024 <= 500, f"peak RSS {shape} {n} {scenario}: flowmake {kb / 1024:.0f} MB <= 500 MB")
    tree_target(results, verdict, fmt)


def tree_target(results: "Results", verdict: Callable[[Optional[bool], str], None], fmt: Callable) -> None:
    """Issue 16.6: the full build with the live tree within 10 % of --progress json, at the largest size."""
    if not results.big_sizes:
        return
    n = max(results.big_sizes)
    tree, json_, plain = (results.median("layered", n, f"full-{m}", "flowmake") for m in TREE_MODES)
    if tree is None or json_ is None:
        verdict(None, f"tree layered {n}: full build with --progress tree <= 1.10x json: not measured here"
                      f" (layered {n} not run, or its builds failed: see the notes); benchmarks/tree_pty.py --tasks {n} gives it")
        return
    cpu = {m: results.median("layered", n, f"cpu-{m}", "flowmake") for m in TREE_MODES}
    verdict(tree <= 1.10 * json_, f"tree layered {n}: full build -j2 with --progress tree (pty) {fmt(tree)} <= 1.10x json"
            f" {fmt(json_)} (ratio {tree / json_:.3f}; cpu tree/json {cpu['tree'] / cpu['json']:.3f})")
    if plain is not None:
        verdict(plain <= 1.10 * json_, f"plain layered {n}: full build -j2 with --progress plain {fmt(plain)} <= 1.10x"
                f" json {fmt(json_)} (ratio {plain / json_:.3f}; cpu plain/json {cpu['plain'] / cpu['json']:.3f})")


def rss_table(results: "Results", tools: List[str], table: Callable) -> str:
    """Peak RSS of each scenario measured with `rss_each`, per tool (MB)."""
    keys = sorted({(s, n, sc) for (s, n, sc, _) in results.scenario_rss})
    rows = [[s, str(n), sc, *(f"{results.scenario_rss[(s, n, sc, t)] / 1024:.0f}MB"
                             if (s, n, sc, t) in results.scenario_rss else "-" for t in tools)] for s, n, sc in keys]
    return "Peak RSS per scenario (GNU time %M)\n\n" + table(["shape", "N", "scenario", *tools], rows)
