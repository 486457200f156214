"""Shell completion for bash, zsh and fish: commands, options, and the Flowfile's task names.

`flowmake completion SHELL` prints a script; the shell then calls
`flowmake __complete SHELL ...` at every Tab, which `__main__` hands here
before typer is imported (typer and click's own completion would cost most
of the 100 ms a keystroke may take). Task names, matrix variants, groups
and output paths come from the cached model of the nearest Flowfile
(load.loadcache), so a 1,000-task project completes in tens of
milliseconds. Whatever goes wrong (no Flowfile, a broken one, a damaged
cache) completes what it can and prints nothing else: an error must never
land in the user's prompt. The option table here is checked against the
typer application by tests/test_completion.py.
"""

from __future__ import annotations

import os
import shlex
import sys

from ..records import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

SHELLS = ("bash", "zsh", "fish")
GLOBAL = ("-f", "--file", "-C", "--directory", "--version", "-h", "--help", "--install-completion")
RUN = ("-j", "--jobs", "-n", "--dry-run", "-k", "--keep-going", "-B", "--always-make", "--force", "--progress",
       "--output", "--wait", "-q", "--quiet", "-v", "--verbose", "--junit-xml", "--ci", "--executor",
       "--scheduler-address", "--cache", "--cache-mode")
# command -> its options ("audit verify" for subcommands); -h/--help everywhere.
OPTIONS: Dict[str, Tuple[str, ...]] = {
    "run": RUN,
    "status": ("--json", "--exit-code"),
    "list": ("--json",),
    "graph": ("--format",),
    "clean": ("-n", "--dry-run", "--wait"),
    "check": (),
    "init": ("--force",),
    "schema": ("-o", "--output"),
    "log": ("--last", "--json", "--limit", "--prune", "--wait"),
    "lineage": ("--json", "--sources"),
    "report": ("-o", "--output", "--format", "--since"),
    "completion": ("--install",),
    "watch": ("--progress", "--debounce"),
    "audit": (),
    "audit verify": (),
    "audit export": ("--format", "-o", "--output"),
    "schedule": (),
    "schedule list": ("--json", "--from"),
    "schedule run": ("--progress",),
    "schedule fire": ("--progress",),
    "schedule export": ("--format", "-o", "--output"),
    "cache": (),
    "cache stats": ("--cache", "--json"),
    "cache gc": ("--max-size", "--older-than", "--cache", "--json"),
    "daemon": (),
    "daemon start": ("--idle-exit",),
    "daemon status": (),
    "daemon stop": (),
}
SUBCOMMANDS = {"audit": ("verify", "export"), "schedule": ("list", "run", "fire", "export"), "cache": ("stats", "gc"),
               "daemon": ("start", "status", "stop")}
COMMANDS = tuple(sorted(c for c in OPTIONS if " " not in c))
# Options whose value is one of a few words; the others that take a value complete files (the shell's default).
VALUES: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ("run", "--progress"): ("auto", "tree", "plain", "json"),
    ("watch", "--progress"): ("auto", "tree", "plain", "json"),
    ("schedule run", "--progress"): ("auto", "tree", "plain", "json"),
    ("schedule fire", "--progress"): ("auto", "tree", "plain", "json"),
    ("run", "--output"): ("auto", "interleaved", "prefixed", "group", "none"),
    ("run", "--ci"): ("auto", "github", "gitlab", "none"),
    ("run", "--executor"): ("local", "dask"),
    ("run", "--cache-mode"): ("readwrite", "read", "write"),
    ("graph", "--format"): ("text", "dot", "mermaid", "json"),
    ("report", "--format"): ("html", "md", "json"),
    ("audit export", "--format"): ("json", "csv"),
    ("schedule export", "--format"): ("crontab", "systemd"),
}
TAKES_VALUE = {"-f", "--file", "-C", "--directory", "-j", "--jobs", "--force", "--progress", "--output", "--junit-xml",
               "--ci", "--format", "-o", "--limit", "--prune", "--since", "--debounce", "--from", "--cache",
               "--max-size", "--older-than", "--executor", "--scheduler-address", "--cache-mode"}
