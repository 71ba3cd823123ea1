"""The redactor itself: what it catches (by key, by shape, by registered value), what it leaves
alone (references to secrets, and what only looks like a secret), and the log processor. The
command line run over a corpus of planted secrets is in test_canaries.py."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from failover.logs import configure
from failover.redact import (
    REDACTED,
    forget_secrets,
    is_secret_key,
    redact,
    redact_processor,
    redact_strings,
    register_secret,
    secret_values_in,
)


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("https://deploy:pa55word@git.internal/shop.git", "pa55word"),
        ("postgres://app:p@ss@db.internal:5432/app", "p@ss"),
        ("redis://:hunter22@cache:6379/0", "hunter22"),
        ("Authorization: token 0a1b2c3d4e", "0a1b2c3d4e"),
        ("{'Authorization': 'Bearer abc.def.ghi', 'X': 'y'}", "abc.def.ghi"),
        ("Proxy-Authorization: Digest username=ops, response=6b1c9e", "6b1c9e"),
        ("Authorization: Basic " + base64.b64encode(b"svc:pw").decode(), "c3ZjOnB3"),
        ("Cookie: sid=2a9f7e; theme=dark", "2a9f7e"),
        ("Set-Cookie: session=8d3b5a; HttpOnly", "8d3b5a"),
        ("https://api/cb?access_token=5f1e7c&page=2", "5f1e7c"),
        ("https://blob/c?sv=2021&sig=9a7b3c1d", "9a7b3c1d"),
        ("https://b/k?X-Amz-Credential=AKIAX%2F2024&X-Amz-Signature=0e4b6f", "0e4b6f"),
        ("https://b/k?X-Amz-Credential=cred7c1d%2F2024%2Fus-east-1", "cred7c1d"),
        ("https://b/k?X-Amz-Security-Token=FwoGZX3b8c&x=1", "FwoGZX3b8c"),
        ("push with ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9),
        ("github_pat_11ABCDE0_" + "x" * 40, "github_pat_11ABCDE0_"),
        ("xoxb-1200000001-1200000002-AbCdEf", "xoxb-1200000001"),
        ("xoxp-1300000001-1300000002-AbCdEf", "xoxp-1300000001"),
        ("ya29.a0AfH6SMBx_3n7e", "ya29.a0AfH6SMBx_3n7e"),
        ("db-AKIAZ7CANARY0000TEST", "AKIAZ7CANARY0000TEST"),
        ("ASIAZ7CANARY0000SESS", "ASIAZ7CANARY0000SESS"),
        ("key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY.", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r\n-----END OPENSSH PRIVATE KEY-----", "b3Blbn"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN (cut short", "MIIEvQIBADAN"),
        ('{"client_secret": "cs-4e2a7b", "region": "us-east-1"}', "cs-4e2a7b"),
        ("api_key: yamlkey7b3c", "yamlkey7b3c"),
        ("login failed: password=logfmt1c9d user=ops", "logfmt1c9d"),
        ("Server=db;User Id=sa;Password=Hunter2!;", "Hunter2!"),
        ("DB_PWD=abc123 next", "abc123"),
        ("passphrase: 'my long phrase'", "my long phrase"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX3g", "c2lnbmF0dXJlX3g"),
    ],
)
def test_credentials_are_caught_by_their_shape(text: str, secret: str) -> None:
    shown = redact(text)
    assert secret not in shown and REDACTED in shown, shown


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("https://deploy:pa55word@git.internal/shop.git", "https://deploy:"),
        ("Authorization: token 0a1b2c3d4e", "Authorization: token "),
        ("Proxy-Authorization: Bearer abcdefgh12", "Proxy-Authorization: Bearer "),
        ("https://api/cb?access_token=5f1e7c&page=2", "&page=2"),
        ("Server=db;User Id=sa;Password=Hunter2!;", "Server=db;User Id=sa;Password="),
    ],
)
def test_what_is_around_a_credential_stays(text: str, kept: str) -> None:
    assert kept in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "3f786850e387550fdab836ed7e6dc881de23001b",  # a git commit
        "release 3f786850e387550fdab836ed7e6dc881de23001b of shop",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "123e4567-e89b-12d3-a456-426614174000",
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db-AbCdEf",
        "arn:aws:iam::123456789012:role/failover-drill",
        "ami-0abcdef1234567890",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN",  # 40 characters of base32, no digit
        "ThisIsAFortyCharacterIdentifierWithNoDig",  # upper and lower case, no digit
        "secretsmanager:GetSecretValue",
        "${secret:aws-ssm:/prod/db/password}",
        "${secret:aws-sm:prod/api#token}",
        "${env:API_TOKEN}",
        "password=${env:DB_PASSWORD}",
        "postgres://app:${env:DB_PASSWORD}@db.internal/app",
        "ssh://git@github.com/org/repo.git",
        "http://host:8080/path",
        "simulated check passed",
        "basic configuration of the bearer token flow",
    ],
)
def test_near_misses_are_shown_as_they_are(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "password", "passwd", "pwd", "db_pwd", "passphrase", "cookie", "Set-Cookie", "session_token",
        "private_key", "privateKey", "client_secret", "clientSecret", "auth", "basic_auth",
        "authorization", "Proxy-Authorization", "x-api-key", "apiKey", "APIKey", "dsn", "db_pass",
        "connection_string", "SecretString", "aws_secret_access_key", "credentials",
    ],
)  # fmt: skip
def test_secret_looking_keys(key: str) -> None:
    assert is_secret_key(key)
    assert redact({key: "s3cr3t-value"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key",
    [
        "target", "author", "authority", "oauth_scopes", "secret_arn", "secret_id", "token_ttl",
        "password_file", "auth_mode", "idempotency_token", "token_count", "session_id", "passed",
        "bypass", "design", "description", "observed", "kms_key_id", "plan.json.alice.sig",
    ],
)  # fmt: skip
def test_innocent_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_under_a_secret_key_references_stay_and_everything_else_goes() -> None:
    doc = {
        "password": "${secret:aws-ssm:/prod/db/password}",
        "token": "${env:API_TOKEN}",
        "dsn": "postgres://app:${env:DB_PASSWORD}@db/app",
        "api_key": "abc123",
        "auth": {"user": "ops", "pass": "pw", "ttl": 3},
        "pwd": 123456,
        "cookie": None,
        "secret": True,
        "tokens": ["t1", "${env:T2}"],
    }
    assert redact(doc) == {
        "password": "${secret:aws-ssm:/prod/db/password}",
        "token": "${env:API_TOKEN}",
        "dsn": f"{REDACTED}${{env:DB_PASSWORD}}{REDACTED}",
        "api_key": REDACTED,
        "auth": {"user": REDACTED, "pass": REDACTED, "ttl": REDACTED},
        "pwd": REDACTED,
        "cookie": None,
        "secret": True,
        "tokens": [REDACTED, "${env:T2}"],
    }


def test_registered_values_are_redacted_wherever_they_appear() -> None:
    register_secret("tiny")  # too short to be told from a word: ignored
    register_secret("vault-value-81c2")
    register_secret("p@ss/w0rd!")
    doc = {"target": "db-vault-value-81c2", "notes": ["moving vault-value-81c2 to west"], "n": 3}
    assert redact(doc) == {"target": f"db-{REDACTED}", "notes": [f"moving {REDACTED} to west"], "n": 3}
    assert redact("the tiny one") == "the tiny one"
    assert redact("https://h/?q=p%40ss%2Fw0rd%21") == f"https://h/?q={REDACTED}"  # percent-encoded too
    assert redact_strings({"vault-value-81c2": 1}) == {REDACTED: 1}
    forget_secrets()
    assert redact("vault-value-81c2") == "vault-value-81c2"


def test_known_values_are_redacted_in_one_call_only() -> None:
    assert redact("move abc-123-xyz", known=["abc-123-xyz"]) == f"move {REDACTED}"
    assert redact("move abc-123-xyz") == "move abc-123-xyz"


def test_secret_values_in_finds_values_under_secret_keys_anywhere() -> None:
    runbook = {
        "sites": {"west": {"vars": {"api_key": "k-1234567", "asg": "asg-west", "db_password": 987654321}}},
        "services": {
            "db": {
                "steps": [{"with": {"target": "x", "headers": {"Authorization": "token abcdef"}}}],
                "preflight": [{"with": {"observed": {"password": "${secret:aws-ssm:/p}", "pwd": "pw-1"}}}],
            }
        },
        "secret": True,
    }
    assert secret_values_in(runbook) == ["k-1234567", "token abcdef", "pw-1"]


def test_by_name_data_is_redacted_by_value_only() -> None:
    doc = {"token-service": {"measured_s": 3.0, "note": "password=abc123"}}
    assert redact_strings(doc) == {"token-service": {"measured_s": 3.0, "note": f"password={REDACTED}"}}
    assert redact(doc) == {"token-service": {"measured_s": REDACTED, "note": REDACTED}}


def test_the_log_processor_redacts_fields_and_objects() -> None:
    event = {
        "event": "attempt_failed",
        "error": ValueError("login failed: https://u:pw123@h/"),
        "path": "/tmp/x",
        "password": "pw123",
        "result": {"target": "Authorization: Bearer 0123456789abcdef"},
    }
    shown = redact_processor(None, "info", dict(event))
    assert "pw123" not in repr(shown) and "0123456789abcdef" not in repr(shown)
    assert shown["path"] == "/tmp/x"
    already = redact_processor(None, "info", {"event": "x", "password": "pw123", "_redacted": True})
    assert already == {"event": "x", "password": "pw123"}  # the journal's events are redacted already


@pytest.mark.parametrize("json_lines", [True, False])
def test_logs_redact_fields_and_tracebacks_in_both_renderers(
    json_lines: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    configure(json_lines=json_lines, level=logging.INFO)
    log = structlog.get_logger()
    try:
        raise RuntimeError("cannot reach https://admin:tb-secret-77@console.internal/")
    except RuntimeError:
        log.exception("engine_fault", token="tok-secret-55", note="Cookie: sid=ck-secret-33")
    log.info("step_succeeded", result={"target": "db", "api_key": "ak-secret-11"})
    structlog.reset_defaults()
    written = err.getvalue()
    assert "engine_fault" in written and "RuntimeError" in written and "step_succeeded" in written
    for secret in ("tb-secret-77", "tok-secret-55", "ck-secret-33", "ak-secret-11"):
        assert secret not in written
    if json_lines:
        assert all(json.loads(line) for line in written.splitlines())
