"""VM instances: start the standby's, stop the old primary's."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from failover.durations import Duration
from failover.errors import ProviderError
from failover.providers.base import Action, Context, Params, Permission, Placement, wait_until
from failover.providers.gcp._client import (
    call_options,
    compute,
    gcp_errors,
    mutate,
    project,
)

RUNNING, STOPPED = "RUNNING", "TERMINATED"


class InstancesParams(Params):
    zone: str = Field(description="The instances' zone.")
    instances: list[str] = Field(min_length=1, description="Instance names.")
    wait_timeout: Duration = Field(300.0, description="How long to wait for every instance to get there.")


class _SetPower(Action[InstancesParams]):
    """Start or stop named instances; compensation puts each back as it was."""

    cloud = "gcp"
    params_model = InstancesParams
    default_estimate_s = 60.0
    apply_verifies = True  # apply waits until verify's condition holds
    permission_names = (
        "compute.instances.get",
        "compute.instances.start",
        "compute.instances.stop",
        "compute.zoneOperations.get",
    )
    wanted: ClassVar[str]
    verb: ClassVar[str]

    def describe(self, params: InstancesParams, where: Placement) -> str:
        names = ", ".join(params.instances)
        return f"{self.verb.capitalize()} instances {names} in zone {params.zone} {where.phrase()}"

    def permissions(self, params: InstancesParams, where: Placement) -> list[Permission]:
        found = [Permission("gcp", "compute.zoneOperations.get")]
        for name in params.instances:
            resource = f"projects/{where.project or '*'}/zones/{params.zone}/instances/{name}"
            found += [  # and the opposite verb, which compensation uses
                Permission("gcp", f"compute.instances.{verb}", resource) for verb in ("get", "start", "stop")
            ]
        return found

    def _status(self, ctx: Context, params: InstancesParams, name: str) -> str:
        with gcp_errors(ctx, f"instance {params.zone}/{name}"):
            found = compute(ctx, "InstancesClient").get(
                request={"project": project(ctx), "zone": params.zone, "instance": name}, **call_options(ctx)
            )
        return str(found.status)

    def _statuses(self, ctx: Context, params: InstancesParams) -> dict[str, str]:
        return {name: self._status(ctx, params, name) for name in params.instances}

    def read(self, ctx: Context, params: InstancesParams) -> JsonValue:
        return dict(self._statuses(ctx, params))

    def _power(self, ctx: Context, params: InstancesParams, name: str, verb: str, purpose: str) -> None:
        client = compute(ctx, "InstancesClient")
        mutate(
            ctx,
            getattr(client, f"{verb}_unary"),
            {"project": project(ctx), "zone": params.zone, "instance": name},
            f"instance {params.zone}/{name}",
            f"{verb} of instance {params.zone}/{name}",
            *(purpose, params.zone, name, verb),
        )

    def apply(self, ctx: Context, params: InstancesParams) -> JsonValue:
        for name, status in self._statuses(ctx, params).items():
            if status != self.wanted:
                self._power(ctx, params, name, self.verb, self.verb)
        wait_until(
            ctx,
            f"instances {', '.join(params.instances)} {self.wanted}",
            lambda: self.verify(ctx, params),
            params.wait_timeout,
        )
        return self.read(ctx, params)

    def verify(self, ctx: Context, params: InstancesParams) -> bool:
        return all(status == self.wanted for status in self._statuses(ctx, params).values())

    def compensate(self, ctx: Context, params: InstancesParams, before: JsonValue) -> None:
        if not isinstance(before, dict):
            raise ProviderError(
                f"{self.name}: the snapshot to restore is {before!r}, expected a status per instance"
            )
        wanted = {
            name: was
            for name, was in before.items()
            if name in params.instances and was in (RUNNING, STOPPED)
        }  # only what this step changed, and only to a state that can be asked for
        for name, was in wanted.items():
            if self._status(ctx, params, name) != was:
                self._power(ctx, params, name, "start" if was == RUNNING else "stop", "compensate")
        wait_until(
            ctx,
            f"instances {', '.join(wanted)} back",
            lambda: all(self._status(ctx, params, n) == was for n, was in wanted.items()),
            params.wait_timeout,
        )


class StartInstances(_SetPower):
    """Start named VM instances in a zone; wait until they are RUNNING."""

    name = "gcp.compute.start_instances"
    wanted, verb = RUNNING, "start"


class StopInstances(_SetPower):
    """Stop named VM instances in a zone; wait until they are TERMINATED."""

    name = "gcp.compute.stop_instances"
    wanted, verb = STOPPED, "stop"
    permission_names = (
        "compute.instances.get",
        "compute.instances.stop",
        "compute.instances.start",
        "compute.zoneOperations.get",
    )
