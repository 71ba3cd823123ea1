"""CloudWatch alarms: is the target region quiet enough to move into?"""

from __future__ import annotations

from pydantic import Field, model_validator

from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Check, CheckResult, Context, Params, Permission, Placement


class AlarmsOkParams(Params):
    names: list[str] = Field(default_factory=list, description="Alarm names that must not be in ALARM.")
    prefix: str | None = Field(None, description="Every alarm whose name starts with this.")

    @model_validator(mode="after")
    def _some(self) -> AlarmsOkParams:
        if not self.names and not self.prefix:
            raise ValueError("give names, a prefix, or both")
        return self


class AlarmsOk(Check[AlarmsOkParams]):
    """Pass when no alarm among the names (or with the prefix) is in ALARM, and every named alarm exists."""

    name = "aws.cloudwatch.alarms_ok"
    cloud = "aws"
    params_model = AlarmsOkParams
    default_estimate_s = 1.0
    permission_names = ("cloudwatch:DescribeAlarms",)

    def describe(self, params: AlarmsOkParams, where: Placement) -> str:
        which = [*params.names, *([f"{params.prefix}*"] if params.prefix else [])]
        return f"Check that CloudWatch alarms {', '.join(which)} {where.phrase()} are not in ALARM"

    def permissions(self, params: AlarmsOkParams, where: Placement) -> list[Permission]:
        region = where.region or "*"
        arns = [f"arn:aws:cloudwatch:{region}:*:alarm:{n}" for n in params.names]
        if params.prefix:
            arns.append(f"arn:aws:cloudwatch:{region}:*:alarm:{params.prefix}*")
        return [Permission("aws", "cloudwatch:DescribeAlarms", arn) for arn in arns]

    def run(self, ctx: Context, params: AlarmsOkParams) -> CheckResult:
        cw = client(ctx, "cloudwatch")
        states: dict[str, str] = {}
        with aws_errors(ctx, "CloudWatch alarms"):
            pages = cw.get_paginator("describe_alarms")
            queries: list[dict[str, object]] = []
            if params.names:
                queries.extend(
                    {"AlarmNames": params.names[i : i + 100]} for i in range(0, len(params.names), 100)
                )
            if params.prefix:
                queries.append({"AlarmNamePrefix": params.prefix})
            for query in queries:
                for page in pages.paginate(AlarmTypes=["MetricAlarm", "CompositeAlarm"], **query):
                    for alarm in (*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])):
                        states[alarm["AlarmName"]] = alarm["StateValue"]
        missing = sorted(set(params.names) - set(states))
        firing = sorted(n for n, s in states.items() if s == "ALARM")
        problems = []
        if firing:
            problems.append(f"in ALARM: {', '.join(firing)}")
        if missing:
            problems.append(f"no such alarm: {', '.join(missing)}")
        message = "; ".join(problems) or f"{len(states)} alarm(s), none in ALARM"
        return CheckResult(
            not problems, {"alarm": [*firing], "missing": [*missing], "seen": len(states)}, message
        )
