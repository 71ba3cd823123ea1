"""The planner: Runbook + Scenario -> Plan. Pure: no I/O, no clock, the same input gives the same plan.

Order rules: within a service, a step waits for the previous one (or for its ``after:`` steps);
a service's first steps wait for the last steps (and verify checks) of every service it depends
on; nothing else is ordered, so independent work runs in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from pydantic import JsonValue

from failover.durations import format_duration
from failover.graph import closure, longest_path, service_graph, stable_order
from failover.plan import (
    Mode,
    PermissionDoc,
    Plan,
    PlannedCheck,
    PlannedStep,
    RunbookRef,
    Scenario,
    ServiceSummary,
)
from failover.providers import default_registry
from failover.providers.base import AnyAction, AnyCheck, Permission, Placement, Registry
from failover.runbook import CheckSpec, Runbook, Service, StepSpec, check_id
from failover.templating import Lookup, render


def make_plan(
    runbook: Runbook,
    scenario: Scenario | None = None,
    *,
    from_: str | None = None,
    to: str | None = None,
    mode: Mode = "graceful",
    scope: Iterable[str] = (),
    registry: Registry | None = None,
) -> Plan:
    """Plan a failover of ``runbook`` for ``scenario`` (or ``from_``/``to``/``mode``/``scope``)."""
    if scenario is None:
        if from_ is None or to is None:
            raise TypeError("make_plan needs a scenario, or both from_ and to")
        scenario = Scenario(from_=from_, to=to, mode=mode, scope=tuple(scope))
    runbook.check_scenario(scenario.from_, scenario.to, scenario.scope)
    return _Planner(runbook, scenario, registry or default_registry()).plan()


def _permissions(items: Iterable[Permission]) -> tuple[PermissionDoc, ...]:
    return tuple(
        PermissionDoc.model_construct(cloud=p.cloud, action=p.action, resource=p.resource)
        for p in sorted(set(items))
    )


class _Planner:
    def __init__(self, runbook: Runbook, scenario: Scenario, registry: Registry) -> None:
        self.runbook = runbook
        self.scenario = scenario
        self.registry = registry
        self.lookup: Lookup = runbook.lookup(scenario.to, scenario.from_)
        self.defaults = runbook.defaults

    def plan(self) -> Plan:
        runbook, scenario = self.runbook, self.scenario
        graph = service_graph(runbook)
        selected = closure(graph, scenario.scope) if scenario.scope else set(runbook.services)
        if len(selected) < len(graph):
            graph = graph.subgraph(selected)
        rank = {name: i for i, name in enumerate(runbook.services)}
        order = stable_order(graph, rank)

        steps: list[PlannedStep] = []
        preflight: list[PlannedCheck] = []
        terminals: dict[str, tuple[str, ...]] = {}
        for name in order:
            service = runbook.services[name]
            entry = tuple(t for dep in service.depends_on if dep in selected for t in terminals[dep])
            preflight += self._checks(name, service.preflight)
            own = self._service_steps(name, service, _unique(entry))
            steps += own
            terminals[name] = _terminals(own) if own else _unique(entry)

        by_id = {step.id: step for step in steps}
        finish, path = longest_path(
            [s.id for s in steps],
            lambda sid: by_id[sid].after,
            lambda sid: 0.0 if by_id[sid].skipped else by_id[sid].estimate_s,
        )
        steps = _mark_after_pivots(steps)
        rollback = tuple(
            s.id for s in reversed(steps) if s.reversible and not s.skipped and not s.follows_pivot
        )
        predicted = max(finish.values(), default=0.0)
        services = self._summaries(order, steps, finish, terminals)
        return Plan.model_construct(
            runbook=RunbookRef.model_construct(name=runbook.name, sha256=runbook.sha256, path=runbook.path),
            scenario=scenario,
            preflight=tuple(preflight),
            steps=tuple(steps),
            rollback=rollback,
            predicted_rto_s=predicted,
            rto_target_s=runbook.rto,
            critical_path=tuple(path),
            services=services,
            warnings=self._warnings(predicted, services, steps, preflight),
        )

    # --- per service ---------------------------------------------------------------------------

    def _where(self, site_field: str, cloud: str | None) -> Placement:
        site = self.runbook.site_of(site_field, self.scenario.to, self.scenario.from_)
        return self.runbook.placement(site, cloud)

    def _skip(self, site: str, on_source_down: str) -> tuple[bool, bool, str | None]:
        """(skipped, best_effort, reason) for something that runs at ``site``."""
        if self.scenario.mode == "ungraceful" and site == self.scenario.from_:
            if on_source_down == "best_effort":
                return False, True, None
            return True, False, f"ungraceful: source site {site} is assumed down"
        return False, False, None

    def _checks(self, service: str, specs: Sequence[CheckSpec]) -> list[PlannedCheck]:
        return [
            self._check(service, spec, check_id(service, spec, specs[:i])) for i, spec in enumerate(specs)
        ]

    def _check(self, service: str, spec: CheckSpec, cid: str) -> PlannedCheck:
        check: AnyCheck = self.registry.check(spec.check)
        where = self._where(spec.site, check.cloud)
        params = cast(dict[str, JsonValue], render(spec.with_, self.lookup))
        parsed = check.parse(params)
        skipped, best_effort, reason = self._skip(where.site, spec.ungraceful)
        return PlannedCheck.model_construct(
            id=cid,
            service=service,
            check=spec.check,
            site=where.site,
            params=params,
            description=spec.description or check.describe(parsed, where),
            permissions=_permissions(check.permissions(parsed, where)),
            estimate_s=check.estimate(parsed),
            skipped=skipped,
            best_effort=best_effort,
            skip_reason=reason,
        )

    def _service_steps(self, name: str, service: Service, entry: tuple[str, ...]) -> list[PlannedStep]:
        specs = service.steps
        local = {spec.id: f"{name}.{spec.id}" for spec in specs}
        waits = {
            spec.id: (
                tuple(local[a] for a in spec.after)
                if spec.after is not None
                else ((local[specs[i - 1].id],) if i else ())
            )
            for i, spec in enumerate(specs)
        }
        own = [self._step(name, spec, waits[spec.id] or entry) for spec in _in_order(specs, waits)]
        last = _terminals(own) if own else entry
        for i, spec in enumerate(service.verify):
            cid = check_id(name, spec, service.verify[:i])
            own.append(self._verify(self._check(name, spec, cid), last))
        return own

    def _step(self, service: str, spec: StepSpec, after: tuple[str, ...]) -> PlannedStep:
        action: AnyAction = self.registry.action(spec.action)
        where = self._where(spec.site, action.cloud)
        params = cast(dict[str, JsonValue], render(spec.with_, self.lookup))
        parsed = action.parse(params)
        skipped, best_effort, reason = self._skip(where.site, spec.ungraceful)
        if self.scenario.mode not in spec.modes:
            skipped, best_effort = True, False
            reason = f"runs only in {' and '.join(spec.modes)} mode"
        reversible = not spec.pivot and spec.rollback != "none" and action.is_reversible(parsed)
        estimate = spec.estimate if spec.estimate is not None else action.estimate(parsed)
        return PlannedStep.model_construct(
            id=f"{service}.{spec.id}",
            service=service,
            kind="action",
            action=spec.action,
            site=where.site,
            params=params,
            description=action.describe(parsed, where),
            note=spec.description,
            after=after,
            reversible=reversible,
            pivot=spec.pivot,
            approval=spec.approval or spec.pivot,
            timeout_s=spec.timeout if spec.timeout is not None else self.defaults.timeout,
            retries=spec.retries if spec.retries is not None else self.defaults.retries,
            approval_timeout_s=(
                spec.approval_timeout if spec.approval_timeout is not None else self.defaults.approval_timeout
            ),
            estimate_s=estimate,
            skipped=skipped,
            best_effort=best_effort,
            skip_reason=reason,
            follows_pivot=None,
            permissions=_permissions(action.permissions(parsed, where)),
        )

    def _verify(self, planned: PlannedCheck, after: tuple[str, ...]) -> PlannedStep:
        """A verify check as a node of the plan DAG, after its service's last steps."""
        return PlannedStep.model_construct(
            id=planned.id,
            service=planned.service,
            kind="verify",
            action=planned.check,
            site=planned.site,
            params=planned.params,
            description=planned.description,
            note=None,
            after=after,
            reversible=False,
            pivot=False,
            approval=False,
            timeout_s=self.defaults.timeout,
            retries=self.defaults.retries,
            approval_timeout_s=self.defaults.approval_timeout,
            estimate_s=planned.estimate_s,
            skipped=planned.skipped,
            best_effort=planned.best_effort,
            skip_reason=planned.skip_reason,
            follows_pivot=None,
            permissions=planned.permissions,
        )

    def _summaries(
        self,
        order: Sequence[str],
        steps: Sequence[PlannedStep],
        finish: dict[str, float],
        terminals: dict[str, tuple[str, ...]],
    ) -> tuple[ServiceSummary, ...]:
        out = []
        for name in order:
            service = self.runbook.services[name]
            done = max((finish[t] for t in terminals[name]), default=0.0)
            out.append(
                ServiceSummary.model_construct(
                    name=name,
                    tier=service.tier,
                    depends_on=tuple(service.depends_on),
                    rto_target_s=service.rto,
                    rpo_target_s=service.rpo,
                    predicted_s=done,
                )
            )
        return tuple(out)

    def _warnings(
        self,
        predicted: float,
        services: Sequence[ServiceSummary],
        steps: Sequence[PlannedStep],
        preflight: Sequence[PlannedCheck],
    ) -> tuple[str, ...]:
        out = []
        target = self.runbook.rto
        if target is not None and predicted > target:
            out.append(
                f"predicted RTO {format_duration(predicted)} exceeds the runbook's target "
                f"{format_duration(target)}"
            )
        for s in services:
            if s.rto_target_s is not None and s.predicted_s > s.rto_target_s:
                out.append(
                    f"service {s.name}: predicted done at {format_duration(s.predicted_s)}, "
                    f"after its RTO target {format_duration(s.rto_target_s)}"
                )
        skipped = sum(1 for s in steps if s.skipped) + sum(1 for c in preflight if c.skipped)
        if skipped:
            out.append(f"{skipped} step(s) and check(s) are skipped in this plan (see each reason)")
        irreversible = [s.id for s in steps if s.kind == "action" and not s.reversible and not s.pivot]
        if irreversible:
            out.append(
                f"{len(irreversible)} step(s) are not pivots but cannot be rolled back: "
                + ", ".join(irreversible[:5])
                + (", ..." if len(irreversible) > 5 else "")
            )
        return tuple(out)


def _unique(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def _terminals(steps: Sequence[PlannedStep]) -> tuple[str, ...]:
    """Steps of one service that no other step of the same service waits for."""
    waited = {dep for step in steps for dep in step.after}
    return tuple(step.id for step in steps if step.id not in waited)


def _in_order(specs: Sequence[StepSpec], waits: dict[str, tuple[str, ...]]) -> list[StepSpec]:
    """Steps in written order, except that a step comes after the steps it waits for."""
    if all(spec.after is None for spec in specs):
        return list(specs)
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


def _mark_after_pivots(steps: list[PlannedStep]) -> list[PlannedStep]:
    """Set ``follows_pivot`` on every step downstream of a pivot: it can never be rolled back."""
    by_id = {step.id: step for step in steps}
    follows: dict[str, str | None] = {}
    out = []
    for step in steps:
        pivot = None
        for dep in step.after:
            pivot = dep if by_id[dep].pivot else follows[dep]
            if pivot:
                break
        follows[step.id] = pivot
        out.append(step if pivot is None else step.model_copy(update={"follows_pivot": pivot}))
    return out
