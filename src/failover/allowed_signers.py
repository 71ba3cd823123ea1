"""OpenSSH's ``allowed_signers`` file format (ssh-keygen(1), ALLOWED SIGNERS), read as ssh-keygen reads it.

Each line that is neither blank nor a comment is ``principals [options] keytype base64key [comment]``:

* ``principals``: comma-separated patterns (``*`` and ``?`` wildcards, ``!`` negation, as OpenSSH's
  ``match_pattern_list``), optionally in double quotes;
* ``options``: comma-separated, values in double quotes (which may hold commas):
  ``namespaces="a,b"`` (patterns the signature's namespace must match), ``valid-after="TIME"``,
  ``valid-before="TIME"`` and ``cert-authority``. TIME is ``YYYYMMDD``, ``YYYYMMDDHHMM`` or
  ``YYYYMMDDHHMMSS``: UTC when followed by ``Z`` (or ``UTC``), else local time, read as OpenSSH
  reads it (in the zone's standard time, even while daylight saving time is in force). SSH
  certificates are not supported: a ``cert-authority`` line is parsed but never matches a
  signature, whose key is always a plain key.

The public API is in :mod:`failover.sshsig` (``parse_allowed_signers``, ``principals_for``,
``is_allowed``, ``AllowedSigner``); this module raises :class:`FormatError`, which that module turns
into its ``SignatureError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

_PLAIN_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
    "ssh-dss",
    "ssh-mldsa44-ed25519@openssh.com",
)
KEY_TYPES = frozenset(
    [*_PLAIN_KEY_TYPES, *(t.removesuffix("@openssh.com") + "-cert-v01@openssh.com" for t in _PLAIN_KEY_TYPES)]
)
"""The key type names OpenSSH writes in public key lines; only ed25519 and ECDSA keys can sign plans."""

_LOADED_KEY_TYPES = frozenset(
    {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"}
)
_OPTIONS = 'cert-authority, namespaces="...", valid-after="..." or valid-before="..."'
_TIME = re.compile(r"(\d{8}|\d{12}|\d{14})(z|utc)?", re.IGNORECASE)


class FormatError(ValueError):
    """An allowed_signers line that does not parse; the message starts with ``path:line``."""


def fingerprint(key_blob: bytes) -> str:
    """``SHA256:...`` of an SSH public key blob, exactly as ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class AllowedSigner:
    """One line of an allowed_signers file.

    ``public_key`` is the key's OpenSSH one-line text (``ssh-ed25519 AAAA...``), ``key_blob`` its
    wire encoding. ``namespaces`` is None when the line does not restrict them; times are aware.
    A ``cert_authority`` line names a certificate authority: it never matches a plain key."""

    principals: tuple[str, ...]
    key_type: str
    public_key: str
    fingerprint: str
    key_blob: bytes
    namespaces: tuple[str, ...] | None
    valid_after: datetime | None
    valid_before: datetime | None
    cert_authority: bool
    line: int

    def permits(self, key_blob: bytes, namespace: str, at: datetime) -> bool:
        """Whether this line lets ``key_blob`` sign in ``namespace`` at ``at`` (a naive ``at`` is
        local time). As OpenSSH: whole seconds, valid from valid-after up to and including valid-before."""
        if self.cert_authority or key_blob != self.key_blob:
            return False
        if self.namespaces is not None and match_pattern_list(namespace, self.namespaces) != 1:
            return False
        now = math.floor(at.timestamp())
        if self.valid_after is not None and now < int(self.valid_after.timestamp()):
            return False
        return self.valid_before is None or now <= int(self.valid_before.timestamp())


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL
    )


def match_pattern_list(name: str, patterns: tuple[str, ...]) -> int:
    """OpenSSH's ``match_pattern_list``: -1 if a negated pattern (``!p``) matches, 1 if a plain one
    does, 0 if none. Patterns use ``*`` (any run of characters) and ``?`` (any one), case-sensitive."""
    positive = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _pattern(pattern[1:] if negated else pattern).fullmatch(name):
            if negated:
                return -1
            positive = True
    return 1 if positive else 0


def parse(text: str, where: str) -> list[AllowedSigner]:
    """Every entry of an allowed_signers file's text; FormatError at the first line that does not parse."""
    signers = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(" \t\r")
        if line and not line.startswith("#"):
            signers.append(_parse_line(line, f"{where}:{number}", number))
    return signers


def _parse_line(line: str, loc: str, number: int) -> AllowedSigner:
    principals, rest = _principals(line, loc)
    if principals in KEY_TYPES:
        raise FormatError(
            f"{loc}: expected principals before the key, found the key type {principals!r} first"
        )
    if not rest:
        raise FormatError(f"{loc}: expected principals, options and a key, found only {principals!r}")
    options = ""
    if rest.split(None, 1)[0] not in KEY_TYPES:
        options, rest = _split_options(rest, loc)
        if not rest:
            raise FormatError(
                f"{loc}: expected a key after the options {options!r}, found the end of the line"
            )
    key_type, key_b64, blob = _key(rest, loc)
    ca, namespaces, after, before = _parse_options(options, loc)
    return AllowedSigner(
        principals=tuple(principals.split(",")),
        key_type=key_type,
        public_key=f"{key_type} {key_b64}",
        fingerprint=fingerprint(blob),
        key_blob=blob,
        namespaces=namespaces,
        valid_after=after,
        valid_before=before,
        cert_authority=ca,
        line=number,
    )


