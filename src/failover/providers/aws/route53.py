"""Route 53: weighted and failover record sets (DNS traffic shifts), and health checks."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue, model_validator

from failover.durations import Duration
from failover.errors import ProviderError
from failover.providers.aws._client import aws_errors, client
from failover.providers.base import (
    Action,
    Check,
    CheckResult,
    Context,
    Params,
    Permission,
    Placement,
    wait_until,
)


class _Zone(Params):
    zone_id: str | None = Field(None, description="Hosted zone id, e.g. Z0123456789ABC.")
    zone_name: str | None = Field(None, description="Hosted zone name, e.g. shop.example.com.")
    wait_timeout: Duration = Field(300.0, description="How long to wait for the change to be INSYNC.")

    @model_validator(mode="after")
    def _one_zone(self) -> _Zone:
        if (self.zone_id is None) == (self.zone_name is None):
            raise ValueError("give exactly one of zone_id or zone_name")
        return self

    @property
    def zone(self) -> str:
        return self.zone_id or str(self.zone_name)


class WeightedRecord(Params):
    name: str = Field(description="Record name, e.g. api.shop.example.com.")
    type: str = Field("A", description="Record type.")
    weights: dict[str, int] = Field(description="Weight (0-255) per set identifier.")

    @model_validator(mode="after")
    def _weights(self) -> WeightedRecord:
        if not self.weights:
            raise ValueError("weights must name at least one set identifier")
        bad = {k: v for k, v in self.weights.items() if not 0 <= v <= 255}
        if bad:
            raise ValueError(f"weights must be 0-255, found {bad}")
        return self


class SetWeightsParams(_Zone):
    records: list[WeightedRecord] = Field(min_length=1)


class FailoverRecord(Params):
    name: str
    type: str = "A"
    primary: str = Field(description="Set identifier of the record to make PRIMARY; the other is SECONDARY.")


class SetFailoverParams(_Zone):
    records: list[FailoverRecord] = Field(min_length=1)


def _fqdn(name: str) -> str:
    """A name as Route 53 answers it: lower case, a final dot, ``*`` as ``\\052``."""
    name = name.lower().replace("*", "\\052")
    return name if name.endswith(".") else name + "."


def _key(name: str, type_: str, set_id: str) -> str:
    return f"{_fqdn(name)} {type_} {set_id}"


def zone_id(ctx: Context, params: _Zone) -> str:
    """The hosted zone's id, looked up by name when a name was given."""
    if params.zone_id:
        return params.zone_id.rsplit("/", 1)[-1]
    name = _fqdn(str(params.zone_name))
    with aws_errors(ctx, f"hosted zone {name}"):
        zones = client(ctx, "route53").list_hosted_zones_by_name(DNSName=name, MaxItems="10")["HostedZones"]
    found = [
        z for z in zones if _fqdn(z["Name"]) == name and not z.get("Config", {}).get("PrivateZone", False)
    ]
    found = found or [z for z in zones if _fqdn(z["Name"]) == name]
    if len(found) != 1:
        raise ProviderError(
            f"hosted zone {name} at {ctx.placement.site}: expected one zone of that name, found {len(found)}"
        )
    return str(found[0]["Id"]).rsplit("/", 1)[-1]


def record_sets(ctx: Context, zone: str, name: str, type_: str) -> dict[str, dict[str, Any]]:
    """The record sets named ``name`` of type ``type_``, by set identifier."""
    fqdn = _fqdn(name)
    found: dict[str, dict[str, Any]] = {}
    with aws_errors(ctx, f"{fqdn} {type_} in hosted zone {zone}"):
        pages = client(ctx, "route53").get_paginator("list_resource_record_sets")
        for page in pages.paginate(HostedZoneId=zone, StartRecordName=fqdn, StartRecordType=type_):
            for rrset in page["ResourceRecordSets"]:
                if _fqdn(rrset["Name"]) != fqdn or rrset["Type"] != type_:
                    return found
                found[rrset.get("SetIdentifier", "")] = rrset
    return found


