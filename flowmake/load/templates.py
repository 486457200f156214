"""Placeholders: `{name}` templates parsed, checked and expanded.

A Flowfile string may name text vars, matrix keys and list vars as
`{name}`, and `run` may also name the task's files as `{inputs}`,
`{outputs}`, `{inputs[0]}` or `{inputs.GROUP}`; `{{` and `}}` are literal
braces. An entry that uses list vars expands to one string per combination
of their values; in `run` a word holding a list var is repeated, space
separated, like shell brace expansion, and file lists are shell-quoted.
Templates are parsed and checked once per distinct text (generated
Flowfiles repeat the same entries in thousands of tables), so everything
here is pure and cached; problems are raised as `TemplateError` for the
caller to place in the file.
"""

from __future__ import annotations

import functools
import itertools
import re
import shlex
from typing import FrozenSet, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from ..errors import did_you_mean

IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # env names, vars, matrix keys, groups
FILES = ("inputs", "outputs")  # the placeholder names that only `run` may use

BRACE_HINT = "write {{ and }} for literal braces (a shell ${HOME} becomes ${{HOME}})"


class Ref(NamedTuple):
    """One `{...}` placeholder: a name, maybe a group (`.bam`) and an index (`[0]`).

    A NamedTuple rather than a dataclass: templates are cache keys, and tuple
    hashing stays in C.
    """

    name: str
    group: Optional[str] = None
    item: Optional[int] = None  # `[N]`; not `index`, which tuple already has

    def __str__(self) -> str:
        group = f".{self.group}" if self.group is not None else ""
        index = f"[{self.item}]" if self.item is not None else ""
        return "{" + self.name + group + index + "}"


_Segment = Union[str, Ref]
Template = Tuple[_Segment, ...]
# A template with the list vars it uses, found once per task table.
Entry = Tuple[str, Template, Tuple[str, ...]]
# `run` as literal text and words holding placeholders (a word is what a list var repeats).
RunPiece = Union[str, Tuple[Template, Tuple[str, ...]]]


class TemplateError(Exception):
    """A bad placeholder; the caller knows the task and key, and so the line, to report it at."""

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


_BRACE_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_REF_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?(?:\[(\d+)\])?")
_WHITESPACE_RE = re.compile(r"(\s+)")