# Commands whose arguments are targets (tasks, variants, groups, outputs); lineage takes paths.
TARGETED = {"run", "status", "graph", "clean", "watch"}


def complete(words: Sequence[str], environ=os.environ) -> List[str]:
    """Candidates for the last of `words` (the words after `flowmake`, the last one being typed)."""
    *before, current = list(words) or [""]
    file, directory = None, None
    command = ""
    i = 0
    while i < len(before):
        word = before[i]
        if word in TAKES_VALUE and i + 1 < len(before):
            if word in ("-f", "--file"):
                file = before[i + 1]
            elif word in ("-C", "--directory"):
                directory = before[i + 1]
            i += 2
            continue
        if not word.startswith("-"):
            if not command:
                command = word if word in OPTIONS else "run"  # `flowmake TARGET` is `flowmake run TARGET`
            elif command in SUBCOMMANDS and word in SUBCOMMANDS[command]:
                command = f"{command} {word}"
        i += 1
    previous = before[-1] if before else ""
    key = (command or "run", previous)
    if key in VALUES:
        return _prefixed(VALUES[key], current)
    if previous in TAKES_VALUE:
        if previous == "--force":
            return _prefixed(_targets(file, directory), current)
        return []  # a path or a number: the shell completes files
    if current.startswith("-"):
        return _prefixed((*OPTIONS.get(command or "run", ()), *(GLOBAL if not command else ("-h", "--help"))), current)
    if not command:
        return _prefixed((*COMMANDS, *_targets(file, directory)), current)
    if command in SUBCOMMANDS:
        return _prefixed(SUBCOMMANDS[command], current)
    if command == "completion":
        return _prefixed(SHELLS, current)
    if command in TARGETED or (command == "log" and _positional_count(before) >= 2):
        return _prefixed(_targets(file, directory), current)
    if command == "lineage":
        return _prefixed(_targets(file, directory, outputs_only=True), current)
    return []


def _positional_count(before: Sequence[str]) -> int:
    return sum(1 for w in before if not w.startswith("-"))


def _prefixed(candidates, current: str) -> List[str]:
    return list(dict.fromkeys(c for c in candidates if c.startswith(current)))


def _targets(file: Optional[str], directory: Optional[str], *, outputs_only: bool = False) -> List[str]:
    """Task names, groups and declared outputs of the Flowfile that `run` would find; [] on any trouble."""
    try:
        from pathlib import Path

        from ..engine.graph import build_graph
        from ..layout import nearest_flowfile
        from ..load.loadcache import load_cached
        from ..store.state import state_dir

        start = os.path.abspath(directory or ".")
        path = os.path.join(start, file) if file else nearest_flowfile(start)
        if path is None or not os.path.isfile(path):
            return []
        flowfile, _graph = load_cached(Path(path), state_dir(Path(path).parent), build_graph)
        names: List[str] = []
        outputs: List[str] = []
        for group, variants in flowfile.groups().items():
            names.append(group)
            names.extend(v for v in variants if v != group)
        for spec in flowfile.tasks.values():
            outputs.extend(spec.outputs)
        return outputs if outputs_only else names + outputs
    except Exception:  # a broken Flowfile, a damaged cache: complete nothing rather than print an error
        return []


