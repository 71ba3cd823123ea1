"""Secret redaction for everything the tool writes: logs, the journal, plans as rendered for
reviewers, reports, history and metrics.

Three nets, from the surest to the broadest:

- **known values**: every value given to :func:`register_secret` (a runbook's values under
  secret-looking keys, secrets resolved at run time) is replaced wherever it appears, in any string;
- **keys**: anything under a secret-looking key (``password``, ``api_key``, ``client_secret``,
  ``Authorization``, ``dsn``...) is replaced, except a reference to a secret
  (``${secret:aws-ssm:/prod/db/password}``, ``${env:API_TOKEN}``), which is not one;
- **shapes**: what looks like a credential in free text: the password of a URL, an
  ``Authorization`` or ``Cookie`` header, ``password=...`` and ``"token": "..."`` assignments,
  signed query parameters, provider tokens (AWS, GitHub, Slack, Google), private key blocks.

A text that holds none of what these need is returned as it is after one scan
(:data:`MAY_HOLD_SECRET` and the registered values, in lower case) and two cheap checks:
:func:`redact` runs on every log event.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6
"""Shorter values are not registered: replacing them everywhere would redact common words."""

# --- keys ----------------------------------------------------------------------------------------

# in a key's words (camelCase and separators split): substrings that make it secret-looking...
_SECRET_KEY_TEXT = re.compile(
    r"passw|passphrase|secret|token|api_?key|credential|cookie|authorization"
    r"|(?:private|signing|encryption|master|hmac|ssh)_?key|conn(?:ection)?_?str"
)
# ... and whole words that do
_SECRET_KEY_WORDS = frozenset({"pwd", "pass", "auth", "dsn"})  # "sig": in URLs only
# last words that make a secret-looking key name something about a secret, not the secret itself
_NAMING_WORDS = frozenset(
    {
        "arn", "id", "ids", "name", "names", "count", "ttl", "path", "ref", "file", "type", "kind",
        "url", "uri", "endpoint", "mode", "method", "provider", "region", "scope", "scopes", "version",
        "expiry", "expires", "expiration", "length", "source", "format", "enabled", "required",
    }
)  # fmt: skip
SAFE_KEYS = frozenset({"idempotency_token", "token_count", "session_id"})
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a value under ``key`` is taken for a secret: ``password``, ``db_pwd``,
    ``clientSecret``, ``x-api-key``, ``Authorization``... but not ``secret_arn`` or ``token_ttl``."""
    words = _SEPARATORS.sub("_", _CAMEL.sub(r"\1_\2", key).lower()).strip("_")
    if not words or words in SAFE_KEYS:
        return False
    parts = words.split("_")
    if len(parts) > 1 and parts[-1] in _NAMING_WORDS:
        return False
    return not _SECRET_KEY_WORDS.isdisjoint(parts) or _SECRET_KEY_TEXT.search(words) is not None


# --- references ------------------------------------------------------------------------------------

# ``${secret:...}``, ``${env:NAME}`` and runbook references (``${to.vars.x}``): where a value
# comes from, shown as written
REFERENCE = re.compile(r"\$\{\s*(?:(?:secret|env):[^{}]*?|[A-Za-z_][\w.\-]*)\s*\}")


def _references_only(text: str) -> str:
    """A value under a secret-looking key that holds references: the references, the rest redacted."""
    out, end = [], 0
    for match in REFERENCE.finditer(text):
        if match.start() > end:
            out.append(REDACTED)
        out.append(match.group(0))
        end = match.end()
    if end < len(text):
        out.append(REDACTED)
    return "".join(out) if end else REDACTED


# --- shapes ----------------------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
# scheme://user:password@host: the user stays; the password may hold '@' (the last one ends it)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/?#@'\"<>]*:)([^\s/?#'\"<>]+)@")
_AUTH_SCHEMES = (
    r"bearer|basic|digest|token|negotiate|ntlm|hoba|mutual|vapid|aws4-hmac-sha256|goog4-rsa-sha256"
    r"|scram-sha-\d+|dpop|mac|sso-key|apikey|api-key|key|otp"
)
# the value of a quoted header ends at a quote; of a bare one, at the end of the line
_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie)(\\?[\"']?\s*[:=]\s*(\\?[\"'])?)"
    rf"((?:{_AUTH_SCHEMES})\s+)?((?(3)[^\r\n'\"\\]+|[^\r\n]+))"
)
_HEADER_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_QUERY = re.compile(r"([?&;])([A-Za-z_][\w.\-]*)=([^&;\s#'\"<>]+)")
_QUERY_SECRETS = frozenset({"sig", "signature", "x-amz-signature", "x-goog-signature", "x-goog-credential"})
# a key that may be secret-looking (the callback decides), bounded: a long word is tried once
_ASSIGNMENT_KEY = (
    r"[\w.\-]{0,40}?(?i:pass|pwd|secret|token|api.?key|credential|cookie|auth|dsn|sig"
    r"|(?:private|encryption|master|hmac|ssh).?key|conn(?:ection)?.?str)[\w.\-]{0,40}"
)
_ASSIGNMENT = re.compile(
    rf"""(?<![\w.\-])(?P<q>["']?)(?P<key>{_ASSIGNMENT_KEY})(?P=q)"""
    r"""(?P<sep>\s*=\s*|\s*:\s+|(?<=["']):[ \t]*)"""
    r"""(?P<val>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|[^\s,;&)\]}'"{\[][^\s,;&)\]}'"]*)"""
)
_PLAIN_WORDS = frozenset({"true", "false", "null", "none", "yes", "no", REDACTED})
_TOKENS = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}\b|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|\bxox[abprs]-[A-Za-z0-9-]{8,}|\bxapp-[A-Za-z0-9-]{8,}"  # Slack
    # Google: OAuth access tokens, API keys
    r"|\bya29\.[0-9A-Za-z_\-]+|\bAIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JSON web tokens
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]{8,})")
_BASIC = re.compile(r"(?i)\b(basic\s+)([A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])")
# AWS secret access keys: 40 characters of base64, upper and lower case and a digit, '/' or '+'
# (a git commit, 40 lower-case hex digits, is not one)
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")