def _principals(line: str, loc: str) -> tuple[str, str]:
    stop = re.search(r'[ \t"]', line)
    if stop is None:
        return line, ""
    if stop[0] != '"':
        return line[: stop.start()], line[stop.start() :].lstrip(" \t")
    close = line.find('"', stop.start() + 1)
    if close < 0:
        raise FormatError(f"{loc}: expected a closing quote after the principals, found none")
    rest = line[close + 1 :]
    if rest and rest[0] not in " \t":
        raise FormatError(f"{loc}: expected a space after the quoted principals, found {rest[0]!r}")
    token = line[: stop.start()] + line[stop.start() + 1 : close]
    if not token:
        raise FormatError(f"{loc}: expected at least one principal, found an empty quoted string")
    return token, rest.lstrip(" \t")


def _split_options(rest: str, loc: str) -> tuple[str, str]:
    quoted, i = False, 0
    while i < len(rest) and (quoted or rest[i] not in " \t"):
        if rest.startswith('\\"', i):
            i += 1
        elif rest[i] == '"':
            quoted = not quoted
        i += 1
    if quoted:
        raise FormatError(f"{loc}: expected a closing quote in the options, found the end of the line")
    return rest[:i], rest[i:].lstrip(" \t")


def _key(rest: str, loc: str) -> tuple[str, str, bytes]:
    fields = rest.split(None, 2)
    key_type = fields[0]
    if key_type not in KEY_TYPES:
        raise FormatError(
            f"{loc}: expected a key type such as ssh-ed25519 or ecdsa-sha2-nistp256, found {key_type!r}"
        )
    if len(fields) < 2:
        raise FormatError(
            f"{loc}: expected the base64 {key_type} key after its type, found the end of the line"
        )
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{loc}: expected a base64 {key_type} key, found {fields[1][:40]!r}") from None
    size = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + size or blob[4 : 4 + size] != key_type.encode():
        raise FormatError(f"{loc}: expected a {key_type} key, found a key blob of another or no type")
    if key_type in _LOADED_KEY_TYPES:
        try:
            load_ssh_public_key(f"{key_type} {fields[1]}".encode())
        except (ValueError, TypeError, NotImplementedError, UnsupportedAlgorithm) as exc:
            raise FormatError(
                f"{loc}: expected a valid {key_type} key, found one that does not load: {exc}"
            ) from None
    return key_type, fields[1], blob


def _parse_options(
    opts: str, loc: str
) -> tuple[bool, tuple[str, ...] | None, datetime | None, datetime | None]:
    ca, namespaces, i = False, None, 0
    times: dict[str, datetime] = {}
    while i < len(opts):
        start, lowered = i, opts[i:].lower()
        if lowered.startswith("cert-authority"):
            ca, i = True, i + len("cert-authority")
        elif lowered.startswith("namespaces="):
            if namespaces is not None:
                raise FormatError(f"{loc}: expected one namespaces option, found several")
            value, i = _dequote(opts, i + len("namespaces="), loc, "namespaces")
            namespaces = tuple(value.split(","))
        elif name := next((n for n in ("valid-after", "valid-before") if lowered.startswith(n + "=")), None):
            if name in times:
                raise FormatError(f"{loc}: expected one {name} option, found several")
            value, i = _dequote(opts, i + len(name) + 1, loc, name)
            times[name] = _parse_time(value, loc, name)
        if i == start or (i < len(opts) and opts[i] != ","):
            unknown = opts[start:].split(",", 1)[0]
            raise FormatError(f"{loc}: expected an option ({_OPTIONS}), found {unknown!r}")
        if i < len(opts):
            i += 1
            if i == len(opts):
                raise FormatError(f"{loc}: expected another option after ',', found the end of the options")
    after, before = times.get("valid-after"), times.get("valid-before")
    if after is not None and before is not None and int(before.timestamp()) <= int(after.timestamp()):
        raise FormatError(f"{loc}: expected valid-before after valid-after, found {before} <= {after}")
    return ca, namespaces, after, before


def _dequote(opts: str, i: int, loc: str, name: str) -> tuple[str, int]:
    if not opts.startswith('"', i):
        raise FormatError(f'{loc}: expected a quoted value ({name}="..."), found {opts[i:]!r}')
    value, i = [], i + 1
    while i < len(opts) and opts[i] != '"':
        if opts.startswith('\\"', i):
            i += 1
        value.append(opts[i])
        i += 1
    if i == len(opts):
        raise FormatError(f"{loc}: expected a closing quote for {name}, found the end of the options")
    return "".join(value), i + 1


def _parse_time(value: str, loc: str, name: str) -> datetime:
    match = _TIME.fullmatch(value)
    expected = f"{name} as YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally followed by Z for UTC"
    if match is None:
        raise FormatError(f"{loc}: expected {expected}, found {value!r}")
    d = match[1]
    try:
        naive = datetime(
            int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[8:10] or 0), int(d[10:12] or 0), int(d[12:] or 0)
        )
    except ValueError:
        raise FormatError(f"{loc}: expected {expected}, found {value!r}, which is not a valid date") from None
    if match[2]:
        return naive.replace(tzinfo=UTC)
    # as OpenSSH's mktime() with tm_isdst=0: the local zone's standard time, even in summer
    try:
        stamp = time.mktime((*naive.timetuple()[:6], 0, 0, 0))
    except (OverflowError, ValueError):
        raise FormatError(f"{loc}: expected {expected}, found {value!r}, which is out of range") from None
    return datetime.fromtimestamp(stamp, UTC).astimezone()
