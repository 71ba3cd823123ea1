"""Least privilege: what a plan needs, from every step's and check's permissions: an AWS IAM
policy, and a GCP custom role definition."""

from __future__ import annotations

from collections import defaultdict

from pydantic import JsonValue

from failover.plan import Plan
from failover.state import dynamodb_target, is_remote

IAM_VERSION = "2012-10-17"
STATE_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
"""What a run does to a DynamoDB state table (``state init`` also needs CreateTable and
UpdateContinuousBackups; STS GetCallerIdentity needs no permission)."""


def iam_policy(plan: Plan, site: str | None = None, state: str | None = None) -> dict[str, JsonValue]:
    """An IAM policy document allowing exactly the AWS permissions of the plan's steps and
    checks (those that run; at ``site`` only, if given): one statement per set of resources
    shared by the same actions, resources as narrow as the steps' parameters allowed; and, for
    a DynamoDB ``state`` (given, or the runbook's), what runs do to its table, in any of its
    regions (a global table's replicas)."""
    resources: dict[str, set[str]] = defaultdict(set)  # IAM action -> resources
    for permission in plan.permissions("aws", site):
        resources[permission.action].add(permission.resource)
    by_resources: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for action, arns in resources.items():
        by_resources[("*",) if "*" in arns else tuple(sorted(arns))].append(action)
    statements: list[JsonValue] = []
    for n, (where, actions) in enumerate(sorted(by_resources.items(), key=lambda kv: sorted(kv[1])), start=1):
        statements.append(
            {
                "Sid": f"Failover{n}",
                "Effect": "Allow",
                "Action": [*sorted(actions)],
                "Resource": where[0] if len(where) == 1 else [*where],
            }
        )
    state = state or plan.runbook.state
    if state is not None and is_remote(state):
        table = dynamodb_target(state)[0]
        statements.append(
            {
                "Sid": "FailoverState",
                "Effect": "Allow",
                "Action": [*STATE_ACTIONS],
                "Resource": f"arn:aws:dynamodb:*:*:table/{table}",
            }
        )
    return {"Version": IAM_VERSION, "Statement": statements}


def gcp_role(plan: Plan, site: str | None = None) -> dict[str, JsonValue]:
    """A GCP custom role definition (as ``gcloud iam roles create ROLE --project P --file F``
    reads it) holding exactly the GCP permissions of the plan's steps and checks (those that
    run; at ``site`` only, if given). Custom roles list permissions, not resources: grant the
    role on the project of each site."""
    where = f" at {site}" if site else ""
    scenario = f"{plan.scenario.from_} -> {plan.scenario.to}"
    return {
        "title": f"failover {plan.runbook.name} {scenario}{where}"[:100],
        "description": (
            f"What the failover plan of {plan.runbook.name} ({scenario}, {plan.scenario.mode}) "
            f"does{where}: every permission of its steps and checks."
        )[:256],
        "stage": "GA",
        "includedPermissions": [*sorted({p.action for p in plan.permissions("gcp", site)})],
    }
