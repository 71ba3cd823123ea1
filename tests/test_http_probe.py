"""http.probe against local servers: one whose answers the test sets (over TLS with a self-signed
certificate too), one that accepts connections and never answers, and a port that refuses them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from failover.errors import DeadlineError
from failover.providers.base import CheckResult, Placement
from failover.providers.signals.http_probe import BODY_BYTES, Probe
from tests.conftest import check_context
from tests.servers import FullBacklog, HttpServer, HungServer, Reply, self_signed

PROBE = Probe()


@pytest.fixture
def site() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.close()


def probe(tmp_path: Path, **params: Any) -> CheckResult:
    return PROBE.run(check_context(tmp_path), PROBE.parse(params))


def test_the_expected_status_passes(site: HttpServer, tmp_path: Path) -> None:
    url = site.reply("/healthz", Reply(200, b"ok"))
    seen = probe(tmp_path, url=url)
    assert seen.ok, seen.message
    assert isinstance(seen.observed, dict)
    assert (seen.observed["status"], seen.observed["matched"]) == (200, None)
    assert isinstance(seen.observed["elapsed_ms"], int)
    assert seen.message == f"GET {url} answered 200 in {seen.observed['elapsed_ms']} ms"


def test_another_status_fails_saying_which(site: HttpServer, tmp_path: Path) -> None:
    url = site.reply("/healthz", Reply(503, b"draining"))
    seen = probe(tmp_path, url=url)
    assert not seen.ok
    assert isinstance(seen.observed, dict) and seen.observed["status"] == 503
    assert seen.message == f"GET {url}: expected status 200, found 503"
    assert probe(tmp_path, url=url, status=503).ok


def test_a_redirect_is_not_followed(site: HttpServer, tmp_path: Path) -> None:
    site.reply("/new", Reply(200, b"ok"))
    url = site.reply("/old", Reply(301, b"", {"Location": "/new"}))
    seen = probe(tmp_path, url=url)
    assert seen.message == f"GET {url}: expected status 200, found 301 (a redirect to /new, not followed)"
    assert probe(tmp_path, url=url, status=301).ok
    assert [s.path for s in site.seen] == ["/old", "/old"]


def test_the_body_must_match(site: HttpServer, tmp_path: Path) -> None:
    url = site.reply(
        "/healthz", Reply(200, b'{"status": "ok", "db": "up"}', {"Content-Type": "application/json"})
    )
    seen = probe(tmp_path, url=url, body=r'"status":\s*"ok"')
    assert seen.ok, seen.message
    assert isinstance(seen.observed, dict) and seen.observed["matched"] is True
    assert seen.message.endswith(' ms, its body matching /"status":\\s*"ok"/')

    seen = probe(tmp_path, url=url, body=r'"db":\s*"down"')
    assert not seen.ok
    assert isinstance(seen.observed, dict) and (seen.observed["status"], seen.observed["matched"]) == (
        200,
        False,
    )
    assert seen.message == (
        f'GET {url}: expected the body to match /"db":\\s*"down"/, found no match in its 28 bytes, '
        'which start \'{"status": "ok", "db": "up"}\''
    )


def test_status_and_body_both_wrong_are_both_named(site: HttpServer, tmp_path: Path) -> None:
    url = site.reply("/healthz", Reply(500, b""))
    seen = probe(tmp_path, url=url, body="ok")
    assert (
        seen.message
        == f"GET {url}: expected status 200, found 500; expected the body to match /ok/, found an empty body"
    )


def test_the_body_is_decoded_in_its_charset(site: HttpServer, tmp_path: Path) -> None:
    url = site.reply(
        "/", Reply(200, "état: prêt".encode("latin-1"), {"Content-Type": "text/plain; charset=ISO-8859-1"})
    )
    assert probe(tmp_path, url=url, body="état: prêt").ok


def test_only_the_first_mebibyte_of_the_body_is_read(site: HttpServer, tmp_path: Path) -> None:
    url = site.reply("/big", Reply(200, b"a" * BODY_BYTES + b"MARKER"))
    seen = probe(tmp_path, url=url, body="MARKER")
    assert not seen.ok
    assert f"found no match in its first {BODY_BYTES} bytes, which start 'aaaa" in seen.message
    assert probe(tmp_path, url=url, body="^a{1000}").ok


def test_head_sends_a_head_and_headers_are_sent(site: HttpServer, tmp_path: Path) -> None:
    url = site.reply("/healthz", Reply(204))
    seen = probe(
        tmp_path,
        url=url,
        method="HEAD",
        status=204,
        headers={"Host": "shop.example.com", "X-Probe": "failover"},
    )
    assert seen.ok, seen.message
    (request,) = site.seen
    assert (request.method, request.headers["host"], request.headers["x-probe"]) == (
        "HEAD",
        "shop.example.com",
        "failover",
    )


def test_a_server_that_never_answers_fails_after_the_timeout(hung: HungServer, tmp_path: Path) -> None:
    seen = probe(tmp_path, url=f"{hung.url}/healthz", timeout="1s")
    assert not seen.ok
    assert isinstance(seen.observed, dict) and (seen.observed["status"], seen.observed["matched"]) == (
        None,
        None,
    )
    assert seen.message == f"GET {hung.url}/healthz: connected, but no answer within 1s (timed out)"


def test_a_refused_connection_fails_saying_so(refused: str, tmp_path: Path) -> None:
    seen = probe(tmp_path, url=f"{refused}/healthz")
    assert not seen.ok
    assert isinstance(seen.observed, dict) and seen.observed["status"] is None
    assert seen.message == f"GET {refused}/healthz: connection refused"


def test_a_port_that_never_connects_fails_after_the_timeout(tmp_path: Path) -> None:
    port = FullBacklog()
    try:
        seen = probe(tmp_path, url=f"{port.url}/healthz", timeout="1s")
    finally:
        port.close()
    assert seen.message == f"GET {port.url}/healthz: could not connect within 1s (timed out)"


def test_a_host_that_does_not_resolve_fails_saying_so(tmp_path: Path) -> None:
    seen = probe(tmp_path, url="http://no-such-host.invalid/healthz")
    assert not seen.ok
    assert seen.message.startswith(
        "GET http://no-such-host.invalid/healthz: could not connect: Failed to resolve 'no-such-host.invalid'"
    )


def test_a_connection_cut_off_fails_saying_so(tls_site: HttpServer, tmp_path: Path) -> None:
    url = tls_site.url.replace("https://", "http://")  # plain HTTP to a TLS server: it hangs up
    seen = probe(tmp_path, url=url)
    assert seen.message.startswith(f"GET {url}: the connection failed: ")


def test_the_check_deadline_bounds_the_probe(hung: HungServer, site: HttpServer, tmp_path: Path) -> None:
    params = PROBE.parse({"url": hung.url, "timeout": "30s"})
    seen = PROBE.run(check_context(tmp_path, seconds_left=1.5), params)
    assert seen.message == f"GET {hung.url}: connected, but no answer within 1s (timed out)"
    url = site.reply("/healthz", Reply(200))
    with pytest.raises(DeadlineError):
        PROBE.run(check_context(tmp_path, seconds_left=0), PROBE.parse({"url": url}))
    assert site.seen == []  # no request left


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = HttpServer(tls=self_signed(tmp_path_factory.mktemp("tls")))
    server.reply("/healthz", Reply(200, b"ok"))
    yield server
    server.close()


def test_a_self_signed_certificate_fails_verification(tls_site: HttpServer, tmp_path: Path) -> None:
    seen = probe(tmp_path, url=f"{tls_site.url}/healthz")
    assert not seen.ok
    assert seen.message.startswith(f"GET {tls_site.url}/healthz: TLS failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in seen.message


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verify_tls_false_accepts_it(tls_site: HttpServer, tmp_path: Path) -> None:
    seen = probe(tmp_path, url=f"{tls_site.url}/healthz", verify_tls=False, body="^ok$")
    assert seen.ok, seen.message


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"url": "ftp://files/healthz"},
            "expected an http:// or https:// URL with a host, found 'ftp://files/healthz'",
        ),
        ({"url": "http:///healthz"}, "expected an http:// or https:// URL with a host"),
        (
            {"body": "(unclosed"},
            "expected a regular expression, found '(unclosed': missing ), unterminated subpattern",
        ),
        ({"method": "HEAD", "body": "ok"}, "body is matched against a GET's body: a HEAD answer has none"),
        ({"method": "POST"}, "Input should be 'GET' or 'HEAD'"),
        ({"status": 99}, "Input should be greater than or equal to 100"),
        ({"timeout": 0}, "Input should be greater than 0"),
        ({"follow": True}, "Extra inputs are not permitted"),
    ],
)
def test_parameters_are_checked_when_the_runbook_loads(params: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(error)):
        PROBE.parse({"url": "https://shop.example.com/healthz", **params})


def test_a_url_with_a_reference_is_checked_once_it_is_filled_in() -> None:
    assert PROBE.parse({"url": "${env:HEALTH_URL}"}).url == "${env:HEALTH_URL}"


def test_the_plan_sentence_says_what_is_asked_and_that_redirects_are_not_followed() -> None:
    params = PROBE.parse({"url": "https://shop.example.com/healthz", "body": "ok", "verify_tls": False})
    assert PROBE.describe(params, Placement("west")) == (
        "Check at west that GET https://shop.example.com/healthz answers 200 with a body matching /ok/ "
        "within 5s (redirects not followed, its certificate not verified)"
    )
