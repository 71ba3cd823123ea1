"""sshsig signatures and allowed_signers files, checked against the real ssh-keygen both ways."""

from __future__ import annotations

import base64
import importlib.util
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.errors import FailoverError
from failover.sshsig import (
    NAMESPACE,
    AllowedSigner,
    Signature,
    SignatureError,
    is_allowed,
    parse_allowed_signers,
    parse_signature,
    principals_for,
    sign,
    verify,
)

KINDS = {
    "ed25519": (["-t", "ed25519"], "ssh-ed25519"),
    "ecdsa-p256": (["-t", "ecdsa", "-b", "256"], "ecdsa-sha2-nistp256"),
    "ecdsa-p384": (["-t", "ecdsa", "-b", "384"], "ecdsa-sha2-nistp384"),
}
DATA = b'{"plan": "fail over east to west", "steps": [1, 2, 3]}\n'
NOW = datetime.now(UTC)
ZoneSetter = Callable[[str], None]


def keygen(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["ssh-keygen", *args], input=data, capture_output=True, check=False, timeout=60)


def new_key(directory: Path, name: str, *kind: str, passphrase: str = "") -> Path:
    path = directory / name
    done = keygen("-q", *kind, "-N", passphrase, "-C", name, "-f", str(path))
    assert done.returncode == 0, done.stderr
    return path


def public_line(key: Path) -> str:
    return " ".join(key.with_name(key.name + ".pub").read_text().split()[:2])


def keygen_sign(key: Path, data: bytes, namespace: str = NAMESPACE) -> str:
    target = key.parent / "data.bin"
    target.write_bytes(data)
    sig = key.parent / "data.bin.sig"
    sig.unlink(missing_ok=True)
    done = keygen("-Y", "sign", "-f", str(key), "-n", namespace, str(target))
    assert done.returncode == 0, done.stderr
    return sig.read_text()


def keygen_verify(
    allowed: str, signature: str, principal: str, directory: Path, data: bytes = DATA, *options: str
) -> subprocess.CompletedProcess[bytes]:
    (directory / "allowed").write_text(allowed)
    (directory / "check.sig").write_text(signature)
    args = ["-Y", "verify", "-f", str(directory / "allowed"), "-I", principal, "-n", NAMESPACE]
    return keygen(*args, *options, "-s", str(directory / "check.sig"), data=data)


def armor(blob: bytes) -> str:
    encoded = base64.b64encode(blob).decode()
    body = "\n".join(encoded[i : i + 70] for i in range(0, len(encoded), 70))
    return f"-----BEGIN SSH SIGNATURE-----\n{body}\n-----END SSH SIGNATURE-----\n"


def dearmor(text: str) -> bytes:
    return base64.b64decode("".join(text.splitlines()[1:-1]))


