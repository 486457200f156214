"""The Flowfile itself: `check` (is it valid, what does it warn about), `init` (a starter) and `schema`.

Apart from commands.py, which runs and inspects what a Flowfile describes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional, TextIO

from ..engine.graph import build_graph, resolve_targets
from ..errors import FlowError, FlowfileError, FlowfileErrors, UsageError
from ..model import Flowfile
from .commands import _enter, _warn, flowfile_warnings

STARTER = '''\
#:schema .flowmake/flowfile.schema.json
# Flowfile.toml: the tasks of this project, for flowmake.
# Every path is relative to this file's directory. See `flowmake --help`.

[flow]
name = {name}
# default = ["report"]    # targets when none are named (default: every task)

[vars]
build = "build"

[env]
TZ = "UTC"

[tasks.hello]
help = "An example step: replace it with your first real one"
outputs = ["{{build}}/hello.txt"]
run = "echo 'hello from flowmake' > {{outputs[0]}}"

# [tasks.summarise]
# help = "Count the lines of the hello file"
# inputs = ["{{build}}/hello.txt"]
# outputs = ["{{build}}/summary.txt"]
# run = "wc -l {{inputs}} > {{outputs[0]}}"
'''


def check_flowfile(*, file: Optional[Path], directory: Optional[Path], out: TextIO = sys.stdout) -> int:
    from ..load.flowfile import find_flowfile, load_with_problems

    path = find_flowfile(_enter(directory), file)
    flowfile, problems = load_with_problems(path)
    errors: List[FlowError] = list(problems)
    try:
        graph = build_graph(flowfile)
    except FlowfileErrors as exc:
        errors.extend(exc.errors)
        graph = None
    if graph is not None and flowfile.default is not None:
        for name in flowfile.default:
            try:
                resolve_targets(flowfile, graph, [name])
            except UsageError as exc:
                errors.append(FlowfileError(f"[flow] default: {exc.message}", file=flowfile.path, hint=exc.hint))
    if errors:
        unique = list({e.render(): e for e in errors}.values())
        files = [str(flowfile.path), *(str(flowfile.root / rel) for rel in flowfile.includes)]
        unique.sort(key=lambda e: (files.index(str(e.location.file)) if str(e.location.file) in files else 0,
                                   e.location.line or 0))
        raise FlowfileErrors(unique)
    for warning in [*outputs_outside(flowfile), *flowfile_warnings(flowfile)]:
        _warn(warning)
    _refresh_schema(flowfile.root)
    groups = flowfile.groups()
    out.write(f"ok: {flowfile.path.name} is valid: {len(flowfile.tasks)} tasks"
              + (f" in {len(groups)} groups" if len(groups) != len(flowfile.tasks) else "") + "\n")
    if flowfile.includes:
        out.write(f"  includes {', '.join(flowfile.includes)}\n")
    for what, pattern, count in flowfile.file_values:
        out.write(f"  {what} has {count} value{'s' if count != 1 else ''} from files matching {pattern}\n")
    return 0


def _refresh_schema(root: Path) -> None:
    """Keep the editors' copy of the schema current, when the project has one (`flowmake init` made it)."""
    from ..load.schema import SCHEMA_FILE, write_project_copy
    from ..store.state import state_dir

    if (state_dir(root) / SCHEMA_FILE).exists():
        try:
            write_project_copy(root)
        except OSError:
            pass  # a read-only checkout: the editor keeps the copy it has


def outputs_outside(flowfile: Flowfile) -> List[str]:
    """A warning for each declared output a symbolic link leads outside the project."""
    from ..load.links import outputs_leaving

    warnings = []
    declared = ((name, output) for name, spec in flowfile.tasks.items() for output in spec.outputs)
    for name, output, (link, target) in outputs_leaving(str(flowfile.root), declared):
        if link == output.rstrip("/"):
            warnings.append(f"output {output} of task {name} is a symbolic link to {target}, outside the"
                            " project: the task writes through it; `clean` removes only the link")
        else:
            warnings.append(f"output {output} of task {name} resolves outside the project: {link} is a"
                            f" symbolic link to {target}; the task writes there, `clean` will not delete it")
    return warnings


def write_starter(*, directory: Optional[Path], overwrite: bool, out: TextIO = sys.stdout) -> int:
    cwd = _enter(directory)
    path = cwd / "Flowfile.toml"
    if path.exists() and not overwrite:
        raise UsageError(f"{path} already exists", hint="edit it, or pass --force to replace it with the starter")
    from ..load.schema import write_project_copy

    path.write_text(STARTER.format(name=json.dumps(cwd.name or "project")))
    write_project_copy(cwd)  # what the #:schema line points editors at
    out.write(f"wrote {path}: try `flowmake run`, then `flowmake status`\n")
    return 0


def print_schema(*, output: Optional[Path], out: TextIO = sys.stdout) -> int:
    from ..load.schema import schema_text

    if output is None:
        out.write(schema_text())
        return 0
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(schema_text(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    return 0
