"""The compute fake's front end: requests resolved and checked by Google's own reference, the
HTTP server, injected faults, and Compute Engine's operations.

The reference is the discovery documents of Compute Engine v1 and Resource Manager v3, as
google-api-python-client ships them (Apache 2.0), trimmed to the methods the fake serves and the
schemas of their request bodies (``data/compute.v1.json``, ``data/cloudresourcemanager.v3.json``;
each says where it comes from and what was left out). A request is resolved to a method by its
HTTP method and path, each path parameter matching its pattern; every query parameter must be
the method's or a system parameter (``alt``, ``fields``..., also ``$alt``), of its type, enum and
pattern, a required one given; the body may hold only fields of the method's request schema,
each of its type (an int32 in range, a float, a boolean...) and enum values, in depth for the
schemas the fake reads (the trimmed documents give the others as plain JSON objects), and a
method without a request schema takes none. What does not fit is refused as Google's front end
refuses it: 400 ``invalid`` (``required`` for a missing parameter) worded as it words it
(``Invalid JSON payload received. Unknown name "x" at 'backend_service_resource.backends[0]':
Cannot find field.``, ``Invalid value at 'instance_group_manager_resource.target_size'
(TYPE_INT32), "three"``: a body's fields named as in google-cloud-compute's request message);
a path no served method has is 404 ``notFound``.
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
from importlib import resources
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from failover.sandbox.compute_rules import (
    ApiError,
    check_request_id,
    invalid,
    not_found,
    operation_http_status,
)

JsonDict = dict[str, Any]

DOCUMENTS = ("compute.v1.json", "cloudresourcemanager.v3.json")
_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_PROTO = {"int32": "TYPE_INT32", "uint32": "TYPE_UINT32", "int64": "TYPE_INT64", "uint64": "TYPE_UINT64"}
_PROTO.update(float="TYPE_FLOAT", double="TYPE_DOUBLE")


@dataclass(frozen=True)
class Method:
    """One method of a discovery document: ``compute.regionBackendServices.patch``..."""

    id: str
    http: str
    pattern: re.Pattern[str]
    params: dict[str, JsonDict]
    request: str | None  # the schema of its body
    body_field: str  # the request message's field that holds the body ("" when it is the request)
    document: Document


class Document:
    """A (trimmed) discovery document: its methods, schemas and system parameters."""

    def __init__(self, name: str) -> None:
        text = resources.files("failover.sandbox").joinpath("data", name).read_text(encoding="utf-8")
        doc = json.loads(text)
        self.name = name
        self.schemas: dict[str, JsonDict] = doc["schemas"]
        self.system = set(doc["parameters"]) | {f"${p}" for p in doc["parameters"]}
        prefix = "/" + doc["servicePath"]
        rpc = doc["servicePath"] == ""  # Resource Manager v3: the body is the whole request
        self.methods = [
            Method(
                id=m["id"],
                http=m["httpMethod"],
                pattern=_path_pattern(prefix + m["path"]),
                params=m.get("parameters", {}),
                request=m["request"]["$ref"] if "request" in m else None,
                body_field="" if rpc or "request" not in m else f"{_snake(m['request']['$ref'])}_resource",
                document=self,
            )
            for resource in doc["resources"].values()
            for m in resource["methods"].values()
        ]


def _path_pattern(path: str) -> re.Pattern[str]:
    """``/compute/v1/projects/{project}/zones/{zone}`` as a regular expression with a group per
    parameter (``{+resource}`` may hold slashes)."""
    out = []
    for token in re.split(r"(\{\+?\w+\})", path):
        if token.startswith("{+"):
            out.append(f"(?P<{token[2:-1]}>.+?)")
        elif token.startswith("{"):
            out.append(f"(?P<{token[1:-1]}>[^/]+)")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out))


def _snake(name: str) -> str:
    """``capacityScaler`` -> ``capacity_scaler``, ``BackendService`` -> ``backend_service``."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@functools.cache
def documents() -> tuple[Document, ...]:
    return tuple(Document(name) for name in DOCUMENTS)


def resolve(http: str, path: str) -> tuple[Method, dict[str, str]]:
    """The served method of this HTTP method and path, and its path parameters (checked)."""
    for doc in documents():
        for method in doc.methods:
            match = method.pattern.fullmatch(path)
            if match is None or method.http != http:
                continue
            args = match.groupdict()
            for name, value in args.items():
                pattern = method.params[name].get("pattern")
                if pattern and not re.fullmatch(f"(?:{pattern})", value):
                    raise invalid(name, value, f"Must be a match of regex '{pattern}'")
            return method, args
    raise ApiError(404, "notFound", f"The requested URL {path} was not found on this server ({http}).")


