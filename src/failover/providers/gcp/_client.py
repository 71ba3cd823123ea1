"""google-cloud-compute clients per site, the mapping of google-api-core errors, request ids and
waiting on Compute Engine operations.

Everything that touches google types lives in ``providers/gcp``: errors leave it as
:class:`TransientProviderError` (worth retrying) or :class:`ProviderError` (fatal), naming the
resource, the project and the region; failover's own (DeadlineError, LeaseLostError) pass
through unchanged. ``google.cloud.compute_v1`` takes a second to import, so it is imported when
a GCP step first runs, not when the provider is registered.

Every call is bounded by the deadline of its step or check (``Context.deadline``): its timeout is
the context's budget (:func:`call_options`), :func:`gcp_errors` asks the context before it
(``check_call``), and every HTTP request of the clients made here, credential refreshes, further
pages and operation waits included, asks the active context too (see ``_guard``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from failover.errors import FailoverError, ProviderError, TransientProviderError
from failover.providers.base import Context, Placement

READ_TIMEOUT_S = 60.0
WAIT_CALL_S = 120.0  # an operations.wait call returns by then, DONE or not
ANONYMOUS_CREDENTIALS = "anonymous"  # settings["credentials"]: what a local sandbox accepts
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

# error reasons (``errors[].reason`` of an HTTP error) that mean "not now" rather than "no"
TRANSIENT_REASONS = frozenset(
    {
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "resourceNotReady",
        "backendError",
        "internalError",
        "conditionNotMet",  # a stale fingerprint: someone changed it; the next attempt reads again
    }
)
# operation error codes with the same meaning
TRANSIENT_OPERATION_CODES = frozenset(
    {"RESOURCE_NOT_READY", "RESOURCE_OPERATION_RATE_EXCEEDED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE"}
)


def project(ctx: Context) -> str:
    found = ctx.settings.get("project") or ctx.placement.project
    if not isinstance(found, str) or not found:
        raise ProviderError(
            f"site {ctx.placement.site} has no GCP project: add `gcp: {{project: ...}}` to it"
        )
    return found


def region(ctx: Context) -> str:
    found = ctx.settings.get("region") or ctx.placement.region
    if not isinstance(found, str) or not found:
        raise ProviderError(f"site {ctx.placement.site} has no GCP region: add `gcp: {{region: ...}}` to it")
    return found


def _endpoint(ctx: Context) -> str | None:
    found = ctx.settings.get("endpoint")
    return found if isinstance(found, str) and found else None


def where(ctx: Context) -> str:
    """``shop-prod/us-east4 (east)``: the project, region and site, for messages."""
    at = (
        ctx.settings.get("project") or ctx.placement.project,
        ctx.settings.get("region") or ctx.placement.region,
    )
    return f"{at[0]}/{at[1]} ({ctx.placement.site})"


def phrase(where: Placement, scope: str) -> str:
    """Where a resource of ``scope`` (global or regional) is: ``in project shop-prod (east)`` for
    a global one, as :meth:`Placement.phrase` says it for a regional one."""
    if scope == "global" and where.project:
        return f"in project {where.project} ({where.site})"
    return where.phrase()


def compute(ctx: Context, kind: str) -> Any:
    """The ``compute_v1.<kind>`` client (``InstanceGroupManagersClient``, say) of the step's
    site: its credentials, and its endpoint if the site (or the sandbox) overrides it."""
    endpoint = _endpoint(ctx)
    with gcp_errors(ctx, f"the Compute Engine {kind}"):
        return ctx.clients.get(
            ("gcp", ctx.placement.site, kind, endpoint), lambda: _make(ctx, kind, endpoint)
        )


def _make(ctx: Context, kind: str, endpoint: str | None) -> Any:
    return new_client(kind, _credentials(ctx), endpoint)


def new_client(kind: str, credentials: Any, endpoint: str | None) -> Any:
    """A ``compute_v1.<kind>`` client with these credentials, at ``endpoint`` if given, whose
    requests ask the active context first (see ``_guard``)."""
    from google.api_core.client_options import ClientOptions
    from google.cloud import compute_v1

    from failover.providers.gcp._guard import guard_client

    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    return guard_client(getattr(compute_v1, kind)(credentials=credentials, client_options=options))


def projects_client(ctx: Context) -> Any:
    """Resource Manager's projects client (REST), for testIamPermissions; the site's endpoint
    override applies to it too (the sandbox serves both APIs)."""
    endpoint = _endpoint(ctx)

    def make() -> Any:
        from google.api_core.client_options import ClientOptions
        from google.cloud import resourcemanager_v3

        from failover.providers.gcp._guard import guard_client

        options = ClientOptions(api_endpoint=endpoint) if endpoint else None
        return guard_client(
            resourcemanager_v3.ProjectsClient(
                credentials=_credentials(ctx), transport="rest", client_options=options
            )
        )

    with gcp_errors(ctx, "the Resource Manager client"):
        return ctx.clients.get(("gcp", ctx.placement.site, "ProjectsClient", endpoint), make)


def _credentials(ctx: Context) -> Any:
    return ctx.clients.get(("gcp-credentials", ctx.placement.site), lambda: _new_credentials(ctx))


def _new_credentials(ctx: Context) -> Any:
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError

    from failover.providers.gcp._guard import guarded_request

    if ctx.settings.get("credentials") == ANONYMOUS_CREDENTIALS:
        return AnonymousCredentials()  # type: ignore[no-untyped-call]
    try:  # on a machine with no other credentials, google-auth asks for the metadata server
        credentials, _ = google.auth.default(scopes=list(SCOPES), request=guarded_request())
    except DefaultCredentialsError as exc:
        raise ProviderError(
            f"site {ctx.placement.site}: no Google Application Default Credentials "
            f"(run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS): {exc}"
        ) from exc
    return credentials


def request_id(ctx: Context, *parts: str) -> str:
    """A requestId (a UUID, as Compute Engine wants) stable across retries and resumes of the
    same step, distinct per purpose and resource: a repeated mutation is not applied twice."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, ":".join((ctx.idempotency_token, *parts))))


