"""OpenSSH's ``sshsig`` signatures (``ssh-keygen -Y sign``/``verify``, PROTOCOL.sshsig) and its
``allowed_signers`` files, for signing plan files with SSH keys. Files only: no agent, no network.

API:

* ``sign(data, key_path, namespace=NAMESPACE, passphrase=None) -> str``: the armored signature of
  ``data`` by an OpenSSH (or PEM) ed25519 or ECDSA (nistp256/384/521) private key file, hashed with
  sha512, byte for byte what ``ssh-keygen -Y sign`` writes. RSA, DSA and other keys are refused.
* ``parse_signature(text, where) -> Signature``: a strictly checked armored signature.
* ``verify(data, signature, namespace=NAMESPACE) -> None``: raises unless ``signature`` is over
  ``data`` in ``namespace``.
* ``parse_allowed_signers(text, where) -> list[AllowedSigner]``: an allowed_signers file (see
  :mod:`failover.allowed_signers` for the format; SSH certificates are not supported).
* ``principals_for(signers, signature, namespace, at) -> list[str]``: the principal patterns of
  the lines that allow the signature's key in ``namespace`` at ``at``; ``is_allowed(signers,
  signature, principal, namespace, at) -> bool``: whether one of them names ``principal`` (the
  check of ``ssh-keygen -Y verify -I principal``).

Every failure is a :class:`SignatureError` whose message says what was expected, what was found,
and where.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from failover import allowed_signers as _allowed
from failover.allowed_signers import AllowedSigner, match_pattern_list
from failover.errors import FailoverError

__all__ = [
    "NAMESPACE",
    "AllowedSigner",
    "Signature",
    "SignatureError",
    "is_allowed",
    "parse_allowed_signers",
    "parse_signature",
    "principals_for",
    "sign",
    "verify",
]

NAMESPACE = "failover-plan"
PASSPHRASE_ENV = "FAILOVER_SIGNING_KEY_PASSPHRASE"
_MAGIC = b"SSHSIG"
_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_HASHES = ("sha256", "sha512")
_CURVES: dict[str, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {  # the curve and the hash it signs with
    "ecdsa-sha2-nistp256": (ec.SECP256R1(), hashes.SHA256()),
    "ecdsa-sha2-nistp384": (ec.SECP384R1(), hashes.SHA384()),
    "ecdsa-sha2-nistp521": (ec.SECP521R1(), hashes.SHA512()),
}
_CURVE_NAMES = frozenset(curve.name for curve, _ in _CURVES.values())
_ACCEPTED = "an ed25519 or ECDSA (nistp256, nistp384, nistp521) key"

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class SignatureError(FailoverError):
    """A signature, signing key or allowed_signers file is unusable, or a signature does not verify;
    the message says what was expected, what was found, and in which file (and line)."""


@dataclass(frozen=True)
class Signature:
    """A parsed sshsig signature. ``raw`` is its SSH signature (string type || string bytes),
    ``key_blob`` the signer's public key in wire encoding, ``where`` the file it came from."""

    public_key: PublicKey
    key_type: str
    fingerprint: str
    namespace: str
    hash_algorithm: str
    raw: bytes
    key_blob: bytes
    where: str

    def openssh_public_key(self) -> str:
        """The signer's public key as an OpenSSH one-line text (``ssh-ed25519 AAAA...``)."""
        return f"{self.key_type} {base64.b64encode(self.key_blob).decode()}"


