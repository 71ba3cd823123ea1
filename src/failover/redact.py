"""Secret redaction for logs and the journal: nothing that looks like a secret is written anywhere."""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from typing import Any

REDACTED = "[redacted]"
SECRET_KEYS = re.compile(r"secret|password|passwd|token|api[_-]?key|credential|private[_-]?key", re.I)
SAFE_KEYS = frozenset({"idempotency_token", "token_count", "session_id"})
SECRET_VALUES = [
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),  # AWS secret access keys
    re.compile(r"\bya29\.[0-9A-Za-z_\-]+"),  # Google OAuth access tokens
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(password|secret|token)=([^\s&;]+)"),
]
# ``password: x``, ``'api_token': 'x'``, ``"secret" = "x"`` inside a longer text: keep the key
SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)(['"]?[\w-]*(?:password|passwd|secret|token|api[_-]?key|credential)[\w-]*['"]?\s*[:=]\s*)
    (?:'[^']*'|"[^"]*"|[^\s,;}&]+)"""
)


# what every pattern above needs somewhere in a text: a text without any is left as it is, at the
# cost of one scan instead of one per pattern
MAY_HOLD_SECRET = re.compile(
    r"(?i)akia|asia|ya29\.|-----begin|bearer|basic|passw|secret|token|api[_-]?key|credential|[A-Za-z0-9/+=]{40}"
)


@lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    return key not in SAFE_KEYS and SECRET_KEYS.search(key) is not None


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with secrets replaced: anything under a secret-looking key, and
    strings that look like credentials wherever they are."""
    if key and _secret_key(key):
        return REDACTED
    if isinstance(value, str):
        if not MAY_HOLD_SECRET.search(value):
            return value
        value = SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + REDACTED, value)
        for pattern in SECRET_VALUES:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_processor(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every field before any renderer sees it, unless the caller
    says (``redacted=True``) that its fields were redacted already (journal events are)."""
    if event.pop(PRE_REDACTED, False):
        return event
    return {k: redact(v, k) for k, v in event.items()}


PRE_REDACTED = "_redacted"
"""A log call's keyword that says its fields went through :func:`redact` already."""
