"""boto3 sessions and clients per site, bounded by the deadline of the step or check that calls,
the mapping of botocore errors, and bounded waiting.

Everything that touches botocore types lives in ``providers/aws``: errors leave it as
:class:`TransientProviderError` (worth retrying) or :class:`ProviderError` (fatal), naming the
AWS error code, the resource and the site. Failover's own errors (:class:`DeadlineError`,
:class:`LeaseLostError`) pass through unchanged.

Every call is bounded by the deadline of its step or check (``Context.deadline``): its client is
configured from the time left (:func:`limits`), and a botocore ``before-send`` hook asks the
active context (:func:`failover.providers.base.active_context`) before every request, retries
and paginator pages included, so that none leaves once the deadline passed or the run lost its
lease.

boto3 and botocore take a tenth of a second to import, so they are imported when an AWS step or
check first runs, not when the provider is registered: validating and planning a runbook never
loads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.errors import FailoverError, ProviderError, TransientProviderError
from failover.providers.base import BUDGETS, Context, active_context

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

READ_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
ATTEMPTS = 3  # per call, unless AWS_MAX_ATTEMPTS or the profile's max_attempts says otherwise
_HOOK_ID = "failover-check-call"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one botocore call may take: the connect and read timeouts of each attempt, and how
    many attempts botocore makes (the first request and its retries)."""

    read: float
    connect: float
    attempts: int

    def config(self) -> Config:
        """botocore's standard retry mode with these timeouts and attempts."""
        from botocore.config import Config

        # ``total_max_attempts`` counts the first request; ``max_attempts`` would count retries only
        retries = {"mode": "standard", "total_max_attempts": self.attempts}
        return Config(retries=retries, connect_timeout=self.connect, read_timeout=self.read)


def floor_budget(seconds: float) -> float:
    """The largest of BUDGETS not above ``seconds`` (the smallest when none is)."""
    return max((b for b in BUDGETS if b <= seconds), default=BUDGETS[0])


