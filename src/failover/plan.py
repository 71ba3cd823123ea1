"""The plan: the concrete, ordered DAG of steps for one scenario, as a reviewed, fingerprinted file.

A plan is made by the planner, rendered for people, written as JSON, and read back by the
executor, which refuses it unless its content still hashes to its fingerprint. Plans of tens of
thousands of steps are common in tests of scale, so steps and checks are named tuples (immutable
and cheap to build); pydantic validates them only when a plan file is read back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from failover.errors import PlanError, PlanTamperedError
from failover.redact import REDACTED

PLAN_VERSION: Literal[1] = 1
Mode = Literal["graceful", "ungraceful"]
_STRICT = ConfigDict(extra="forbid")


class Scenario(BaseModel):
    """What to fail over: from which site to which, in which mode, and which services (all if empty)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    mode: Mode = "graceful"
    scope: tuple[str, ...] = ()

    def reverse(self) -> Scenario:
        """The failback scenario: the same, with from and to swapped."""
        return self.model_copy(update={"from_": self.to, "to": self.from_})


class PermissionDoc(NamedTuple):
    """A permission a step or check needs (see ``providers.base.Permission``)."""

    cloud: str
    action: str
    resource: str = "*"


class PlannedCheck(NamedTuple):
    """A preflight check with concrete parameters."""

    id: str
    service: str
    check: str
    site: str
    params: dict[str, JsonValue]
    description: str
    permissions: tuple[PermissionDoc, ...] = ()
    estimate_s: float = 0.0
    skipped: bool = False
    best_effort: bool = False
    skip_reason: str | None = None
    timeout_s: float = 30.0


class PlannedStep(NamedTuple):
    """A node of the plan DAG: an action (``kind: action``) or a verify check (``kind: verify``)."""

    id: str
    service: str
    action: str
    site: str
    params: dict[str, JsonValue]
    description: str
    timeout_s: float
    retries: int
    approval_timeout_s: float
    estimate_s: float
    kind: Literal["action", "verify"] = "action"
    note: str | None = None
    after: tuple[str, ...] = ()
    reversible: bool = False
    pivot: bool = False
    approval: bool = False
    skipped: bool = False
    best_effort: bool = False
    skip_reason: str | None = None
    follows_pivot: str | None = None
    permissions: tuple[PermissionDoc, ...] = ()
    interval_s: float | None = None  # verify checks: how often to ask again until timeout_s
    resources: tuple[str, ...] = ()  # actions: the cloud resources it changes, by identity
    cutover: bool = False  # the service's traffic reaches the target when this step is done
    dns_ttl_s: float | None = None  # resolvers may answer with the old site this long after it


class ServiceSummary(NamedTuple):
    """A service in the plan: its targets and when the plan predicts it is done."""

    name: str
    tier: str | None = None
    depends_on: tuple[str, ...] = ()
    rto_target_s: float | None = None
    rpo_target_s: float | None = None
    predicted_s: float = 0.0  # the predicted cutover (its RTO), or when it is done if it has none
    predicted_done_s: float = 0.0  # when its last step is predicted done, drains included
    cutover: tuple[str, ...] = ()  # the steps whose end is its cutover


class PlannedSite(NamedTuple):
    """Where the clouds run at a site the plan acts on, as the runbook said when it was planned:
    the plan alone is enough to reach them."""

    name: str
    aws: dict[str, JsonValue] | None = None
    gcp: dict[str, JsonValue] | None = None
    concurrency: dict[str, int] | None = None  # most steps at once here, per provider


@dataclass(frozen=True, slots=True)
class RunbookRef:
    """Which runbook, exactly, the plan was made from."""

    __pydantic_config__ = _STRICT
    name: str
    sha256: str
    path: str | None = None
    state: str | None = None  # the shared state the runbook declares


