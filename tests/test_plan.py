"""The rebuilder as a table: (trace, observation) -> every reason, no I/O."""

from __future__ import annotations

from typing import Optional

import pytest

from flowmake.engine.plan import (
    UNSET,
    command_hash,
    decide,
    env_hashes,
    fingerprint,
    runs_anyway,
    upstream_proof_reasons,
    task_reasons,
)
from flowmake.model import INVALIDATED, Observation, Reason, ReasonKind, TaskSpec, Trace
from flowmake.store.hashing import hash_text

SPEC = TaskSpec(name="clean", group="clean", command="clean.sh a.csv b.csv", inputs=("a.csv",), outputs=("b.csv",),
                env=(("TZ", "UTC"),))


def obs(*, command: str = "clean.sh a.csv b.csv", env: Optional[dict] = None, inputs: Optional[dict] = None,
        outputs: Optional[dict] = None) -> Observation:
    spec = TaskSpec(name="clean", group="clean", command=command, inputs=SPEC.inputs, outputs=SPEC.outputs)
    return Observation(
        command_hash=command_hash(spec),
        env={"TZ": hash_text("UTC")} if env is None else env,
        inputs={"a.csv": "h1"} if inputs is None else inputs,
        outputs={"b.csv": "o1"} if outputs is None else outputs,
    )


def trace_of(o: Observation, outputs: Optional[dict] = None) -> Trace:
    return Trace("clean", fingerprint(o), o.command_hash, dict(o.env), dict(o.inputs),
                 {"b.csv": "o1"} if outputs is None else outputs, "run1")


BASE = obs()


@pytest.mark.parametrize(
    "now, expected",
    [
        (BASE, []),
        (obs(command="clean.sh --strict a.csv b.csv"), [(ReasonKind.COMMAND_CHANGED, None)]),
        (obs(env={"TZ": hash_text("Europe/Paris")}), [(ReasonKind.ENV_CHANGED, "TZ")]),
        (obs(inputs={"a.csv": "h2"}), [(ReasonKind.INPUT_CHANGED, "a.csv")]),
        (obs(inputs={"a.csv": "h1", "extra.csv": "h9"}), [(ReasonKind.INPUTS_ADDED_REMOVED, "extra.csv")]),
        (obs(inputs={}), [(ReasonKind.INPUTS_ADDED_REMOVED, "a.csv")]),
        (obs(outputs={"b.csv": None}), [(ReasonKind.OUTPUT_MISSING, "b.csv")]),
        (obs(outputs={"b.csv": "tampered"}), [(ReasonKind.OUTPUT_MODIFIED, "b.csv")]),
        (
            obs(command="x", inputs={"a.csv": "h2"}, outputs={"b.csv": None}),
            [(ReasonKind.COMMAND_CHANGED, None), (ReasonKind.INPUT_CHANGED, "a.csv"), (ReasonKind.OUTPUT_MISSING, "b.csv")],
        ),
    ],
    ids=["fresh", "command", "env", "input", "input-added", "input-removed", "output-missing", "output-modified",
         "every-reason-at-once"],
)
def test_decide_returns_every_reason(now: Observation, expected: list) -> None:
    reasons = task_reasons(SPEC, trace_of(BASE), now)
    assert [(r.kind, r.path) for r in reasons] == expected


def test_input_change_reason_carries_old_and_new_hash() -> None:
    (reason,) = task_reasons(SPEC, trace_of(BASE), obs(inputs={"a.csv": "h2"}))
    assert (reason.old, reason.new) == ("h1", "h2")


def test_last_attempt_failed_is_a_reason_next_to_what_changed() -> None:
    voided = Trace("clean", "", BASE.command_hash, dict(BASE.env), dict(BASE.inputs), {"b.csv": "o1"}, "run1")
    assert [(r.kind, r.path) for r in task_reasons(SPEC, voided, BASE)] == [(ReasonKind.LAST_ATTEMPT_FAILED, None)]
    reasons = task_reasons(SPEC, voided, obs(inputs={"a.csv": "h2"}))
    assert [(r.kind, r.path) for r in reasons] == [(ReasonKind.LAST_ATTEMPT_FAILED, None),
                                                    (ReasonKind.INPUT_CHANGED, "a.csv")]


def test_never_run_without_trace() -> None:
    assert [r.kind for r in task_reasons(SPEC, None, BASE)] == [ReasonKind.NEVER_RUN]


def test_forced_and_always_are_reasons_even_when_fresh() -> None:
    assert [r.kind for r in task_reasons(SPEC, trace_of(BASE), BASE, forced=True)] == [ReasonKind.FORCED]
    always = TaskSpec(name="clean", group="clean", command="x", inputs=("a.csv",), always=True)
    assert ReasonKind.ALWAYS in [r.kind for r in task_reasons(always, trace_of(BASE), BASE)]


def test_task_without_inputs_or_outputs_always_runs() -> None:
    bare = TaskSpec(name="ping", group="ping", command="echo hi")
    o = Observation(command_hash(bare), {}, {}, {})
    t = Trace("ping", fingerprint(o), o.command_hash, {}, {}, {}, "run1")
    assert [r.kind for r in task_reasons(bare, t, o)] == [ReasonKind.NO_FILES]


def test_env_input_values_are_hashed_and_unset_differs_from_empty() -> None:
    spec = TaskSpec(name="t", group="t", command="x", env_inputs=("API_URL",))
    unset = env_hashes(spec, {})
    empty = env_hashes(spec, {"API_URL": ""})
    assert unset["API_URL"] == hash_text(UNSET)
    assert unset != empty
    assert "https://secret.example" not in str(env_hashes(spec, {"API_URL": "https://secret.example"}))


