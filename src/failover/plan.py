"""The plan: the concrete, ordered DAG of steps for one scenario, as a reviewed, fingerprinted file.

A plan is made by the planner, rendered for people, written as canonical JSON, and read back by
the executor, which refuses it unless its content still hashes to its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from failover.errors import PlanError

PLAN_VERSION: Literal[1] = 1
Mode = Literal["graceful", "ungraceful"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Scenario(_Frozen):
    """What to fail over: from which site to which, in which mode, and which services (all if empty)."""

    from_: str = Field(alias="from")
    to: str
    mode: Mode = "graceful"
    scope: tuple[str, ...] = ()

    def reverse(self) -> Scenario:
        """The failback scenario: the same, with from and to swapped."""
        return self.model_copy(update={"from_": self.to, "to": self.from_})


class PermissionDoc(_Frozen):
    cloud: str
    action: str
    resource: str = "*"


class PlannedCheck(_Frozen):
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


class PlannedStep(_Frozen):
    """A node of the plan DAG: an action (``kind: action``) or a verify check (``kind: verify``)."""

    id: str
    service: str
    kind: Literal["action", "verify"] = "action"
    action: str
    site: str
    params: dict[str, JsonValue]
    description: str
    note: str | None = None
    after: tuple[str, ...] = ()
    reversible: bool = False
    pivot: bool = False
    approval: bool = False
    timeout_s: float
    retries: int
    approval_timeout_s: float
    estimate_s: float
    skipped: bool = False
    best_effort: bool = False
    skip_reason: str | None = None
    follows_pivot: str | None = None
    permissions: tuple[PermissionDoc, ...] = ()


class ServiceSummary(_Frozen):
    """A service in the plan: its targets and when the plan predicts it is done."""

    name: str
    tier: str | None = None
    depends_on: tuple[str, ...] = ()
    rto_target_s: float | None = None
    rpo_target_s: float | None = None
    predicted_s: float = 0.0


class RunbookRef(_Frozen):
    """Which runbook, exactly, the plan was made from."""

    name: str
    sha256: str
    path: str | None = None


class Plan(_Frozen):
    """A concrete plan; ``steps`` are in a topological order of their ``after`` edges."""

    version: Literal[1] = PLAN_VERSION
    runbook: RunbookRef
    scenario: Scenario
    preflight: tuple[PlannedCheck, ...] = ()
    steps: tuple[PlannedStep, ...] = ()
    rollback: tuple[str, ...] = ()
    predicted_rto_s: float = 0.0
    rto_target_s: float | None = None
    critical_path: tuple[str, ...] = ()
    services: tuple[ServiceSummary, ...] = ()
    warnings: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        _check_consistency(self)
        return self

    def content(self) -> dict[str, Any]:
        """The plan as JSON-ready data, without its fingerprint."""
        return self.model_dump(mode="json", by_alias=True)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the canonical JSON of the content: any change to the plan changes it."""
        return fingerprint_of(self.content())

    @cached_property
    def steps_by_id(self) -> dict[str, PlannedStep]:
        return {step.id: step for step in self.steps}

    def to_json(self, *, indent: int | None = 2) -> str:
        """The plan file: content plus fingerprint."""
        doc = {"version": self.version, "fingerprint": self.fingerprint, **self.content()}
        return json.dumps(doc, indent=indent, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "plan") -> Plan:
        """Read a plan file back: valid JSON, valid schema, consistent DAG, matching fingerprint."""
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{where}: not a plan: invalid JSON ({exc})") from None
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
            plan = cls.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise PlanError(
                f"{where}: invalid plan: {loc}: {first['msg']} ({exc.error_count()} problem(s) in all)"
            ) from None
        actual = fingerprint_of(doc)
        if actual != claimed:
            raise PlanError(
                f"{where}: fingerprint mismatch: the file says {claimed[:12]}... but its content "
                f"hashes to {actual[:12]}...: the plan was changed after it was made"
            )
        return plan


def canonical_json(doc: object) -> str:
    """One byte sequence per content: sorted keys, no whitespace, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint_of(content: object) -> str:
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _check_consistency(plan: Plan) -> None:
    ids: set[str] = set()
    for step in plan.steps:
        for dep in step.after:
            if dep not in ids:
                raise ValueError(
                    f"step {step.id!r} runs after {dep!r}, which is not an earlier step of the plan"
                )
        if step.id in ids:
            raise ValueError(f"duplicate step id {step.id!r}")
        ids.add(step.id)
    for name, listed in (("rollback", plan.rollback), ("critical_path", plan.critical_path)):
        unknown = [s for s in listed if s not in ids]
        if unknown:
            raise ValueError(f"{name} names steps that are not in the plan: {unknown}")
    checks = [c.id for c in plan.preflight]
    if len(set(checks)) != len(checks):
        raise ValueError("duplicate preflight check ids")