# what any shape above needs somewhere in a text, searched in the text in lower case (a scan
# of a lower-cased text is three times faster than one that ignores case): a text without any,
# without a 40-character run of base64 and without '://' and '@', is left as it is
MAY_HOLD_SECRET = re.compile(
    r"-----begin|cookie|pass|pwd|secret|token|api.?key|credential|auth|dsn|private.?key"
    r"|(?:encryption|master|hmac|ssh).?key|sig|akia|asia|gh[pousr]_|github_pat_|xox|xapp-|ya29\.|aiza"
    r"|eyj|bearer|basic|conn"
)
_RUN = re.compile(r"[A-Za-z0-9/+]{40}")


def _header(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2) + (match.group(4) or "") + REDACTED


def _query(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    secret = name.lower() in _QUERY_SECRETS or is_secret_key(name)
    if secret and not value.startswith(("${", REDACTED)):
        return f"{sep}{name}={REDACTED}"
    return match.group(0)


def _assignment(match: re.Match[str]) -> str:
    value = match.group("val")
    if match.string.startswith(REDACTED, match.start("val")) or match.group("key").lower() in _HEADER_NAMES:
        return match.group(0)  # redacted already
    quote_char = value[0] if value[0] in "'\"" else ""
    bare = value[1:-1] if quote_char else value
    if bare.lower() in _PLAIN_WORDS or bare.startswith("${") or not is_secret_key(match.group("key")):
        return match.group(0)
    head = match.group(0)[: match.start("val") - match.start()]
    return f"{head}{quote_char}{REDACTED}{quote_char}"


def _bearer(match: re.Match[str]) -> str:
    token = match.group(2)
    if len(token) >= 16 or any(c.isdigit() for c in token):
        return match.group(1) + REDACTED
    return match.group(0)


def _basic(match: re.Match[str]) -> str:
    encoded = match.group(2)
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return match.group(1) + REDACTED if b":" in decoded else match.group(0)


def _aws_secret(match: re.Match[str]) -> str:
    text = match.group(0)
    upper = lower = other = False
    for c in text:
        upper = upper or c.isupper()
        lower = lower or c.islower()
        other = other or c.isdigit() or c in "/+"
    return REDACTED if upper and lower and other else text


def _shapes(text: str) -> str:
    if "-----" in text:
        text = _PRIVATE_KEY.sub(REDACTED, text)
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    text = _HEADER.sub(_header, text)
    if "=" in text:
        text = _QUERY.sub(_query, text)
    if "=" in text or ":" in text:
        text = _ASSIGNMENT.sub(_assignment, text)
    text = _TOKENS.sub(REDACTED, text)
    text = _BEARER.sub(_bearer, text)
    text = _BASIC.sub(_basic, text)
    return _AWS_SECRET.sub(_aws_secret, text)


# --- known values ----------------------------------------------------------------------------------


class _Known:
    """The registered values: one pattern that finds any of them, and the prefilter with them in
    (in lower case, as the prefilter searches)."""

    def __init__(self, values: frozenset[str]) -> None:
        self.values = values
        ordered = sorted(values, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, ordered))) if values else None
        lowered = "|".join(re.escape(v.lower()) for v in ordered)
        self.prefilter = re.compile(f"{MAY_HOLD_SECRET.pattern}|{lowered}") if values else MAY_HOLD_SECRET

    def may_hold_secret(self, text: str) -> bool:
        return (
            self.prefilter.search(text.lower()) is not None
            or (len(text) >= 40 and _RUN.search(text) is not None)
            or ("://" in text and "@" in text)
        )


_known = _Known(frozenset())
_known_lock = threading.Lock()


