"""Runbooks: the YAML file that declares sites, services, dependencies and steps, validated.

:func:`load_runbook` returns a :class:`Runbook` or raises :class:`RunbookError` listing every
problem as ``FILE:LINE:COL: path.to.field: what was expected, what was found``.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import networkx as nx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    StringConstraints,
    ValidationError,
)

from failover.durations import Duration
from failover.errors import Problem, RunbookError, ScenarioError
from failover.providers import default_registry
from failover.providers.base import AnyAction, AnyCheck, Placement, Registry
from failover.sandbox.spec import Sandbox
from failover.source import PathPart, Source, format_path, parse_yaml
from failover.templating import Lookup, TemplateError, references, render, unresolved

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=128)]
Mode = Literal["graceful", "ungraceful"]
MODES: tuple[Mode, ...] = ("graceful", "ungraceful")
SITE_REFS = ("to", "from")


ResolvedKey = tuple[PathPart | None, ...]
"""(*path of the step or check, from, to); from and to are None where nothing is templated."""
Resolved = tuple[dict[str, JsonValue], BaseModel]
"""Parameters with references filled in, and the action's or check's parsed model of them."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AwsPlacement(_Model):
    """Where AWS runs at a site."""

    region: str = Field(description="AWS region, e.g. us-east-1.")
    profile: str | None = Field(None, description="Named profile for this site's boto3 session.")
    role_arn: str | None = Field(None, description="Role to assume for this site.")
    endpoint_url: str | None = Field(None, description="Override of every AWS endpoint.")


class GcpPlacement(_Model):
    """Where GCP runs at a site."""

    project: str = Field(description="GCP project id.")
    region: str = Field(description="GCP region, e.g. us-east4.")
    endpoint: str | None = Field(None, description="Override of the Compute Engine endpoint.")


Scalar = str | int | float | bool


class Site(_Model):
    """A location, and where each cloud runs there."""

    description: str | None = None
    aws: AwsPlacement | None = None
    gcp: GcpPlacement | None = None
    vars: dict[str, Scalar] = Field(default_factory=dict, description="Values for ${to.vars.X}.")
    concurrency: dict[Name, Annotated[int, Field(ge=1, le=512)]] = Field(
        default_factory=dict,
        description="Most steps at once at this site, per provider (aws, gcp, ...); default aws 10, gcp 10.",
    )


class Defaults(_Model):
    """Values every step gets unless it says otherwise."""

    timeout: Duration = Field(300.0, description="How long one step may take.")
    retries: int = Field(3, ge=0, le=100, description="Retries after a transient failure.")
    approval_timeout: Duration = Field(900.0, description="How long to wait for an approval.")
    check_timeout: Duration = Field(30.0, description="How long one preflight check may take.")
    verify_timeout: Duration = Field(300.0, description="How long a verify check may poll before it fails.")
    verify_interval: Duration = Field(2.0, description="How often a verify check asks again.")


OnSourceDown = Literal["skip", "best_effort"]


