"""Faults of the sandbox's AWS: a WSGI layer in front of moto that answers as AWS does when a
service throttles (``throttle:SERVICE:PER_SECOND``) or the caller lacks a permission
(``deny:PERMISSION``), in each service's own protocol, so botocore reads the same errors it reads
from AWS; and the permissions IAM policy simulation denies.

A request is named from what it carries: the service from its SigV4 credential scope, the
operation from ``X-Amz-Target`` (JSON protocols), the ``Action`` parameter (query protocol) or
the method and path matched against the service's botocore model (REST protocols).
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

DENIED: set[str] = set()
"""Permissions the sandbox's caller lacks (``ecs:UpdateService``), for IAM policy simulation too."""

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_IAM_PREFIX = {"monitoring": "cloudwatch"}  # signing names that are not the IAM prefix
_ROUTES: dict[str, list[tuple[str, re.Pattern[str], str]]] = {}


class Bucket:
    """At most ``rate`` requests a second, with a burst of one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class AwsFaults:
    """The layer itself: ``throttles`` (signing name -> bucket) and ``DENIED`` apply to every
    request that reaches moto through it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.throttles: dict[str, Bucket] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.throttles and not DENIED:
            return self.app(environ, start_response)
        found = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = found.group(1) if found else ""
        bucket = self.throttles.get(service)
        if bucket is not None and not bucket.take():
            return _error(environ, start_response, 400, "Throttling", "Rate exceeded")
        if DENIED:
            operation = _operation(environ, service)
            permission = f"{_IAM_PREFIX.get(service, service)}:{operation}"
            if permission in DENIED:
                message = (
                    f"User is not authorized to perform: {permission} (denied by the sandbox's deny fault)"
                )
                code = "AccessDeniedException" if "HTTP_X_AMZ_TARGET" in environ else "AccessDenied"
                return _error(environ, start_response, 403, code, message)
        return self.app(environ, start_response)


def _operation(environ: dict[str, Any], service: str) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rpartition(".")[2]
    if environ.get("REQUEST_METHOD") == "POST" and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return str(action[0])
    query = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if query:
        return str(query[0])
    return _rest_operation(service, environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))


def _rest_operation(service: str, method: str, path: str) -> str:
    """The operation of a REST request, from the method and path templates of botocore's model."""
    if service not in _ROUTES:
        import botocore.session

        routes: list[tuple[str, re.Pattern[str], str]] = []
        try:
            model = botocore.session.get_session().get_service_model(service)
        except Exception:  # not a botocore service name: no operation to match
            model = None
        for name in model.operation_names if model is not None else ():
            http = model.operation_model(name).http
            template = http.get("requestUri", "/").split("?")[0]
            shape = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template).replace(r"\+\}", r"\}"))
            routes.append((http.get("method", "GET"), re.compile(f"^{shape}$"), name))
        _ROUTES[service] = routes
    for verb, route, name in _ROUTES[service]:
        if verb == method and route.match(path):
            return name
    return ""


def _error(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    status: int,
    code: str,
    message: str,
) -> Iterable[bytes]:
    """An error in the protocol the request was made in: JSON for ``X-Amz-Target`` requests, the
    query protocol's or the REST XML protocol's XML otherwise."""
    reason = {400: "Bad Request", 403: "Forbidden"}[status]
    if "HTTP_X_AMZ_TARGET" in environ:
        body = json.dumps({"__type": code, "message": message}).encode()
        start_response(f"{status} {reason}", [("Content-Type", "application/x-amz-json-1.1")])
        return [body]
    kind = "Sender"
    xml = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
        f"</Error><RequestId>sandbox-fault</RequestId></ErrorResponse>"
    )
    start_response(f"{status} {reason}", [("Content-Type", "text/xml")])
    return [xml.encode()]
