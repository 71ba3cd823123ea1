"""Helpers for executor tests: small runbooks, plans, and runs with an injected sleep."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import yaml

from failover.engine import Options, RunResult, execute
from failover.plan import Plan
from failover.planner import make_plan
from failover.runbook import parse_runbook
from failover.state.events import Event
from failover.state.local import DirectoryStore
from tests.conftest import SITES

FORWARD = """
services:
  db:
    steps:
      - {id: fence, action: sim.step, site: "${from}", with: {target: writes}}
      - {id: promote, action: sim.step, site: "${to}", pivot: true, with: {target: writer}}
  app:
    depends_on: [db]
    steps: [{id: scale, action: sim.step, site: "${to}", with: {target: app}}]
  cache:
    steps: [{id: warm, action: sim.step, site: "${to}", with: {target: cache}}]
"""
"""A pivot after a fence, a service that depends on it, and one that does not."""


def plan_from(services_yaml: str, *, mode: str = "graceful", from_: str = "east", to: str = "west") -> Plan:
    text = SITES + textwrap.dedent(services_yaml)
    return make_plan(parse_runbook(text, "t.yaml"), from_=from_, to=to, mode=mode)  # type: ignore[arg-type]


def tiny_plan() -> Plan:
    """A plan of one simulated step (for tests of the store itself)."""
    return plan_from('services: {a: {steps: [{id: x, action: sim.step, site: "${to}"}]}}\n')


def chain(
    n: int,
    *,
    pivot_at: int | None = None,
    fail_at: int | None = None,
    hang_at: int | None = None,
    extra: str = "",
) -> Plan:
    """Services s0 <- s1 <- ... (each depends on the one before), one sim step each; the one at
    ``fail_at`` fails, the one at ``hang_at`` outlasts its 200 ms timeout (its change under way)."""
    services: dict[str, object] = {}
    for i in range(n):
        step: dict[str, object] = {
            "id": "move",
            "action": "sim.step",
            "site": "${to}",
            "with": {"target": f"t{i}"},
        }
        if i == pivot_at:
            step["pivot"] = True
        if i == fail_at:
            step["with"] = {"target": f"t{i}", "fail": True}
        if i == hang_at:
            step.update(timeout="200ms", retries=0, **{"with": {"target": f"t{i}", "duration": "30s"}})
        services[f"s{i}"] = {"depends_on": [f"s{i - 1}"] if i else [], "steps": [step]}
    return plan_from(yaml.safe_dump({"services": services}) + extra)


class FakeTime:
    """A clock that moves only when something sleeps on it, at once: simulated seconds cost
    nothing, and every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(seconds)
            self.now += seconds


def quick(**kwargs: object) -> Options:
    """Options on a FakeTime of their own (sleeping costs nothing)."""
    if "sleep" not in kwargs:
        fake = FakeTime()
        kwargs.update(sleep=fake.sleep, clock=fake.clock)
    return Options(**kwargs)  # type: ignore[arg-type]


def run(plan: Plan, state: Path, **kwargs: object) -> RunResult:
    return execute(plan, state, quick(**kwargs))


def events(state: Path, run_id: str) -> list[Event]:
    return DirectoryStore(state).events(run_id)


def kinds(state: Path, run_id: str, step: str | None = None) -> list[str]:
    return [e.kind for e in events(state, run_id) if step is None or e.step == step]
