"""The sandbox's time model: how long its resources take to get where they are asked, as the
clouds take, scaled by one speed factor (``drill --sandbox-speed FACTOR`` or
``FAILOVER_SANDBOX_SPEED``: 10 runs ten times faster). It scales the sandbox's clock, never the
runbook's timeouts.

Durations are seconds at speed 1, from the services' documented and typical behaviour.
"""

from __future__ import annotations

import os
import time

DEFAULT_SPEED = 30.0
"""Fast enough for ``make demo`` to stay under a minute, slow enough that every wait waits."""


def default_speed() -> float:
    """``FAILOVER_SANDBOX_SPEED`` if set (every drill of a session, a CI job), else DEFAULT_SPEED."""
    given = os.environ.get("FAILOVER_SANDBOX_SPEED")
    try:
        found = float(given) if given else DEFAULT_SPEED
    except ValueError:
        raise ValueError(f"FAILOVER_SANDBOX_SPEED: expected a positive number, found {given!r}") from None
    if not found > 0:
        raise ValueError(f"FAILOVER_SANDBOX_SPEED: expected a positive number, found {given!r}")
    return found


DURATIONS: dict[str, float] = {
    "instance_boot": 40.0,  # a Compute Engine or EC2 instance from PROVISIONING to RUNNING
    "health_threshold": 20.0,  # then healthy: 2 consecutive checks 10 s apart
    "ecs_task_start": 45.0,  # an ECS task placed, its image pulled, RUNNING and healthy
    "asg_warmup": 90.0,  # an Auto Scaling instance booted and past its warm-up: InService
    "aurora_pending": 15.0,  # a global database switchover or failover scheduled: FailoverState pending
    "aurora_switchover": 75.0,  # then switching over: the writer moves, members resync
    "aurora_failover": 45.0,  # failing over (with data loss allowed)
    "aurora_promote": 60.0,  # a replica cluster or instance promoted to stand alone
    "route53_insync": 30.0,  # a Route 53 change from PENDING to INSYNC
}

_speed = DEFAULT_SPEED


def set_speed(factor: float) -> None:
    """How many times faster than the clouds the sandbox runs (for the sandbox's duration)."""
    global _speed
    if not factor > 0:
        raise ValueError(f"the sandbox speed must be a positive number, found {factor!r}")
    _speed = factor


def speed() -> float:
    return _speed


def seconds(name: str) -> float:
    """How long ``name`` takes in the sandbox now: its duration at speed 1, over the speed."""
    return DURATIONS[name] / _speed


def now() -> float:
    """The sandbox's clock (monotonic, real seconds)."""
    return time.monotonic()


def done(started: float, name: str) -> bool:
    """Whether something of kind ``name`` started at ``started`` (``now()``) has got there."""
    return now() - started >= seconds(name)


ARRIVALS: dict[str, float] = {}
"""When each resource the sandbox was asked to change gets there (wall-clock time, as journal
events are stamped), by identity (an ARN with the account left open, ``gcp:`` and a path): the
drill report's detection lag is when a step noticed, less this."""


def arrives(identity: str, *names: str) -> None:
    """Note that the resource ``identity``, asked just now, gets there after ``names``' durations."""
    ARRIVALS[identity] = time.time() + sum(map(seconds, names))