def _wanted(ctx: Context, zone: str, name: str, type_: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    sets = record_sets(ctx, zone, name, type_)
    missing = sorted(set(ids) - set(sets))
    if missing:
        raise ProviderError(
            f"{_fqdn(name)} {type_} in hosted zone {zone} at {ctx.placement.site}: no record set with "
            f"identifier {', '.join(missing)} (found: {', '.join(sorted(sets)) or 'none'})"
        )
    return sets


def change(ctx: Context, zone: str, changes: list[dict[str, Any]], timeout: float, what: str) -> None:
    """One change batch for the zone; then wait until Route 53 says it is INSYNC."""
    if not changes:
        return
    r53 = client(ctx, "route53")
    with aws_errors(ctx, f"hosted zone {zone}"):
        info = r53.change_resource_record_sets(
            HostedZoneId=zone,
            ChangeBatch={"Comment": f"failover {ctx.idempotency_token}", "Changes": changes},
        )["ChangeInfo"]

    def insync() -> bool:
        with aws_errors(ctx, f"change {info['Id']}"):
            return bool(r53.get_change(Id=info["Id"])["ChangeInfo"]["Status"] == "INSYNC")

    wait_until(ctx, f"{what} in hosted zone {zone}", insync, timeout)


def _zone_permissions(params: _Zone, cloud: str, writes: bool) -> list[Permission]:
    zone = f"arn:aws:route53:::hostedzone/{params.zone_id.rsplit('/', 1)[-1]}" if params.zone_id else "*"
    found = [
        Permission(cloud, "route53:ListResourceRecordSets", zone),
        Permission(cloud, "route53:GetChange", "arn:aws:route53:::change/*"),
    ]
    if writes:
        found.append(Permission(cloud, "route53:ChangeResourceRecordSets", zone))
    if params.zone_name:
        found.append(Permission(cloud, "route53:ListHostedZonesByName"))
    return found


class SetWeights(Action[SetWeightsParams]):
    """Set the weights of weighted record sets (one change batch per hosted zone), wait until INSYNC."""

    name = "aws.route53.set_weights"
    cloud = "aws"
    control_plane = "us-east-1"  # record changes go through Route 53's control plane there

    def resources(self, params: Any, where: Placement) -> tuple[str, ...]:
        """The hosted zone, by id or by name (a zone is global: no region, no site)."""
        return (f"aws:route53:hostedzone/{params.zone.rstrip('.').lower()}",)

    params_model = SetWeightsParams
    default_estimate_s = 60.0
    permission_names = (
        "route53:ChangeResourceRecordSets",
        "route53:GetChange",
        "route53:ListHostedZonesByName",
        "route53:ListResourceRecordSets",
    )

    def describe(self, params: SetWeightsParams, where: Placement) -> str:
        parts = [
            f"{r.name} " + ", ".join(f"{k}={v}" for k, v in sorted(r.weights.items())) for r in params.records
        ]
        return f"Set Route 53 weights in zone {params.zone}: {'; '.join(parts)}"

    def permissions(self, params: SetWeightsParams, where: Placement) -> list[Permission]:
        return _zone_permissions(params, "aws", writes=True)

    def read(self, ctx: Context, params: SetWeightsParams) -> JsonValue:
        zone = zone_id(ctx, params)
        now: dict[str, JsonValue] = {}
        for record in params.records:
            sets = _wanted(ctx, zone, record.name, record.type, list(record.weights))
            for set_id in record.weights:
                now[_key(record.name, record.type, set_id)] = sets[set_id].get("Weight")
        return now

    def _set(self, ctx: Context, params: SetWeightsParams, weights: dict[str, JsonValue]) -> None:
        zone = zone_id(ctx, params)
        changes = []
        for record in params.records:
            sets = _wanted(ctx, zone, record.name, record.type, list(record.weights))
            for set_id in record.weights:
                target = weights.get(_key(record.name, record.type, set_id))
                if isinstance(target, int) and sets[set_id].get("Weight") != target:
                    changes.append(
                        {"Action": "UPSERT", "ResourceRecordSet": {**sets[set_id], "Weight": target}}
                    )
        change(ctx, zone, changes, params.wait_timeout, "weights")

    def _desired(self, params: SetWeightsParams) -> dict[str, JsonValue]:
        return {_key(r.name, r.type, k): v for r in params.records for k, v in r.weights.items()}

    def apply(self, ctx: Context, params: SetWeightsParams) -> JsonValue:
        self._set(ctx, params, self._desired(params))
        return self._desired(params)

    def verify(self, ctx: Context, params: SetWeightsParams) -> bool:
        return self.read(ctx, params) == self._desired(params)

    def compensate(self, ctx: Context, params: SetWeightsParams, before: JsonValue) -> None:
        if not isinstance(before, dict):
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected weights")
        self._set(ctx, params, before)


class SetFailoverRecords(Action[SetFailoverParams]):
    """Make one record set of each failover pair PRIMARY and the other SECONDARY, wait until INSYNC."""

    name = "aws.route53.set_failover_records"
    cloud = "aws"
    control_plane = "us-east-1"  # record changes go through Route 53's control plane there

    def resources(self, params: Any, where: Placement) -> tuple[str, ...]:
        """The hosted zone, by id or by name (a zone is global: no region, no site)."""
        return (f"aws:route53:hostedzone/{params.zone.rstrip('.').lower()}",)

    params_model = SetFailoverParams
    default_estimate_s = 60.0
    permission_names = SetWeights.permission_names

    def describe(self, params: SetFailoverParams, where: Placement) -> str:
        parts = [f"{r.name} -> {r.primary}" for r in params.records]
        return f"Make the PRIMARY Route 53 failover records in zone {params.zone}: {'; '.join(parts)}"

    def permissions(self, params: SetFailoverParams, where: Placement) -> list[Permission]:
        return _zone_permissions(params, "aws", writes=True)

    def _sets(self, ctx: Context, zone: str, record: FailoverRecord) -> dict[str, dict[str, Any]]:
        sets = {
            k: v for k, v in record_sets(ctx, zone, record.name, record.type).items() if v.get("Failover")
        }
        if record.primary not in sets or len(sets) != 2:
            raise ProviderError(
                f"{_fqdn(record.name)} {record.type} in hosted zone {zone} at {ctx.placement.site}: expected "
                f"a failover pair including {record.primary!r}, found {', '.join(sorted(sets)) or 'none'}"
            )
        return sets

    def _pairs(
        self, ctx: Context, params: SetFailoverParams
    ) -> tuple[str, list[tuple[str, str, dict[str, Any]]]]:
        """The zone, and (key, wanted role, record set) of every member of the named pairs: one
        listing serves the snapshot, the wanted state and the change."""
        zone = zone_id(ctx, params)
        members = [
            (_key(r.name, r.type, set_id), "PRIMARY" if set_id == r.primary else "SECONDARY", rrset)
            for r in params.records
            for set_id, rrset in self._sets(ctx, zone, r).items()
        ]
        return zone, members

    def read(self, ctx: Context, params: SetFailoverParams) -> JsonValue:
        _, members = self._pairs(ctx, params)
        return {key: rrset["Failover"] for key, _, rrset in members}

    def _set(self, ctx: Context, params: SetFailoverParams, roles: dict[str, JsonValue] | None) -> JsonValue:
        """Give each member its role (``roles``, or the wanted ones): one change batch."""
        zone, members = self._pairs(ctx, params)
        target: dict[str, JsonValue] = dict(roles) if roles is not None else {k: w for k, w, _ in members}
        changes = [
            {"Action": "UPSERT", "ResourceRecordSet": {**rrset, "Failover": target[key]}}
            for key, _, rrset in members
            if target.get(key) in ("PRIMARY", "SECONDARY") and rrset["Failover"] != target[key]
        ]
        change(ctx, zone, changes, params.wait_timeout, "failover records")
        return target

    def apply(self, ctx: Context, params: SetFailoverParams) -> JsonValue:
        return self._set(ctx, params, None)

    def verify(self, ctx: Context, params: SetFailoverParams) -> bool:
        _, members = self._pairs(ctx, params)
        return all(rrset["Failover"] == wanted for _, wanted, rrset in members)

    def compensate(self, ctx: Context, params: SetFailoverParams, before: JsonValue) -> None:
        if not isinstance(before, dict):
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected roles")
        self._set(ctx, params, before)


class HealthCheckParams(Params):
    health_check_id: str = Field(description="Route 53 health check id.")
    min_healthy: float = Field(1.0, gt=0, le=1, description="Fraction of checkers that must report healthy.")


class HealthCheckOk(Check[HealthCheckParams]):
    """Pass when enough Route 53 health checkers report the health check healthy."""

    name = "aws.route53.health_check_ok"
    cloud = "aws"
    params_model = HealthCheckParams
    default_estimate_s = 2.0
    permission_names = ("route53:GetHealthCheckStatus",)

    def describe(self, params: HealthCheckParams, where: Placement) -> str:
        return f"Check that Route 53 health check {params.health_check_id} is healthy"

    def permissions(self, params: HealthCheckParams, where: Placement) -> list[Permission]:
        arn = f"arn:aws:route53:::healthcheck/{params.health_check_id}"
        return [Permission("aws", "route53:GetHealthCheckStatus", arn)]

    def run(self, ctx: Context, params: HealthCheckParams) -> CheckResult:
        with aws_errors(ctx, f"health check {params.health_check_id}"):
            found = client(ctx, "route53").get_health_check_status(HealthCheckId=params.health_check_id)
        statuses = [o.get("StatusReport", {}).get("Status", "") for o in found["HealthCheckObservations"]]
        healthy = sum(1 for s in statuses if s.startswith("Success"))
        share = healthy / len(statuses) if statuses else 0.0
        ok = bool(statuses) and share >= params.min_healthy
        message = f"{healthy} of {len(statuses)} checkers report healthy (need {params.min_healthy:.0%})"
        return CheckResult(ok, {"healthy": healthy, "checkers": len(statuses)}, message)
