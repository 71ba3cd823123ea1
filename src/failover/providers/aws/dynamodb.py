"""DynamoDB global tables: is the replica in the target region active?"""

from __future__ import annotations

from pydantic import Field

from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Check, CheckResult, Context, Params, Permission, Placement


class ReplicaActiveParams(Params):
    table: str = Field(description="Global table name.")


class GlobalTableReplicaActive(Check[ReplicaActiveParams]):
    """Pass when the global table has an ACTIVE replica in the step's region.

    Asked in that region: the table there is the replica. ``Replicas`` lists the other regions
    (and sometimes this one); a table with no replicas is not a global table.
    """

    name = "aws.dynamodb.global_table_replica_active"
    cloud = "aws"
    params_model = ReplicaActiveParams
    default_estimate_s = 1.0
    permission_names = ("dynamodb:DescribeTable",)

    def describe(self, params: ReplicaActiveParams, where: Placement) -> str:
        return f"Check that DynamoDB global table {params.table} has an active replica {where.phrase()}"

    def permissions(self, params: ReplicaActiveParams, where: Placement) -> list[Permission]:
        arn = f"arn:aws:dynamodb:{where.region or '*'}:*:table/{params.table}"
        return [Permission("aws", "dynamodb:DescribeTable", arn)]

    def run(self, ctx: Context, params: ReplicaActiveParams) -> CheckResult:
        region = str(ctx.settings.get("region") or ctx.placement.region)
        with aws_errors(ctx, f"DynamoDB table {params.table}"):
            table = client(ctx, "dynamodb").describe_table(TableName=params.table)["Table"]
        replicas: dict[str, str] = {
            r["RegionName"]: r.get("ReplicaStatus", "UNKNOWN") for r in table.get("Replicas", [])
        }
        here = table.get("TableStatus", "UNKNOWN")
        here = replicas.get(region, here) if here == "ACTIVE" else here
        if not replicas:
            message = f"table {params.table} in {region} is not a global table (no replicas)"
            return CheckResult(False, {}, message)
        if table.get("TableStatus") != "ACTIVE" or here != "ACTIVE":
            return CheckResult(False, {**replicas}, f"the replica of {params.table} in {region} is {here}")
        others = ", ".join(f"{k} {v}" for k, v in sorted(replicas.items()) if k != region) or "none"
        return CheckResult(True, {**replicas}, f"the replica in {region} is ACTIVE (others: {others})")
