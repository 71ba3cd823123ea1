"""Route 53 Application Recovery Controller: routing control states, with safety rules enforced."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, JsonValue, model_validator

from failover.errors import ProviderError, TransientProviderError
from failover.providers.aws._client import READ_TIMEOUT_S, aws_errors, client, floor_budget
from failover.providers.base import Action, Context, Params, Permission, Placement

State = Literal["On", "Off"]


_MEANING = {
    "ConflictException": "a safety rule refused the change (it would break a rule of the control panel)",
    "ValidationException": "ARC rejected the request",
}


class ClusterEndpoint(Params):
    endpoint: str = Field(description="e.g. https://host.route53-recovery-cluster.us-west-2.amazonaws.com/v1")
    region: str = Field(description="The endpoint's region, e.g. us-west-2.")


CONNECT_TIMEOUT_S = 3.0


def arc_client(ctx: Context, endpoint: ClusterEndpoint, read_timeout: float = READ_TIMEOUT_S) -> Any:
    """A client of one ARC cluster endpoint: one attempt and a short connect timeout, so a dead
    endpoint is passed over quickly for the next one (both within the step's time left)."""
    return client(
        ctx,
        "route53-recovery-cluster",
        endpoint_url=endpoint.endpoint,
        region=endpoint.region,
        read_timeout=read_timeout,
        attempts=1,
        connect_timeout=CONNECT_TIMEOUT_S,
    )


def share(ctx: Context, endpoints: int) -> float:
    """How long one of the ``endpoints`` still to try may wait for its answer: an equal share of
    the step's time left (one of BUDGETS), so that an endpoint that accepts connections and never
    answers does not use up the time of the ones after it; READ_TIMEOUT_S at most."""
    left = ctx.remaining()
    if left is None:
        return READ_TIMEOUT_S
    return min(READ_TIMEOUT_S, floor_budget(left / max(1, endpoints)))


class RoutingControlsParams(Params):
    controls: dict[str, State] = Field(description="State (On or Off) per routing control ARN.")
    cluster_endpoints: list[ClusterEndpoint] = Field(
        min_length=1, description="The ARC cluster's regional endpoints; each is tried in turn."
    )

    @model_validator(mode="after")
    def _some(self) -> RoutingControlsParams:
        if not self.controls:
            raise ValueError("controls must name at least one routing control")
        return self


class SetRoutingControls(Action[RoutingControlsParams]):
    """Set Route 53 ARC routing controls in one request; a safety-rule violation is a fatal error."""

    name = "aws.arc.set_routing_controls"
    cloud = "aws"
    params_model = RoutingControlsParams
    default_estimate_s = 10.0
    permission_names = (
        "route53-recovery-cluster:GetRoutingControlState",
        "route53-recovery-cluster:UpdateRoutingControlStates",
    )

    def describe(self, params: RoutingControlsParams, where: Placement) -> str:
        states = ", ".join(
            f"{arn.rsplit('/', 1)[-1]} {state}" for arn, state in sorted(params.controls.items())
        )
        return f"Set Route 53 ARC routing controls: {states}"

    def permissions(self, params: RoutingControlsParams, where: Placement) -> list[Permission]:
        return [
            Permission("aws", name, arn) for arn in sorted(params.controls) for name in self.permission_names
        ]

    def _call(
        self, ctx: Context, params: RoutingControlsParams, method: str, **kwargs: object
    ) -> dict[str, Any]:
        """Call each cluster endpoint in turn until one answers (ARC's data plane is regional),
        the one in the step's own region first; a safety-rule refusal is final. Each waits for a
        share of the time left, and none is called once the step's deadline passed
        (DeadlineError)."""
        last: TransientProviderError | None = None
        here = ctx.placement.region
        endpoints = sorted(params.cluster_endpoints, key=lambda e: e.region != here)
        for i, endpoint in enumerate(endpoints):
            arc = arc_client(ctx, endpoint, share(ctx, len(endpoints) - i))
            try:
                with aws_errors(ctx, f"ARC cluster endpoint {endpoint.endpoint}", _MEANING):
                    return dict(getattr(arc, method)(**kwargs))
            except TransientProviderError as exc:
                last = exc
        assert last is not None
        raise last

    def read(self, ctx: Context, params: RoutingControlsParams) -> JsonValue:
        return {
            arn: str(
                self._call(ctx, params, "get_routing_control_state", RoutingControlArn=arn)[
                    "RoutingControlState"
                ]
            )
            for arn in sorted(params.controls)
        }

    def _set(self, ctx: Context, params: RoutingControlsParams, states: dict[str, str]) -> None:
        entries = [{"RoutingControlArn": arn, "RoutingControlState": s} for arn, s in sorted(states.items())]
        self._call(ctx, params, "update_routing_control_states", UpdateRoutingControlStateEntries=entries)

    def apply(self, ctx: Context, params: RoutingControlsParams) -> JsonValue:
        if self.read(ctx, params) != dict(params.controls):
            self._set(ctx, params, dict(params.controls))
        return dict(params.controls)

    def verify(self, ctx: Context, params: RoutingControlsParams) -> bool:
        return self.read(ctx, params) == dict(params.controls)

    def compensate(self, ctx: Context, params: RoutingControlsParams, before: JsonValue) -> None:
        if not isinstance(before, dict) or not all(v in ("On", "Off") for v in before.values()):
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected On/Off states")
        self._set(ctx, params, {k: str(v) for k, v in before.items()})