def _refused(message: str) -> ApiError:
    return ApiError(400, "invalid", message)


def check_query(method: Method, query: dict[str, list[str]]) -> dict[str, str]:
    """The query parameters (the last value of each), once each is known and of its type."""
    found = {}
    for name, values in query.items():
        if name in method.document.system:
            continue
        spec = method.params.get(name)
        if spec is None or spec.get("location") != "query":
            raise _refused(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
                f"Field '{name}' could not be found in request message."
            )
        value = values[-1]
        if not _query_value_ok(spec, value):
            raise _refused(f"Invalid value at '{name}' ({_proto_type(spec)}), \"{value}\"")
        found[name] = value
    for name, spec in method.params.items():
        if spec.get("location") == "query" and spec.get("required") and name not in found:
            raise ApiError(400, "required", f"Required field '{name}' not specified")
    return found


def _query_value_ok(spec: JsonDict, value: str) -> bool:
    if spec.get("type") == "boolean":
        return value in ("true", "false")
    if "enum" in spec and value not in spec["enum"]:
        return False
    if spec.get("pattern") and not re.fullmatch(f"(?:{spec['pattern']})", value):
        return False
    return (spec.get("type") == "string" and "format" not in spec) or _scalar_ok(spec, value)


def check_body(method: Method, body: object) -> None:
    """The body, against the method's request schema (or none, for a method that takes none)."""
    if method.request is None:
        if body not in ({}, None):
            name = next(iter(body)) if isinstance(body, dict) and body else "body"
            raise _refused(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        return
    _check_object(method.document, method.request, body, method.body_field)


def _check_object(doc: Document, schema: str, value: object, at: str) -> None:
    if not isinstance(value, dict):
        raise _refused(f"Invalid value at '{at}' (TYPE_MESSAGE), {json.dumps(value)}")
    properties = doc.schemas[schema]["properties"]
    for key, item in value.items():
        spec = properties.get(key)
        if spec is None:
            where = f" at '{at}'" if at else ""
            raise _refused(f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.')
        _check_value(doc, spec, item, f"{at}.{_snake(key)}" if at else _snake(key))


def _check_value(doc: Document, spec: JsonDict, item: object, at: str) -> None:
    if item is None:  # null: the field is not set
        return
    if "$ref" in spec:
        _check_object(doc, spec["$ref"], item, at)
    elif spec.get("type") == "array":
        if not isinstance(item, list):
            raise _refused(f"Invalid value at '{at}' (repeated), {json.dumps(item)}")
        for i, each in enumerate(item):
            _check_value(doc, spec["items"], each, f"{at}[{i}]")
    elif spec.get("type") == "object":
        if not isinstance(item, dict):
            raise _refused(f"Invalid value at '{at}' (TYPE_MESSAGE), {json.dumps(item)}")
    elif not _scalar_ok(spec, item):
        raise _refused(f"Invalid value at '{at}' ({_proto_type(spec)}), {json.dumps(item)}")
    elif "enum" in spec and item not in spec["enum"]:
        raise _refused(f"Invalid value at '{at}' (TYPE_ENUM), {json.dumps(item)}")


def _proto_type(spec: JsonDict) -> str:
    if spec.get("type") == "boolean":
        return "TYPE_BOOL"
    return _PROTO.get(str(spec.get("format")), "TYPE_STRING")


def _scalar_ok(spec: JsonDict, value: object) -> bool:
    """A JSON value for a field of this type, as protobuf's JSON mapping takes it: integers as
    numbers (integral) or decimal strings, within the range of their format; floats as numbers
    or numeric strings; booleans as true or false; strings as strings."""
    kind, fmt = spec.get("type"), spec.get("format")
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "boolean":
        return False
    if kind == "integer" or fmt in _RANGES:
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        lo, hi = _RANGES.get(str(fmt), _RANGES["int64"])
        return isinstance(value, int) and lo <= value <= hi
    if kind == "number":
        if isinstance(value, str):
            return (
                re.fullmatch(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|NaN|-?Infinity", value)
                is not None
            )
        return isinstance(value, int | float)
    return isinstance(value, str)


# -- the front end ------------------------------------------------------------------------------


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
