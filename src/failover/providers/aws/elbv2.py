"""Application Load Balancers: weighted forwarding between target groups."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue, model_validator

from failover.errors import ProviderError
from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Action, Context, Params, Permission, Placement


class TargetGroupWeightsParams(Params):
    load_balancer: str = Field(description="Load balancer name.")
    port: int = Field(ge=1, le=65535, description="Listener port.")
    rule_priority: int | None = Field(
        None, ge=1, description="Rule to change; default: the listener's default action."
    )
    weights: dict[str, int] = Field(description="Weight (0-999) per target group name.")

    @model_validator(mode="after")
    def _weights(self) -> TargetGroupWeightsParams:
        if not self.weights:
            raise ValueError("weights must name at least one target group")
        bad = {k: v for k, v in self.weights.items() if not 0 <= v <= 999}
        if bad:
            raise ValueError(f"weights must be 0-999, found {bad}")
        return self


class SetTargetGroupWeights(Action[TargetGroupWeightsParams]):
    """Set the weights of a listener's (or rule's) weighted forward action between target groups."""

    name = "aws.elbv2.set_target_group_weights"
    cloud = "aws"
    params_model = TargetGroupWeightsParams
    default_estimate_s = 10.0
    permission_names = (
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:ModifyRule",
    )

    def describe(self, params: TargetGroupWeightsParams, where: Placement) -> str:
        what = f"rule {params.rule_priority}" if params.rule_priority else "default action"
        weights = ", ".join(f"{k}={v}" for k, v in sorted(params.weights.items()))
        return f"Forward {params.load_balancer}:{params.port} ({what}) {where.phrase()} by weight: {weights}"

    def permissions(self, params: TargetGroupWeightsParams, where: Placement) -> list[Permission]:
        region = where.region or "*"
        lb = params.load_balancer
        modify = (
            Permission(
                "aws",
                "elasticloadbalancing:ModifyRule",
                f"arn:aws:elasticloadbalancing:{region}:*:listener-rule/app/{lb}/*",
            )
            if params.rule_priority
            else Permission(
                "aws",
                "elasticloadbalancing:ModifyListener",
                f"arn:aws:elasticloadbalancing:{region}:*:listener/app/{lb}/*",
            )
        )
        reads = ["DescribeLoadBalancers", "DescribeListeners", "DescribeTargetGroups"]
        if params.rule_priority:
            reads.append("DescribeRules")
        return [*(Permission("aws", f"elasticloadbalancing:{r}") for r in reads), modify]

    def _where(self, ctx: Context, params: TargetGroupWeightsParams) -> tuple[str, list[dict[str, Any]], str]:
        """(listener or rule ARN, its actions, "listener" | "rule")."""
        elb = client(ctx, "elbv2")
        name = f"load balancer {params.load_balancer}"
        with aws_errors(ctx, name):
            lb = elb.describe_load_balancers(Names=[params.load_balancer])["LoadBalancers"][0]
            listeners = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        listener = next((x for x in listeners if x["Port"] == params.port), None)
        if listener is None:
            ports = ", ".join(str(x["Port"]) for x in listeners) or "none"
            raise ProviderError(
                f"{name} at {ctx.placement.site}: no listener on port {params.port} (ports: {ports})"
            )
        if params.rule_priority is None:
            return listener["ListenerArn"], listener["DefaultActions"], "listener"
        with aws_errors(ctx, name):
            rules = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
        rule = next((r for r in rules if r["Priority"] == str(params.rule_priority)), None)
        if rule is None:
            raise ProviderError(
                f"{name}:{params.port} at {ctx.placement.site}: no rule of priority {params.rule_priority}"
            )
        return rule["RuleArn"], rule["Actions"], "rule"

    def _arns(self, ctx: Context, params: TargetGroupWeightsParams, names: list[str]) -> dict[str, str]:
        with aws_errors(ctx, f"target groups {', '.join(names)}"):
            groups = client(ctx, "elbv2").describe_target_groups(Names=names)["TargetGroups"]
        return {g["TargetGroupName"]: g["TargetGroupArn"] for g in groups}

    def read(self, ctx: Context, params: TargetGroupWeightsParams) -> JsonValue:
        _, actions, _ = self._where(ctx, params)
        arns = self._arns(ctx, params, sorted(params.weights))
        names = {arn: n for n, arn in arns.items()}
        forward = next((a for a in actions if a["Type"] == "forward"), None)
        weights: dict[str, JsonValue] = dict.fromkeys(params.weights, 0)
        if forward is not None:
            groups = forward.get("ForwardConfig", {}).get("TargetGroups") or [
                {"TargetGroupArn": forward.get("TargetGroupArn"), "Weight": 1}
            ]
            for g in groups:
                if g.get("TargetGroupArn") in names:
                    weights[names[g["TargetGroupArn"]]] = int(g.get("Weight", 1))
        return weights

    def _set(self, ctx: Context, params: TargetGroupWeightsParams, weights: dict[str, int]) -> None:
        if self.read(ctx, params) == weights:
            return
        arn, _, kind = self._where(ctx, params)
        arns = self._arns(ctx, params, sorted(weights))
        action = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": arns[n], "Weight": w} for n, w in sorted(weights.items())]
            },
        }
        elb = client(ctx, "elbv2")
        with aws_errors(ctx, f"load balancer {params.load_balancer}:{params.port}"):
            if kind == "listener":
                elb.modify_listener(ListenerArn=arn, DefaultActions=[action])
            else:
                elb.modify_rule(RuleArn=arn, Actions=[action])

    def apply(self, ctx: Context, params: TargetGroupWeightsParams) -> JsonValue:
        self._set(ctx, params, dict(params.weights))
        return dict(params.weights)

    def verify(self, ctx: Context, params: TargetGroupWeightsParams) -> bool:
        return self.read(ctx, params) == dict(params.weights)

    def compensate(self, ctx: Context, params: TargetGroupWeightsParams, before: JsonValue) -> None:
        if not isinstance(before, dict) or not all(isinstance(v, int) for v in before.values()):
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected weights")
        self._set(ctx, params, {k: int(v) for k, v in before.items()})  # type: ignore[arg-type]
