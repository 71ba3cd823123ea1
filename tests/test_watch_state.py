"""A trigger's decisions, on an injected clock: for:, quorum, guard, cooldown, hysteresis."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.watch.state import Condition, Memory, Timing, evaluate

TIMING = Timing(every=10, for_=60, clear_for=300, cooldown=3600)
ANY_OF_3 = Condition.parse("any", 3)


def run(samples: list[tuple[float, int]], condition: Condition = ANY_OF_3, guard: bool = True) -> list[str]:
    memory, states = Memory(), []
    for now, bad in samples:
        verdict = evaluate(memory, now, bad, condition, TIMING, guard_ok=guard)
        memory = verdict.memory
        states.append(verdict.state)
    return states


def test_a_trigger_fires_once_its_condition_held_for_its_duration_and_not_before() -> None:
    states = run([(t, 1) for t in range(0, 80, 10)])
    assert states == ["pending"] * 6 + ["firing", "fired"]  # bad at 0..50: 50 s < 60 s; at 60: fires


def test_a_good_evaluation_breaks_the_run_of_bad_ones() -> None:
    states = run([(0, 1), (10, 1), (20, 1), (30, 1), (40, 1), (50, 0), (60, 1), (70, 1)])
    assert "firing" not in states
    assert states[5:] == ["armed", "pending", "pending"]


def test_a_quorum_needs_n_bad_signals_of_m() -> None:
    two_of_three = Condition.parse("2 of 3", 3)
    assert "firing" not in run([(t, 1) for t in range(0, 200, 10)], two_of_three)
    assert "firing" in run([(t, 2) for t in range(0, 200, 10)], two_of_three)
    assert Condition.parse("all", 3) == Condition(3, 3)


@pytest.mark.parametrize("text", ["3 of 2", "0 of 3", "2 of 4", "most", "2of3"])
def test_a_condition_that_cannot_hold_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected|must be"):
        Condition.parse(text, 3)


def test_a_sick_target_blocks_the_firing() -> None:
    states = run([(t, 3) for t in range(0, 100, 10)], guard=False)
    assert "firing" not in states and states[-1] == "blocked"


def test_after_firing_it_waits_for_signals_good_for_clear_for_then_cooldown_holds_a_second_firing() -> None:
    bad_again = [(t, 1) for t in range(1000, 1200, 10)]
    states = run([(t, 1) for t in range(0, 70, 10)] + [(t, 0) for t in range(70, 400, 10)] + bad_again)
    assert states.count("firing") == 1
    assert states[-1] == "cooling"  # re-armed at 370 (good for 300 s), then within the hour's cooldown
    assert "armed" in states[7:40]


def test_a_disarmed_trigger_never_fires_and_says_so() -> None:
    memory = Memory()
    for now in range(0, 200, 10):
        verdict = evaluate(memory, now, 3, ANY_OF_3, TIMING, guard_ok=True, armed=False)
        memory = verdict.memory
        assert verdict.state == "disarmed"


@given(st.lists(st.integers(0, 3), min_size=1, max_size=120))
def test_never_two_firings_within_the_cooldown(bads: list[int]) -> None:
    memory, fired = Memory(), []
    for i, bad in enumerate(bads):
        verdict = evaluate(memory, i * 10.0, bad, ANY_OF_3, TIMING, guard_ok=True)
        memory = verdict.memory
        if verdict.state == "firing":
            fired.append(i * 10.0)
    assert all(b - a >= TIMING.cooldown for a, b in itertools.pairwise(fired))