class CheckSpec(_Model):
    """A read-only check, before anything changes (preflight) or after a service moved (verify)."""

    id: Name | None = Field(None, description="Id for --skip-check; default SERVICE.CHECK.")
    check: str = Field(description="Registered check name, e.g. sim.check.")
    site: str = Field(description="${to}, ${from} or a site name.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    description: str | None = None
    ungraceful: OnSourceDown = Field(
        "skip", description="On the source site in ungraceful mode: skip or best_effort."
    )
    timeout: Duration | None = Field(
        None, description="How long it may take (preflight) or poll (verify); default from defaults."
    )
    interval: Duration | None = Field(None, description="Verify checks: how often to ask again.")
    modes: list[Mode] = Field(default_factory=lambda: list(MODES), description="Modes this check runs in.")


class StepSpec(_Model):
    """One action with its parameters, as the runbook writes it."""

    id: Name
    action: str = Field(description="Registered action name, e.g. sim.step.")
    site: str = Field(description="${to}, ${from} or a site name.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    description: str | None = Field(None, description="A note for reviewers, shown in the plan.")
    approval: bool = Field(False, description="Wait for an approval before this step.")
    pivot: bool = Field(False, description="Irreversible point of no return; implies approval.")
    rollback: Literal["auto", "none"] | None = Field(
        None, description="auto: the action's compensation; none: never rolled back."
    )
    after: list[Name] | None = Field(
        None, description="Step ids of this service to wait for (default: the previous step)."
    )
    timeout: Duration | None = None
    retries: int | None = Field(None, ge=0, le=100)
    approval_timeout: Duration | None = None
    estimate: Duration | None = Field(None, description="Predicted duration for the plan's RTO.")
    modes: list[Mode] = Field(default_factory=lambda: list(MODES), description="Modes this step runs in.")
    ungraceful: OnSourceDown = Field(
        "skip", description="On the source site in ungraceful mode: skip or best_effort."
    )


class Service(_Model):
    """A node of the dependency graph and the steps that move it."""

    description: str | None = None
    tier: str | None = Field(None, description="Criticality tier or layer, e.g. data, app, edge.")
    owner: str | None = None
    depends_on: list[Name] = Field(default_factory=list)
    rto: Duration | None = None
    rpo: Duration | None = None
    preflight: list[CheckSpec] = Field(default_factory=list)
    steps: list[StepSpec] = Field(default_factory=list)
    verify: list[CheckSpec] = Field(default_factory=list)


class _Header(_Model):
    version: Literal[1] = Field(description="Runbook format version.")
    name: Name
    description: str | None = None
    sites: dict[Name, Site]
    defaults: Defaults = Field(default_factory=Defaults)
    rto: Duration | None = Field(None, description="Target RTO of the whole failover.")
    failback: Literal["reverse", "rollback"] = Field(
        "reverse",
        description="How `drill --failback` comes back: reverse (the plan with from and to swapped) "
        "or rollback (undo the failover's own steps: active-active runbooks that only move traffic).",
    )
    sandbox: Sandbox | None = Field(None, description="Resources a --sandbox drill creates first.")
    state: str | None = Field(
        None,
        pattern=r"^dynamodb://[A-Za-z0-9_.-]{3,255}\?region=[a-z]{2}(-[a-z]+)+-[0-9]+$",
        description="The shared state every run of this runbook uses (dynamodb://TABLE?region=REGION), "
        "so everyone who runs it shares one lock and one journal without a flag.",
    )


class Runbook(_Header):
    """A validated runbook. Direction-free: ``${to}``/``${from}`` are filled in by the planner."""

    services: dict[Name, Service]
    _path: str | None = PrivateAttr(default=None)
    _sha256: str = PrivateAttr(default="")
    _resolved: dict[ResolvedKey, Resolved] = PrivateAttr(default_factory=dict)

    @property
    def path(self) -> str | None:
        """The file it was loaded from, if any."""
        return self._path

    @property
    def sha256(self) -> str:
        """sha256 of the runbook's text, so a plan can tell when its runbook changed."""
        return self._sha256

    def lookup(self, to: str, from_: str) -> Lookup:
        """Resolver for ``${...}`` references when failing over from ``from_`` to ``to``."""
        return site_lookup(self.sites, to, from_)

    def resolved_params(self) -> Mapping[ResolvedKey, Resolved]:
        """Every step's and check's parameters as validation resolved them, per direction."""
        return self._resolved

    def site_of(self, site_field: str, to: str, from_: str) -> str:
        """The site name a step's ``site:`` means in this direction."""
        ref = _site_ref(site_field)
        if ref is None:
            return site_field
        return to if ref == "to" else from_

    def placement(self, site: str, cloud: str | None) -> Placement:
        """Where an action of ``cloud`` (aws, gcp or None for anywhere) runs at ``site``."""
        spec = self.sites[site]
        if cloud == "aws" and spec.aws is not None:
            arn = (spec.aws.role_arn or "").split(":")
            account = arn[4] if len(arn) > 4 and arn[4] else None
            return Placement(site=site, cloud="aws", region=spec.aws.region, account=account)
        if cloud == "gcp" and spec.gcp is not None:
            return Placement(site=site, cloud="gcp", region=spec.gcp.region, project=spec.gcp.project)
        return Placement(site=site, cloud=cloud)

    def check_scenario(self, from_: str, to: str, scope: Iterable[str] = ()) -> None:
        """Raise ScenarioError unless ``from_``/``to`` are two different sites and scope is known."""
        for role, site in (("--from", from_), ("--to", to)):
            if site not in self.sites:
                raise ScenarioError(
                    f"{role}: unknown site {site!r}; sites of runbook {self.name!r}: "
                    f"{', '.join(sorted(self.sites))}{_did_you_mean(site, self.sites)}"
                )
        if from_ == to:
            raise ScenarioError(f"--from and --to are both {to!r}: expected two different sites")
        for service in scope:
            if service not in self.services:
                raise ScenarioError(
                    f"--scope: unknown service {service!r}{_did_you_mean(service, self.services)}"
                )


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _site_ref(site_field: str) -> str | None:
    """``to`` or ``from`` for ``${to}``/``${from}``; None for a literal site name."""
    text = site_field.strip()
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1].strip()
    return None


_REFERENCE_HELP = (
    "expected ${to} or ${from}, or .aws.region, .gcp.project, .gcp.region, .vars.NAME after them"
)


def site_lookup(sites: Mapping[str, Site], to: str, from_: str) -> Lookup:
    """Resolver for ``${...}`` references among ``sites`` when failing over from ``from_`` to ``to``."""
    return lambda expr: _resolve_reference(sites, expr, to=to, from_=from_)


def _resolve_reference(sites: Mapping[str, Site], expr: str, *, to: str, from_: str) -> object:
    parts = expr.split(".")
    if parts[0] not in SITE_REFS:
        raise TemplateError(f"unknown reference ${{{expr}}}: {_REFERENCE_HELP}")
    name = to if parts[0] == "to" else from_
    site = sites[name]
    rest = parts[1:]
    if not rest:
        return name
    if rest in (["aws", "region"], ["gcp", "project"], ["gcp", "region"]):
        placement = getattr(site, rest[0])
        if placement is None:
            raise TemplateError(f"${{{expr}}}: site {name!r} has no {rest[0]} placement")
        return getattr(placement, rest[1])
    if len(rest) == 2 and rest[0] == "vars":
        if rest[1] not in site.vars:
            have = ", ".join(sorted(site.vars)) or "none"
            raise TemplateError(f"${{{expr}}}: site {name!r} has no var {rest[1]!r} (its vars: {have})")
        return site.vars[rest[1]]
    raise TemplateError(f"unknown reference ${{{expr}}}: {_REFERENCE_HELP}")


# --- turning pydantic errors into located problems ---------------------------------------------


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else (args[0] if len(args) == 1 else tp)
            if len(args) != 1 and not models:
                return tp
        else:
            return tp


def _model_at(root: type[BaseModel], loc: tuple[PathPart, ...]) -> type[BaseModel] | None:
    """The model whose fields are valid at ``loc`` (for "did you mean" on unknown keys)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            if part not in fields:
                return None
            tp = fields[str(part)].annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _problems_from(
    exc: ValidationError,
    source: Source,
    prefix: tuple[PathPart, ...],
    model: type[BaseModel],
    model_prefix: tuple[PathPart, ...] = (),
    note: str = "",
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        msg = err["msg"]
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            if kind == "string_pattern_mismatch":
                msg = "expected a name of letters, digits, '-' and '_'"
            problems.append(source.problem(prefix + loc, f"{msg}, found {err['input']!r}", key=True))
            continue
        path = prefix + loc
        if kind == "extra_forbidden":
            parent = _model_at(model, model_prefix + loc[:-1])
            names = _field_names(parent) if parent else []
            close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(names)}"
            message = f"unknown key {loc[-1]!r}; {hint}" if names else f"unknown key {loc[-1]!r}"
            problems.append(source.problem(path, message + note, key=True))
            continue
        if kind == "missing":
            message = "required key is missing"
        elif kind == "value_error":
            message = msg.removeprefix("Value error, ")
        elif kind == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == NAME_PATTERN:
            message = f"expected a name of letters, digits, '-' and '_', found {err['input']!r}"
        elif kind == "literal_error" and path == ("version",):
            message = f"unsupported runbook version {err['input']!r}: this failover reads version 1"
        else:
            message = msg.replace("Input should be", "expected", 1)
            message = f"{message}, found {err['input']!r}"
        problems.append(source.problem(path, message + note))
    return problems


# --- loading -----------------------------------------------------------------------------------


def load_runbook(path: str | Path, registry: Registry | None = None) -> Runbook:
    """Read and validate a runbook file; raises RunbookError listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RunbookError([Problem(file, 1, 1, "", f"cannot read runbook: {reason}")]) from None
    except UnicodeDecodeError as exc:
        raise RunbookError([Problem(file, 1, 1, "", f"expected UTF-8 text: {exc}")]) from None
    return parse_runbook(text, file, registry)


def parse_runbook(text: str, file: str = "<string>", registry: Registry | None = None) -> Runbook:
    """Validate runbook text; ``file`` is only used in messages."""
    source = parse_yaml(text, file)
    runbook = _Validator(source, registry or default_registry()).run()
    runbook._path = None if file.startswith("<") else file
    runbook._sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return runbook


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
        graph = nx.DiGraph()
        graph.add_nodes_from(services)
        for name, service in services.items():
            for i, dep in enumerate(service.depends_on):
                if dep not in self.service_names:
                    self.add(
                        ("services", name, "depends_on", i),
                        f"unknown service {dep!r}{_did_you_mean(dep, self.service_names)}",
                    )
                elif dep in services:
                    graph.add_edge(name, dep)
        for cycle in _cycles(graph):
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
                    check = self.registry.find_check(spec.check)
                    self._check_site(header, path, spec.site, check)
                    if check is None:
                        self.add((*path, "check"), self.registry.unknown_message("check", spec.check))
                    else:
                        self._check_params(header, path, spec.with_, check, pairs)
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
        order = nx.DiGraph()
        order.add_nodes_from(seen)
        for i, step in enumerate(service.steps):
            for j, dep in enumerate(step.after or []):
                if dep not in seen:
                    self.add(
                        (*base, "steps", i, "after", j),
                        f"unknown step {dep!r} in this service{_did_you_mean(dep, seen)}",
                    )
                else:
                    order.add_edge(step.id, dep)
        for cycle in _cycles(order):
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


_NAME = re.compile(NAME_PATTERN)


def _cycles(graph: nx.DiGraph) -> list[list[str]]:
    """One cycle per strongly connected component that has one, each starting at its least node."""
    found = []
    for component in nx.strongly_connected_components(graph):
        nodes = sorted(component)
        if len(nodes) == 1 and not graph.has_edge(nodes[0], nodes[0]):
            continue
        edges = nx.find_cycle(graph.subgraph(nodes), source=nodes[0])
        cycle = [u for u, _ in edges]
        start = cycle.index(min(cycle))
        found.append(cycle[start:] + cycle[:start])
    return sorted(found)


def check_id(service: str, spec: CheckSpec, earlier: Iterable[CheckSpec]) -> str:
    """A check's id: its own, or ``SERVICE.CHECK`` (``-2``, ``-3``... for repeats in a list)."""
    if spec.id:
        return f"{service}.{spec.id}"
    repeats = sum(1 for e in earlier if not e.id and e.check == spec.check)
    return f"{service}.{spec.check}" + (f"-{repeats + 1}" if repeats else "")


def runbook_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """JSON Schema of the runbook format, with each registered action's and check's parameters,
    so editors can complete and check runbooks."""
    registry = registry or default_registry()
    schema = Runbook.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "failover runbook (version 1)"
    defs = schema["$defs"]
    for model, key, items in (
        ("StepSpec", "action", registry.actions()),
        ("CheckSpec", "check", registry.checks()),
    ):
        props = defs[model]["properties"]
        props[key]["enum"] = [item.name for item in items]
        rules = []
        for item in items:
            params = item.params_model.model_json_schema(mode="validation")
            for name, sub in params.pop("$defs", {}).items():
                defs.setdefault(name, sub)
            rules.append(
                {
                    "if": {"properties": {key: {"const": item.name}}, "required": [key]},
                    "then": {"properties": {"with": params}},
                }
            )
        defs[model]["allOf"] = rules
    return schema