def _forms(value: str) -> set[str]:
    """A secret as it may appear: as it is, stripped, and percent-encoded (in a URL)."""
    found = {value, value.strip()}
    found |= {quote(v, safe="") for v in found} | {quote(v) for v in found}
    return {v for v in found if len(v) >= MIN_SECRET_LENGTH and v != REDACTED}


def register_secret(value: str) -> None:
    """Make :func:`redact` replace ``value`` wherever it appears in any string, from now on, in
    this process. Values shorter than :data:`MIN_SECRET_LENGTH` characters are ignored."""
    global _known
    if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LENGTH:
        return
    forms = _forms(value)
    with _known_lock:
        if forms <= _known.values:
            return
        _known = _Known(_known.values | forms)


def forget_secrets() -> None:
    """Empty the registry of :func:`register_secret` (an embedder done with a runbook's secrets)."""
    global _known
    with _known_lock:
        _known = _Known(frozenset())


def secret_values_in(obj: Any) -> list[str]:
    """The string values under secret-looking keys anywhere in nested mappings and lists, each
    once, in order (for :func:`register_secret`); references (``${secret:...}``) are not secrets."""
    found: dict[str, None] = {}

    def collect(value: Any, secret: bool) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                collect(v, secret or is_secret_key(str(k)))
        elif isinstance(value, list | tuple):
            for v in value:
                collect(v, secret)
        elif secret and isinstance(value, str) and value and "${" not in value and value != REDACTED:
            found[value] = None

    collect(obj, False)
    return list(found)


# --- redaction -----------------------------------------------------------------------------------


def _compile(values: Iterable[str]) -> re.Pattern[str] | None:
    return _compiled(tuple(values))


@lru_cache(maxsize=64)
def _compiled(values: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = {f for v in values if isinstance(v, str) for f in _forms(v)}
    if not forms:
        return None
    return re.compile("|".join(re.escape(v) for v in sorted(forms, key=len, reverse=True)))


def _text(text: str, known: _Known, extra: re.Pattern[str] | None) -> str:
    if not known.may_hold_secret(text) and (extra is None or not extra.search(text)):
        return text
    if "${" in text and REFERENCE.search(text):  # references stay as written; the rest is text
        parts = REFERENCE.split(text)
        refs = REFERENCE.findall(text)
        out = [_text(parts[0], known, extra)]
        for ref, part in zip(refs, parts[1:], strict=True):
            out += [ref, _text(part, known, extra)]
        return "".join(out)
    if known.pattern is not None:
        text = known.pattern.sub(REDACTED, text)
    if extra is not None:
        text = extra.sub(REDACTED, text)
    return _shapes(text)


def _under_secret_key(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if not value else (_references_only(value) if "${" in value else REDACTED)
    if isinstance(value, Mapping):
        return {k: _under_secret_key(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_under_secret_key(v) for v in value)
    if isinstance(value, list):
        return [_under_secret_key(v) for v in value]
    return REDACTED


def _redact(value: Any, key: str, known: _Known, extra: re.Pattern[str] | None, keys: bool) -> Any:
    if keys and key and is_secret_key(key):
        return _under_secret_key(value)
    if isinstance(value, str):
        return _text(value, known, extra)
    if isinstance(value, Mapping):
        return {
            (_text(k, known, extra) if isinstance(k, str) else k): _redact(v, str(k), known, extra, keys)
            for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(_redact(v, "", known, extra, keys) for v in value)
    if isinstance(value, list):
        return [_redact(v, "", known, extra, keys) for v in value]
    return value


def redact(value: Any, key: str = "", *, known: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with secrets replaced by :data:`REDACTED`: registered values and
    ``known`` ones wherever they appear, anything under a secret-looking key (``key`` is the key
    ``value`` is under), and strings shaped like credentials. Mappings, lists and tuples are
    copied; other values are returned as they are."""
    extra = _compile(known) if known else None
    return _redact(value, key, _known, extra, True)


def redact_strings(value: Any, *, known: Iterable[str] = ()) -> Any:
    """Like :func:`redact`, by values and shapes only: for data keyed by names (services, steps)
    where a key is not a field name."""
    extra = _compile(known) if known else None
    return _redact(value, "", _known, extra, False)


def redact_processor(
    _logger: object, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every field before any renderer sees it, unless the caller
    says (:data:`PRE_REDACTED`) that its fields were redacted already (journal events are). A value
    that is neither text nor data (an exception, a path) is shown as its redacted ``repr`` when
    that holds a secret."""
    if event.pop(PRE_REDACTED, False):
        return event
    known = _known
    out: dict[str, Any] = {}
    for k, v in event.items():
        if v is None or isinstance(v, str | int | float | Mapping | list | tuple):
            out[k] = _redact(v, k, known, None, True)
        else:
            shown = repr(v)
            safe = _redact(shown, k, known, None, True)
            out[k] = v if safe == shown else safe
    return out


PRE_REDACTED = "_redacted"
"""A log call's keyword that says its fields went through :func:`redact` already."""