def main(args: Sequence[str]) -> int:
    """`flowmake __complete SHELL ...`: print the candidates, one per line; never an error."""
    try:
        devnull = open(os.devnull, "w")
        sys.stderr = devnull  # nothing may reach the prompt, not even a warning
        shell, rest = (args[0], list(args[1:])) if args else ("bash", [])
        if shell == "bash":
            words, trim = _bash_words(rest[0] if rest else "", rest[1] if len(rest) > 1 else ":=")
        else:
            words, trim = rest, ""
        found = complete(words)
        current = words[-1] if words else ""
        if trim:
            # bash splits the word at ':' and '=' (COMP_WORDBREAKS): it replaces only the part after the last one.
            cut = max(current.rfind(c) for c in trim) + 1
            found = [c[cut:] for c in found]
        sys.stdout.write("".join(c + "\n" for c in found))
        sys.stdout.flush()
    except Exception:
        pass
    return 0


def _bash_words(line: str, breaks: str) -> Tuple[List[str], str]:
    """The words of COMP_LINE up to the cursor, after `flowmake`; an unfinished quote is closed."""
    for closing in ("", '"', "'"):
        try:
            words = shlex.split(line + closing)
            break
        except ValueError:
            continue
    else:
        words = line.split()
    if line.endswith((" ", "\t")) or not words:
        words.append("")
    return words[1:] or [""], "".join(c for c in ":=" if c in breaks)


BASH = r'''# flowmake completion for bash: `source <(flowmake completion bash)`, or save it in
# ~/.local/share/bash-completion/completions/flowmake
_flowmake_complete() {
    local IFS=$'\n'
    COMPREPLY=($(flowmake __complete bash "${COMP_LINE:0:$COMP_POINT}" "$COMP_WORDBREAKS" 2>/dev/null))
}
complete -o default -o bashdefault -F _flowmake_complete flowmake
'''

ZSH = r'''#compdef flowmake
# flowmake completion for zsh: save it as _flowmake in a directory of $fpath (e.g. ~/.zfunc), then
# `autoload -U compinit && compinit`; or `source <(flowmake completion zsh)`.
_flowmake() {
    local -a candidates
    candidates=("${(@f)$(flowmake __complete zsh "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    candidates=(${candidates:#})
    if (( ${#candidates} )); then
        compadd -Q -S ' ' -- "${candidates[@]}"
    else
        _files
    fi
}
if [[ "${funcstack[1]}" = _flowmake ]]; then _flowmake "$@"; else compdef _flowmake flowmake; fi
'''

FISH = r'''# flowmake completion for fish: save it as ~/.config/fish/completions/flowmake.fish,
# or `flowmake completion fish | source`.
function __flowmake_complete
    set -l words (commandline -opc) (commandline -ct)
    flowmake __complete fish $words[2..-1] 2>/dev/null
end
complete -c flowmake -a '(__flowmake_complete)'
'''

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}
# Where `--install` puts each script: the places each shell loads completions from without any setup.
INSTALL = {
    "bash": ".local/share/bash-completion/completions/flowmake",
    "zsh": ".zfunc/_flowmake",
    "fish": ".config/fish/completions/flowmake.fish",
}


def script(shell: str) -> str:
    from ..errors import UsageError

    if shell not in SCRIPTS:
        raise UsageError(f"unknown shell '{shell}' for completion", hint="use one of: " + ", ".join(SHELLS))
    return SCRIPTS[shell]


def install(shell: Optional[str], *, environ=os.environ, out=sys.stdout) -> int:
    """Write the script where the shell finds it; for zsh, say the fpath line it needs."""
    from pathlib import Path

    from ..errors import UsageError

    if shell is None:
        shell = os.path.basename(environ.get("SHELL", ""))
        if shell not in SCRIPTS:
            raise UsageError("cannot tell which shell this is ($SHELL is not bash, zsh or fish)",
                             hint="name it: flowmake completion bash --install")
    text = script(shell)
    target = Path(environ.get("HOME", "~")).expanduser() / INSTALL[shell]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    out.write(f"wrote {target}\n")
    if shell == "zsh":
        out.write("add to ~/.zshrc, before compinit:  fpath=(~/.zfunc $fpath)\n")
    else:
        out.write("open a new shell to use it\n")
    return 0
