"""The sandbox's Route 53 Application Recovery Controller cluster: the data plane that
``aws.arc.set_routing_controls`` calls (moto has none), answering in ARC's own protocol (JSON 1.0,
``X-Amz-Target: ToggleCustomerAPI.*``) as the botocore service model describes it.

Every request is checked against the model (required members, types, lengths, patterns, enums:
``ValidationException``); an unknown routing control is a ``ResourceNotFoundException`` (404);
a change that would break a safety rule of its control panel, and is not overridden, is a
``ConflictException`` (409) and changes nothing. Safety rules are ARC's: an assertion rule holds
over the states after the change; a gating rule lets its target controls change only while its
gating controls hold. A cluster has five regional endpoints; each answers for the same state,
and a site that is down takes only the endpoint of its region with it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from failover.sandbox.spec import ControlPanelSpec, SafetyRuleSpec

TARGET = "ToggleCustomerAPI."
SERVICE = "route53-recovery-cluster"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "ap-southeast-2")
"""Where ARC's clusters have their endpoints."""

_STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
}


class ArcError(Exception):
    def __init__(self, code: str, message: str, **fields: str) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields


class Cluster:
    """The routing controls and safety rules of the control panels the sandbox declares, as a
    WSGI layer in front of moto that answers ARC's requests."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app  # what answers every other request (moto)
        self.lock = threading.Lock()
        self.states: dict[str, str] = {}  # routing control ARN -> On | Off
        self.panel_of: dict[str, ControlPanelSpec] = {}
        self.rules: list[tuple[ControlPanelSpec, SafetyRuleSpec]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(TARGET):
            return self.answer(environ, start_response)
        return self.app(environ, start_response)

    def load(self, panels: Iterable[ControlPanelSpec]) -> None:
        """Start from the control panels the sandbox declares."""
        self.states.clear()
        self.panel_of.clear()
        self.rules.clear()
        for panel in panels:
            for name, state in panel.controls.items():
                self.states[panel.control_arn(name)] = state
                self.panel_of[panel.control_arn(name)] = panel
            self.rules += [(panel, rule) for rule in panel.rules]

    # --- the operations ----------------------------------------------------------------------

    def get_routing_control_state(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = self._known(body["RoutingControlArn"])
        return {
            "RoutingControlArn": arn,
            "RoutingControlState": self.states[arn],
            "RoutingControlName": arn.rsplit("/", 1)[-1],
        }

    def list_routing_controls(self, body: dict[str, Any]) -> dict[str, Any]:
        panel = body.get("ControlPanelArn")
        found = [
            {
                "ControlPanelArn": self.panel_of[arn].arn,
                "ControlPanelName": self.panel_of[arn].arn.rsplit("/", 1)[-1],
                "RoutingControlArn": arn,
                "RoutingControlName": arn.rsplit("/", 1)[-1],
                "RoutingControlState": state,
            }
            for arn, state in sorted(self.states.items())
            if panel is None or self.panel_of[arn].arn == panel
        ]
        if panel is not None and not found:
            raise ArcError(
                "ResourceNotFoundException",
                f"control panel {panel} not found",
                resourceId=panel,
                resourceType="ControlPanel",
            )
        return {"RoutingControls": found}

    def update_routing_control_state(self, body: dict[str, Any]) -> dict[str, Any]:
        entry = {k: body[k] for k in ("RoutingControlArn", "RoutingControlState")}
        return self._update([entry], body.get("SafetyRulesToOverride", []))

    def update_routing_control_states(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._update(body["UpdateRoutingControlStateEntries"], body.get("SafetyRulesToOverride", []))

    def _update(self, entries: list[dict[str, str]], overridden: list[str]) -> dict[str, Any]:
        changes = {self._known(e["RoutingControlArn"]): e["RoutingControlState"] for e in entries}
        after = {**self.states, **changes}
        for panel, rule in self.rules:
            arn = panel.rule_arn(rule.name)
            if arn in overridden:
                continue
            if rule.gating:  # the target controls may change only while the gating ones hold
                targets = {panel.control_arn(c) for c in rule.targets}
                moving = {a for a, s in changes.items() if a in targets and self.states[a] != s}
                if moving and not _holds(rule, [self.states[panel.control_arn(c)] for c in rule.gating]):
                    raise _conflict(
                        arn, rule, f"gating rule {rule.name} does not let {sorted(moving)} change"
                    )
            elif not _holds(rule, [after[panel.control_arn(c)] for c in rule.asserted]):
                raise _conflict(arn, rule, f"the change would break assertion rule {rule.name}")
        self.states = after
        return {}

    def _known(self, arn: str) -> str:
        if arn not in self.states:
            raise ArcError(
                "ResourceNotFoundException",
                f"routing control {arn} not found",
                resourceId=arn,
                resourceType="RoutingControl",
            )
        return arn

    # --- the protocol ------------------------------------------------------------------------

    def answer(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer one ``ToggleCustomerAPI.*`` request."""
        operation = str(environ.get("HTTP_X_AMZ_TARGET", ""))[len(TARGET) :]
        try:
            raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            body = _validated(operation, raw)
            with self.lock:
                found = getattr(self, _snake(operation))(body)
            return _respond(start_response, 200, found)
        except ArcError as exc:
            found = {"__type": exc.code, "message": exc.message, **exc.fields}
            return _respond(start_response, _STATUS[exc.code], found)