class _Reader:
    """SSH wire fields (RFC 4251) of one structure, with errors naming the file and structure."""

    def __init__(self, data: bytes, where: str, what: str) -> None:
        self.data, self.pos, self.where, self.what = data, 0, where, what

    def fail(self, expected: str, found: str) -> SignatureError:
        return SignatureError(f"{self.where}: malformed {self.what}: expected {expected}, found {found}")

    def fixed(self, size: int, field: str) -> bytes:
        left = len(self.data) - self.pos
        if left < size:
            raise self.fail(f"{size} bytes of {field} at byte {self.pos}", f"{left}")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def uint32(self, field: str) -> int:
        return int.from_bytes(self.fixed(4, f"{field} (uint32)"), "big")

    def string(self, field: str) -> bytes:
        return self.fixed(self.uint32(f"the length of {field}"), field)

    def text(self, field: str) -> str:
        value = self.string(field)
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{field} as UTF-8 text", f"{value[:40]!r}") from None
        if "\0" in decoded:
            raise self.fail(f"{field} without NUL bytes", f"{decoded[:40]!r}")
        return decoded

    def mpint(self, field: str) -> int:
        value = self.string(field)
        if value and value[0] & 0x80:
            raise self.fail(f"{field} as a positive mpint", "a negative one")
        if len(value) > 1 and value[0] == 0 and not value[1] & 0x80:
            raise self.fail(f"{field} as a minimal mpint", "a leading zero byte")
        return int.from_bytes(value, "big")

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"the end of the {self.what}", f"{len(self.data) - self.pos} trailing byte(s)")


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _mpint(value: int) -> bytes:
    # two's complement, minimal: a leading zero byte only when the top bit is set
    return _string(value.to_bytes(value.bit_length() // 8 + 1, "big") if value else b"")


def _signed_data(namespace: str, hash_algorithm: str, data: bytes) -> bytes:
    # as ssh-keygen: the reserved string is always empty in what is signed and verified
    digest = hashlib.new(hash_algorithm, data).digest()
    return _MAGIC + b"".join(_string(p) for p in (namespace.encode(), b"", hash_algorithm.encode(), digest))


def _key_type(key: PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ssh-ed25519"
    return f"ecdsa-sha2-nistp{key.curve.key_size}"


def _key_blob(key: PublicKey) -> bytes:
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(text.split()[1])


def sign(data: bytes, key_path: Path, namespace: str = NAMESPACE, passphrase: bytes | None = None) -> str:
    """The sshsig signature of ``data`` by the private key ``key_path``, as ssh-keygen writes it."""
    if not namespace:
        raise SignatureError(f"{key_path}: expected a namespace to sign in, found an empty one")
    key = _load_private_key(Path(key_path), passphrase)
    public = key.public_key()
    signed = _signed_data(namespace, "sha512", data)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(signed)
    else:
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(_CURVES[_key_type(public)][1])))
        signature = _mpint(r) + _mpint(s)
    raw = _string(_key_type(public).encode()) + _string(signature)
    fields = (_key_blob(public), namespace.encode(), b"", b"sha512", raw)
    blob = _MAGIC + (1).to_bytes(4, "big") + b"".join(_string(f) for f in fields)
    encoded = base64.b64encode(blob).decode()
    body = "\n".join(encoded[i : i + 70] for i in range(0, len(encoded), 70))
    return f"{_BEGIN}\n{body}\n{_END}\n"


def _load_private_key(path: Path, passphrase: bytes | None) -> PrivateKey:
    if path.suffix == ".pub":
        raise SignatureError(
            f"{path}: expected a private key, found a public key file: give {path.with_suffix('')}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(
            f"{path}: expected a readable private key file, found: {exc.strerror or exc}"
        ) from None
    if data.split(b" ", 1)[0].decode("latin-1") in _allowed.KEY_TYPES:
        raise SignatureError(f"{path}: expected a private key, found a public key: give the private key file")
    load: Callable[[bytes, bytes | None], PrivateKeyTypes]
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        load = serialization.load_ssh_private_key
    elif data.lstrip().startswith(b"-----BEGIN ") and b"PRIVATE KEY-----" in data:
        load = serialization.load_pem_private_key
    else:
        found = data.lstrip()[:30].decode("latin-1")
        raise SignatureError(
            f"{path}: expected an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----), found {found!r}"
        )
    try:
        try:
            key = load(data, passphrase)
        except TypeError:
            if passphrase is None:
                raise SignatureError(
                    f"{path}: expected a passphrase for this encrypted private key, found none: "
                    f"set {PASSPHRASE_ENV} to its passphrase"
                ) from None
            key = load(data, None)  # a passphrase given for a key that has none
    except UnsupportedAlgorithm as exc:
        if "bcrypt" in str(exc):
            raise SignatureError(
                f"{path}: the key is encrypted with bcrypt-pbkdf: expected the Python package bcrypt "
                "(cryptography[ssh]) to decrypt it, found it missing"
            ) from None
        raise SignatureError(
            f"{path}: expected {_ACCEPTED}, found one that cannot be loaded: {exc}"
        ) from None
    except ValueError as exc:
        if passphrase is not None:
            raise SignatureError(
                f"{path}: expected the passphrase in {PASSPHRASE_ENV} to decrypt this key, found that it "
                f"does not, or the key is damaged: {exc}"
            ) from None
        raise SignatureError(f"{path}: expected a loadable private key, found: {exc}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVE_NAMES:
        return key
    if isinstance(key, rsa.RSAPrivateKey | dsa.DSAPrivateKey):
        kind = "an RSA key" if isinstance(key, rsa.RSAPrivateKey) else "a DSA key"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        kind = f"an ECDSA key on curve {key.curve.name}"
    else:
        kind = f"a key of type {type(key).__name__.lstrip('_')}"
    raise SignatureError(f"{path}: expected {_ACCEPTED}, found {kind}, which cannot sign plans")


def parse_signature(text: str, where: str) -> Signature:
    """An armored sshsig signature (``-----BEGIN SSH SIGNATURE-----``), strictly checked."""
    if text.startswith((_BEGIN + "\r\n", _BEGIN + "\n")):
        start = text.index("\n") + 1
    else:
        raise SignatureError(
            f"{where}: expected an armored SSH signature starting {_BEGIN!r}, found {text[:40]!r}"
        )
    stop = text.find("\n" + _END, start - 1)
    if stop < 0:
        raise SignatureError(f"{where}: expected the footer {_END!r}, found none")
    trailer = text[stop + 1 + len(_END) :]
    if trailer.strip():
        raise SignatureError(f"{where}: expected nothing after {_END!r}, found {trailer.strip()[:40]!r}")
    body = "".join(text[start:stop].split())
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(
            f"{where}: expected base64 between the header and footer, found {body[:40]!r}"
        ) from None
    reader = _Reader(blob, where, "signature")
    magic = reader.fixed(len(_MAGIC), "the magic")
    if magic != _MAGIC:
        raise reader.fail(f"the magic {_MAGIC.decode()!r}", repr(magic))
    version = reader.uint32("the version")
    if version != 1:
        raise reader.fail("version 1", f"version {version}")
    key_blob = reader.string("the public key")
    namespace = reader.text("the namespace")
    reader.string("the reserved field")
    hash_algorithm = reader.text("the hash algorithm")
    raw = reader.string("the signature")
    reader.end()
    if not namespace:
        raise reader.fail("a namespace", "an empty one")
    if hash_algorithm not in _HASHES:
        raise reader.fail("hash algorithm sha256 or sha512", repr(hash_algorithm))
    key_type, public_key = _public_key(key_blob, where)
    inner = _Reader(raw, where, "signature field")
    inner.text("the signature type")
    inner.string("the signature bytes")
    inner.end()
    return Signature(
        public_key, key_type, _allowed.fingerprint(key_blob), namespace, hash_algorithm, raw, key_blob, where
    )


def _public_key(blob: bytes, where: str) -> tuple[str, PublicKey]:
    reader = _Reader(blob, where, "public key")
    key_type = reader.text("the key type")
    try:
        if key_type == "ssh-ed25519":
            key: PublicKey = ed25519.Ed25519PublicKey.from_public_bytes(reader.string("the ed25519 key"))
        elif key_type in _CURVES:
            curve = _CURVES[key_type][0]
            curve_name = reader.text("the curve name")
            if curve_name != key_type.removeprefix("ecdsa-sha2-"):
                raise reader.fail(f"curve {key_type.removeprefix('ecdsa-sha2-')}", repr(curve_name))
            point = reader.string("the curve point")
            if point[:1] != b"\4":
                raise reader.fail("an uncompressed curve point (0x04...)", f"one starting {point[:1]!r}")
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        else:
            raise SignatureError(
                f"{where}: expected a signature by {_ACCEPTED}, found one by a {key_type!r} key"
            )
    except ValueError as exc:
        raise reader.fail(f"a valid {key_type} key", str(exc)) from None
    reader.end()
    return key_type, key


def verify(data: bytes, signature: Signature, namespace: str = NAMESPACE) -> None:
    """Raises SignatureError unless ``signature`` was made over ``data`` in ``namespace``."""
    where = signature.where
    if signature.namespace != namespace:
        raise SignatureError(
            f"{where}: expected a signature in namespace {namespace!r}, found {signature.namespace!r}"
        )
    if signature.hash_algorithm not in _HASHES:
        raise SignatureError(
            f"{where}: expected hash algorithm sha256 or sha512, found {signature.hash_algorithm!r}"
        )
    reader = _Reader(signature.raw, where, "signature field")
    sig_type = reader.text("the signature type")
    sig = reader.string("the signature bytes")
    reader.end()
    if sig_type != signature.key_type:
        raise SignatureError(
            f"{where}: expected a {signature.key_type} signature (the key's type), found {sig_type!r}"
        )
    signed = _signed_data(namespace, signature.hash_algorithm, data)
    key = signature.public_key
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, signed)
        else:
            ecdsa = _Reader(sig, where, "ECDSA signature")
            r, s = ecdsa.mpint("r"), ecdsa.mpint("s")
            ecdsa.end()
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(_CURVES[signature.key_type][1]))
    except InvalidSignature:
        raise SignatureError(
            f"{where}: expected a signature by {signature.fingerprint} over these bytes, found one that "
            "does not verify (the data or the signature changed)"
        ) from None


