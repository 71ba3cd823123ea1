"""The compute fake's checks of a request by Google's own reference: the method its HTTP method
and path resolve to, its query parameters and its body.

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
import json
import re
from dataclasses import dataclass
from importlib import resources

from failover.sandbox.compute_errors import ApiError, JsonDict, invalid

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
