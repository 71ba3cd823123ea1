"""The compute fake's front end: the HTTP server on 127.0.0.1, each request checked by the
reference (``compute_discovery``) and handed to the handler of its method, injected faults, and
Compute Engine's operations (RUNNING, then DONE with their effect or their error; a repeated
``requestId`` gives back the first one).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from failover.sandbox.compute_discovery import check_body, check_query, resolve
from failover.sandbox.compute_errors import (
    ApiError,
    JsonDict,
    check_request_id,
    not_found,
    operation_http_status,
)


@dataclass
class Fault:
    """Something to go wrong, ``times`` times, for requests whose method matches and whose path
    matches ``path`` (a regular expression, searched): an HTTP error, or (``operation_error``)
    an accepted mutation whose operation ends DONE with that error code and no effect."""

    method: str
    path: str
    status: int = 503
    reason: str = "backendError"
    message: str = "injected fault"
    operation_error: str | None = None
    times: int = 1


class OperationError(Exception):
    """An operation's change could not be made: its ``errors[]`` entry (code, message...)."""

    def __init__(self, error: JsonDict) -> None:
        super().__init__(error["message"])
        self.error = error


@dataclass
class Operation:
    body: JsonDict
    effect: Callable[[], None] | None
    polls_left: int
    error: JsonDict | None = None


