"""IAM: may the caller do everything the plan needs? (iam:SimulatePrincipalPolicy)"""

from __future__ import annotations

import re

from pydantic import Field

from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Check, CheckResult, Context, Params, Placement


class PermissionsParams(Params):
    principal_arn: str | None = Field(
        None, description="Principal to simulate; default: the caller (an assumed role's role)."
    )


def role_of(caller_arn: str) -> str | None:
    """The role name of an assumed-role session ARN, or None for any other caller."""
    found = re.fullmatch(r"arn:aws[\w-]*:sts::\d+:assumed-role/([^/]+)/[^/]+", caller_arn)
    return found.group(1) if found else None


def with_account(resource: str, account: str) -> str:
    """A permission's resource with the caller's account where it says ``*`` (policies that name
    the account would not match a wildcard account in a simulation)."""
    parts = resource.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[4] == "*":
        parts[4] = account
    return ":".join(parts)


class PermissionsCheck(Check[PermissionsParams]):
    """Pass when the caller is allowed every AWS permission the plan needs at this site."""

    name = "aws.permissions"
    cloud = "aws"
    control_plane = "us-east-1"  # IAM's policy simulation is answered there for every region
    params_model = PermissionsParams
    default_estimate_s = 3.0
    permission_names = ("iam:GetRole", "iam:SimulatePrincipalPolicy", "sts:GetCallerIdentity")

    def describe(self, params: PermissionsParams, where: Placement) -> str:
        who = params.principal_arn or "the caller"
        return f"Check that {who} may perform every AWS action of the plan {where.phrase()}"

    def run(self, ctx: Context, params: PermissionsParams) -> CheckResult:
        needed = [p for p in ctx.permissions if p.cloud == "aws"]
        if not needed:
            return CheckResult(True, [], "the plan needs no AWS permission at this site")
        iam = client(ctx, "iam")
        with aws_errors(ctx, "the caller's identity"):
            caller = client(ctx, "sts").get_caller_identity()
        principal = params.principal_arn or caller["Arn"]
        role = role_of(principal)
        if role is not None:  # a session: simulate its role (with the role's path, from IAM)
            with aws_errors(ctx, f"role {role}"):
                principal = iam.get_role(RoleName=role)["Role"]["Arn"]
        denied: list[str] = []
        by_resource: dict[str, list[str]] = {}
        for p in needed:
            by_resource.setdefault(with_account(p.resource, caller["Account"]), []).append(p.action)
        with aws_errors(ctx, f"policy simulation of {principal}"):
            for resource, actions in sorted(by_resource.items()):
                for first in range(0, len(actions), 100):
                    pages = iam.get_paginator("simulate_principal_policy").paginate(
                        PolicySourceArn=principal,
                        ActionNames=sorted(set(actions[first : first + 100])),
                        ResourceArns=[resource],
                    )
                    for page in pages:
                        denied += [
                            f"{r['EvalActionName']} on {resource} ({r['EvalDecision']})"
                            for r in page["EvaluationResults"]
                            if r["EvalDecision"] != "allowed"
                        ]
        message = (
            f"{principal} may do all {len(needed)} permission(s)"
            if not denied
            else (f"{principal} may not: " + "; ".join(denied))
        )
        return CheckResult(not denied, {"principal": principal, "denied": [*denied]}, message)
