"""The Flowfile's tables other than tasks: [vars], [env], [flow] and [hooks].

Each reader checks one table and returns a typed value with what was wrong
left out, reporting every problem into `Problems`. Vars are resolved here,
once, text vars inside vars in any declaration order, so that task tables
see only final values. The `env` and `shell` readers also serve the keys of
the same names in task tables.
"""

from __future__ import annotations

import json
import shlex
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..errors import did_you_mean
from ..model import DEFAULT_SHELL, OUTPUT_MODES, Hooks
from .paths import Disk
from .patterns import PatternError, values_from_files
from .problems import Problems, check_keys, describe, is_str_list, toml_type
from .resources import read_executor
from .templates import BRACE_HINT, FILES, IDENT_RE, TemplateError, parse_template

FLOW_KEYS = ("name", "default", "jobs", "shell", "include", "output", "junit_xml", "cache", "executor",
             "scheduler")  # include: read by includes.py
HOOK_KEYS = ("on_failure", "on_success", "webhook")


class Vars(NamedTuple):
    """Resolved vars: text vars by name, and list vars with their items."""

    scalars: Mapping[str, str]
    lists: Mapping[str, Tuple[str, ...]]
    from_files: Tuple[Tuple[str, str, int], ...] = ()  # ("var `NAME`", pattern, values) of glob list vars


def read_vars(raw: object, *, problems: Problems, disk: Disk) -> Vars:
    """Text and list vars; a var may use text vars ({raw}/x), resolved in any order.

    A list var may also be `{ glob = "books/{book}.txt" }`: its items come from the files on disk.
    """
    if not isinstance(raw, dict):
        if raw is not None:
            problems.add(f"[vars] must be a table, got {toml_type(raw)}", at=("vars",))
        return Vars({}, {})
    texts: Dict[str, str] = {}
    lists: Dict[str, List[str]] = {}
    globbed: Dict[str, object] = {}
    for name, value in raw.items():
        if not IDENT_RE.fullmatch(name) or name in FILES:
            why = "is reserved" if name in FILES else "must be letters, digits and '_', not starting with a digit"
            problems.add(f"var name `{name}` {why}", at=("vars", name), col=True)
        elif isinstance(value, str):
            texts[name] = value
        elif is_str_list(value):
            lists[name] = value
        elif isinstance(value, dict):
            globbed[name] = value
        else:
            problems.add(
                f"var `{name}` must be a string or a list of strings, got {describe(value)}",
                at=("vars", name),
                hint=f'write {name} = "..." or {name} = ["...", "..."]',
            )
    resolver = _VarResolver(texts, lists, problems=problems)
    scalars = {name: resolver.text(name, ()) for name in texts}
    resolved_lists = {
        name: tuple(resolver.substitute(name, item, (name,)) for item in items) for name, items in lists.items()
    }
    from_files = []
    for name, spec in globbed.items():
        values = _glob_var(name, spec, scalars=scalars, problems=problems, disk=disk)
        if values is not None:
            resolved_lists[name] = values
            from_files.append((f"var `{name}`", spec["glob"], len(values)))  # type: ignore[index]
    return Vars(scalars, resolved_lists, tuple(from_files))


def _glob_var(name: str, spec: object, *, scalars: Mapping[str, str], problems: Problems,
              disk: Disk) -> Optional[Tuple[str, ...]]:
    """The items of `NAME = { glob = "books/{book}.txt" }`: the part of each matching file where
    the one placeholder that is not a text var stands."""
    assert isinstance(spec, dict)
    check_keys(spec, ("glob",), problems=problems, at=("vars", name), label=f"var `{name}`: ")
    pattern = spec.get("glob")
    if not isinstance(pattern, str):
        got = "nothing" if pattern is None else describe(pattern)
        problems.add(f"var `{name}` needs `glob`, a string, got {got}", at=("vars", name),
                     hint=f'write {name} = {{ glob = "dir/{{item}}.txt" }}')
        return None
    try:
        return values_from_files(pattern, key=None, scalars=scalars, disk=disk)
    except PatternError as exc:
        problems.add(f"var `{name}` {exc.message}", at=("vars", name), hint=exc.hint)
        return None


class _VarResolver:
    """Substitutes text vars inside vars, in any declaration order, catching cycles."""

    def __init__(self, texts: Mapping[str, str], lists: Mapping[str, Sequence[str]], *, problems: Problems) -> None:
        self.texts = texts
        self.lists = lists
        self.problems = problems
        self.done: Dict[str, str] = {}

    def text(self, name: str, chain: Tuple[str, ...]) -> str:
        if name in self.done:
            return self.done[name]
        if name in chain:
            cycle = " -> ".join(chain[chain.index(name) :] + (name,))
            self.problems.add(f"var `{name}` refers to itself: {cycle}", at=("vars", name))
            return ""
        value = self.substitute(name, self.texts[name], chain + (name,))
        self.done[name] = value
        return value

    def substitute(self, name: str, text: str, chain: Tuple[str, ...]) -> str:
        try:
            template = parse_template(text)
        except TemplateError as exc:
            self.problems.add(f"var `{name}`: {exc.message}", at=("vars", name), hint=exc.hint)
            return text
        parts = []
        for seg in template:
            if isinstance(seg, str):
                parts.append(seg)
            elif seg.name in self.texts and seg.group is None and seg.item is None:
                parts.append(self.text(seg.name, chain))
            elif seg.name in self.lists:
                self.problems.add(
                    f"var `{name}` uses list var {seg}; list vars expand only in tasks", at=("vars", name)
                )
            else:
                known = ", ".join(sorted(self.texts)) or "(none)"
                self.problems.add(
                    f"var `{name}` uses unknown placeholder {seg} (known text vars: {known})",
                    at=("vars", name),
                    hint=did_you_mean(seg.name, self.texts) or BRACE_HINT,
                )
        return "".join(parts)


