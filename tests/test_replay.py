"""A run's state is what its events say, replayed through the run and step state machines: an
event that does not fit the state it arrives in is an error, never a silent overwrite."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.errors import JournalError
from failover.state.events import STEP_MACHINE, Event, RunState


def replay(*kinds: tuple[str, str | None] | tuple[str, str | None, dict[str, object]]) -> RunState:
    events = [
        Event(n, "r", float(n), k[0], k[1], k[2] if len(k) > 2 else {})  # type: ignore[misc]
        for n, k in enumerate(kinds, start=1)
    ]
    return RunState.replay("r", events)


STARTED = (("run_started", None), ("preflight_passed", None))


def test_a_step_goes_from_start_to_snapshot_to_success() -> None:
    state = replay(
        *STARTED,
        ("step_started", "a", {"waiting_on": "read"}),
        ("apply_started", "a", {"before": {"n": 1}, "attempt": 1}),
        ("attempt_failed", "a", {"error": "throttled"}),
        ("step_succeeded", "a", {"attempts": 2}),
        ("run_finished", None, {"status": "succeeded", "exit_code": 0}),
    )
    step = state.step("a")
    assert (step.state, step.before, step.has_snapshot, step.attempts) == ("succeeded", {"n": 1}, True, 2)
    assert (state.status, state.exit_code) == ("succeeded", 0)


def test_what_a_running_step_waits_on_is_known() -> None:
    assert replay(*STARTED, ("step_started", "a", {"waiting_on": "read"})).step("a").waiting_on == "read"
    applying = replay(*STARTED, ("step_started", "a"), ("apply_started", "a", {"before": None}))
    assert applying.step("a").waiting_on == "apply, attempt 1"
    asked = replay(*STARTED, ("approval_requested", "a"))
    assert (asked.step("a").state, asked.step("a").waiting_on) == ("awaiting_approval", "approval")


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([("step_succeeded", "a")], "step a is pending"),
        ([("apply_started", "a", {"before": 1})], "step a is pending"),
        ([("step_started", "a"), ("step_started", "a")], "step a is started"),
        ([("step_started", "a"), ("step_succeeded", "a"), ("step_failed", "a")], "step a is succeeded"),
        ([("step_compensated", "a")], "step a is pending"),
        ([("approval_granted", "a")], "step a is pending"),
        (
            [("run_finished", None, {"status": "succeeded", "exit_code": 0}), ("step_started", "a")],
            "finished",
        ),
        ([("run_started", None)], "had started already"),
        ([("preflight_passed", None), ("check_passed", None, {"check": "c"})], "preflight had passed"),
        ([("no_such_event", "a")], "not an event"),
    ],
)
def test_an_event_that_does_not_fit_is_an_error(events: list[tuple[object, ...]], why: str) -> None:
    with pytest.raises(JournalError, match=why):
        replay(("run_started", None), *events)  # type: ignore[arg-type]


def test_nothing_but_run_started_may_come_first() -> None:
    with pytest.raises(JournalError, match="has not started"):
        replay(("step_started", "a"))


def test_journals_that_kept_the_snapshot_in_step_started_are_read_as_they_meant() -> None:
    state = replay(*STARTED, ("step_started", "a", {"before": {"n": 2}}))
    assert (state.step("a").state, state.step("a").before, state.step("a").has_snapshot) == (
        "applying",
        {"n": 2},
        True,
    )


def test_a_finished_run_is_resumed_and_a_failed_step_started_again() -> None:
    state = replay(
        *STARTED,
        ("step_started", "a"),
        ("apply_started", "a", {"before": 3}),
        ("step_failed", "a", {"error": "timed out", "in_doubt": True}),
        ("run_finished", None, {"status": "halted", "exit_code": 1}),
        ("run_resumed", None),
        ("step_started", "a", {"retry": True}),
        ("step_succeeded", "a", {"recovered": True}),
    )
    assert (state.status, state.finished) == ("running", False)
    assert state.step("a").state == "succeeded" and state.step("a").before == 3


@given(st.lists(st.sampled_from(sorted(STEP_MACHINE)), max_size=12))
def test_any_sequence_of_step_events_is_replayed_or_refused_never_misread(kinds: list[str]) -> None:
    """Replay accepts exactly the sequences the machine allows, and ends where the machine says."""
    expected = "pending"
    fits = True
    for kind in kinds:
        allowed, then = STEP_MACHINE[kind]
        if expected not in allowed:
            fits = False
            break
        expected = then or expected
    events = [("run_started", None), *[(k, "a") for k in kinds]]
    if fits:
        assert replay(*events).step("a").state == expected  # type: ignore[arg-type]
    else:
        with pytest.raises(JournalError):
            replay(*events)  # type: ignore[arg-type]
