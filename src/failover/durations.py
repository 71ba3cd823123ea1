"""Durations as runbooks write them (``30s``, ``5m``, ``1h30m``, ``250ms``) and as plans store them."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h))+$"


def parse_duration(value: object) -> float:
    """Return seconds for a duration string or a non-negative number of seconds.

    Raises ValueError with what was expected and what was found.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, found {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value.strip()))
    else:
        raise ValueError(f"expected a duration like 30s, 5m or 1h, found {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a non-negative duration, found {value!r}")
    return seconds


@lru_cache(maxsize=4096)
def format_duration(seconds: float) -> str:
    """Render seconds the way a person reads them: ``45s``, ``2m30s``, ``1h5m``, ``250ms``."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def _validate(value: Any) -> float:
    if isinstance(value, str):
        return _parse_text(value)
    return parse_duration(value)


@lru_cache(maxsize=4096)
def _parse_text(value: str) -> float:
    return parse_duration(value)


Duration = Annotated[
    float,
    BeforeValidator(_validate),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PATTERN, "examples": ["30s", "5m", "1h"]},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 30s, 5m, 1h, 1h30m, 250ms, or a number of seconds.",
        }
    ),
]
"""A pydantic field type: accepts ``30s``/``5m``/``1h`` or seconds, stores seconds as a float."""