@functools.lru_cache(maxsize=65536)
def parse_template(text: str) -> Template:
    """Literal text and placeholders; cached because tables repeat the same entries."""
    if "{" not in text and "}" not in text:
        return (text,) if text else ()
    segments: List[_Segment] = []
    literal: List[str] = []
    pos = 0
    for match in _BRACE_RE.finditer(text):
        literal.append(text[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        inner = match.group(1)
        ref = _REF_RE.fullmatch(inner) if inner is not None else None
        if ref is None:
            if inner is None:
                raise TemplateError(f"unmatched `{token}`", hint=BRACE_HINT)
            raise TemplateError(
                f"`{token}` is not a placeholder",
                hint="placeholders look like {name}, {inputs}, {inputs[0]} or {inputs.GROUP}; " + BRACE_HINT,
            )
        if any(literal):
            segments.append("".join(literal))
        literal = []
        index = int(ref.group(3)) if ref.group(3) is not None else None
        segments.append(Ref(ref.group(1), ref.group(2), index))
    literal.append(text[pos:])
    if any(literal):
        segments.append("".join(literal))
    return tuple(segments)


@functools.lru_cache(maxsize=65536)
def _list_refs(template: Template, lists: FrozenSet[str]) -> Tuple[str, ...]:
    """The list vars a template uses, in order of first use."""
    return tuple(dict.fromkeys(s.name for s in template if isinstance(s, Ref) and s.name in lists))


@functools.lru_cache(maxsize=4096)
def _run_words(text: str) -> Tuple[Union[str, Template], ...]:
    """`run` split into words (templates) and the whitespace between them (str)."""
    words: List[Union[str, Template]] = []
    current: List[_Segment] = []
    for segment in parse_template(text):
        if isinstance(segment, Ref):
            current.append(segment)
            continue
        for i, piece in enumerate(_WHITESPACE_RE.split(segment)):
            if i % 2 == 1:
                if current:
                    words.append(tuple(current))
                    current = []
                words.append(piece)
            elif piece:
                current.append(piece)
    if current:
        words.append(tuple(current))
    return tuple(words)


class Names(NamedTuple):
    """The placeholder names one task table may use."""

    scalars: FrozenSet[str]  # text vars and matrix keys: one value per variant
    lists: FrozenSet[str]  # list vars

    def known(self, *, in_run: bool) -> Tuple[str, ...]:
        return tuple(sorted(set(self.scalars) | set(self.lists) | (set(FILES) if in_run else set())))


class Groups(NamedTuple):
    """Group names of `inputs` and `outputs`; None when that key is a plain list."""

    inputs: Optional[Tuple[str, ...]] = None
    outputs: Optional[Tuple[str, ...]] = None


def _check_refs(template: Template, *, names: Names, key: str, groups: Groups = Groups()) -> None:
    """Raise TemplateError for the first placeholder `key` may not use."""
    in_run = key == "run"
    for ref in template:
        if ref.__class__ is str:
            continue
        assert isinstance(ref, Ref)
        if ref.name in FILES:
            if not in_run:
                raise TemplateError(
                    f"{ref} cannot be used in `{key}`", hint="only `run` can name the task's inputs and outputs"
                )
            _check_group(ref, groups.inputs if ref.name == "inputs" else groups.outputs)
        elif ref.name in names.scalars or ref.name in names.lists:
            if ref.group is not None or ref.item is not None:
                raise TemplateError(f"{ref}: only {{inputs}} and {{outputs}} take [N] or .GROUP")
        else:
            known = names.known(in_run=in_run)
            raise TemplateError(
                f"unknown placeholder {ref} in `{key}` (known: {', '.join(known) or '(none)'})",
                hint=did_you_mean(ref.name, known) or BRACE_HINT,
            )


def _check_group(ref: Ref, groups: Optional[Tuple[str, ...]]) -> None:
    if ref.group is None:
        return
    if groups is None:
        raise TemplateError(
            f"`run` uses {ref} but `{ref.name}` is a plain list, not a table of named lists",
            hint=f'write {ref.name} = {{ {ref.group} = ["..."] }}',
        )
    if ref.group not in groups:
        raise TemplateError(
            f"`run` uses {ref} but `{ref.name}` has no group `{ref.group}` (groups: {', '.join(groups) or '(none)'})",
            hint=did_you_mean(ref.group, groups),
        )


def expand_entry(entry: Entry, *, values: Mapping[str, str], lists: Mapping[str, Tuple[str, ...]]) -> List[str]:
    """One string per combination of the entry's list vars (their product, in order)."""
    _, template, list_names = entry
    if not list_names:
        if len(template) == 1 and template[0].__class__ is str:
            return [template[0]]
        return ["".join(s if s.__class__ is str else values[s.name] for s in template)]  # type: ignore[union-attr]
    out = []
    for combo in itertools.product(*(lists[n] for n in list_names)):
        chosen = dict(zip(list_names, combo))
        out.append(
            "".join(
                s if isinstance(s, str) else chosen[s.name] if s.name in chosen else values[s.name] for s in template
            )
        )
    return out


class Files(NamedTuple):
    """A variant's final inputs and outputs, for {inputs...} and {outputs...} in `run`."""

    inputs: Tuple[str, ...]
    input_groups: Mapping[str, Tuple[str, ...]]
    outputs: Tuple[str, ...]
    output_groups: Mapping[str, Tuple[str, ...]]

    def text(self, ref: Ref) -> str:
        if ref.name == "inputs":
            paths = self.inputs if ref.group is None else self.input_groups[ref.group]
        else:
            paths = self.outputs if ref.group is None else self.output_groups[ref.group]
        if ref.item is None:
            return " ".join(shlex.quote(p) for p in paths)
        if ref.item >= len(paths):
            count = f"is only 1 {ref.name[:-1]}" if len(paths) == 1 else f"are {len(paths) or 'no'} {ref.name}"
            where = "" if ref.group is None else f" in group `{ref.group}`"
            raise TemplateError(f"`run` uses {ref} but there {count}{where}")
        return shlex.quote(paths[ref.item])


def _fill_word(template: Template, *, values: Mapping[str, str], files: Files) -> str:
    parts = []
    for seg in template:
        if isinstance(seg, str):
            parts.append(seg)
        elif seg.name in FILES:
            parts.append(files.text(seg))
        else:
            parts.append(values[seg.name])
    return "".join(parts)


def render_run(
    pieces: Sequence[RunPiece], *, values: Mapping[str, str], lists: Mapping[str, Tuple[str, ...]], files: Files
) -> str:
    """Expand `run`: var values raw, file lists shell-quoted, list vars as brace expansion."""
    out: List[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        template, list_names = piece
        if not list_names:
            out.append(_fill_word(template, values=values, files=files))
            continue
        expansions = []
        for combo in itertools.product(*(lists[n] for n in list_names)):
            chosen = {**values, **dict(zip(list_names, combo))}
            expansions.append(_fill_word(template, values=chosen, files=files))
        out.append(" ".join(expansions))
    return "".join(out)


@functools.lru_cache(maxsize=65536)
def compile_entry(text: str, names: Names, key: str) -> Entry:
    """An inputs/outputs/wait_for/after entry checked for `key`, once per distinct text."""
    if "{" not in text and "}" not in text:
        return text, (text,), ()
    template = parse_template(text)
    _check_refs(template, names=names, key=key)
    return text, template, _list_refs(template, names.lists)


@functools.lru_cache(maxsize=4096)
def compile_run(run: str, names: Names, groups: Groups) -> Tuple[RunPiece, ...]:
    """Checked once per distinct command text: generated Flowfiles repeat them."""
    pieces: List[RunPiece] = []
    literal: List[str] = []
    for word in _run_words(run):
        if isinstance(word, str) or all(isinstance(s, str) for s in word):
            literal.append(word if isinstance(word, str) else "".join(word))  # type: ignore[arg-type]
            continue
        _check_refs(word, names=names, key="run", groups=groups)
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append((word, _list_refs(word, names.lists)))
    if literal:
        pieces.append("".join(literal))
    return tuple(pieces)