REPLAYS = 8  # failed operations followed to a fresh one, at most (one per earlier attempt)


def mutate(
    ctx: Context, method: Callable[..., Any], request: dict[str, Any], resource: str, what: str, *parts: str
) -> None:
    """Send a change with a requestId and wait for its operation (see :func:`wait_operation`).

    The id comes from the step and ``parts``, so a change sent again (a retry after a timeout, a
    resume) is not applied twice: Compute Engine answers with the first operation. An operation
    that failed changed nothing, though, and its id would only ever answer with that failure: when
    the answer is an operation already DONE in error, the change is sent again under an id that
    also names the failed operation, so the next attempt of a step can succeed.
    """
    salt: tuple[str, ...] = ()
    for _ in range(REPLAYS + 1):
        with gcp_errors(ctx, resource):
            operation = method(
                request={**request, "request_id": request_id(ctx, *parts, *salt)}, **call_options(ctx)
            )
        if not (operation_done(operation) and operation_errors(operation)):
            break
        salt = (str(operation.name),)
    wait_operation(ctx, operation, what)


def call_options(ctx: Context, timeout: float = READ_TIMEOUT_S) -> dict[str, Any]:
    """Keyword arguments for every client call: no retries inside the client (the executor
    retries, within the step's timeout) and a wait for the answer of at most ``timeout``, less
    when the step's or check's deadline is nearer (``ctx.budget``)."""
    return {"retry": None, "timeout": min(timeout, ctx.budget(timeout))}


def _reasons(exc: Any) -> list[str]:
    found = []
    for item in getattr(exc, "errors", None) or []:
        reason = item.get("reason") if isinstance(item, dict) else getattr(item, "reason", None)
        if reason:
            found.append(str(reason))
    return found


