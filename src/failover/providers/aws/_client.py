"""boto3 sessions and clients per site, the mapping of botocore errors, and bounded waiting.

Everything that touches botocore types lives in ``providers/aws``: errors leave it as
:class:`TransientProviderError` (worth retrying) or :class:`ProviderError` (fatal), naming the
AWS error code, the resource and the site.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ResponseStreamingError,
)
from botocore.parsers import ResponseParserError
from botocore.session import get_session

from failover.errors import ProviderError, TransientProviderError
from failover.providers.base import Context

READ_TIMEOUT_S = 60.0


def _config(read_timeout: float, attempts: int | None, connect_timeout: float = 10.0) -> Config:
    """botocore's standard retry mode (its attempts: AWS_MAX_ATTEMPTS, else 3; ``attempts`` for
    calls that must not be repeated by botocore) and bounded connect and read timeouts."""
    retries: dict[str, object] = {"mode": "standard"}
    if attempts is not None:
        retries["max_attempts"] = attempts
    return Config(retries=retries, connect_timeout=connect_timeout, read_timeout=read_timeout)


TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "PriorRequestNotComplete",
        "ProvisionedThroughputExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "RequestTimeout",
        "RequestTimeoutException",
        "EC2ThrottledException",
        "SlowDown",
        "BandwidthLimitExceeded",
        "TransactionInProgressException",
        "ResourceContentionFault",
        "ScalingActivityInProgress",
    }
)
# refused, timed out, reset or cut off mid-answer: the network, not the request
_TRANSIENT_TRANSPORT = (EndpointConnectionError, ConnectTimeoutError, HTTPClientError, ResponseStreamingError)
SANDBOX_CREDENTIALS = "sandbox"  # settings["credentials"]: static keys a local sandbox accepts


def client(
    ctx: Context,
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    read_timeout: float = READ_TIMEOUT_S,
    attempts: int | None = None,
    connect_timeout: float = 10.0,
) -> Any:
    """A client for ``service`` in the step's site and region (one session per site and run);
    ``endpoint_url`` and ``region`` for APIs with their own endpoints (ARC's cluster)."""
    region = region or _region(ctx)
    endpoint = _text(ctx, "endpoint_url") or endpoint_url  # the sandbox's endpoint wins
    with aws_errors(ctx, f"the {service} client"):
        return ctx.clients.get(
            ("aws", ctx.placement.site, service, region, endpoint, read_timeout, attempts, connect_timeout),
            lambda: _session(ctx).client(
                service,
                region_name=region,
                endpoint_url=endpoint,
                config=_config(read_timeout, attempts, connect_timeout),
            ),
        )


def _region(ctx: Context) -> str:
    region = _text(ctx, "region") or ctx.placement.region
    if not region:
        raise ProviderError(f"site {ctx.placement.site} has no AWS region: add `aws: {{region: ...}}` to it")
    return region


def _text(ctx: Context, key: str) -> str | None:
    value = ctx.settings.get(key)
    return value if isinstance(value, str) and value else None


def _session(ctx: Context) -> boto3.Session:
    return ctx.clients.get(("aws-session", ctx.placement.site), lambda: _new_session(ctx))


def _new_session(ctx: Context) -> boto3.Session:
    site = ctx.placement.site
    if _text(ctx, "credentials") == SANDBOX_CREDENTIALS:
        return boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    try:
        base = boto3.Session(profile_name=_text(ctx, "profile"))
    except BotoCoreError as exc:
        raise ProviderError(f"site {site}: cannot open AWS profile {_text(ctx, 'profile')!r}: {exc}") from exc
    role_arn = _text(ctx, "role_arn")
    if role_arn is None:
        return base
    sts = base.client(
        "sts",
        region_name=_region(ctx),
        endpoint_url=_text(ctx, "endpoint_url"),
        config=_config(READ_TIMEOUT_S, None),
    )
    session_name = f"failover-{ctx.run_id}"[:64]

    def refresh() -> dict[str, str]:
        with aws_errors(ctx, f"role {role_arn}"):
            creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    botocore_session = get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(
        metadata=refresh(), refresh_using=refresh, method="assume-role"
    )
    return boto3.Session(botocore_session=botocore_session)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


@contextmanager
def aws_errors(ctx: Context, resource: str, meaning: Mapping[str, str] | None = None) -> Iterator[None]:
    """Map botocore errors raised inside to failover's: throttling, 5xx and connection errors are
    transient; anything else (AccessDenied, validation, not found) is fatal. ``meaning`` says
    what an error code means here, for the message."""
    where = f"{resource} at {ctx.placement.site} ({ctx.settings.get('region') or ctx.placement.region})"
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        text = f"AWS {code} on {where}: {message}"
        if meaning and code in meaning:
            raise ProviderError(f"{meaning[code]}: {text}") from exc
        if code in TRANSIENT_CODES or status == 429 or status >= 500:
            raise TransientProviderError(text) from exc
        raise ProviderError(text) from exc
    except _TRANSIENT_TRANSPORT as exc:
        raise TransientProviderError(f"AWS unreachable for {where}: {exc}") from exc
    except ResponseParserError as exc:  # not an AWS answer (an HTML error page, say)
        raise ProviderError(
            f"AWS answered {where} with something that is not an AWS response: {exc}"
        ) from exc
    except BotoCoreError as exc:
        raise ProviderError(f"AWS client error for {where}: {exc}") from exc