def limits(
    ctx: Context | None,
    *,
    read: float = READ_TIMEOUT_S,
    connect: float = CONNECT_TIMEOUT_S,
    attempts: int | None = None,
    configured: int | None = None,
) -> Limits:
    """The limits of a call made now for ``ctx``, from caps: ``read``, ``connect``, and
    ``attempts``, else the ``configured`` count (AWS_MAX_ATTEMPTS, the profile), else 3.

    Without a deadline, the caps. With one: a read timeout of ``ctx.budget(read)``; a connect
    timeout no longer than that, and shorter when both would not fit in the time left; and as
    many attempts as fit in the time left, at least one and at most the cap. The values come
    from a few (BUDGETS), so clients configured from them are shared by the calls of a step, and
    a call with time enough for all its attempts gets the client of a call without a deadline.
    """
    cap = attempts or configured or ATTEMPTS
    left = None if ctx is None else ctx.remaining()
    if ctx is None or left is None:
        return Limits(read, min(connect, read), cap)
    read_s = min(read, ctx.budget(read))
    connect_s = min(connect, read_s)
    if connect_s + read_s > left:  # both in full would overrun the deadline: connect for less
        connect_s = min(connect_s, floor_budget(left - read_s))
    return Limits(read_s, connect_s, max(1, min(cap, int(left // (connect_s + read_s)))))


def _check_active(**_: Any) -> None:
    """botocore ``before-send`` hook, called before every attempt of every call (botocore's
    retries and paginator pages included): no request leaves once the deadline of the step or
    check running in this thread passed, or its run lost the lease. botocore takes what this
    raises as the attempt's outcome, does not retry it (it is no connection error) and raises
    it to the caller as it is."""
    ctx = active_context()
    if ctx is not None:
        ctx.check_call()


def _guarded(made: Any) -> Any:
    """A client, or a session (whose clients inherit its hooks), with the ``before-send`` check."""
    events = made.meta.events if hasattr(made, "meta") else made.events
    events.register_first("before-send", _check_active, unique_id=_HOOK_ID)
    return made


def _configured_attempts(session: boto3.Session) -> int | None:
    """AWS_MAX_ATTEMPTS or the profile's ``max_attempts``, if set."""
    found = session._session.get_config_variable("max_attempts")
    return int(found) if found else None


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
SANDBOX_CREDENTIALS = "sandbox"  # settings["credentials"]: static keys a local sandbox accepts


def client(
    ctx: Context,
    service: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    read_timeout: float = READ_TIMEOUT_S,
    attempts: int | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> Any:
    """A client for ``service`` in the step's site and region (one session per site and run);
    ``endpoint_url`` and ``region`` for APIs with their own endpoints (ARC's cluster).

    ``read_timeout``, ``connect_timeout`` and ``attempts`` are caps: the client is configured
    from the time the step or check has left (see :func:`limits`). Clients are shared per site,
    service, region, endpoint and limits, so a long step keeps reusing one."""
    region = region or _region(ctx)
    # the sandbox's endpoints win over an API's own (ARC's cluster)
    endpoint = _service_endpoint(ctx, service, region) or _text(ctx, "endpoint_url") or endpoint_url
    with aws_errors(ctx, f"the {service} client"):
        session = _session(ctx)
        bound = limits(
            ctx,
            read=read_timeout,
            connect=connect_timeout,
            attempts=attempts,
            configured=_configured_attempts(session),
        )
        return ctx.clients.get(
            ("aws", ctx.placement.site, service, region, endpoint, bound),
            lambda: _guarded(
                session.client(service, region_name=region, endpoint_url=endpoint, config=bound.config())
            ),
        )


def _region(ctx: Context) -> str:
    region = _text(ctx, "region") or ctx.placement.region
    if not region:
        raise ProviderError(f"site {ctx.placement.site} has no AWS region: add `aws: {{region: ...}}` to it")
    return region


def _service_endpoint(ctx: Context, service: str, region: str) -> str | None:
    """A service's own endpoint, where the settings give one (``endpoint_urls``, by
    ``SERVICE:REGION`` or ``SERVICE``: a sandbox whose us-east-1 is down takes the ARC cluster
    endpoint there, and Route 53's and IAM's control planes, away from every site)."""
    found = ctx.settings.get("endpoint_urls")
    if not isinstance(found, dict):
        return None
    url = found.get(f"{service}:{region}") or found.get(service)
    return url if isinstance(url, str) and url else None


def _text(ctx: Context, key: str) -> str | None:
    value = ctx.settings.get(key)
    return value if isinstance(value, str) and value else None


def _session(ctx: Context) -> boto3.Session:
    return ctx.clients.get(("aws-session", ctx.placement.site), lambda: _guarded(_new_session(ctx)))


def _new_session(ctx: Context) -> boto3.Session:
    import boto3
    from botocore.exceptions import BotoCoreError

    site = ctx.placement.site
    if _text(ctx, "credentials") == SANDBOX_CREDENTIALS:
        return boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    try:
        base = boto3.Session(profile_name=_text(ctx, "profile"))
    except BotoCoreError as exc:
        raise ProviderError(f"site {site}: cannot open AWS profile {_text(ctx, 'profile')!r}: {exc}") from exc
    _guarded(base)  # clients botocore makes itself (a profile's role, SSO) ask before sending too
    role_arn = _text(ctx, "role_arn")
    if role_arn is None:
        return base
    return _assuming(ctx, base, role_arn)


def _assuming(ctx: Context, base: boto3.Session, role_arn: str) -> boto3.Session:
    """A session with the credentials of ``role_arn``, assumed with ``base``'s, now (for ``ctx``)
    and again before they expire (for the step or check whose call needs them then)."""
    import boto3
    from botocore.credentials import RefreshableCredentials
    from botocore.session import get_session

    site, region, endpoint, clients = (
        ctx.placement.site,
        _region(ctx),
        _text(ctx, "endpoint_url"),
        ctx.clients,
    )
    session_name = f"failover-{ctx.run_id}"[:64]
    configured = _configured_attempts(base)

    def assume(at: Context | None) -> dict[str, str]:
        """Assume the role with an STS client bounded by ``at``'s time left (botocore's usual
        limits when no step or check is running: a refresh outside the engine)."""
        bound = limits(at, configured=configured)
        sts = clients.get(
            ("aws-sts", site, region, endpoint, bound),
            lambda: _guarded(
                base.client("sts", region_name=region, endpoint_url=endpoint, config=bound.config())
            ),
        )
        with aws_errors(at or ctx, f"role {role_arn}", check=at is not None):
            creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    def refresh() -> dict[str, str]:  # botocore calls it from the call that needs new credentials
        return assume(active_context())

    botocore_session = get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(
        metadata=assume(ctx), refresh_using=refresh, method="assume-role"
    )
    return boto3.Session(botocore_session=botocore_session)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


@contextmanager
def aws_errors(
    ctx: Context, resource: str, meaning: Mapping[str, str] | None = None, *, check: bool = True
) -> Iterator[None]:
    """Map botocore errors raised inside to failover's: throttling, 5xx and connection errors are
    transient; anything else (AccessDenied, validation, not found) is fatal. ``meaning`` says
    what an error code means here, for the message.

    First (unless ``check`` is false) ``ctx.check_call()``: no call once the step's or check's
    deadline passed or the run lost its lease. Failover's own errors raised inside (DeadlineError,
    LeaseLostError, or one mapped already) pass through unchanged."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        HTTPClientError,
        ResponseStreamingError,
    )
    from botocore.parsers import ResponseParserError

    if check:
        ctx.check_call()
    where = f"{resource} at {ctx.placement.site} ({ctx.settings.get('region') or ctx.placement.region})"
    try:
        yield
    except FailoverError:
        raise
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
    # refused, timed out, reset or cut off mid-answer: the network, not the request
    except (EndpointConnectionError, ConnectTimeoutError, HTTPClientError, ResponseStreamingError) as exc:
        raise TransientProviderError(f"AWS unreachable for {where}: {exc}") from exc
    except ResponseParserError as exc:  # not an AWS answer (an HTML error page, say)
        raise ProviderError(
            f"AWS answered {where} with something that is not an AWS response: {exc}"
        ) from exc
    except BotoCoreError as exc:
        raise ProviderError(f"AWS client error for {where}: {exc}") from exc