@dataclass(frozen=True)
class Plan:
    """A concrete plan; ``steps`` are in a topological order of their ``after`` edges."""

    __pydantic_config__ = _STRICT
    runbook: RunbookRef
    scenario: Scenario
    preflight: tuple[PlannedCheck, ...] = ()
    steps: tuple[PlannedStep, ...] = ()
    rollback: tuple[str, ...] = ()
    predicted_rto_s: float = 0.0  # the last cutover: when every service's traffic is at the target
    predicted_done_s: float = 0.0  # the last step, drains included
    rto_target_s: float | None = None
    critical_path: tuple[str, ...] = ()
    services: tuple[ServiceSummary, ...] = ()
    sites: tuple[PlannedSite, ...] = ()
    warnings: tuple[str, ...] = ()
    stop_when: tuple[PlannedCheck, ...] = ()
    """Checks asked while the run is in flight: one that fails halts it (before a pivot: rolls
    back)."""
    made_at: str | None = None
    """When the plan file was made (UTC, ISO 8601), for ``apply --max-plan-age``; the planner
    itself leaves it out (it is pure), the ``plan`` command sets it."""
    version: Literal[1] = field(default=PLAN_VERSION)

    def content(self) -> dict[str, Any]:
        """The plan as JSON-ready data, without its fingerprint."""
        return {
            "version": self.version,
            "runbook": _plain(self.runbook),
            "scenario": self.scenario.model_dump(mode="json", by_alias=True),
            "preflight": [_plain(c) for c in self.preflight],
            "steps": [_plain(s) for s in self.steps],
            "rollback": list(self.rollback),
            "predicted_rto_s": self.predicted_rto_s,
            "predicted_done_s": self.predicted_done_s,
            "rto_target_s": self.rto_target_s,
            "critical_path": list(self.critical_path),
            "services": [_plain(s) for s in self.services],
            "sites": [_plain(s) for s in self.sites],
            "warnings": list(self.warnings),
            **({"stop_when": [_plain(c) for c in self.stop_when]} if self.stop_when else {}),
            **({"made_at": self.made_at} if self.made_at is not None else {}),
        }

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the canonical JSON of the content: any change to the plan changes it."""
        return fingerprint_of(self.content())

    @cached_property
    def steps_by_id(self) -> dict[str, PlannedStep]:
        return {step.id: step for step in self.steps}

    def permissions(self, cloud: str, site: str | None = None) -> list[PermissionDoc]:
        """The permissions in ``cloud`` that the checks and steps which run need (at ``site``)."""
        items: tuple[PlannedCheck | PlannedStep, ...] = (*self.preflight, *self.steps)
        found = {
            p
            for item in items
            if not item.skipped and (site is None or item.site == site)
            for p in item.permissions
            if p.cloud == cloud
        }
        return sorted(found)

    @cached_property
    def sites_by_name(self) -> dict[str, PlannedSite]:
        return {site.name: site for site in self.sites}

    def to_json(self) -> str:
        """The plan file: content plus fingerprint, one step or check per line."""
        content = self.content()
        doc = {"version": self.version, "fingerprint": fingerprint_of(content), **content}
        lines = []
        for key, value in doc.items():
            head = f"  {json.dumps(key)}: "
            if isinstance(value, list) and value:
                items = ",\n".join("    " + json.dumps(v, ensure_ascii=False) for v in value)
                lines.append(f"{head}[\n{items}\n  ]")
            else:
                lines.append(head + json.dumps(value, ensure_ascii=False))
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "plan") -> Plan:
        """Read a plan file back: valid JSON, valid schema, consistent DAG, matching fingerprint."""
        if len(text) > MAX_PLAN_BYTES:
            raise PlanError(
                f"{where}: not a plan: {len(text):,} bytes, more than the {MAX_PLAN_BYTES:,} a plan may have"
            )
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{where}: not a plan: invalid JSON ({exc})") from None
        except RecursionError:
            raise PlanError(f"{where}: not a plan: nested too deeply") from None
        if _depth(doc) > MAX_PLAN_DEPTH:
            raise PlanError(f"{where}: not a plan: nested more than {MAX_PLAN_DEPTH} levels deep")
        if not isinstance(doc, dict):
            raise PlanError(f"{where}: not a plan: expected a JSON object, found {type(doc).__name__}")
        if doc.get("version") != PLAN_VERSION:
            raise PlanError(
                f"{where}: unsupported plan version {doc.get('version')!r}: "
                f"this failover reads version {PLAN_VERSION}"
            )
        claimed = doc.pop("fingerprint", None)
        if not isinstance(claimed, str):
            raise PlanError(f"{where}: not a plan: it has no fingerprint")
        try:
            plan = _ADAPTER.validate_python(doc)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise PlanError(
                f"{where}: invalid plan: {loc}: {first['msg']} ({exc.error_count()} problem(s) in all)"
            ) from None
        problem = _inconsistency(plan)
        if problem:
            raise PlanError(f"{where}: invalid plan: {problem}")
        actual = fingerprint_of(doc)
        if actual != claimed and REDACTED in canonical_json(doc):
            raise PlanTamperedError(
                f"{where}: this plan was written with its secrets redacted, for review: it cannot be "
                "applied. Reference the secrets in the runbook (${secret:...}, ${env:...}), or make "
                "the plan file with `failover plan --format json --with-secrets`"
            )
        if actual != claimed:
            raise PlanTamperedError(
                f"{where}: fingerprint mismatch: the file says {claimed[:12]}... but its content "
                f"hashes to {actual[:12]}...: the plan was changed after it was made"
            )
        given = text.encode("utf-8") if isinstance(text, str) else text
        if given != plan.to_json().encode("utf-8"):
            raise PlanTamperedError(
                f"{where}: not in canonical form: plan files are applied (and signed) exactly as "
                "`failover plan --format json` writes them; make it again with that command"
            )
        return plan


_ADAPTER: TypeAdapter[Plan] = TypeAdapter(Plan)
MAX_PLAN_BYTES = 128 * 1024 * 1024  # a 10,000-service plan is a fraction of it
MAX_PLAN_DEPTH = 64  # a plan is six levels deep, parameters included a few more


def _depth(doc: object) -> int:
    """How deep ``doc`` nests, measured without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_PLAN_DEPTH:
            return level
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def _plain(obj: Any) -> dict[str, Any]:
    """A plan value as JSON-ready data (tuples of names stay tuples: JSON writes them as lists)."""
    out: dict[str, Any] = (
        obj._asdict()  # type: ignore[attr-defined]
        if isinstance(obj, tuple)
        else {f.name: getattr(obj, f.name) for f in fields(obj)}
    )
    if out.get("permissions"):
        out["permissions"] = [p._asdict() for p in out["permissions"]]
    return out


def canonical_json(doc: object) -> str:
    """One byte sequence per content: sorted keys, no whitespace, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint_of(content: object) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _inconsistency(plan: Plan) -> str | None:
    """Why the plan's DAG does not hold together, or None."""
    ids: set[str] = set()
    for step in plan.steps:
        if step.id in ids:
            return f"duplicate step id {step.id!r}"
        for dep in step.after:
            if dep not in ids:
                return f"step {step.id!r} runs after {dep!r}, which is not an earlier step of the plan"
        ids.add(step.id)
    for name, listed in (("rollback", plan.rollback), ("critical_path", plan.critical_path)):
        unknown = [s for s in listed if s not in ids]
        if unknown:
            return f"{name} names steps that are not in the plan: {unknown}"
    named = {site.name for site in plan.sites}
    unplaced = sorted(({s.site for s in plan.steps} | {c.site for c in plan.preflight}) - named)
    if plan.sites and unplaced:
        return f"steps run at sites the plan does not describe: {unplaced}"
    checks = [c.id for c in plan.preflight]
    if len(set(checks)) != len(checks):
        return "duplicate preflight check ids"
    return None
