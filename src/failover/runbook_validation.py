"""The runbook validator: collects every problem of one runbook, shape first, then meaning
(sites, the service dependency graph, step order, checks, sites of steps, action parameters)."""

from __future__ import annotations

import itertools
import re
from typing import Any

from pydantic import ValidationError

from failover.errors import Problem, RunbookError
from failover.graph import cycles
from failover.providers.base import AnyAction, AnyCheck, Registry
from failover.runbook import (
    NAME_PATTERN,
    SITE_REFS,
    Resolved,
    ResolvedKey,
    Runbook,
    Service,
    _did_you_mean,
    _Header,
    _site_ref,
    check_id,
    site_lookup,
)
from failover.runbook_parts import CheckSpec
from failover.runbook_problems import _problems_from
from failover.secrets import refs_in
from failover.source import PathPart, Source, format_path
from failover.templating import TemplateError, references, render, unresolved
from failover.watch.state import Condition

_NAME = re.compile(NAME_PATTERN)


class _Validator:
    """Collects every problem of one runbook: shape first, then meaning."""

    def __init__(self, source: Source, registry: Registry) -> None:
        self.source = source
        self.registry = registry
        self.problems: list[Problem] = []
        self.service_names: set[str] = set()
        self.resolved: dict[ResolvedKey, Resolved] = {}

    def add(self, path: tuple[PathPart, ...], message: str, *, key: bool = False) -> None:
        self.problems.append(self.source.problem(path, message, key=key))

    def run(self) -> Runbook:
        data = self.source.data
        if not isinstance(data, dict):
            found = "an empty document" if data is None else f"{type(data).__name__} {data!r}"
            self.add((), f"expected a mapping with version, name, sites and services; found {found}")
            raise RunbookError(self.problems)
        header = self._header(data)
        services = self._services(data)
        if header is not None:
            self._check_sites(header)
        if services:
            self._check_graph(services)
            if header is not None:
                self._check_services(header, services)
        if header is not None:
            self._check_triggers(header)
        if self.problems or header is None or services is None:
            raise RunbookError(self.problems)
        fields = {name: getattr(header, name) for name in _Header.model_fields}
        runbook = Runbook.model_construct(**fields, services=services)
        runbook._resolved = self.resolved
        return runbook

    def _header(self, data: dict[Any, Any]) -> _Header | None:
        raw = {k: v for k, v in data.items() if k != "services"}
        try:
            return _Header.model_validate(raw)
        except ValidationError as exc:
            self.problems += _problems_from(exc, self.source, (), Runbook)
            return None

    def _services(self, data: dict[Any, Any]) -> dict[str, Service] | None:
        if "services" not in data:
            self.add(("services",), "required key is missing")
            return None
        raw = data["services"]
        if not isinstance(raw, dict) or not raw:
            self.add(("services",), f"expected a mapping of service names to services, found {raw!r}")
            return None
        services: dict[str, Service] = {}
        self.service_names = {str(name) for name in raw}
        for name, spec in raw.items():
            path: tuple[PathPart, ...] = ("services", str(name))
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.add(
                    path,
                    f"expected a service name of letters, digits, '-' and '_', found {name!r}",
                    key=True,
                )
                continue
            try:
                services[name] = Service.model_validate(spec if spec is not None else {})
            except ValidationError as exc:
                self.problems += _problems_from(exc, self.source, path, Service)
        return services

    def _check_sites(self, header: _Header) -> None:
        if len(header.sites) < 2:
            self.add(
                ("sites",),
                f"expected at least 2 sites to fail over between, found {len(header.sites)}",
            )
        for cloud, needs in (("aws", "region"), ("gcp", "project and region")):
            spec = getattr(header.sandbox, cloud) if header.sandbox is not None else None
            for path, site in spec.sites() if spec is not None else ():
                where = ("sandbox", cloud, *path)
                if site not in header.sites:
                    self.add(where, f"unknown site {site!r}{_did_you_mean(site, set(header.sites))}")
                elif getattr(header.sites[site], cloud) is None:
                    self.add(
                        where,
                        f"site {site!r} has no {cloud} placement ({needs}) "
                        f"for a sandbox {cloud.upper()} resource",
                    )

    def _check_graph(self, services: dict[str, Service]) -> None:
        graph: dict[str, list[str]] = {name: [] for name in services}
        for name, service in services.items():
            for i, dep in enumerate(service.depends_on):
                if dep not in self.service_names:
                    self.add(
                        ("services", name, "depends_on", i),
                        f"unknown service {dep!r}{_did_you_mean(dep, self.service_names)}",
                    )
                elif dep in services:
                    graph[name].append(dep)
        for cycle in cycles(graph):
            first = cycle[0]
            index = services[first].depends_on.index(cycle[1 % len(cycle)])
            self.add(
                ("services", first, "depends_on", index),
                f"dependency cycle: {' -> '.join([*cycle, first])}",
            )

    def _check_services(self, header: _Header, services: dict[str, Service]) -> None:
        sites = header.sites
        pairs = [(f, t) for f, t in itertools.permutations(sorted(sites), 2)]
        check_ids: dict[str, tuple[PathPart, ...]] = {}
        for name, service in services.items():
            base: tuple[PathPart, ...] = ("services", name)
            self._check_steps(header, base, service, pairs)
            step_ids = {step.id for step in service.steps}
            for kind in ("preflight", "verify"):
                for i, spec in enumerate(getattr(service, kind)):
                    path = (*base, kind, i)
                    self._check_one(header, path, spec, pairs)
                    cid = check_id(name, spec, getattr(service, kind)[:i])
                    if spec.id is not None and spec.id in step_ids:
                        self.add(
                            (*path, "id"),
                            f"check id {spec.id!r} is also a step id of service {name!r}: "
                            "expected ids unique within a service",
                        )
                    if cid in check_ids:
                        self.add(
                            (*path, "id"),
                            f"duplicate check id {cid!r} (also at "
                            f"{format_path(check_ids[cid])}): give each check a unique id",
                        )
                    check_ids.setdefault(cid, path)

    def _check_triggers(self, header: _Header) -> None:
        """Triggers and stop conditions: sites, a condition that can hold, checks and their
        parameters in the trigger's own direction, and a quorum before an automatic failover."""
        pairs = [(f, t) for f, t in itertools.permutations(sorted(header.sites), 2)]
        for i, spec in enumerate(header.stop_when):
            self._check_one(header, ("stop_when", i), spec, pairs)
        for name, trigger in header.triggers.items():
            base: tuple[PathPart, ...] = ("triggers", name)
            known = True
            for key, site in (("from", trigger.from_), ("to", trigger.to)):
                if site not in header.sites:
                    known = False
                    self.add(
                        (*base, key),
                        f"unknown site {site!r}; sites: {', '.join(sorted(header.sites))}"
                        f"{_did_you_mean(site, header.sites)}",
                    )
            if known and trigger.from_ == trigger.to:
                self.add((*base, "to"), f"from and to are both {trigger.to!r}: expected two different sites")
            try:
                condition = Condition.parse(trigger.when, len(trigger.signals))
            except ValueError as exc:
                self.add((*base, "when"), str(exc))
                condition = None
            if trigger.action == "failover":
                if trigger.plan is None:
                    self.add(
                        (*base, "action"), "action failover runs a plan made in advance: expected plan: FILE"
                    )
                if condition is not None and condition.need < 2:
                    self.add(
                        (*base, "when"),
                        'an automatic failover needs a quorum of independent signals: expected "N of M" '
                        f"with N >= 2, found {trigger.when!r}",
                    )
            elif not trigger.notify:
                self.add(
                    (*base, "notify"), "action notify tells someone: expected at least one notify target"
                )
            pair = [(trigger.from_, trigger.to)] if known and trigger.from_ != trigger.to else pairs[:1]
            for part in ("signals", "guard"):
                for i, spec in enumerate(getattr(trigger, part)):
                    self._check_one(header, (*base, part, i), spec, pair)

    def _check_one(
        self, header: _Header, path: tuple[PathPart, ...], spec: CheckSpec, pairs: list[tuple[str, str]]
    ) -> None:
        check = self.registry.find_check(spec.check)
        self._check_site(header, path, spec.site, check)
        if check is None:
            self.add((*path, "check"), self.registry.unknown_message("check", spec.check))
        else:
            self._check_params(header, path, spec.with_, check, pairs)
            self._check_secrets(header, path, spec.site, spec.with_)

    def _check_steps(
        self,
        header: _Header,
        base: tuple[PathPart, ...],
        service: Service,
        pairs: list[tuple[str, str]],
    ) -> None:
        seen: dict[str, int] = {}
        for i, step in enumerate(service.steps):
            path = (*base, "steps", i)
            if step.id in seen:
                self.add(
                    (*path, "id"),
                    f"duplicate step id {step.id!r}: already used by steps[{seen[step.id]}]",
                )
            seen.setdefault(step.id, i)
            if header.failback == "rollback" and (step.pivot or step.rollback == "none"):
                key = "pivot" if step.pivot else "rollback"
                self.add(
                    (*path, key),
                    "a runbook with failback: rollback undoes its failover, so every step must be "
                    f"reversible: expected no {key}: {'true' if step.pivot else 'none'}, "
                    "or failback: reverse",
                )
            if step.pivot and step.rollback == "auto":
                self.add(
                    (*path, "rollback"),
                    "a pivot is irreversible: expected rollback: none (or no rollback key), "
                    "found rollback: auto",
                )
            action = self.registry.find_action(step.action)
            self._check_site(header, path, step.site, action)
            if action is None:
                self.add((*path, "action"), self.registry.unknown_message("action", step.action))
            else:
                self._check_params(header, path, step.with_, action, pairs)
                self._check_secrets(header, path, step.site, step.with_)
        order: dict[str, list[str]] = {step_id: [] for step_id in seen}
        for i, step in enumerate(service.steps):
            for j, dep in enumerate(step.after or []):
                if dep not in seen:
                    self.add(
                        (*base, "steps", i, "after", j),
                        f"unknown step {dep!r} in this service{_did_you_mean(dep, seen)}",
                    )
                else:
                    order[step.id].append(dep)
        for cycle in cycles(order):
            self.add(
                (*base, "steps", seen[cycle[0]], "after"),
                f"step order cycle: {' -> '.join([*cycle, cycle[0]])}",
            )

    def _check_site(
        self,
        header: _Header,
        path: tuple[PathPart, ...],
        site_field: str,
        item: AnyAction | AnyCheck | None,
    ) -> None:
        ref = _site_ref(site_field)
        if ref is not None and ref not in SITE_REFS:
            self.add(
                (*path, "site"),
                f"expected ${{to}}, ${{from}} or a site name, found {site_field!r}",
            )
            return
        if ref is None and site_field not in header.sites:
            self.add(
                (*path, "site"),
                f"unknown site {site_field!r}; expected ${{to}}, ${{from}} or one of: "
                f"{', '.join(sorted(header.sites))}{_did_you_mean(site_field, header.sites)}",
            )
            return
        if item is None or item.cloud not in ("aws", "gcp"):
            return
        candidates = sorted(header.sites) if ref is not None else [site_field]
        missing = [s for s in candidates if getattr(header.sites[s], item.cloud) is None]
        if missing:
            self.add(
                (*path, "site"),
                f"{item.name} runs in a site's {item.cloud} placement, but "
                f"{', '.join(repr(s) for s in missing)} {'has' if len(missing) == 1 else 'have'} "
                f"no {item.cloud}: section",
            )

    def _check_secrets(
        self, header: _Header, path: tuple[PathPart, ...], site_field: str, params: dict[str, Any]
    ) -> None:
        """An AWS secret reference is read with the AWS credentials of the site that uses it."""
        try:
            aws = [ref for ref in refs_in(params) if ref.cloud == "aws"]
        except TemplateError:  # malformed: _check_params says so
            return
        ref = _site_ref(site_field)
        if not aws or (ref is None and site_field not in header.sites):
            return
        candidates = sorted(header.sites) if ref is not None else [site_field]
        missing = [s for s in candidates if header.sites[s].aws is None]
        if missing:
            self.add(
                (*path, "with"),
                f"${{secret:{aws[0].kind}:...}} is read with the AWS credentials of the site it runs at, "
                f"but {', '.join(repr(s) for s in missing)} "
                f"{'has' if len(missing) == 1 else 'have'} no aws: section",
            )

    def _check_params(
        self,
        header: _Header,
        path: tuple[PathPart, ...],
        params: dict[str, Any],
        item: AnyAction | AnyCheck,
        pairs: list[tuple[str, str]],
    ) -> None:
        where = (*path, "with")
        seen: set[tuple[str, int, int]] = set()
        templated = next(references(params), None) is not None
        for from_, to in pairs if templated else pairs[:1]:
            note = f" (failing over from {from_} to {to})" if templated else ""
            lookup = site_lookup(header.sites, to, from_)
            try:
                rendered = render(params, lookup)
            except TemplateError:
                bad = unresolved(params, lookup)
                problems = [self.source.problem((*where, *at), why) for at, why in bad]
            else:
                try:
                    parsed = item.parse(rendered)  # type: ignore[arg-type]
                except ValidationError as exc:
                    problems = _problems_from(exc, self.source, where, item.params_model, (), note)
                else:
                    key = (*path, from_, to) if templated else (*path, None, None)
                    self.resolved[key] = (rendered, parsed)  # type: ignore[assignment]
                    continue
            for problem in problems:
                sig = (problem.path, problem.line, problem.column)
                if sig not in seen:
                    seen.add(sig)
                    self.problems.append(problem)
