"""Application Load Balancers: weighted forwarding between target groups."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue, model_validator

from failover.errors import ProviderError
from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Action, Context, Params, Permission, Placement


def _sendable(action: dict[str, Any]) -> dict[str, Any]:
    """An action as DescribeListeners or DescribeRules returned it, made fit to send back with
    ModifyListener or ModifyRule (request and answer share one ``Action`` shape, but not what the
    service accepts):

    - ``authenticate-oidc``: Describe never returns the client secret, and a request without one
      is refused unless it says ``UseExistingClientSecret: true``. A ``ClientSecret`` found in the
      action (a snapshot written by hand) is dropped: the secret AWS holds is kept, never resent.
    - ``forward``: ``TargetGroupArn`` may go with ``ForwardConfig`` only when the config holds that
      one target group; otherwise the config says where to forward and ``TargetGroupArn`` is dropped.
    """
    sent = dict(action)
    oidc = sent.get("AuthenticateOidcConfig")
    if isinstance(oidc, dict):
        sent["AuthenticateOidcConfig"] = {
            **{k: v for k, v in oidc.items() if k != "ClientSecret"},
            "UseExistingClientSecret": True,
        }
    groups = (sent.get("ForwardConfig") or {}).get("TargetGroups") or []
    if (
        groups
        and "TargetGroupArn" in sent
        and [g.get("TargetGroupArn") for g in groups] != [sent["TargetGroupArn"]]
    ):
        del sent["TargetGroupArn"]
    return sent


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

    def _weights(self, actions: list[dict[str, Any]], names: dict[str, str]) -> dict[str, int]:
        """Weight per named target group in the forward action (0 when it is not forwarded to)."""
        weights = dict.fromkeys(names.values(), 0)
        forward = next((a for a in actions if a["Type"] == "forward"), None)
        if forward is not None:
            groups = forward.get("ForwardConfig", {}).get("TargetGroups") or [
                {"TargetGroupArn": forward.get("TargetGroupArn"), "Weight": 1}
            ]
            for g in groups:
                if g.get("TargetGroupArn") in names:
                    weights[names[g["TargetGroupArn"]]] = int(g.get("Weight", 1))
        return weights

    def read(self, ctx: Context, params: TargetGroupWeightsParams) -> JsonValue:
        """The weights, and every action of the listener or rule as it is (the rollback snapshot:
        authentication, stickiness, a maintenance response, other target groups)."""
        _, actions, _ = self._where(ctx, params)
        names = {arn: n for n, arn in self._arns(ctx, params, sorted(params.weights)).items()}
        return {"weights": {**self._weights(actions, names)}, "actions": [dict(a) for a in actions]}

    def apply(self, ctx: Context, params: TargetGroupWeightsParams) -> JsonValue:
        """Change only the forward action's weights (other actions and target groups are kept; a
        fixed response or redirect in the forward's place is replaced by the forward)."""
        arn, actions, kind = self._where(ctx, params)
        arns = self._arns(ctx, params, sorted(params.weights))
        if self._weights(actions, {a: n for n, a in arns.items()}) == dict(params.weights):
            return dict(params.weights)
        terminal = next((a for a in actions if a["Type"] in ("forward", "fixed-response", "redirect")), None)
        groups: list[dict[str, Any]] = []
        if terminal is not None and terminal["Type"] == "forward":
            config = terminal.get("ForwardConfig", {})
            groups = [
                dict(g)
                for g in config.get("TargetGroups") or [{"TargetGroupArn": terminal["TargetGroupArn"]}]
            ]
        for group in groups:
            name = next((n for n, a in arns.items() if a == group["TargetGroupArn"]), None)
            group["Weight"] = params.weights[name] if name is not None else int(group.get("Weight", 1))
        known = {g["TargetGroupArn"] for g in groups}
        groups += [
            {"TargetGroupArn": arns[n], "Weight": w}
            for n, w in sorted(params.weights.items())
            if arns[n] not in known
        ]
        forward: dict[str, Any] = {"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}
        if (
            terminal is not None
            and terminal["Type"] == "forward"
            and "TargetGroupStickinessConfig" in terminal.get("ForwardConfig", {})
        ):
            forward["ForwardConfig"]["TargetGroupStickinessConfig"] = terminal["ForwardConfig"][
                "TargetGroupStickinessConfig"
            ]
        if terminal is not None and "Order" in terminal:
            forward["Order"] = terminal["Order"]
        kept = [a for a in actions if a is not terminal]
        self._write(ctx, params, arn, kind, [*kept, forward])
        return dict(params.weights)

    def _write(
        self,
        ctx: Context,
        params: TargetGroupWeightsParams,
        arn: str,
        kind: str,
        actions: list[dict[str, Any]],
    ) -> None:
        elb = client(ctx, "elbv2")
        sent = [_sendable(a) for a in actions]
        with aws_errors(ctx, f"load balancer {params.load_balancer}:{params.port}"):
            if kind == "listener":
                elb.modify_listener(ListenerArn=arn, DefaultActions=sent)
            else:
                elb.modify_rule(RuleArn=arn, Actions=sent)

    def verify(self, ctx: Context, params: TargetGroupWeightsParams) -> bool:
        now = self.read(ctx, params)
        return isinstance(now, dict) and now.get("weights") == dict(params.weights)

    def compensate(self, ctx: Context, params: TargetGroupWeightsParams, before: JsonValue) -> None:
        actions = before.get("actions") if isinstance(before, dict) else None
        if not isinstance(actions, list) or not actions:
            raise ProviderError(f"{self.name}: the snapshot to restore is {before!r}, expected the actions")
        arn, now, kind = self._where(ctx, params)
        if now != actions:
            self._write(ctx, params, arn, kind, actions)  # type: ignore[arg-type]
