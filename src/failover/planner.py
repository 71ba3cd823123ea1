"""The planner: Runbook + Scenario -> Plan. Pure: no I/O, no clock, the same input gives the same plan.

Order rules: within a service, a step waits for the previous one (or for its ``after:`` steps);
a service's first steps wait for the last steps (and verify checks) of every service it depends
on; nothing else is ordered, so independent work runs in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from pydantic import JsonValue

from failover import step_order
from failover.durations import format_duration
from failover.graph import closure, dependencies, longest_path, service_graph, stable_order
from failover.plan import (
    Mode,
    PermissionDoc,
    Plan,
    PlannedCheck,
    PlannedSite,
    PlannedStep,
    RunbookRef,
    Scenario,
    ServiceSummary,
)
from failover.providers import default_registry
from failover.providers.base import AnyAction, AnyCheck, Permission, Placement, Registry
from failover.runbook import CheckSpec, Runbook, Service, StepSpec, check_id
from failover.secrets import permissions as secret_permissions
from failover.templating import render


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


def trigger_plans(runbook: Runbook, trigger: str, registry: Registry | None = None) -> tuple[Plan, Plan]:
    """The signals and the guard of ``runbook``'s trigger, each as the preflight checks of a
    read-only plan (``failover watch`` asks them as ``failover check`` asks a plan's)."""
    spec = runbook.triggers[trigger]
    scenario = Scenario(from_=spec.from_, to=spec.to)
    return _Planner(runbook, scenario, registry or default_registry()).signals(trigger)


def _permissions(items: list[Permission]) -> tuple[PermissionDoc, ...]:
    if not items:
        return ()
    return tuple(
        PermissionDoc(cloud=p.cloud, action=p.action, resource=p.resource) for p in sorted(set(items))
    )


class _Planner:
    def __init__(self, runbook: Runbook, scenario: Scenario, registry: Registry) -> None:
        self.runbook = runbook
        self.scenario = scenario
        self.registry = registry
        self.defaults = runbook.defaults
        self.places: dict[tuple[str, str | None], Placement] = {}
        self.follows: dict[str, str | None] = {}  # step id -> the pivot it comes after, if any
        self.resolved = runbook.resolved_params()
        self.ungraceful = scenario.mode == "ungraceful"
        self.cut_short: list[str] = []  # steps that time out before their action's own wait ends
        self.homed_away: list[str] = []  # steps that need a control plane homed where the plan leaves

    def plan(self) -> Plan:
        runbook, scenario = self.runbook, self.scenario
        if scenario.scope:
            selected = closure(service_graph(runbook), scenario.scope)
            order = stable_order(dependencies(runbook, selected))
        else:
            selected = set(runbook.services)
            order = stable_order(dependencies(runbook))

        steps: list[PlannedStep] = []
        preflight: list[PlannedCheck] = []
        terminals: dict[str, tuple[str, ...]] = {}
        for name in order:
            service = runbook.services[name]
            entry = tuple(t for dep in service.depends_on if dep in selected for t in terminals[dep])
            preflight += self._checks(name, service.preflight)
            own = step_order.with_cutover(
                self._service_steps(name, service, step_order.unique(entry)), scenario.to
            )
            steps += own
            terminals[name] = step_order.terminals(own) if own else step_order.unique(entry)

        finish, path = longest_path((s.id, s.after, 0.0 if s.skipped else s.estimate_s) for s in steps)
        rollback = tuple(
            s.id for s in reversed(steps) if s.reversible and not s.skipped and not s.follows_pivot
        )
        done = max(finish.values(), default=0.0)
        services = self._summaries(order, steps, finish, terminals)
        cutovers = [finish[s.id] for s in steps if s.cutover]
        predicted = max(cutovers) if cutovers else done
        stop_when = self._stop_when()
        used = {s.site for s in steps} | {c.site for c in (*preflight, *stop_when)}
        return Plan(
            runbook=RunbookRef(
                name=runbook.name, sha256=runbook.sha256, path=runbook.path, state=runbook.state
            ),
            scenario=scenario,
            preflight=tuple(preflight),
            steps=tuple(steps),
            rollback=rollback,
            predicted_rto_s=predicted,
            predicted_done_s=done,
            rto_target_s=runbook.rto,
            critical_path=tuple(path),
            services=services,
            sites=self._sites(used),
            stop_when=stop_when,
            warnings=self._warnings(predicted, services, steps, preflight),
        )

    def _sites(self, used: set[str]) -> tuple[PlannedSite, ...]:
        """Where the clouds run at each site the plan acts on or asks."""
        return tuple(
            PlannedSite(
                name,
                None if spec.aws is None else spec.aws.model_dump(mode="json"),
                None if spec.gcp is None else spec.gcp.model_dump(mode="json"),
                dict(spec.concurrency) or None,
            )
            for name, spec in self.runbook.sites.items()
            if name in used
        )

    def _stop_when(self) -> tuple[PlannedCheck, ...]:
        specs = self.runbook.stop_when
        return tuple(
            self._check("stop_when", spec, check_id("stop_when", spec, specs[:i]), ("stop_when", i))
            for i, spec in enumerate(specs)
        )

    def signals(self, trigger: str) -> tuple[Plan, Plan]:
        """A trigger's signals and its guard, each as the preflight checks of a read-only plan."""
        spec = self.runbook.triggers[trigger]
        ref = RunbookRef(name=self.runbook.name, sha256=self.runbook.sha256, path=self.runbook.path)
        plans = []
        for part, specs in (("signals", spec.signals), ("guard", spec.guard)):
            checks = tuple(
                self._check(
                    trigger, c, check_id(f"{trigger}.{part}", c, specs[:i]), ("triggers", trigger, part, i)
                )
                for i, c in enumerate(specs)
            )
            # a signal that does not answer within the trigger's interval is bad: none waits longer
            checks = tuple(
                c._replace(timeout_s=min(c.timeout_s, spec.every)) if specs[i].timeout is None else c
                for i, c in enumerate(checks)
            )
            sites = self._sites({c.site for c in checks})
            plans.append(Plan(runbook=ref, scenario=self.scenario, preflight=checks, sites=sites))
        return plans[0], plans[1]

    # --- per service ---------------------------------------------------------------------------

    def _where(self, site_field: str, cloud: str | None) -> Placement:
        key = (site_field, cloud)
        if key not in self.places:
            site = self.runbook.site_of(site_field, self.scenario.to, self.scenario.from_)
            self.places[key] = self.runbook.placement(site, cloud)
        return self.places[key]

    def _after_pivot(self, step_id: str, pivot: bool, after: tuple[str, ...]) -> str | None:
        """The first pivot upstream of a step (it can then never be rolled back), remembered."""
        follows = self.follows
        found = None
        for dep in after:
            found = follows[dep]
            if found:
                break
        follows[step_id] = step_id if pivot else found
        return found

    def _skip(self, site: str, on_source_down: str) -> tuple[bool, bool, str | None]:
        """(skipped, best_effort, reason) for something that runs at ``site`` in ungraceful mode."""
        if self.ungraceful and site == self.scenario.from_:
            if on_source_down == "best_effort":
                return False, True, None
            return True, False, f"ungraceful: source site {site} is assumed down"
        return False, False, None

    def _params(
        self, path: tuple[str | int, ...], item: AnyAction | AnyCheck, raw: dict[str, object]
    ) -> tuple[dict[str, JsonValue], Any]:
        hit = self.resolved.get((*path, None, None)) or self.resolved.get(
            (*path, self.scenario.from_, self.scenario.to)
        )
        if hit is None:  # a Runbook not made by the loader: resolve and parse here
            rendered = cast(
                dict[str, JsonValue], render(raw, self.runbook.lookup(self.scenario.to, self.scenario.from_))
            )
            hit = (rendered, item.parse(rendered))
        return hit

    def _checks(self, service: str, specs: Sequence[CheckSpec]) -> list[PlannedCheck]:
        return [
            self._check(
                service, spec, check_id(service, spec, specs[:i]), ("services", service, "preflight", i)
            )
            for i, spec in enumerate(specs)
        ]

    def _check(
        self, owner: str, spec: CheckSpec, cid: str, path: tuple[str | int, ...], *, verify: bool = False
    ) -> PlannedCheck:
        """A check of a service (``services.NAME.preflight|verify.I``), or of a trigger's signals
        or guard, or a stop condition: ``owner`` is the service or trigger."""
        check: AnyCheck = self.registry.check(spec.check)
        where = self._where(spec.site, check.cloud)
        params, parsed = self._params(path, check, spec.with_)
        skipped, best_effort, reason = self._skip(where.site, spec.ungraceful)
        if self.scenario.mode not in spec.modes:
            skipped, best_effort = True, False
            reason = f"runs only in {' and '.join(spec.modes)} mode"
        default = self.defaults.verify_timeout if verify else self.defaults.check_timeout
        self._homed(cid, check, skipped)
        return PlannedCheck(
            id=cid,
            service=owner,
            check=spec.check,
            site=where.site,
            params=params,
            description=spec.description or check.describe(parsed, where),
            permissions=_permissions([*check.permissions(parsed, where), *self._secrets(params, where)]),
            estimate_s=check.estimate(parsed),
            skipped=skipped,
            best_effort=best_effort,
            skip_reason=reason,
            timeout_s=spec.timeout if spec.timeout is not None else default,
        )

    def _homed(self, item: str, described: AnyAction | AnyCheck, skipped: bool) -> None:
        """Note a step or check that needs a control plane homed in the region the plan leaves."""
        source = self.runbook.sites[self.scenario.from_].aws
        homed = described.control_plane
        if homed and not skipped and source is not None and source.region == homed:
            self.homed_away.append(item)

    def _service_steps(self, name: str, service: Service, entry: tuple[str, ...]) -> list[PlannedStep]:
        specs = service.steps
        own: list[PlannedStep] = []
        if all(spec.after is None for spec in specs):  # the common case: in written order
            previous = entry
            for i, spec in enumerate(specs):
                own.append(self._step(name, spec, i, previous))
                previous = (own[-1].id,)
        else:
            own = self._reordered_steps(name, specs, entry)
        last = step_order.terminals(own) if own else entry
        for i, check in enumerate(service.verify):
            cid = check_id(name, check, service.verify[:i])
            interval = check.interval if check.interval is not None else self.defaults.verify_interval
            own.append(
                self._verify(
                    self._check(name, check, cid, ("services", name, "verify", i), verify=True),
                    last,
                    interval,
                )
            )
        return own

    def _reordered_steps(
        self, name: str, specs: Sequence[StepSpec], entry: tuple[str, ...]
    ) -> list[PlannedStep]:
        """Steps of a service that uses ``after:``: each waits for exactly what it names."""
        local = {spec.id: f"{name}.{spec.id}" for spec in specs}
        waits = {
            spec.id: (
                tuple(local[a] for a in spec.after)
                if spec.after is not None
                else ((local[specs[i - 1].id],) if i else ())
            )
            for i, spec in enumerate(specs)
        }
        index = {spec.id: i for i, spec in enumerate(specs)}
        return [
            self._step(name, spec, index[spec.id], waits[spec.id] or entry)
            for spec in step_order.in_order(specs, waits)
        ]

    def _step(self, service: str, spec: StepSpec, index: int, after: tuple[str, ...]) -> PlannedStep:
        action: AnyAction = self.registry.action(spec.action)
        where = self._where(spec.site, action.cloud)
        params, parsed = self._params(("services", service, "steps", index), action, spec.with_)
        skipped, best_effort, reason = (
            self._skip(where.site, spec.ungraceful) if self.ungraceful else (False, False, None)
        )
        if self.scenario.mode not in spec.modes:
            skipped, best_effort = True, False
            reason = f"runs only in {' and '.join(spec.modes)} mode"
        reversible = not spec.pivot and spec.rollback != "none" and action.is_reversible(parsed)
        estimate = spec.estimate if spec.estimate is not None else action.estimate(parsed)
        step_id = f"{service}.{spec.id}"
        timeout = spec.timeout if spec.timeout is not None else self.defaults.timeout
        waits = getattr(parsed, "wait_timeout", None)
        if isinstance(waits, int | float) and waits > timeout and not skipped:
            waits_text, timeout_text = format_duration(waits), format_duration(timeout)
            self.cut_short.append(f"{step_id} (waits up to {waits_text}, times out after {timeout_text})")
        source = self.runbook.sites[self.scenario.from_].aws
        if (
            action.control_plane
            and not skipped
            and source is not None
            and source.region == action.control_plane
        ):
            self.homed_away.append(step_id)
        return PlannedStep(
            id=step_id,
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
            timeout_s=timeout,
            retries=spec.retries if spec.retries is not None else self.defaults.retries,
            approval_timeout_s=(
                spec.approval_timeout if spec.approval_timeout is not None else self.defaults.approval_timeout
            ),
            estimate_s=estimate,
            skipped=skipped,
            best_effort=best_effort,
            skip_reason=reason,
            follows_pivot=self._after_pivot(step_id, spec.pivot and not skipped, after),
            permissions=_permissions([*action.permissions(parsed, where), *self._secrets(params, where)]),
            resources=action.resources(parsed, where),
            cutover=spec.cutover and not skipped,
            dns_ttl_s=spec.dns_ttl,
        )

    def _secrets(self, params: Mapping[str, object], where: Placement) -> list[Permission]:
        """Reading the AWS secrets the parameters reference, with the site's AWS placement."""
        return secret_permissions(params, self.runbook.placement(where.site, "aws"))

    def _verify(self, planned: PlannedCheck, after: tuple[str, ...], interval: float) -> PlannedStep:
        """A verify check as a node of the plan DAG, after its service's last steps: it asks
        every ``interval`` until it passes or its timeout runs out."""
        return PlannedStep(
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
            timeout_s=planned.timeout_s,
            retries=0,
            approval_timeout_s=self.defaults.approval_timeout,
            estimate_s=planned.estimate_s,
            skipped=planned.skipped,
            best_effort=planned.best_effort,
            skip_reason=planned.skip_reason,
            follows_pivot=self._after_pivot(planned.id, False, after),
            permissions=planned.permissions,
            interval_s=interval,
        )

    def _summaries(
        self,
        order: Sequence[str],
        steps: Sequence[PlannedStep],
        finish: dict[str, float],
        terminals: dict[str, tuple[str, ...]],
    ) -> tuple[ServiceSummary, ...]:
        out = []
        cutovers: dict[str, list[str]] = {}
        for step in steps:
            if step.cutover:
                cutovers.setdefault(step.service, []).append(step.id)
        for name in order:
            service = self.runbook.services[name]
            done = max((finish[t] for t in terminals[name]), default=0.0)
            cutover = tuple(cutovers.get(name, ()))
            out.append(
                ServiceSummary(
                    name=name,
                    tier=service.tier,
                    depends_on=tuple(service.depends_on),
                    rto_target_s=service.rto,
                    rpo_target_s=service.rpo,
                    predicted_s=max((finish[c] for c in cutover), default=done),
                    predicted_done_s=done,
                    cutover=cutover,
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
                    f"service {s.name}: predicted cutover at {format_duration(s.predicted_s)}, "
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
        if self.homed_away:
            source = self.runbook.sites[self.scenario.from_].aws
            out.append(
                f"{', '.join(self.homed_away)}: through a control plane homed in "
                f"{source.region if source else '?'}, the region this plan fails away from; with that "
                "region down they fail (Route 53's DNS keeps answering, but record changes and IAM "
                "do not; ARC routing controls and health-check failover records need no control plane)"
            )
        if self.cut_short:
            out.append(
                "step timeout shorter than the action's own wait, so a slow change fails the step: "
                + "; ".join(self.cut_short[:5])
                + ("; ..." if len(self.cut_short) > 5 else "")
            )
        return tuple(out)