def _holds(rule: SafetyRuleSpec, states: list[str]) -> bool:
    on = sum(s == "On" for s in states)
    if rule.type == "AND":
        held = on == len(states)
    elif rule.type == "OR":
        held = on >= 1
    else:
        held = on >= rule.threshold
    return held != rule.inverted


def _conflict(arn: str, rule: SafetyRuleSpec, why: str) -> ArcError:
    return ArcError("ConflictException", why, resourceId=arn, resourceType="SafetyRule")


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


_MODEL: list[Any] = []


def _validated(operation: str, raw: bytes) -> dict[str, Any]:
    """The request body, held to the botocore model of the operation (what ARC validates)."""
    import botocore.session
    from botocore.validate import ParamValidator

    if not _MODEL:
        _MODEL.append(botocore.session.get_session().get_service_model(SERVICE))
    model = _MODEL[0]
    if operation not in model.operation_names:
        raise ArcError("ValidationException", f"unknown operation {operation!r}", reason="unknownOperation")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ArcError("ValidationException", f"the body is not JSON: {exc}", reason="cannotParse") from exc
    if not isinstance(body, dict):
        raise ArcError("ValidationException", "the body is not a JSON object", reason="cannotParse")
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(body, shape)  # required members, types, minimums
    problems = [report.generate_report()] if report.has_errors() else []
    problems += _beyond_botocore(body, shape, "")
    if problems:
        raise ArcError("ValidationException", "; ".join(problems), reason="fieldValidationFailed")
    return body


def _beyond_botocore(value: Any, shape: Any, where: str) -> list[str]:
    """What the service checks and botocore's client does not: enums, patterns, maximum lengths."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return [
            problem
            for name, member in shape.members.items()
            if name in value
            for problem in _beyond_botocore(value[name], member, f"{where}.{name}".lstrip("."))
        ]
    if kind == "list" and isinstance(value, list):
        return [
            p for i, item in enumerate(value) for p in _beyond_botocore(item, shape.member, f"{where}[{i}]")
        ]
    if kind != "string" or not isinstance(value, str):
        return []
    problems = []
    if shape.enum and value not in shape.enum:
        problems.append(f"{where}: {value!r} is not one of {shape.enum}")
    limit = shape.metadata.get("max")
    if limit is not None and len(value) > limit:
        problems.append(f"{where}: {len(value)} characters, at most {limit} allowed")
    pattern = shape.metadata.get("pattern")
    if pattern and not re.search(pattern, value):
        problems.append(f"{where}: {value!r} does not match {pattern}")
    return problems


def _respond(start_response: Callable[..., Any], status: int, body: dict[str, Any]) -> list[bytes]:
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/x-amz-json-1.0")])
    return [json.dumps(body).encode()]
