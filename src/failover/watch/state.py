"""A trigger's state from one evaluation to the next: pure, no I/O, the clock passed in.

A trigger is *armed* until its condition holds (``any``, ``all`` or ``N of M`` signals bad) for
``for:`` without a break; it then *fires*, unless its guard failed (*blocked*: the target is not
healthy), it is *cooling down* (fired less than ``cooldown`` ago) or *disarmed* by a person. Once
fired it stays *fired* until its signals have been good for ``clear_for`` (hysteresis), then it is
armed again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from failover.durations import format_duration

State = Literal["armed", "pending", "firing", "blocked", "cooling", "fired", "disarmed"]
STATES: tuple[State, ...] = ("armed", "pending", "firing", "blocked", "cooling", "fired", "disarmed")
_N_OF_M = re.compile(r"^\s*(\d+)\s+of\s+(\d+)\s*$")


@dataclass(frozen=True)
class Condition:
    """How many of a trigger's signals must be bad: ``need`` of ``total``."""

    need: int
    total: int

    @classmethod
    def parse(cls, text: str, total: int) -> Condition:
        """``any``, ``all`` or ``"N of M"`` (M must be the number of signals); ValueError otherwise."""
        if text == "any":
            return cls(1, total)
        if text == "all":
            return cls(total, total)
        found = _N_OF_M.match(text)
        if found is None:
            raise ValueError(f'expected any, all or "N of M" (e.g. "2 of 3"), found {text!r}')
        need, of = int(found.group(1)), int(found.group(2))
        if of != total:
            raise ValueError(f'"{text}": M must be the number of signals ({total}), found {of}')
        if not 1 <= need <= of:
            raise ValueError(f'"{text}": N must be between 1 and {of}, found {need}')
        return cls(need, total)

    def holds(self, bad: int) -> bool:
        return bad >= self.need

    def __str__(self) -> str:
        return f"{self.need} of {self.total}"


@dataclass(frozen=True)
class Memory:
    """What a trigger remembers between evaluations (kept in the state store, so a watcher that
    restarts keeps its cooldown and the incident it was in)."""

    phase: Literal["armed", "fired"] = "armed"
    bad_since: float | None = None  # the condition has held, without a break, since
    good_since: float | None = None  # every signal has been good, without a break, since
    fired_at: float | None = None  # the last firing
    first_bad_at: float | None = None  # the first bad signal of the incident in hand


@dataclass(frozen=True)
class Timing:
    """A trigger's durations, in seconds."""

    every: float
    for_: float
    clear_for: float
    cooldown: float


@dataclass(frozen=True)
class Verdict:
    state: State
    memory: Memory
    why: str


def evaluate(
    memory: Memory,
    now: float,
    bad: int,
    condition: Condition,
    timing: Timing,
    *,
    guard_ok: bool | None,
    armed: bool = True,
) -> Verdict:
    """The trigger's state after one evaluation at ``now`` that found ``bad`` signals bad.
    ``guard_ok``: whether the guard passed (None: not asked, because nothing would fire);
    ``armed``: False while a person has disarmed it."""
    holds = condition.holds(bad)
    memory = replace(
        memory,
        bad_since=(now if memory.bad_since is None else memory.bad_since) if holds else None,
        good_since=(now if memory.good_since is None else memory.good_since) if not bad else None,
        first_bad_at=(now if memory.first_bad_at is None else memory.first_bad_at)
        if bad
        else memory.first_bad_at,
    )
    if memory.phase == "fired":
        good_for = None if memory.good_since is None else now - memory.good_since
        if good_for is None or good_for < timing.clear_for:
            return Verdict(
                "fired",
                memory,
                f"fired; re-arms once every signal is good for {format_duration(timing.clear_for)}",
            )
        memory = replace(memory, phase="armed", first_bad_at=None, bad_since=None)
    elif not bad:
        memory = replace(memory, first_bad_at=None)  # it never fired: the flap is over
    if not armed:
        return Verdict("disarmed", memory, "disarmed: it fires again once armed")
    if not holds:
        return Verdict("armed", memory, f"{bad} of {condition.total} signals bad, {condition.need} needed")
    held = 0.0 if memory.bad_since is None else now - memory.bad_since
    if held < timing.for_:
        return Verdict(
            "pending",
            memory,
            f"{bad} of {condition.total} signals bad for {format_duration(held)} "
            f"of {format_duration(timing.for_)}",
        )
    if memory.fired_at is not None and now - memory.fired_at < timing.cooldown:
        ago = now - memory.fired_at
        return Verdict(
            "cooling",
            memory,
            f"would fire, but it fired {format_duration(ago)} ago "
            f"(cooldown {format_duration(timing.cooldown)})",
        )
    if not guard_ok:
        return Verdict("blocked", memory, "would fire, but the guard did not pass: the target is not healthy")
    fired = replace(memory, phase="fired", fired_at=now)
    return Verdict("firing", fired, f"{bad} of {condition.total} signals bad for {format_duration(held)}")


def wants_guard(
    memory: Memory, now: float, bad: int, condition: Condition, timing: Timing, armed: bool
) -> bool:
    """Whether this evaluation fires if the guard passes (the guard is asked only then)."""
    return evaluate(memory, now, bad, condition, timing, guard_ok=True, armed=armed).state == "firing"
