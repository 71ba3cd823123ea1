"""Who the run acts as in AWS: the caller ARN of the site's credentials (STS GetCallerIdentity)."""

from __future__ import annotations

from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Context


def caller(ctx: Context) -> str:
    sts = client(ctx, "sts", attempts=1)
    with aws_errors(ctx, "the caller identity (STS)"):
        return str(sts.get_caller_identity()["Arn"])
