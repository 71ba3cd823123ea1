"""Who the run acts as in AWS: the caller ARN of the site's credentials (STS GetCallerIdentity),
before any ``role_arn`` is assumed (everyone assumes the same role, under the same session name:
the person behind it is the identity that assumed it)."""

from __future__ import annotations

import boto3

from failover.providers.aws._client import SANDBOX_CREDENTIALS, aws_errors, client, limits
from failover.providers.base import Context


def caller(ctx: Context) -> str:
    if not ctx.settings.get("role_arn") or ctx.settings.get("credentials") == SANDBOX_CREDENTIALS:
        sts = client(ctx, "sts", attempts=1)
        with aws_errors(ctx, "the caller identity (STS)"):
            return str(sts.get_caller_identity()["Arn"])
    profile = ctx.settings.get("profile")
    endpoint = ctx.settings.get("endpoint_url")
    with aws_errors(ctx, "the caller identity (STS)"):
        base = boto3.Session(profile_name=profile if isinstance(profile, str) else None)
        region = ctx.settings.get("region") or ctx.placement.region
        sts = base.client(
            "sts",
            region_name=region if isinstance(region, str) else None,
            endpoint_url=endpoint if isinstance(endpoint, str) else None,
            config=limits(ctx, attempts=1).config(),
        )
        return str(sts.get_caller_identity()["Arn"])