def read_env(raw: object, *, problems: Problems, at: Tuple[str, ...], label: str) -> Dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(
            f"{label}`env` must be a table of strings, got {toml_type(raw)}",
            at=at,
            hint='write env = { NAME = "value" }',
        )
        return {}
    env: Dict[str, str] = {}
    for name, value in raw.items():
        if not IDENT_RE.fullmatch(name):
            problems.add(f"{label}env name `{name}` is not a valid variable name", at=at + (name,), col=True)
        elif not isinstance(value, str):
            shown = json.dumps(value) if isinstance(value, (int, float, bool)) else "..."
            problems.add(
                f"{label}env `{name}` must be a string, got {toml_type(value)}",
                at=at + (name,),
                hint=f'quote it: {name} = "{shown}"',
            )
        else:
            env[name] = value
    return env


def read_shell(raw: object, *, problems: Problems, at: Tuple[str, ...], label: str) -> Optional[Tuple[str, ...]]:
    if raw is None:
        return None
    if not isinstance(raw, str):
        problems.add(
            f"{label}key `shell` must be a string, got {toml_type(raw)}",
            at=at,
            hint='write shell = "bash -euo pipefail -c"',
        )
        return None
    try:
        words = tuple(shlex.split(raw))
    except ValueError as exc:
        problems.add(f"{label}`shell` cannot be split into words: {exc}", at=at)
        return None
    if not words:
        problems.add(f"{label}`shell` is empty", at=at, hint='leave it out for the default "sh -c"')
        return None
    return words


class Flow(NamedTuple):
    """[flow] as read, with the defaults of the keys left out."""

    name: Optional[str] = None
    default: Optional[Tuple[str, ...]] = None
    jobs: Optional[int] = None
    shell: Tuple[str, ...] = DEFAULT_SHELL
    output: Optional[str] = None
    junit_xml: Optional[str] = None
    cache: Optional[str] = None
    executor: Optional[str] = None  # load/resources.py
    scheduler: Optional[str] = None


def read_flow(raw: object, *, problems: Problems) -> Flow:
    if raw is None:
        return Flow()
    if not isinstance(raw, dict):
        problems.add(f"[flow] must be a table, got {toml_type(raw)}", at=("flow",))
        return Flow()
    check_keys(raw, FLOW_KEYS, problems=problems, at=("flow",), label="[flow]: ")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        problems.add(f"[flow]: key `name` must be a string, got {toml_type(name)}", at=("flow", "name"))
        name = None
    default = raw.get("default")
    if isinstance(default, str):
        default = [default]
    if default is not None and not is_str_list(default):
        problems.add(
            f"[flow]: key `default` must be a list of task names, got {describe(default)}",
            at=("flow", "default"),
            hint='write default = ["package"]',
        )
        default = None
    jobs = raw.get("jobs")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        problems.add(f"[flow]: key `jobs` must be an integer of at least 1, got {jobs!r}", at=("flow", "jobs"))
        jobs = None
    shell = read_shell(raw.get("shell"), problems=problems, at=("flow", "shell"), label="[flow]: ")
    output = raw.get("output")
    if output is not None and output not in OUTPUT_MODES:
        got = f"'{output}'" if isinstance(output, str) else toml_type(output)
        problems.add(f"[flow]: key `output` must be one of {', '.join(OUTPUT_MODES)}, got {got}",
                     at=("flow", "output"), hint='write output = "prefixed"')
        output = None
    junit_xml = raw.get("junit_xml")
    if junit_xml is not None and (not isinstance(junit_xml, str) or not junit_xml.strip()):
        got = "an empty string" if isinstance(junit_xml, str) else toml_type(junit_xml)
        problems.add(f"[flow]: key `junit_xml` must be a file path, got {got}", at=("flow", "junit_xml"),
                     hint='write junit_xml = "build/junit.xml" (relative to the project root)')
        junit_xml = None
    cache = raw.get("cache")
    if cache is not None and (not isinstance(cache, str) or not cache.strip()):
        got = "an empty string" if isinstance(cache, str) else toml_type(cache)
        problems.add(f"[flow]: key `cache` must be a directory or URL, got {got}", at=("flow", "cache"),
                     hint='write cache = "/shared/flowmake-cache" or cache = "s3://bucket/prefix" (docs/cache.md)')
        cache = None
    executor, scheduler = read_executor(raw, problems=problems)
    return Flow(name, tuple(default) if default is not None else None, jobs, shell or DEFAULT_SHELL, output,
                junit_xml, cache, executor, scheduler)


def read_hooks(raw: object, *, problems: Problems) -> Hooks:
    if raw is None:
        return Hooks()
    if not isinstance(raw, dict):
        problems.add(f"[hooks] must be a table, got {toml_type(raw)}", at=("hooks",))
        return Hooks()
    check_keys(raw, HOOK_KEYS, problems=problems, at=("hooks",), label="[hooks]: ")
    values: Dict[str, Optional[str]] = {}
    for key in HOOK_KEYS:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            problems.add(f"[hooks]: key `{key}` must be a string, got {toml_type(value)}", at=("hooks", key))
            value = None
        values[key] = value
    webhook = values["webhook"]
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        problems.add(
            f"[hooks]: webhook `{webhook}` is not an http:// or https:// URL",
            at=("hooks", "webhook"),
            hint='write webhook = "https://hooks.example.org/..."',
        )
        values["webhook"] = None
    return Hooks(on_failure=values["on_failure"], on_success=values["on_success"], webhook=values["webhook"])
