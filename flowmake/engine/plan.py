"""The rebuilder: what to do about a task, and every reason why.

One pure function, `decide`, over the task's spec, its last successful
trace and what is observed now (see SPEC §2), returns a `Decision`:
`Fresh`, `Run(reasons)`, `Blocked(blocked_by)` (below a stale task: decided
again once it is ready) or `Restore(entry, reasons)` (the shared cache holds
its outputs). It serves `status`, `run -n`, the run's preview, the loop's
second call just before a task starts (early cutoff) and the no-op fast
path: none of them has a verdict of its own. The shortcuts are sources of
observations, not of decisions: the no-op snapshot and its cone
(proof.py, cli/fastpath.py) observe `PROVEN` for a task whose files kept
the stats they were proven fresh with. No I/O here: the caller observes,
this decides.
"""

from __future__ import annotations

from ..events import TaskState
from ..model import INVALIDATED, Observation, Reason, ReasonKind, TaskSpec, Trace
from ..records import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing stays off the no-op path (records.py); it hashes env_inputs here
    from typing import List, Mapping, Optional, Sequence, Tuple, Union

    Decision = Union["Fresh", "Run", "Blocked", "Restore"]

UNSET = "\0unset"  # an env_input that is not set differs from one set to ""


def hash_text(text: str) -> str:
    """store.hashing.hash_text, imported on first use: the no-op fast path decides without hashing (or blake3)."""
    global hash_text
    from ..store.hashing import hash_text as real

    hash_text = real
    return real(text)


# -- decisions -----------------------------------------------------------------
# Each carries what every consumer asks of it: its `state` word (status,
# the plan), whether something happens to the task (`will_run`), its
# reasons, and the stale tasks above it (`blocked_by`).


class Fresh(NamedTuple):
    """Up to date: nothing to do."""

    reasons: Tuple[Reason, ...] = ()
    blocked_by: Tuple[str, ...] = ()
    state = TaskState.FRESH
    will_run = False


class Run(NamedTuple):
    """Stale: its command runs, for these reasons (`blocked_by`: stale tasks above it, run first)."""

    reasons: Tuple[Reason, ...]
    blocked_by: Tuple[str, ...] = ()
    will_run = True
    state = TaskState.STALE


class Blocked(NamedTuple):
    """Below stale tasks, with no reason of its own: it runs only if they change its inputs.

    Decided in full once they are done (the loop's second call: early cutoff).
    """

    blocked_by: Tuple[str, ...]
    reasons: Tuple[Reason, ...] = ()
    will_run = False
    state = TaskState.BLOCKED


class Restore(NamedTuple):
    """Stale, and the shared cache holds the outputs of this very fingerprint: restore them, do not run.

    `entry` is the cache's own object (issue 19): the rebuilder only passes
    it on, to the loop's restore seam (engine/restore.py).
    """

    entry: object
    reasons: Tuple[Reason, ...]
    blocked_by: Tuple[str, ...] = ()
    will_run = True
    state = TaskState.STALE


FRESH = Fresh()
# What the no-op proofs observe of a task whose every file kept the stat it
# was proven fresh with, fed by no task that changed: its fingerprint and
# outputs are its trace's. Compared by identity; its spec need not be read.
PROVEN = Observation("\0proven", {}, {}, {})


def decide(
    spec: Optional[TaskSpec],
    trace: Optional[Trace],
    obs: Observation,
    *,
    forced: bool = False,
    blocked_by: Tuple[str, ...] = (),
    cached: Optional[object] = None,
) -> Decision:
    """What to do about the task, from what is observed of it now.

    `blocked_by`: the stale or blocked tasks above it; its inputs will be
    rewritten first, so `obs` need not have them (upstream_proof_reasons).
    `cached`: the shared cache's entry for its fingerprint, if the caller
    looked one up. `spec` may be None only with `PROVEN`.
    """
    if obs is PROVEN:
        return Run((Reason(ReasonKind.FORCED),)) if forced else FRESH
    assert spec is not None
    if spec.command is None:
        # A pure group (`after` only) has nothing to run: it is as fresh as its deps.
        if forced:
            return Run((Reason(ReasonKind.FORCED),), blocked_by)
        return Blocked(blocked_by) if blocked_by else FRESH
    if blocked_by:
        reasons = upstream_proof_reasons(spec, trace, obs, forced=forced)
        return Run(reasons, blocked_by) if reasons else Blocked(blocked_by)
    reasons = task_reasons(spec, trace, obs, forced=forced)
    if not reasons:
        return FRESH
    if cached is not None and not forced and not always_runs(spec):
        return Restore(cached, reasons)
    return Run(reasons)


def command_hash(spec: TaskSpec) -> str:
    return hash_text("\0".join(spec.shell) + "\0\0" + (spec.command or ""))


def env_hashes(spec: TaskSpec, environ: Mapping[str, str]) -> dict:
    """Name -> hash of value, for the task's env and its env_inputs.

    Only hashes are kept, so values read from the caller's environment never
    reach the state database in clear.
    """
    out = {name: hash_text(value) for name, value in spec.env}
    for name in spec.env_inputs:
        out[name] = env_input_hash(name, environ)
    return out


