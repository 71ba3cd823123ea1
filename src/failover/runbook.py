"""Runbooks: the YAML file that declares sites, services, dependencies and steps, validated.

:func:`load_runbook` returns a :class:`Runbook` or raises :class:`RunbookError` listing every
problem as ``FILE:LINE:COL: path.to.field: what was expected, what was found``.

This module holds the runbook models (:class:`Runbook` and its parts), site references
(``${to}``, ``${from}``...), check ids, loading and the JSON Schema. Turning pydantic errors into
located problems is in :mod:`failover.runbook_problems`; the checks of a runbook's meaning are in
:mod:`failover.runbook_validation`.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    JsonValue,
    PrivateAttr,
)

from failover.durations import Duration
from failover.errors import Problem, RunbookError, ScenarioError
from failover.providers import default_registry
from failover.providers.base import Placement, Registry
from failover.redact import register_secret, secret_values_in
from failover.runbook_parts import MODES as MODES
from failover.runbook_parts import NAME_PATTERN as NAME_PATTERN
from failover.runbook_parts import CheckSpec as CheckSpec
from failover.runbook_parts import Mode as Mode
from failover.runbook_parts import Name as Name
from failover.runbook_parts import OnSourceDown as OnSourceDown
from failover.runbook_parts import _Model
from failover.runbook_triggers import TriggerSpec
from failover.sandbox.spec import Sandbox
from failover.secrets import parse_ref
from failover.source import PathPart, parse_yaml, paused_gc
from failover.templating import Lookup, TemplateError

SITE_REFS = ("to", "from")


ResolvedKey = tuple[PathPart | None, ...]
"""(*path of the step or check, from, to); from and to are None where nothing is templated."""
Resolved = tuple[dict[str, JsonValue], BaseModel]
"""Parameters with references filled in, and the action's or check's parsed model of them."""


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


class StepSpec(_Model):
    """One action with its parameters, as the runbook writes it."""

    id: Name
    action: str = Field(description="Registered action name, e.g. sim.step.")
    site: str = Field(description="${to}, ${from} or a site name.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    description: str | None = Field(None, description="A note for reviewers, shown in the plan.")
    approval: bool = Field(False, description="Wait for an approval before this step.")
    pivot: bool = Field(False, description="Irreversible point of no return; implies approval.")
    cutover: bool = Field(
        False,
        description="The service's traffic reaches the target here: its RTO ends when this step is "
        "done. Default: the service's last actions on the target site.",
    )
    dns_ttl: Duration | None = Field(
        None,
        description="The longest TTL of the DNS records this step changes: resolvers may still "
        "answer with the old site this long after it (reported next to the RTO).",
    )
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
    triggers: dict[Name, TriggerSpec] = Field(
        default_factory=dict, description="What `failover watch` evaluates, and does when one fires."
    )
    stop_when: list[CheckSpec] = Field(
        default_factory=list,
        description="Checks asked while a run is in flight; one that fails halts it "
        "(before a pivot: rolls back).",
    )
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
    "expected ${to} or ${from}, or .aws.region, .gcp.project, .gcp.region, .vars.NAME after them, "
    "or a secret: ${secret:aws-ssm:/PATH}, ${secret:aws-sm:NAME#KEY}, ${env:NAME}"
)


def site_lookup(sites: Mapping[str, Site], to: str, from_: str) -> Lookup:
    """Resolver for ``${...}`` references among ``sites`` when failing over from ``from_`` to ``to``."""
    return lambda expr: _resolve_reference(sites, expr, to=to, from_=from_)


def _resolve_reference(sites: Mapping[str, Site], expr: str, *, to: str, from_: str) -> object:
    if parse_ref(expr) is not None:  # a secret: checked here, resolved only at the call
        return "${" + expr + "}"
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


def check_id(service: str, spec: CheckSpec, earlier: Iterable[CheckSpec]) -> str:
    """A check's id: its own, or ``SERVICE.CHECK`` (``-2``, ``-3``... for repeats in a list)."""
    if spec.id:
        return f"{service}.{spec.id}"
    repeats = sum(1 for e in earlier if not e.id and e.check == spec.check)
    return f"{service}.{spec.check}" + (f"-{repeats + 1}" if repeats else "")


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
    from failover.runbook_validation import _Validator  # here: it imports this module

    registry = registry or default_registry()
    with paused_gc():  # a runbook of 10,000 services is a million objects, all kept
        source = parse_yaml(text, file)
        for value in secret_values_in(_parameters(source.data)):  # no output of this process shows them
            register_secret(value)
        runbook = _Validator(source, registry).run()
    runbook._path = None if file.startswith("<") else file
    runbook._sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return runbook


def _parameters(data: object) -> list[object]:
    """Where a runbook holds values for its providers: the sites' vars and the ``with:`` of
    every step and check (a service, site or step named ``auth`` is a name, not a secret)."""
    found: list[object] = []
    if not isinstance(data, dict):
        return found
    for site in (data.get("sites") or {}).values() if isinstance(data.get("sites"), dict) else ():
        if isinstance(site, dict):
            found.append(site.get("vars"))
    services = data.get("services")
    for service in services.values() if isinstance(services, dict) else ():
        for part in ("preflight", "steps", "verify"):
            items = service.get(part) if isinstance(service, dict) else None
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict):
                    found.append(item.get("with"))
    return found


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