@contextmanager
def gcp_errors(ctx: Context, resource: str) -> Iterator[None]:
    """Map google-api-core, google-auth and transport errors raised inside to failover's: 429,
    5xx, rate limits, timeouts and lost connections are transient; anything else (permission
    denied, not found, invalid argument, quota exceeded) is fatal.

    First ``ctx.check_call()``: no call once the step's or check's deadline passed or the run lost
    its lease. Failover's own errors raised inside (DeadlineError, LeaseLostError, or one mapped
    already) pass through unchanged."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc
    from requests import exceptions as http_exc

    ctx.check_call()
    at = where(ctx)
    try:
        yield
    except FailoverError:
        raise
    except gexc.GoogleAPICallError as exc:
        reasons = _reasons(exc)
        status = exc.code if isinstance(exc.code, int) else 0
        name = type(exc).__name__
        why = ", ".join([str(status), *reasons])
        message = re.sub(r"^[A-Z]+ \S+: ", "", str(exc.message))  # "GET https://...: ": we name it
        text = f"GCP {name} ({why}) on {resource} in {at}: {message}"
        if "quotaExceeded" in reasons or "QUOTA_EXCEEDED" in reasons:
            raise ProviderError(f"quota exceeded: {text}") from exc
        if (
            status == 429
            or status >= 500
            or isinstance(exc, gexc.ServerError)
            or set(reasons) & TRANSIENT_REASONS
        ):
            raise TransientProviderError(text) from exc
        raise ProviderError(text) from exc
    except gexc.RetryError as exc:
        raise TransientProviderError(f"GCP gave up retrying {resource} in {at}: {exc}") from exc
    except (http_exc.ConnectionError, http_exc.Timeout, auth_exc.TransportError) as exc:
        raise TransientProviderError(f"GCP unreachable for {resource} in {at}: {exc}") from exc
    except auth_exc.GoogleAuthError as exc:
        raise ProviderError(f"GCP credentials for {resource} in {at}: {exc}") from exc


def last(url: str) -> str:
    """The last segment of a resource URL (``.../zones/us-east4-a`` -> ``us-east4-a``)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def relative(url: str) -> str:
    """A resource URL from ``projects/`` on, so full and partial URLs compare equal."""
    marker = url.find("projects/")
    return url[marker:] if marker >= 0 else url


def wait_operation(ctx: Context, operation: Any, what: str, timeout: float = 600.0) -> None:
    """Wait (bounded by ``timeout`` and the step's deadline) until ``operation`` is DONE, on the
    zone, region or global operations client of the site's endpoint; then raise if it ended in
    error (an operation DONE with ``error.errors`` is a failure, the client does not raise).

    Each ``operations.wait`` call is answered by Compute Engine when the operation is DONE or
    after about two minutes; it is given that and 10 s more, but never more than the step's
    time left (then a call that got no answer is a transient error: the operation may still be
    running, and the next attempt of the step waits for it again)."""
    started = ctx.clock()
    deadline = started + timeout
    if ctx.deadline is not None:
        deadline = min(deadline, ctx.deadline)
    kind, scope = operations_of(operation)
    ops = compute(ctx, kind)
    while not operation_done(operation):
        left = deadline - ctx.clock()
        if left <= 0:
            raise TransientProviderError(
                f"{what} in {where(ctx)}: operation {operation.name} still {operation.status.name} "
                f"after {ctx.clock() - started:g}s of waiting"
            )
        with gcp_errors(ctx, f"operation {operation.name} ({what})"):
            operation = ops.wait(
                request={"project": project(ctx), "operation": operation.name, **scope},
                **call_options(ctx, min(left, WAIT_CALL_S) + 10),
            )
    _raise_for(ctx, operation, what)


def operations_of(operation: Any) -> tuple[str, dict[str, str]]:
    """The operations client that knows ``operation`` (zone, region or global), and its scope."""
    if operation.zone:
        return "ZoneOperationsClient", {"zone": last(operation.zone)}
    if operation.region:
        return "RegionOperationsClient", {"region": last(operation.region)}
    return "GlobalOperationsClient", {}


def operation_done(operation: Any) -> bool:
    return bool(operation.status.name == "DONE")


def operation_errors(operation: Any) -> list[Any]:
    return list(operation.error.errors) if operation.error else []


def _raise_for(ctx: Context, operation: Any, what: str) -> None:
    errors = operation_errors(operation)
    if not errors:
        return
    codes = [e.code for e in errors]
    detail = "; ".join(f"{e.code}: {e.message}" for e in errors)
    text = f"{what} in {where(ctx)}: operation {operation.name} failed: {detail}"
    if "QUOTA_EXCEEDED" in codes:
        raise ProviderError(f"quota exceeded: {text}")
    status = operation.http_error_status_code or 0
    if set(codes) <= TRANSIENT_OPERATION_CODES or status == 429 or status >= 500:
        raise TransientProviderError(text)
    raise ProviderError(text)


def located(ctx: Context, zone: str | None, zonal: str, regional: str) -> tuple[Any, dict[str, str], str]:
    """The client, request scope and path of a zonal resource (when ``zone`` is given) or a
    regional one in the site's region: ``(client, {"project", "zone"}, "zones/us-east4-a")``."""
    if zone:
        return compute(ctx, zonal), {"project": project(ctx), "zone": zone}, f"zones/{zone}"
    at = region(ctx)
    return compute(ctx, regional), {"project": project(ctx), "region": at}, f"regions/{at}"