def string(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def strings(data: bytes, pos: int = 0) -> list[bytes]:
    """The SSH strings in ``data`` from ``pos`` on."""
    out = []
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        out.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


def fields(blob: bytes) -> list[bytes]:
    """The SSH strings of an sshsig blob, after its magic and version."""
    return strings(blob, 10)


def blob_of(parts: list[bytes], magic: bytes = b"SSHSIG", version: int = 1) -> bytes:
    return magic + version.to_bytes(4, "big") + b"".join(string(p) for p in parts)


@pytest.fixture(params=sorted(KINDS))
def key(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return new_key(tmp_path, "key", *KINDS[request.param][0])


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    return {name: new_key(directory, name, *kind) for name, (kind, _) in KINDS.items()}


# --- signatures -------------------------------------------------------------------------------


def test_ssh_keygen_signature_verifies_with_ours(key: Path) -> None:
    text = keygen_sign(key, DATA)
    signature = parse_signature(text, "data.bin.sig")
    verify(DATA, signature)
    assert signature.namespace == NAMESPACE
    assert signature.hash_algorithm == "sha512"
    assert signature.openssh_public_key() == public_line(key)
    assert signature.key_type == public_line(key).split()[0]


def test_a_changed_byte_or_another_namespace_is_refused(key: Path) -> None:
    signature = parse_signature(keygen_sign(key, DATA), "data.bin.sig")
    changed = bytearray(DATA)
    changed[5] ^= 0x01
    with pytest.raises(SignatureError, match=r"^data\.bin\.sig: .*does not verify"):
        verify(bytes(changed), signature)
    with pytest.raises(
        SignatureError, match=r"expected a signature in namespace 'git', found 'failover-plan'"
    ):
        verify(DATA, signature, namespace="git")
    other = parse_signature(keygen_sign(key, DATA, namespace="file"), "other.sig")
    with pytest.raises(
        SignatureError, match=r"^other\.sig: expected a signature in namespace 'failover-plan'"
    ):
        verify(DATA, other)
    verify(DATA, other, namespace="file")


def test_our_signature_verifies_with_ssh_keygen(key: Path, tmp_path: Path) -> None:
    text = sign(DATA, key)
    allowed = f"reviewer@example.com {public_line(key)}\n"
    done = keygen_verify(allowed, text, "reviewer@example.com", tmp_path)
    assert done.returncode == 0, done.stderr
    assert b'Good "failover-plan" signature for reviewer@example.com' in done.stdout
    novalidate = keygen(
        "-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(tmp_path / "check.sig"), data=DATA
    )
    assert novalidate.returncode == 0, novalidate.stderr
    assert keygen_verify(allowed, text, "reviewer@example.com", tmp_path, DATA + b" ").returncode != 0
    verify(DATA, parse_signature(text, "ours.sig"))


def test_many_ecdsa_signatures_of_ours_pass_ssh_keygen(keys: dict[str, Path], tmp_path: Path) -> None:
    # r and s vary in length and in their top bit: each signature encodes them afresh
    for kind in ("ecdsa-p256", "ecdsa-p384"):
        for n in range(12):
            (tmp_path / "s.sig").write_text(sign(DATA + bytes([n]), keys[kind]))
            args = ["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(tmp_path / "s.sig")]
            assert keygen(*args, data=DATA + bytes([n])).returncode == 0, (kind, n)


def test_our_armor_has_ssh_keygens_structure(key: Path) -> None:
    ours, theirs = sign(DATA, key), keygen_sign(key, DATA)
    for text in (ours, theirs):
        lines = text.split("\n")
        assert lines[0] == "-----BEGIN SSH SIGNATURE-----"
        assert lines[-2:] == ["-----END SSH SIGNATURE-----", ""]
        body = lines[1:-2]
        assert all(len(line) == 70 for line in body[:-1])
        assert 0 < len(body[-1]) <= 70
        assert all(re.fullmatch(r"[A-Za-z0-9+/=]+", line) for line in body)
    assert fields(dearmor(ours))[:4] == fields(dearmor(theirs))[:4]  # key, namespace, reserved, hash
    assert dearmor(ours)[:10] == dearmor(theirs)[:10] == b"SSHSIG\0\0\0\1"


def test_ed25519_signature_is_byte_identical_to_ssh_keygens(keys: dict[str, Path]) -> None:
    # Ed25519 signatures are deterministic, so both tools write the very same file
    for data in (b"", DATA, bytes(range(256)) * 40):
        assert sign(data, keys["ed25519"]) == keygen_sign(keys["ed25519"], data)


def test_fingerprint_is_ssh_keygen_ls(key: Path) -> None:
    listed = keygen("-l", "-f", str(key.with_name("key.pub")))
    assert listed.returncode == 0
    signature = parse_signature(sign(DATA, key), "x.sig")
    assert signature.fingerprint == listed.stdout.decode().split()[1]
    assert signature.fingerprint.startswith("SHA256:") and not signature.fingerprint.endswith("=")


def test_an_ecdsa_p521_key_signs_both_ways(tmp_path: Path) -> None:
    key = new_key(tmp_path, "key", "-t", "ecdsa", "-b", "521")
    verify(DATA, parse_signature(keygen_sign(key, DATA), "theirs.sig"))
    done = keygen_verify(
        f"p521@example.com {public_line(key)}\n", sign(DATA, key), "p521@example.com", tmp_path
    )
    assert done.returncode == 0, done.stderr


def test_signature_records_the_signers_key(keys: dict[str, Path]) -> None:
    key = keys["ecdsa-p256"]
    signature = parse_signature(sign(DATA, key), "x.sig")
    on_file = load_ssh_public_key(public_line(key).encode())
    raw = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signature.key_type == "ecdsa-sha2-nistp256"
    assert signature.public_key == on_file
    assert signature.where == "x.sig"
    ed = parse_signature(sign(DATA, keys["ed25519"]), "y.sig").public_key
    assert isinstance(ed, Ed25519PublicKey)
    assert ed.public_bytes(*raw) == base64.b64decode(public_line(keys["ed25519"]).split()[1])[-32:]


# --- keys -------------------------------------------------------------------------------------


def test_an_encrypted_key_without_passphrase_says_to_set_it(tmp_path: Path) -> None:
    key = new_key(tmp_path, "locked", "-t", "ed25519", passphrase="correct horse")
    with pytest.raises(SignatureError) as caught:
        sign(DATA, key)
    message = str(caught.value)
    assert message.startswith(f"{key}: ")
    assert "FAILOVER_SIGNING_KEY_PASSPHRASE" in message and "passphrase" in message


def test_an_encrypted_openssh_key_with_its_passphrase_signs(tmp_path: Path) -> None:
    key = new_key(tmp_path, "locked", "-t", "ed25519", "-a", "2", passphrase="correct horse")
    if importlib.util.find_spec("bcrypt") is None:
        # OpenSSH's own key encryption needs bcrypt-pbkdf, which cryptography takes from bcrypt
        with pytest.raises(SignatureError, match=r"bcrypt.*cryptography\[ssh\]"):
            sign(DATA, key, passphrase=b"correct horse")
        return
    text = sign(DATA, key, passphrase=b"correct horse")
    assert (
        keygen_verify(f"me@example.com {public_line(key)}\n", text, "me@example.com", tmp_path).returncode
        == 0
    )
    with pytest.raises(SignatureError, match="FAILOVER_SIGNING_KEY_PASSPHRASE"):
        sign(DATA, key, passphrase=b"wrong")


@pytest.mark.parametrize("form", ["PEM", "PKCS8"])
def test_an_encrypted_pem_key_with_its_passphrase_signs(tmp_path: Path, form: str) -> None:
    key = new_key(tmp_path, "locked", "-t", "ecdsa", "-b", "256", "-m", form, passphrase="correct horse")
    with pytest.raises(SignatureError, match="set FAILOVER_SIGNING_KEY_PASSPHRASE"):
        sign(DATA, key)
    with pytest.raises(SignatureError, match=rf"^{re.escape(str(key))}: .*FAILOVER_SIGNING_KEY_PASSPHRASE"):
        sign(DATA, key, passphrase=b"wrong")
    text = sign(DATA, key, passphrase=b"correct horse")
    assert (
        keygen_verify(f"me@example.com {public_line(key)}\n", text, "me@example.com", tmp_path).returncode
        == 0
    )


def test_a_passphrase_for_a_key_without_one_is_harmless(keys: dict[str, Path]) -> None:
    verify(DATA, parse_signature(sign(DATA, keys["ed25519"], passphrase=b"unused"), "x.sig"))


def test_an_rsa_key_is_refused(tmp_path: Path) -> None:
    key = new_key(tmp_path, "rsa", "-t", "rsa", "-b", "2048")
    with pytest.raises(
        SignatureError, match=rf"^{re.escape(str(key))}: expected an ed25519 or ECDSA .*found an RSA key"
    ):
        sign(DATA, key)


def test_a_public_key_file_is_refused_naming_the_private_one(keys: dict[str, Path]) -> None:
    key = keys["ed25519"]
    with pytest.raises(SignatureError, match=rf"found a public key file: give {re.escape(str(key))}$"):
        sign(DATA, key.with_name("ed25519.pub"))
    copy = key.with_name("public-copy")
    copy.write_text(key.with_name("ed25519.pub").read_text())
    with pytest.raises(SignatureError, match="expected a private key, found a public key"):
        sign(DATA, copy)


def test_a_missing_or_foreign_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match=r"absent: expected a readable private key file"):
        sign(DATA, tmp_path / "absent")
    (tmp_path / "notes").write_text("hello\n")
    with pytest.raises(SignatureError, match=r"notes: expected an OpenSSH private key .*found 'hello"):
        sign(DATA, tmp_path / "notes")


def test_signature_error_is_a_failover_error() -> None:
    assert issubclass(SignatureError, FailoverError)


# --- malformed signatures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def good(keys: dict[str, Path]) -> dict[str, bytes]:
    return {name: dearmor(sign(DATA, key)) for name, key in keys.items()}


def _mangled(good: dict[str, bytes]) -> dict[str, tuple[str, str]]:
    blob = good["ed25519"]
    parts = fields(blob)
    text = armor(blob)
    lines = text.split("\n")
    return {
        "no header": (
            text.replace("BEGIN SSH SIGNATURE", "BEGIN PGP SIGNATURE"),
            "expected an armored SSH signature",
        ),
        "no footer": (text.replace("-----END SSH SIGNATURE-----", ""), "expected the footer"),
        "text after footer": (text + "more\n", "expected nothing after"),
        "bad base64": ("\n".join([lines[0], lines[1][:-3] + "!*#", *lines[2:]]), "expected base64"),
        "bad padding": ("\n".join([lines[0], lines[1][:-1], *lines[2:]]), "expected base64"),
        "not ascii": ("\n".join([lines[0], "é" + lines[1][1:], *lines[2:]]), "expected base64"),
        "empty": (armor(b""), "expected 6 bytes of the magic"),
        "wrong magic": (armor(b"SSHSIX" + blob[6:]), "expected the magic 'SSHSIG', found b'SSHSIX'"),
        "wrong version": (armor(blob_of(parts, version=2)), "expected version 1, found version 2"),
        "version 0": (armor(blob_of(parts, version=0)), "expected version 1, found version 0"),
        "truncated": (armor(blob[:-7]), "expected 83 bytes of the signature"),
        "truncated length": (armor(blob[:12]), "expected 4 bytes of the length of the public key"),
        "trailing bytes": (armor(blob + b"\0\0"), "expected the end of the signature, found 2 trailing byte"),
        "unknown hash": (
            armor(blob_of([*parts[:3], b"md5", parts[4]])),
            "expected hash algorithm sha256 or sha512",
        ),
        "empty namespace": (
            armor(blob_of([parts[0], b"", *parts[2:]])),
            "expected a namespace, found an empty one",
        ),
        "namespace not utf-8": (armor(blob_of([parts[0], b"\xff", *parts[2:]])), "namespace as UTF-8"),
        "bad key": (
            armor(blob_of([string(b"ssh-ed25519") + string(b"short"), *parts[1:]])),
            "valid ssh-ed25519",
        ),
        "key trailing": (
            armor(blob_of([parts[0] + b"\0", *parts[1:]])),
            "expected the end of the public key",
        ),
        "dsa key": (
            armor(blob_of([string(b"ssh-dss") + string(b"x"), *parts[1:]])),
            "found one by a 'ssh-dss' key",
        ),
        "signature trailing": (armor(blob_of([*parts[:4], parts[4] + b"\0"])), "malformed signature field"),
    }


CASES = [
    "no header", "no footer", "text after footer", "bad base64", "bad padding", "not ascii", "empty",
    "wrong magic", "wrong version", "version 0", "truncated", "truncated length", "trailing bytes",
    "unknown hash", "empty namespace", "namespace not utf-8", "bad key", "key trailing", "dsa key",
    "signature trailing",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_a_malformed_signature_is_refused_naming_where(good: dict[str, bytes], case: str) -> None:
    text, expected = _mangled(good)[case]
    with pytest.raises(SignatureError) as caught:
        parse_signature(text, "plans/p.json.sig")
    assert str(caught.value).startswith("plans/p.json.sig: ")
    assert expected in str(caught.value)


def test_cases_cover_every_mangling(good: dict[str, bytes]) -> None:
    assert sorted(CASES) == sorted(_mangled(good))


def test_an_rsa_signature_by_ssh_keygen_is_refused(tmp_path: Path) -> None:
    key = new_key(tmp_path, "rsa", "-t", "rsa", "-b", "2048")
    with pytest.raises(
        SignatureError, match=r"^rsa\.sig: expected a signature by an ed25519 or ECDSA .*'ssh-rsa'"
    ):
        parse_signature(keygen_sign(key, DATA), "rsa.sig")


def test_a_signature_type_that_is_not_the_keys_is_refused(good: dict[str, bytes]) -> None:
    ed, ec = fields(good["ed25519"]), fields(good["ecdsa-p256"])
    sig_bytes = strings(ed[4])[1]
    # an ECDSA key with an ed25519-typed signature, and the other way round
    for key_part, raw in (
        (ec[0], string(b"ssh-ed25519") + string(sig_bytes)),
        (ed[0], string(b"ecdsa-sha2-nistp256") + string(sig_bytes)),
    ):
        signature = parse_signature(armor(blob_of([key_part, *ed[1:4], raw])), "mixed.sig")
        with pytest.raises(SignatureError, match=r"^mixed\.sig: expected a .* signature \(the key's type\)"):
            verify(DATA, signature)


def test_an_ecdsa_signature_with_malformed_integers_is_refused(good: dict[str, bytes]) -> None:
    parts = fields(good["ecdsa-p256"])
    kind, inner = strings(parts[4])
    r, s = strings(inner)
    for bad, expected in (
        (inner + b"\0", "expected the end of the ECDSA signature, found 1 trailing byte"),
        (string(b"\xff" + r) + string(s), "expected r as a positive mpint, found a negative one"),
        (string(r) + string(b"\0\0" + s.lstrip(b"\0")), "expected s as a minimal mpint"),
        (string(r), "expected 4 bytes of the length of s"),
    ):
        signature = parse_signature(armor(blob_of([*parts[:4], string(kind) + string(bad)])), "e.sig")
        with pytest.raises(
            SignatureError, match=rf"^e\.sig: malformed ECDSA signature: {re.escape(expected)}"
        ):
            verify(DATA, signature)


def test_a_nonempty_reserved_field_is_ignored_as_ssh_keygen_does(good: dict[str, bytes]) -> None:
    parts = fields(good["ed25519"])
    text = armor(blob_of([parts[0], parts[1], b"future", *parts[3:]]))
    verify(DATA, parse_signature(text, "r.sig"))


def test_crlf_armor_is_read(good: dict[str, bytes]) -> None:
    verify(DATA, parse_signature(armor(good["ed25519"]).replace("\n", "\r\n"), "crlf.sig"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_in_the_armor_raise_signature_error_only(blob: bytes) -> None:
    with pytest.raises(SignatureError, match=r"^fuzz\.sig: "):
        parse_signature(armor(blob), "fuzz.sig")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_raises_signature_error_only(text: str) -> None:
    for candidate in (text, f"-----BEGIN SSH SIGNATURE-----\n{text}\n-----END SSH SIGNATURE-----\n"):
        with pytest.raises(SignatureError):
            parse_signature(candidate, "fuzz.sig")


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), where=st.integers(min_value=0), flip=st.integers(1, 255))
def test_any_changed_byte_of_a_signature_is_refused(
    good: dict[str, bytes], kind: str, where: int, flip: int
) -> None:
    blob = bytearray(good[kind])
    blob[where % len(blob)] ^= flip
    with pytest.raises(SignatureError, match=r"^fuzz\.sig: "):
        verify(DATA, parse_signature(armor(bytes(blob)), "fuzz.sig"))


# --- allowed signers --------------------------------------------------------------------------


def signature_by(key: Path) -> Signature:
    return parse_signature(sign(DATA, key), f"{key.name}.sig")


def test_principal_wildcards_and_negation_agree_with_ssh_keygen(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    key = keys["ed25519"]
    allowed = f"*@example.com,!mallory@example.com,ops-?@corp {public_line(key)} reviewers\n"
    signers = parse_allowed_signers(allowed, "allowed")
    assert signers[0].principals == ("*@example.com", "!mallory@example.com", "ops-?@corp")
    signature = signature_by(key)
    text = sign(DATA, key)
    expected = {
        "alice@example.com": True,
        "mallory@example.com": False,
        "ops-1@corp": True,
        "ops-12@corp": False,
        "alice@example.org": False,
        "ALICE@EXAMPLE.COM": False,
    }
    for principal, allowed_or_not in expected.items():
        assert is_allowed(signers, signature, principal, NAMESPACE, NOW) is allowed_or_not, principal
        assert (keygen_verify(allowed, text, principal, tmp_path).returncode == 0) is allowed_or_not, (
            principal
        )
    assert principals_for(signers, signature, NAMESPACE, NOW) == [
        "*@example.com",
        "!mallory@example.com",
        "ops-?@corp",
    ]


def test_only_negations_allow_nobody(keys: dict[str, Path]) -> None:
    signers = parse_allowed_signers(f"!mallory@example.com {public_line(keys['ed25519'])}\n", "allowed")
    assert not is_allowed(signers, signature_by(keys["ed25519"]), "alice@example.com", NAMESPACE, NOW)


def test_namespaces_option_restricts_and_agrees_with_ssh_keygen(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    key = keys["ecdsa-p256"]
    signature, text = signature_by(key), sign(DATA, key)
    for option, allows in (
        ('namespaces="git,failover-*"', True),
        ('namespaces="git,file"', False),
        ('namespaces="failover-plan"', True),
        ('namespaces="*,!failover-plan"', False),
    ):
        allowed = f"alice@example.com {option} {public_line(key)}\n"
        signers = parse_allowed_signers(allowed, "allowed")
        assert bool(principals_for(signers, signature, NAMESPACE, NOW)) is allows, option
        assert (keygen_verify(allowed, text, "alice@example.com", tmp_path).returncode == 0) is allows, option
    signers = parse_allowed_signers(
        f'alice@example.com namespaces="git,file" {public_line(key)}\n', "allowed"
    )
    assert signers[0].namespaces == ("git", "file")
    assert principals_for(signers, signature, "git", NOW) == ["alice@example.com"]


def test_validity_times_past_and_future_agree_with_ssh_keygen(keys: dict[str, Path], tmp_path: Path) -> None:
    key = keys["ed25519"]
    signature, text = signature_by(key), sign(DATA, key)
    past, future = (NOW - timedelta(days=3)).strftime("%Y%m%d"), (NOW + timedelta(days=3)).strftime("%Y%m%d")
    for options, allows in (
        (f'valid-after="{past}"', True),
        (f'valid-after="{future}"', False),
        (f'valid-before="{future}Z"', True),
        (f'valid-before="{past}Z"', False),
        (f'valid-after="{past}0930Z",valid-before="{future}1200"', True),
        (f'valid-after="20000101000000Z",valid-before="{past}235959"', False),
    ):
        allowed = f"alice@example.com {options} {public_line(key)}\n"
        signers = parse_allowed_signers(allowed, "allowed")
        assert bool(principals_for(signers, signature, NAMESPACE, NOW)) is allows, options
        assert (keygen_verify(allowed, text, "alice@example.com", tmp_path).returncode == 0) is allows, (
            options
        )


def test_validity_bounds_are_whole_seconds_and_inclusive_as_openssh(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    key = keys["ed25519"]
    signature, text = signature_by(key), sign(DATA, key)
    allowed = f'a@x valid-after="20300101000000Z",valid-before="20300201000000Z" {public_line(key)}\n'
    signers = parse_allowed_signers(allowed, "allowed")
    after, before = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC)
    second = timedelta(seconds=1)
    for at, allows in (
        (after - second, False),
        (after, True),
        (before, True),
        (before + timedelta(milliseconds=500), True),
        (before + second, False),
    ):
        assert bool(principals_for(signers, signature, NAMESPACE, at)) is allows, at
        stamp = f"-Overify-time={at.strftime('%Y%m%d%H%M%S')}Z"
        assert (keygen_verify(allowed, text, "a@x", tmp_path, DATA, stamp).returncode == 0) is allows, at


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZoneSetter]:
    """Sets the local time zone of this process (and of the ssh-keygen it runs)."""

    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def test_times_without_z_are_local_standard_time_and_with_z_utc(
    keys: dict[str, Path], zone: ZoneSetter
) -> None:
    zone("Europe/Berlin")
    ed = public_line(keys["ed25519"])
    winter = parse_allowed_signers(f'a@x valid-after="202401021530",valid-before="20250101Z" {ed}', "a")[0]
    assert winter.valid_after == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert winter.valid_after is not None and winter.valid_after.tzinfo is not None
    assert winter.valid_before == datetime(2025, 1, 1, tzinfo=UTC)
    # as OpenSSH: summer dates too are read in standard time (UTC+1 here), not daylight saving time
    summer = parse_allowed_signers(f'a@x valid-after="20240702153000" {ed}', "a")[0]
    assert summer.valid_after == datetime(2024, 7, 2, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"])
def test_local_times_are_read_as_ssh_keygen_reads_them(
    keys: dict[str, Path], tmp_path: Path, zone: ZoneSetter, name: str
) -> None:
    zone(name)
    key = keys["ed25519"]
    signature, text = signature_by(key), sign(DATA, key)
    for local in ("20300115120000", "20300715120000", "203007151200", "20300715"):
        allowed = f'a@x valid-after="{local}" {public_line(key)}\n'
        start = parse_allowed_signers(allowed, "allowed")[0].valid_after
        assert start is not None
        for at, allows in ((start - timedelta(seconds=1), False), (start, True)):
            assert (
                bool(principals_for(parse_allowed_signers(allowed, "a"), signature, NAMESPACE, at)) is allows
            )
            stamp = f"-Overify-time={at.astimezone(UTC).strftime('%Y%m%d%H%M%S')}Z"
            done = keygen_verify(allowed, text, "a@x", tmp_path, DATA, stamp)
            assert (done.returncode == 0) is allows, (name, local, at)


def test_cert_authority_lines_never_match_a_plain_key(keys: dict[str, Path], tmp_path: Path) -> None:
    key = keys["ed25519"]
    allowed = f"*@example.com cert-authority {public_line(key)}\n"
    signers = parse_allowed_signers(allowed, "allowed")
    assert signers[0].cert_authority
    assert principals_for(signers, signature_by(key), NAMESPACE, NOW) == []
    assert not is_allowed(signers, signature_by(key), "alice@example.com", NAMESPACE, NOW)
    assert keygen_verify(allowed, sign(DATA, key), "alice@example.com", tmp_path).returncode != 0


def test_a_key_not_listed_is_allowed_nothing(keys: dict[str, Path]) -> None:
    ed, p256 = public_line(keys["ed25519"]), public_line(keys["ecdsa-p256"])
    text = f"alice@example.com {ed}\nbob@example.com {p256}\n"
    signers = parse_allowed_signers(text, "allowed")
    assert principals_for(signers, signature_by(keys["ecdsa-p384"]), NAMESPACE, NOW) == []
    assert principals_for(signers, signature_by(keys["ecdsa-p256"]), NAMESPACE, NOW) == ["bob@example.com"]
    assert principals_for([], signature_by(keys["ecdsa-p256"]), NAMESPACE, NOW) == []


def test_file_layout_comments_quotes_and_line_numbers(keys: dict[str, Path]) -> None:
    ed, p256 = public_line(keys["ed25519"]), public_line(keys["ecdsa-p256"])
    text = (
        "# reviewers of failover plans\n"
        "\n"
        f'   "alice@example.com,bob@example.com" {ed} alice laptop\n'
        "\t# an indented comment\n"
        f'carol@example.com NAMESPACES="git,failover-plan",Valid-After="20200101" {p256}\r\n'
        f'dave@example.com namespaces="say \\"hi\\",x",cert-authority {p256}\n'
    )
    signers = parse_allowed_signers(text, "allowed")
    assert [s.line for s in signers] == [3, 5, 6]
    assert signers[0].principals == ("alice@example.com", "bob@example.com")
    assert signers[0].public_key == ed and signers[0].key_type == "ssh-ed25519"
    assert signers[0].namespaces is None and signers[0].valid_after is None and not signers[0].cert_authority
    assert signers[1].namespaces == ("git", "failover-plan")
    assert signers[2].namespaces == ('say "hi"', "x") and signers[2].cert_authority
    assert signers[1].fingerprint == signature_by(keys["ecdsa-p256"]).fingerprint
    assert all(isinstance(s, AllowedSigner) for s in signers)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("alice@x", "expected principals, options and a key, found only 'alice@x'"),
        ("alice@x nonsense=1 KEY", "expected an option (cert-authority"),
        ('alice@x verify-required,namespaces="a" KEY', "found 'verify-required'"),
        ("alice@x cert-authorityX KEY", "found 'cert-authorityX'"),
        ("alice@x namespaces=git KEY", 'expected a quoted value (namespaces="...")'),
        ('alice@x namespaces="git KEY', "expected a closing quote in the options"),
        ('alice@x namespaces="a",namespaces="b" KEY', "expected one namespaces option, found several"),
        ("alice@x cert-authority, KEY", "expected another option after ','"),
        ('alice@x valid-after="2024-01-01" KEY', "expected valid-after as YYYYMMDD"),
        ('alice@x valid-before="20240231" KEY', "which is not a valid date"),
        (
            'alice@x valid-after="20250101",valid-before="20240101" KEY',
            "expected valid-before after valid-after",
        ),
        ('alice@x namespaces="git"', "expected a key after the options"),
        ('alice@x namespaces="git" ssh-foo AAAA', "expected a key type such as ssh-ed25519"),
        ("alice@x ssh-ed25519", "expected the base64 ssh-ed25519 key after its type"),
        ("alice@x ssh-ed25519 not-base64!", "expected a base64 ssh-ed25519 key"),
        (
            "alice@x ecdsa-sha2-nistp256 ED_BLOB",
            "expected a ecdsa-sha2-nistp256 key, found a key blob of another",
        ),
        ("alice@x ssh-ed25519 SHORT_BLOB", "expected a valid ssh-ed25519 key"),
        ("KEY", "expected principals before the key, found the key type 'ssh-ed25519' first"),
        ('"alice@x KEY', "expected a closing quote after the principals"),
        ('"" KEY', "expected at least one principal"),
    ],
)
def test_a_line_that_does_not_parse_names_file_and_line(
    keys: dict[str, Path], line: str, expected: str
) -> None:
    ed = public_line(keys["ed25519"])
    short = base64.b64encode(string(b"ssh-ed25519") + string(b"short")).decode()
    line = line.replace("KEY", ed).replace("ED_BLOB", ed.split()[1]).replace("SHORT_BLOB", short)
    text = f"# header\nok@x {ed}\n{line}\nlater@x {ed}\n"
    with pytest.raises(SignatureError) as caught:
        parse_allowed_signers(text, "etc/allowed_signers")
    assert str(caught.value).startswith("etc/allowed_signers:3: "), str(caught.value)
    assert expected in str(caught.value)


def test_keys_of_types_that_cannot_sign_plans_are_listed_but_match_nothing(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    rsa = new_key(tmp_path, "rsa", "-t", "rsa", "-b", "2048")
    signers = parse_allowed_signers(
        f"legacy@x {public_line(rsa)}\nnew@x {public_line(keys['ed25519'])}\n", "a"
    )
    assert signers[0].key_type == "ssh-rsa"
    assert principals_for(signers, signature_by(keys["ed25519"]), NAMESPACE, NOW) == ["new@x"]


PIECES = st.sampled_from([*'ab@*?!," =\\#\t-', "namespaces=", "valid-after=", "cert-authority", "20240101"])


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=12))
def test_any_allowed_signers_text_raises_signature_error_only(
    keys: dict[str, Path], pieces: list[str]
) -> None:
    line = "".join(pieces)
    for text in (
        line,
        f"{line} {public_line(keys['ed25519'])}",
        f"p@x {line} {public_line(keys['ed25519'])}",
    ):
        try:
            parse_allowed_signers(text, "fuzz")
        except SignatureError as exc:
            assert re.match(r"^fuzz:\d+: expected ", str(exc)), str(exc)
