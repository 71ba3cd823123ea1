"""Prometheus's query API, as a check reads it: the samples of an instant query's answer, each
compared with a threshold.

An answer is ``{"status": "success", "data": {"resultType": ..., "result": ...}}``, with
``warnings`` when part of the data could not be had; an error is ``{"status": "error",
"errorType": ..., "error": ...}``, with HTTP 400 (bad_data), 422 (execution) or 503 (timeout,
canceled). Sample values are strings: ``"0.002"``, ``"NaN"``, ``"+Inf"``.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import JsonValue

from failover.errors import ProviderError, TransientProviderError

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
# errors of the server's moment, not of the query: asking again may pass
TRANSIENT_ERRORS = frozenset({"timeout", "canceled", "internal", "unavailable"})
SERIES_CHARS = 200  # a series name longer than this is cut, in messages and observations
SNIPPET_CHARS = 200  # of an answer that is not the API's, in messages


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample: its series (``shop_error_ratio{site="west"}``; ``scalar`` for a scalar), its
    value as Prometheus wrote it, and as a number."""

    series: str
    text: str
    value: float

    def shown(self) -> JsonValue:
        """The value for an observation: a number, or the text of NaN and the infinities (JSON
        has no number for them)."""
        return self.value if math.isfinite(self.value) else self.text

    def distance(self, threshold: float) -> tuple[bool, float]:
        """How far it is from the threshold, for sorting: NaN (no value) beyond any number."""
        nan = math.isnan(self.value)
        return nan, 0.0 if nan else abs(self.value - threshold)


@dataclass(frozen=True, slots=True)
class Result:
    """An instant query's samples, and what the server warned of while it answered."""

    samples: list[Sample]
    warnings: list[str]


def read_answer(status: int, body: bytes, where: str) -> Result:
    """The samples of an answer with HTTP ``status`` and ``body``; an error answer, one that is
    not the API's, or a result that is not an instant vector or a scalar raises ProviderError
    (TransientProviderError where asking again may help). ``where`` names the server and query."""
    payload = _json(body)
    if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
        error = TransientProviderError if status == 429 or status >= 500 else ProviderError
        raise error(
            f"{where}: expected an answer of the Prometheus API (JSON with a status), found HTTP "
            f"{status}: {_snippet(body)}{_hint(status)}"
        )
    if payload["status"] == "error" or not 200 <= status < 300:
        kind, text = str(payload.get("errorType") or f"HTTP {status}"), str(payload.get("error") or "")
        error = TransientProviderError if kind in TRANSIENT_ERRORS or status >= 500 else ProviderError
        raise error(f"{where}: Prometheus answered {kind}: {text}")
    data = payload.get("data")
    shape = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    warnings = [str(w) for w in payload.get("warnings") or []]
    if shape == "vector" and isinstance(result, list):
        return Result([_vector_sample(item, where) for item in result], warnings)
    if shape == "scalar":
        return Result([_sample("scalar", result, where)], warnings)
    if shape == "matrix":
        raise ProviderError(
            f"{where}: expected an instant vector or a scalar, found a range vector (matrix): "
            "aggregate the range over time (max_over_time(...[5m]), rate(...[5m]))"
        )
    if shape == "string":
        raise ProviderError(f"{where}: expected an instant vector or a scalar, found a string")
    raise ProviderError(f"{where}: expected a result of type vector or scalar, found {_snippet(body)}")


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:  # not JSON, or not UTF-8
        return None


def _snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return repr(text[:SNIPPET_CHARS] + ("..." if len(text) > SNIPPET_CHARS else "")) if text else "no body"


def _hint(status: int) -> str:
    if status in (401, 403):
        return " (check bearer_token, or username and password)"
    if status == 404:
        return " (is url the server's base URL, without /api/v1?)"
    return ""


def _vector_sample(item: object, where: str) -> Sample:
    if not isinstance(item, dict):
        raise ProviderError(f"{where}: expected a sample with metric and value, found {item!r:.200}")
    metric = item.get("metric")
    series = series_name(metric if isinstance(metric, dict) else {})
    if "value" not in item and "histogram" in item:
        raise ProviderError(
            f"{where}: {series} is a native histogram; compare a number taken from it "
            "(histogram_quantile(0.99, ...), histogram_count(...))"
        )
    return _sample(series, item.get("value"), where)


def _sample(series: str, pair: object, where: str) -> Sample:
    """A sample from its ``[timestamp, "value"]`` pair."""
    text = pair[1] if isinstance(pair, list) and len(pair) == 2 else None
    try:
        return Sample(series, str(text), float(text))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        found = f"{pair!r:.200}"
        raise ProviderError(f'{where}: expected [time, "number"] for {series}, found {found}') from None


def series_name(metric: Mapping[str, object]) -> str:
    """``name{label="value",...}`` as Prometheus writes a series, labels sorted; ``{}`` for a
    series with no label at all (what ``sum(...)`` gives)."""
    labels = ",".join(f'{k}="{_escaped(str(v))}"' for k, v in sorted(metric.items()) if k != "__name__")
    name = str(metric.get("__name__", ""))
    text = f"{name}{{{labels}}}" if labels or not name else name
    return text if len(text) <= SERIES_CHARS else text[: SERIES_CHARS - 3] + "..."


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
