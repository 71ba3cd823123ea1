"""Compute Engine's error shapes, as the compute fake answers with them: an error answer (in
Compute Engine's shape, or Resource Manager v3's), the refusal of a value and of a missing
resource, the resource names and request ids Compute Engine takes, and the HTTP status a failed
operation's error carries.

Each rule says where Compute Engine documents it. "The reference" is the Compute Engine API v1
reference (cloud.google.com/compute/docs/reference/rest/v1), whose field descriptions are those
of the discovery document in ``data/compute.v1.json``.
"""

from __future__ import annotations

import re
from typing import Any

JsonDict = dict[str, Any]

NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1035, as the reference's `name` says
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class ApiError(Exception):
    """An error answer: HTTP status, reason (``errors[].reason``) and message, in Compute
    Engine's shape; ``rpc_status`` gives Resource Manager v3's shape instead (``status``, no
    ``errors[]``), as that API answers."""

    def __init__(self, status: int, reason: str, message: str, rpc_status: str | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.rpc_status = status, reason, message, rpc_status

    def body(self) -> JsonDict:
        if self.rpc_status is not None:
            return {"error": {"code": self.status, "message": self.message, "status": self.rpc_status}}
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
            }
        }


def invalid(field_name: str, value: object, expected: str) -> ApiError:
    """Compute Engine's own refusal of a value: 400 ``invalid``, naming the field."""
    return ApiError(400, "invalid", f"Invalid value for field '{field_name}': '{value}'. {expected}")


def not_found(path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise invalid("resource.name", name, f"Must be a match of regex '{NAME.pattern}' ({what})")
    return name


def check_request_id(rid: str) -> None:
    """The reference (``requestId``): "must be a valid UUID with the exception that zero UUID
    is not supported"."""
    if not _UUID.fullmatch(rid) or set(rid) <= {"0", "-"}:
        raise invalid("requestId", rid, "Must be a valid UUID other than the zero UUID")


# -- operations ---------------------------------------------------------------------------------

_OPERATION_HTTP = {  # an operation's error code -> httpErrorStatusCode and httpErrorMessage
    "QUOTA_EXCEEDED": (403, "FORBIDDEN"),  # as the quotaExceeded (403) HTTP error
    "ZONE_RESOURCE_POOL_EXHAUSTED": (503, "SERVICE UNAVAILABLE"),  # a stockout: try again later
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": (503, "SERVICE UNAVAILABLE"),
    "CONDITION_NOT_MET": (412, "PRECONDITION FAILED"),
    "RESOURCE_NOT_FOUND": (404, "NOT FOUND"),
    "NOT_FOUND": (404, "NOT FOUND"),
    "RESOURCE_OPERATION_RATE_EXCEEDED": (403, "FORBIDDEN"),
    "INTERNAL_ERROR": (500, "INTERNAL SERVER ERROR"),
    "SERVICE_UNAVAILABLE": (503, "SERVICE UNAVAILABLE"),
}


def operation_http_status(code: str) -> tuple[int, str]:
    """The HTTP status a failed operation reports with its error code (``Operation``'s
    ``httpErrorStatusCode``/``httpErrorMessage``): not all 400. A quota is 403 FORBIDDEN, like
    the quotaExceeded error a request gets; a zone stockout is 503 SERVICE UNAVAILABLE, as
    Compute Engine's operations report ZONE_RESOURCE_POOL_EXHAUSTED(_WITH_DETAILS); anything
    else the fake fails an operation with is a 400 BAD REQUEST."""
    return _OPERATION_HTTP.get(code, (400, "BAD REQUEST"))