@dataclass
class Call:
    """A request as a handler takes it: ``args`` are project, loc (``global``, ``zones/Z`` or
    ``regions/R``), name (of the resource it acts on) and verb; the query and body, checked."""

    args: dict[str, str]
    query: dict[str, str]
    body: JsonDict
    fault: Fault | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def merge(into: JsonDict, patch: JsonDict) -> None:
    """A JSON merge patch, as the reference's PATCH methods apply one: objects merge, the rest
    replaces."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = json.loads(json.dumps(value))


def _call_args(method_id: str, args: dict[str, str]) -> dict[str, str]:
    out = {"project": args.get("project") or args.get("resource", "").split("/", 1)[-1]}
    out["verb"] = method_id.rsplit(".", 1)[-1]
    if "zone" in args:
        out["loc"] = f"zones/{args['zone']}"
    else:
        out["loc"] = f"regions/{args['region']}" if "region" in args else "global"
    names = [v for k, v in args.items() if k not in ("project", "zone", "region", "resource")]
    out["name"] = names[0] if names else args.get("region", "")
    return out


class Frontend:
    """Serves the methods of the documents on 127.0.0.1 (``start()``, ``endpoint``, ``stop()``)
    with the handlers a subclass names in ``handlers`` ((resource, verb) -> method name, the
    resource without its ``region``/``global``/``zone`` prefix, in lower case). Requests are
    kept in ``requests``; faults are injected with ``fail``. A mutation's handler returns an
    ``_operation``: RUNNING, it takes effect when it is DONE, the ``operation_polls``-th time it
    is looked at (get or wait); a repeated ``requestId`` gives back the first operation."""

    handlers: ClassVar[dict[tuple[str, str], str]] = {}

    def __init__(self, operation_polls: int) -> None:
        self.operation_polls = operation_polls
        self.requests: list[JsonDict] = []
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._operations: dict[str, Operation] = {}
        self._by_request_id: dict[tuple[str, str], str] = {}
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self.endpoint = ""

    def start(self) -> Self:
        frontend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = frontend.handle(self.command, self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815 (http.server names)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # quick to stop
        threading.Thread(target=serve, name="compute-fake", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(self, method: str, path: str, **how: Any) -> Fault:
        """Inject a :class:`Fault` for requests matching ``method`` and ``path``."""
        fault = Fault(method.upper(), path, **how)
        with self._lock:
            self._faults.append(fault)
        return fault

    def handle(self, method: str, target: str, raw: bytes) -> tuple[int, JsonDict]:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, ApiError(400, "parseError", "Invalid JSON payload received. Unexpected token.").body()
        with self._lock:
            given = {k: v[-1] for k, v in query.items()}
            self.requests.append({"method": method, "path": parts.path, "query": given, "body": body})
            try:
                fault = self._fault(method, parts.path)
                if fault is not None and fault.operation_error is None:
                    raise ApiError(fault.status, fault.reason, fault.message)
                found, args = resolve(method, parts.path)
                checked = check_query(found, query)
                check_body(found, body)
                _, family, verb = found.id.split(".")
                name = self.handlers[(re.sub(r"^(region|global|zone)(?=[A-Z])", "", family).lower(), verb)]
                call = Call(_call_args(found.id, args), checked, body or {}, fault)
                return 200, getattr(self, name)(call)
            except ApiError as exc:
                return exc.status, exc.body()
            except Exception as exc:  # a request the fake did not foresee: say so, as a 500 would
                message = f"the compute fake failed on {method} {parts.path}: {type(exc).__name__}: {exc}"
                return 500, ApiError(500, "internalError", message).body()

    def _fault(self, method: str, path: str) -> Fault | None:
        """The first fault for this request. An HTTP fault is spent at once; an operation fault
        when it makes an operation fail (not on a request that replays an existing one)."""
        for fault in self._faults:
            if fault.method == method and re.search(fault.path, path):
                if fault.operation_error is None:
                    self._spend(fault)
                return fault
        return None

    def _spend(self, fault: Fault) -> None:
        fault.times -= 1
        if fault.times <= 0 and fault in self._faults:
            self._faults.remove(fault)

    def url(self, path: str) -> str:
        return f"{self.endpoint}/compute/v1/{path}"

    def _operation(self, call: Call, target: str, kind: str, effect: Callable[[], None]) -> JsonDict:
        """Start an operation in the call's location, or give back the one the same requestId
        started."""
        project, scope, rid = call.args["project"], call.args["loc"], call.query.get("requestId")
        if rid is not None:
            check_request_id(rid)
            seen = self._by_request_id.get((project, rid))
            if seen is not None:
                return dict(self._operations[seen].body)
        self._counter += 1
        name = f"operation-{self._counter:06d}-{hashlib.sha1(target.encode()).hexdigest()[:8]}"
        path = f"projects/{project}/{scope}/operations/{name}"
        body: JsonDict = {
            "kind": "compute#operation",
            "id": str(10_000 + self._counter),
            "name": name,
            "operationType": kind,
            "targetLink": self.url(target),
            "status": "RUNNING",
            "progress": 0,
            "insertTime": _now(),
            "startTime": _now(),
            "selfLink": self.url(path),
        }
        if scope != "global":
            body[scope.split("/")[0][:-1]] = self.url(f"projects/{project}/{scope}")
        error = None
        if call.fault is not None and call.fault.operation_error is not None:
            error = {"code": call.fault.operation_error, "message": call.fault.message}
            self._spend(call.fault)
        op = self._operations[path] = Operation(body, effect, self.operation_polls, error)
        if rid is not None:
            self._by_request_id[(project, rid)] = path
        if op.polls_left <= 0:
            self._finish(op)
        return dict(op.body)

    def _operation_get(self, call: Call) -> JsonDict:
        """operations.get and operations.wait: one more look at the operation."""
        path = f"projects/{call.args['project']}/{call.args['loc']}/operations/{call.args['name']}"
        op = self._operations.get(path)
        if op is None:
            raise not_found(path)
        if op.body["status"] != "DONE":
            op.polls_left -= 1
            if op.polls_left <= 0:
                self._finish(op)
        return dict(op.body)

    def _finish(self, op: Operation) -> None:
        if op.error is None and op.effect is not None:
            try:
                op.effect()
            except OperationError as exc:  # it failed while it ran
                op.error = exc.error
        if op.error is not None:
            op.body["error"] = {"errors": [op.error]}
            status, text = operation_http_status(op.error["code"])
            op.body["httpErrorStatusCode"], op.body["httpErrorMessage"] = status, text
        op.body.update(status="DONE", progress=100, endTime=_now())
