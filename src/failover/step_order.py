"""The order of one service's steps: written order unless ``after:`` says otherwise, its last
steps (what the next services wait for), and its cutover (where its RTO ends)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from failover.plan import PlannedStep
from failover.runbook import StepSpec


def unique(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def with_cutover(steps: list[PlannedStep], target: str) -> list[PlannedStep]:
    """A service's steps with its cutover marked: the steps the runbook marks ``cutover``, else the
    actions on the target site that no other action there waits for (the service's last ones)."""
    if any(s.cutover for s in steps):
        return steps
    there = {s.id for s in steps if s.kind == "action" and s.site == target and not s.skipped}
    before: dict[str, set[str]] = {}  # each step's ancestors within the service
    for s in steps:
        before[s.id] = {a for dep in s.after if dep in before for a in (dep, *before[dep])}
    waited = {a for s in steps if s.id in there for a in before[s.id]}
    return [s._replace(cutover=True) if s.id in there and s.id not in waited else s for s in steps]


def terminals(steps: Sequence[PlannedStep]) -> tuple[str, ...]:
    """Steps of one service that no other step of the same service waits for."""
    if len(steps) == 1:
        return (steps[0].id,)
    waited: set[str] = set()
    for step in steps:
        waited.update(step.after)
    return tuple(step.id for step in steps if step.id not in waited)


def in_order(specs: Sequence[StepSpec], waits: dict[str, tuple[str, ...]]) -> list[StepSpec]:
    """Steps in written order, except that a step comes after the steps it waits for."""
    by_id = {spec.id: spec for spec in specs}
    placed: dict[str, StepSpec] = {}

    def place(spec_id: str) -> None:
        if spec_id not in placed:
            for dep in waits[spec_id]:
                place(dep.rsplit(".", 1)[-1])
            placed[spec_id] = by_id[spec_id]

    for spec in specs:
        place(spec.id)
    return list(placed.values())