def test_fingerprint_ignores_order_of_inputs_and_env() -> None:
    a = Observation("c", {"A": "1", "B": "2"}, {"x": "1", "y": "2"}, {})
    b = Observation("c", {"B": "2", "A": "1"}, {"y": "2", "x": "1"}, {})
    assert fingerprint(a) == fingerprint(b)


def test_command_hash_includes_shell() -> None:
    bash = TaskSpec(name="t", group="t", command="echo", shell=("bash", "-c"))
    sh = TaskSpec(name="t", group="t", command="echo")
    assert command_hash(bash) != command_hash(sh)


def test_runs_anyway_is_decided_without_outputs() -> None:
    no_outputs = BASE._replace(outputs={})
    assert not runs_anyway(SPEC, trace_of(BASE), no_outputs)
    assert runs_anyway(SPEC, trace_of(BASE), obs(inputs={"a.csv": "h2"})._replace(outputs={}))
    assert runs_anyway(SPEC, trace_of(BASE), obs(command="x")._replace(outputs={}))
    assert runs_anyway(SPEC, None, no_outputs)
    assert runs_anyway(SPEC, trace_of(BASE)._replace(fingerprint=INVALIDATED), no_outputs)
    assert runs_anyway(SPEC, trace_of(BASE), no_outputs, forced=True)


@pytest.mark.parametrize(
    "now, expected",
    [
        (obs(inputs={}), []),  # inputs are not looked at: upstream rewrites them first
        (obs(command="x", inputs={}), [(ReasonKind.COMMAND_CHANGED, None)]),
        (obs(env={"TZ": hash_text("Europe/Paris")}, inputs={}), [(ReasonKind.ENV_CHANGED, "TZ")]),
        (obs(inputs={}, outputs={"b.csv": None}), [(ReasonKind.OUTPUT_MISSING, "b.csv")]),
        (obs(inputs={}, outputs={"b.csv": "tampered"}), [(ReasonKind.OUTPUT_MODIFIED, "b.csv")]),
    ],
    ids=["inputs-ignored", "command", "env", "output-missing", "output-modified"],
)
def test_upstream_proof_reasons_are_those_no_upstream_run_can_change(now: Observation, expected: list) -> None:
    assert [(r.kind, r.path) for r in upstream_proof_reasons(SPEC, trace_of(BASE), now)] == expected


def test_upstream_proof_reasons_of_a_failed_or_new_task() -> None:
    failed = trace_of(BASE)._replace(fingerprint=INVALIDATED)
    assert [r.kind for r in upstream_proof_reasons(SPEC, failed, BASE._replace(inputs={}))] == [
        ReasonKind.LAST_ATTEMPT_FAILED]
    assert [r.kind for r in upstream_proof_reasons(SPEC, None, BASE)] == [ReasonKind.NEVER_RUN]


# -- the decision --------------------------------------------------------------

from flowmake.engine.plan import FRESH, PROVEN, Blocked, Restore, Run  # noqa: E402

GROUP = TaskSpec(name="all", group="all", command=None)


def test_a_fresh_task_is_fresh_and_a_stale_one_runs_for_its_reasons() -> None:
    assert decide(SPEC, trace_of(BASE), BASE) is FRESH
    changed = decide(SPEC, trace_of(BASE), obs(inputs={"a.csv": "h2"}))
    assert isinstance(changed, Run) and changed.state == "stale" and changed.will_run
    assert [r.kind for r in changed.reasons] == [ReasonKind.INPUT_CHANGED]


def test_below_a_stale_task_it_is_blocked_unless_a_reason_of_its_own_makes_it_run() -> None:
    no_inputs = BASE._replace(inputs={})
    blocked = decide(SPEC, trace_of(BASE), no_inputs, blocked_by=("up",))
    assert blocked == Blocked(("up",)) and blocked.state == "blocked" and not blocked.will_run
    assert blocked.reasons == ()  # the fact is blocked_by, never an 'upstream stale' reason
    own = decide(SPEC, trace_of(BASE), obs(command="x", inputs={}), blocked_by=("up",))
    assert isinstance(own, Run) and own.blocked_by == ("up",) and own.reasons[0].kind is ReasonKind.COMMAND_CHANGED


def test_a_pure_group_is_as_fresh_as_what_it_follows() -> None:
    assert decide(GROUP, None, BASE) is FRESH
    assert decide(GROUP, None, BASE, blocked_by=("a",)) == Blocked(("a",))
    assert decide(GROUP, None, BASE, forced=True).reasons == (Reason(ReasonKind.FORCED),)


def test_a_proven_observation_is_fresh_without_a_spec_or_a_trace() -> None:
    assert decide(None, None, PROVEN) is FRESH
    assert decide(None, None, PROVEN, forced=True).will_run


def test_a_cached_entry_turns_a_run_into_a_restore_but_never_a_forced_or_always_one() -> None:
    entry = object()
    stale = obs(inputs={"a.csv": "h2"})
    restore = decide(SPEC, trace_of(BASE), stale, cached=entry)
    assert isinstance(restore, Restore) and restore.entry is entry and restore.will_run
    assert [r.kind for r in restore.reasons] == [ReasonKind.INPUT_CHANGED]
    assert decide(SPEC, trace_of(BASE), BASE, cached=entry) is FRESH
    assert isinstance(decide(SPEC, trace_of(BASE), stale, cached=entry, forced=True), Run)
    always = SPEC._replace(always=True)
    assert isinstance(decide(always, trace_of(BASE), BASE, cached=entry), Run)