def env_input_hash(name: str, environ: Mapping[str, str]) -> str:
    return hash_text(environ.get(name, UNSET))


def fingerprint(obs: Observation) -> str:
    parts = [obs.command_hash]
    parts.extend(f"env\0{k}\0{v}" for k, v in sorted(obs.env.items()))
    parts.extend(f"in\0{k}\0{v}" for k, v in sorted(obs.inputs.items()))
    return hash_text("\n".join(parts))


def task_reasons(spec: TaskSpec, trace: Optional[Trace], obs: Observation, *,
                 forced: bool = False) -> Tuple[Reason, ...]:
    """Every reason the task must run; empty when it is up to date."""
    reasons = _standing_reasons(spec, trace, forced)
    if trace is None:
        return tuple(reasons)
    if trace.fingerprint == INVALIDATED:
        reasons.extend(_part_reasons(trace, obs))
    elif trace.fingerprint != fingerprint(obs):
        reasons.extend(_part_reasons(trace, obs) or [Reason(ReasonKind.COMMAND_CHANGED)])
    reasons.extend(_output_reasons(spec.outputs, trace, obs))
    return tuple(reasons)


def always_runs(spec: TaskSpec) -> bool:
    """`always = true`, or a command with neither inputs nor outputs: it runs on every run.

    Never "stale work left undone": `status --exit-code` leaves it out of its gate.
    """
    return spec.command is not None and (spec.always or (not spec.inputs and not spec.outputs))


def runs_anyway(spec: TaskSpec, trace: Optional[Trace], obs: Observation, *, forced: bool = False) -> bool:
    """True when the task runs whatever its outputs are: decided by `obs` without its outputs.

    Then its outputs only add reasons to the list (see FileHasher.hash_known).
    """
    if forced or spec.always or (not spec.inputs and not spec.outputs) or trace is None:
        return True
    return trace.fingerprint == INVALIDATED or trace.fingerprint != fingerprint(obs)


def upstream_proof_reasons(spec: TaskSpec, trace: Optional[Trace], obs: Observation, *,
                           forced: bool = False) -> Tuple[Reason, ...]:
    """The reasons of a task below a stale one that no upstream run can change.

    Its inputs will be rewritten first, so they are not looked at (`obs`
    has no inputs): what a rerun upstream rewrites byte for byte changes
    nothing (early cutoff), and the task is decided in full once it is ready.
    """
    reasons = _standing_reasons(spec, trace, forced)
    if trace is None:
        return tuple(reasons)
    reasons.extend(_command_env_reasons(trace, obs))
    reasons.extend(_output_reasons(spec.outputs, trace, obs))
    return tuple(reasons)


def _standing_reasons(spec: TaskSpec, trace: Optional[Trace], forced: bool) -> List[Reason]:
    """The reasons that need no observation: forced, always, no files, never run, last attempt failed."""
    reasons: List[Reason] = []
    if forced:
        reasons.append(Reason(ReasonKind.FORCED))
    if spec.always:
        reasons.append(Reason(ReasonKind.ALWAYS))
    elif not spec.inputs and not spec.outputs:
        reasons.append(Reason(ReasonKind.NO_FILES))
    if trace is None:
        reasons.append(Reason(ReasonKind.NEVER_RUN))
    elif trace.fingerprint == INVALIDATED:
        reasons.append(Reason(ReasonKind.LAST_ATTEMPT_FAILED))
    return reasons


def _part_reasons(trace: Trace, obs: Observation) -> List[Reason]:
    """Which parts of the fingerprint differ from the trace's.

    Empty with a differing fingerprint only when the way fingerprints are
    computed changed (a flowmake upgrade); the caller then says the command
    changed rather than claim nothing did.
    """
    reasons = _command_env_reasons(trace, obs)
    for path in _union_in_order(trace.inputs, obs.inputs):
        old, new = trace.inputs.get(path), obs.inputs.get(path, None)
        if path not in trace.inputs or path not in obs.inputs:
            reasons.append(Reason(ReasonKind.INPUTS_ADDED_REMOVED, path, old, new))
        elif old != new:
            reasons.append(Reason(ReasonKind.INPUT_CHANGED, path, old, new))
    return reasons


def _command_env_reasons(trace: Trace, obs: Observation) -> List[Reason]:
    reasons: List[Reason] = []
    if trace.command_hash != obs.command_hash:
        reasons.append(Reason(ReasonKind.COMMAND_CHANGED))
    for name in sorted(set(trace.env) | set(obs.env)):
        if trace.env.get(name) != obs.env.get(name):
            reasons.append(Reason(ReasonKind.ENV_CHANGED, name))
    return reasons


def _output_reasons(outputs: Sequence[str], trace: Trace, obs: Observation) -> List[Reason]:
    reasons: List[Reason] = []
    for path in outputs:
        now = obs.outputs.get(path)
        if now is None:
            reasons.append(Reason(ReasonKind.OUTPUT_MISSING, path, trace.outputs.get(path)))
        elif trace.outputs.get(path) != now:
            reasons.append(Reason(ReasonKind.OUTPUT_MODIFIED, path, trace.outputs.get(path), now))
    return reasons


def _union_in_order(a: Mapping[str, object], b: Mapping[str, object]) -> List[str]:
    return sorted(set(a) | set(b))