def parse_allowed_signers(text: str, where: str) -> list[AllowedSigner]:
    """The entries of an OpenSSH allowed_signers file; SignatureError naming ``where:line`` if one
    does not parse. ``cert-authority`` lines are kept but never match (certificates are not supported)."""
    try:
        return _allowed.parse(text, where)
    except _allowed.FormatError as exc:
        raise SignatureError(str(exc)) from None


def principals_for(
    signers: list[AllowedSigner], signature: Signature, namespace: str, at: datetime
) -> list[str]:
    """The principal patterns, in file order and once each, of the lines whose key is the signature's,
    whose namespaces (if any) match ``namespace`` and that are valid at ``at``; [] if none allows it."""
    found: dict[str, None] = {}
    for signer in signers:
        if signer.permits(signature.key_blob, namespace, at):
            found.update(dict.fromkeys(signer.principals))
    return list(found)


def is_allowed(
    signers: list[AllowedSigner], signature: Signature, principal: str, namespace: str, at: datetime
) -> bool:
    """Whether a line whose principal patterns match ``principal`` (``!`` negations win, as in
    OpenSSH) allows the signature's key in ``namespace`` at ``at``, as ``ssh-keygen -Y verify -I``."""
    return any(
        match_pattern_list(principal, signer.principals) == 1
        and signer.permits(signature.key_blob, namespace, at)
        for signer in signers
    )
