"""One HTTP request of a check, made with urllib3 and bounded by the check's time and by how
much of the answer it reads.

Each request opens its own connection (a probe meets what a new client meets), follows no
redirect and is not retried here: a verify check is asked again by the engine. No request
leaves once the check's deadline passed (``Context.check_call``), and none waits longer than the
time the check has left (``Context.budget``). An endpoint that does not answer (refused, timed
out, reset) raises :class:`TransientProviderError` saying which; a URL or TLS that cannot work
raises :class:`ProviderError`. urllib3 is imported when a check first asks, not when the provider
is registered: validating a runbook needs none of it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, WithJsonSchema

from failover.durations import format_duration
from failover.errors import ProviderError, TransientProviderError
from failover.providers.base import Context

if TYPE_CHECKING:
    import urllib3
    from urllib3.exceptions import ConnectTimeoutError

CHUNK_BYTES = 64 * 1024
_CONNECTION = re.compile(r"^(?:<[^>]*>|\w+\([^)]*\)): ")  # how urllib3 names the connection in errors


def _http_url(value: str) -> str:
    """An ``http://`` or ``https://`` URL with a host; one holding a reference (``${env:URL}``)
    is checked again once it is filled in, before the request."""
    if "${" in value:
        return value
    scheme, sep, rest = value.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if not sep or scheme.lower() not in ("http", "https") or not host:
        raise ValueError(f"expected an http:// or https:// URL with a host, found {value!r}")
    return value


HttpUrl = Annotated[
    str,
    AfterValidator(_http_url),
    WithJsonSchema(
        {"type": "string", "pattern": "^(?i:https?)://[^/?#]+", "examples": ["http://prometheus:9090"]}
    ),
]
"""A pydantic field type: an http:// or https:// URL, kept as written."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the status, the headers, and the body up to the limit."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    complete: bool  # False: the body went on past the limit and was cut there


def fetch(
    ctx: Context,
    url: str,
    *,
    what: str,
    timeout: float,
    limit: int,
    method: str = "GET",
    fields: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    verify_tls: bool = True,
) -> Answer:
    """``method`` ``url`` (``fields`` as its query string), waiting at most ``timeout`` seconds
    or what the check has left if less, and reading at most ``limit`` bytes of the body.
    ``what`` names the endpoint in errors (``Prometheus at http://...``)."""
    import urllib3
    from urllib3.exceptions import (
        ConnectTimeoutError,
        HTTPError,
        LocationValueError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
        SSLError,
    )

    seconds = ctx.budget(timeout)
    waited = format_duration(seconds)
    ctx.check_call()
    end = time.monotonic() + seconds
    try:
        with urllib3.PoolManager(
            num_pools=1, cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE", retries=False
        ) as pool:
            response = pool.request(
                method,
                url,
                fields=fields,
                headers=dict(headers or {}),
                timeout=urllib3.Timeout(total=seconds),
                redirect=False,
                preload_content=False,
            )
            try:
                body, complete = _read(response, limit, end, f"{what}: the answer took longer than {waited}")
            finally:
                response.release_conn()
    except (ConnectTimeoutError, NewConnectionError) as exc:  # NewConnectionError: refused, no such host
        raise _unconnected(exc, what, waited) from exc
    except ReadTimeoutError as exc:
        raise TransientProviderError(f"{what}: connected, but no answer within {waited} (timed out)") from exc
    except SSLError as exc:
        raise ProviderError(f"{what}: TLS failed: {_reason(exc)}") from exc
    except LocationValueError as exc:
        raise ProviderError(f"{what}: not a usable URL: {exc}") from exc
    except (ProtocolError, HTTPError, OSError) as exc:  # reset or cut off mid-answer
        raise TransientProviderError(f"{what}: the connection failed: {_reason(exc)}") from exc
    return Answer(response.status, response.headers, body, complete)


def _read(response: urllib3.BaseHTTPResponse, limit: int, end: float, late: str) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes, and whether that was all of it; a body still coming at
    ``end`` (on the monotonic clock) is a timeout."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = response.read(min(CHUNK_BYTES, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > end:
            raise TransientProviderError(late)
    return b"".join(chunks)[:limit], False


def _unconnected(exc: ConnectTimeoutError, what: str, waited: str) -> TransientProviderError:
    """No connection: refused, no such host, or no answer to the connection attempt in time."""
    from urllib3.exceptions import NewConnectionError

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ConnectionRefusedError) or "refused" in str(exc).lower():
        return TransientProviderError(f"{what}: connection refused")
    if not isinstance(exc, NewConnectionError):
        return TransientProviderError(f"{what}: could not connect within {waited} (timed out)")
    return TransientProviderError(f"{what}: could not connect: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """What went wrong, without urllib3's wrapping (the connection's repr, a tuple)."""
    from urllib3.exceptions import NewConnectionError, ProtocolError

    if isinstance(exc, NewConnectionError):  # "HTTPConnection(host=..., port=...): ...", or "<...>: ..."
        return _CONNECTION.sub("", str(exc), count=1)
    if isinstance(exc, ProtocolError) and len(exc.args) == 2:  # ("Connection aborted.", the error)
        return f"{str(exc.args[0]).rstrip('.')}: {exc.args[1]}"
    return str(exc) or type(exc).__name__
