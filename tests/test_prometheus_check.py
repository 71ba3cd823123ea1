"""prometheus.query against a real Prometheus server (Debian's package) scraping gauges the tests
set, and against a local server giving the answers a real one gives on its bad days (busy,
behind a proxy, with warnings). Each test waits until Prometheus has scraped what it set, then
asks once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from failover.errors import DeadlineError, ProviderError, TransientProviderError
from failover.providers.base import CheckResult, Placement
from failover.providers.signals.prometheus import Query
from tests.conftest import check_context
from tests.prom_server import JOB, Exporter, PrometheusServer
from tests.servers import HttpServer, HungServer, Reply

QUERY = Query()


def ask(tmp_path: Path, **params: Any) -> CheckResult:
    return QUERY.run(check_context(tmp_path), QUERY.parse(params))


def series(test: str, site: str = "west") -> str:
    """A series of this test's own, as the exporter serves it."""
    return f'shop_error_ratio{{site="{site}",test="{test}"}}'


def scraped(exporter: Exporter, test: str, site: str = "west") -> str:
    """The same series as Prometheus gives it back, with the labels its scrape adds."""
    return f'shop_error_ratio{{instance="{exporter.address}",job="{JOB}",site="{site}",test="{test}"}}'


def set_and_wait(
    prometheus: PrometheusServer, exporter: Exporter, test: str, values: dict[str, float | str]
) -> str:
    """Serve each site's value of this test's series; wait until Prometheus answers them all.
    The query of the test's series."""
    for site, value in values.items():
        exporter.set(series(test, site), value)
    query = f'shop_error_ratio{{test="{test}"}}'
    prometheus.wait_for(query, [str(v) for v in values.values()])
    return query


def test_a_query_under_its_threshold_passes_with_the_value_seen(
    prometheus: PrometheusServer, exporter: Exporter, tmp_path: Path
) -> None:
    query = set_and_wait(prometheus, exporter, "under", {"west": 0.002})
    seen = ask(tmp_path, url=prometheus.url, query=query, op="<", value=0.01)
    name = scraped(exporter, "under")
    assert seen.ok, seen.message
    assert seen.observed == [{name: 0.002}]
    assert seen.message == (
        f"Prometheus at {prometheus.url}, query {query}: 1 sample(s), every one < 0.01; "
        f"closest: {name} = 0.002"
    )


def test_a_query_over_its_threshold_fails_naming_the_worst_sample(
    prometheus: PrometheusServer, exporter: Exporter, tmp_path: Path
) -> None:
    query = set_and_wait(prometheus, exporter, "over", {"west": 0.2, "east": 0.05, "north": 0.001})
    seen = ask(tmp_path, url=prometheus.url, query=query, op="<", value=0.01)
    names = {site: scraped(exporter, "over", site) for site in ("west", "east", "north")}
    assert not seen.ok
    # the wrong side first, farthest first; then the rest, closest first
    assert seen.observed == [{names["west"]: 0.2}, {names["east"]: 0.05}, {names["north"]: 0.001}]
    assert seen.message == (
        f"Prometheus at {prometheus.url}, query {query}: expected every sample < 0.01, "
        f"found 2 of 3 not; worst: {names['west']} = 0.2"
    )


def test_a_value_that_changes_changes_the_answer(
    prometheus: PrometheusServer, exporter: Exporter, tmp_path: Path
) -> None:
    query = set_and_wait(prometheus, exporter, "moving", {"west": 0.002})
    assert ask(tmp_path, url=prometheus.url, query=query, op="<", value=0.01).ok
    set_and_wait(prometheus, exporter, "moving", {"west": 0.5})
    seen = ask(tmp_path, url=prometheus.url, query=query, op="<", value=0.01)
    assert not seen.ok
    assert seen.message.endswith(" = 0.5")


@pytest.mark.parametrize(
    ("op", "value", "ok"),
    [
        ("<", 6, True),
        ("<", 5, False),
        ("<=", 5, True),
        ("<=", 4, False),
        (">", 4, True),
        (">", 5, False),
        (">=", 5, True),
        (">=", 6, False),
        ("==", 5, True),
        ("==", 4, False),
        ("!=", 4, True),
        ("!=", 5, False),
    ],
)
def test_every_comparison(
    prometheus: PrometheusServer, exporter: Exporter, tmp_path: Path, op: str, value: float, ok: bool
) -> None:
    query = set_and_wait(prometheus, exporter, "five", {"west": 5})
    seen = ask(tmp_path, url=prometheus.url, query=query, op=op, value=value)
    assert seen.ok is ok, seen.message
    assert f"sample {op} {value}" in seen.message or f"every one {op} {value}" in seen.message


def test_nan_and_infinity_are_shown_as_prometheus_writes_them(
    prometheus: PrometheusServer, exporter: Exporter, tmp_path: Path
) -> None:
    query = set_and_wait(prometheus, exporter, "odd", {"west": "NaN", "east": "+Inf"})
    seen = ask(tmp_path, url=prometheus.url, query=query, op="<", value=0.01)
    assert not seen.ok
    assert isinstance(seen.observed, list)
    assert sorted(v for item in seen.observed if isinstance(item, dict) for v in item.values()) == [
        "+Inf",
        "NaN",
    ]
    assert seen.message.endswith("= NaN")  # NaN compares with nothing: the worst
    assert ask(tmp_path, url=prometheus.url, query=f"{query} > 0", op=">", value=1e9).ok  # +Inf only


def test_a_scalar_is_one_sample(prometheus: PrometheusServer, exporter: Exporter, tmp_path: Path) -> None:
    query = set_and_wait(prometheus, exporter, "scalar", {"west": 3})
    seen = ask(tmp_path, url=prometheus.url, query=f"scalar({query})", op=">=", value=3)
    assert (seen.ok, seen.observed) == (True, [{"scalar": 3.0}])


@pytest.mark.parametrize(("empty", "ok"), [("fail", False), ("pass", True)])
def test_an_empty_answer_is_what_empty_says(
    prometheus: PrometheusServer, tmp_path: Path, empty: str, ok: bool
) -> None:
    query = 'shop_error_ratio{test="never-set"}'
    seen = ask(tmp_path, url=prometheus.url, query=query, op="<", value=0.01, empty=empty)
    assert (seen.ok, seen.observed) == (ok, [])
    verdict = "passes" if ok else "fails"
    assert (
        seen.message
        == f"Prometheus at {prometheus.url}, query {query}: no sample, which {verdict} (empty: {empty})"
    )


def test_an_empty_answer_fails_by_default(prometheus: PrometheusServer, tmp_path: Path) -> None:
    assert not ask(tmp_path, url=prometheus.url, query='up{job="none"}', op="==", value=1).ok


def test_bad_promql_fails_with_prometheus_own_error(prometheus: PrometheusServer, tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as raised:
        ask(tmp_path, url=prometheus.url, query="sum(rate(", op="<", value=1)
    assert not isinstance(raised.value, TransientProviderError)  # asking again will not help
    assert str(raised.value).startswith(
        f"Prometheus at {prometheus.url}, query sum(rate(: Prometheus answered bad_data: "
    )
    assert "parse error" in str(raised.value)


def test_a_range_vector_is_refused_saying_how_to_make_it_one_value(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    with pytest.raises(
        ProviderError, match=r"found a range vector \(matrix\): aggregate the range over time"
    ):
        ask(tmp_path, url=prometheus.url, query=f'up{{job="{JOB}"}}[1m]', op="==", value=1)
    with pytest.raises(ProviderError, match="expected an instant vector or a scalar, found a string"):
        ask(tmp_path, url=prometheus.url, query='"text"', op="==", value=1)


def test_a_url_that_is_not_the_api_says_so(prometheus: PrometheusServer, tmp_path: Path) -> None:
    with pytest.raises(
        ProviderError, match=r"found HTTP 404: .* \(is url the server's base URL, without /api/v1\?\)"
    ):
        ask(tmp_path, url=f"{prometheus.url}/api/v1", query="up", op="==", value=1)


def test_an_unreachable_server_could_not_be_asked(refused: str, tmp_path: Path) -> None:
    with pytest.raises(TransientProviderError) as raised:
        ask(tmp_path, url=refused, query="up", op="==", value=1)
    assert str(raised.value) == f"Prometheus at {refused}, query up: connection refused"


def test_a_server_that_never_answers_costs_the_check_timeout(hung: HungServer, tmp_path: Path) -> None:
    with pytest.raises(TransientProviderError) as raised:
        ask(tmp_path, url=hung.url, query="up", op="==", value=1, timeout="1s")
    assert (
        str(raised.value)
        == f"Prometheus at {hung.url}, query up: connected, but no answer within 1s (timed out)"
    )


def test_the_deadline_of_the_check_bounds_the_query(hung: HungServer, tmp_path: Path) -> None:
    params = QUERY.parse({"url": hung.url, "query": "up", "op": "==", "value": 1})  # a 10s timeout
    with pytest.raises(TransientProviderError, match="no answer within 1s"):
        QUERY.run(check_context(tmp_path, seconds_left=1.5), params)


# --- a server's bad days, as a local server answers them -----------------------------------------


@pytest.fixture
def api() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.close()


def answer(api: HttpServer, status: int, payload: object, content_type: str = "application/json") -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    api.reply("/prom/api/v1/query", Reply(status, body, {"Content-Type": content_type}))


def vector(*samples: tuple[dict[str, str], str], **extra: object) -> dict[str, object]:
    result = [{"metric": metric, "value": [1700000000.0, value]} for metric, value in samples]
    return {"status": "success", "data": {"resultType": "vector", "result": result}, **extra}


def test_the_query_its_timeout_and_credentials_are_sent(api: HttpServer, tmp_path: Path) -> None:
    answer(api, 200, vector(({"__name__": "up"}, "1")))
    assert ask(
        tmp_path, url=f"{api.url}/prom/", query='up{job="x"}', op="==", value=1, bearer_token="t0ken-abc"
    ).ok
    assert ask(
        tmp_path, url=f"{api.url}/prom", query="up", op="==", value=1, username="ops", password="pw:1"
    ).ok
    first, second = api.seen
    assert first.path == "/prom/api/v1/query?query=up%7Bjob%3D%22x%22%7D&timeout=10"
    assert first.headers["authorization"] == "Bearer t0ken-abc"
    assert second.headers["authorization"] == "Basic b3BzOnB3OjE="  # ops:pw:1


def test_no_query_leaves_once_the_deadline_passed(api: HttpServer, tmp_path: Path) -> None:
    answer(api, 200, vector(({"__name__": "up"}, "1")))
    params = QUERY.parse({"url": f"{api.url}/prom", "query": "up", "op": "==", "value": 1})
    with pytest.raises(DeadlineError):
        QUERY.run(check_context(tmp_path, seconds_left=0), params)
    assert api.seen == []


def test_warnings_are_part_of_the_message(api: HttpServer, tmp_path: Path) -> None:
    answer(api, 200, vector(({"site": "west"}, "0.5"), warnings=["remote read of store-2 failed"]))
    seen = ask(tmp_path, url=f"{api.url}/prom", query="ratio", op="<", value=1)
    assert seen.ok
    assert seen.message.endswith(
        'closest: {site="west"} = 0.5 (Prometheus warned: remote read of store-2 failed)'
    )


def test_the_observation_is_bounded_and_the_message_counts_every_sample(
    api: HttpServer, tmp_path: Path
) -> None:
    answer(api, 200, vector(*(({"pod": f"p{n:02}"}, str(n)) for n in range(40))))
    seen = ask(tmp_path, url=f"{api.url}/prom", query="load", op="<", value=30)
    assert not seen.ok
    assert seen.observed == [{f'{{pod="p{n:02}"}}': float(n)} for n in range(39, 29, -1)]
    assert 'found 10 of 40 not; worst: {pod="p39"} = 39' in seen.message


@pytest.mark.parametrize(
    ("status", "payload", "transient", "text"),
    [
        (
            503,
            {"status": "error", "errorType": "timeout", "error": "query timed out"},
            True,
            "timeout: query timed out",
        ),
        (
            422,
            {"status": "error", "errorType": "execution", "error": "too many samples"},
            False,
            "execution: too many samples",
        ),
        (
            502,
            b"<html><body>Bad Gateway</body></html>",
            True,
            "found HTTP 502: '<html><body>Bad Gateway</body></html>'",
        ),
        (
            401,
            b"Unauthorized",
            False,
            "found HTTP 401: 'Unauthorized' (check bearer_token, or username and password)",
        ),
        (200, b"<html>login</html>", False, "expected an answer of the Prometheus API (JSON with a status)"),
        (
            200,
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]},
            },
            False,
            'expected [time, "number"] for {}',
        ),
        (
            200,
            {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {"__name__": "lat"}, "histogram": [1, {}]}],
                },
            },
            False,
            "lat is a native histogram",
        ),
    ],
    ids=["busy", "execution", "proxy-502", "denied", "not-json", "not-a-number", "histogram"],
)
def test_answers_that_are_not_an_answer_say_what_was_found(
    api: HttpServer, tmp_path: Path, status: int, payload: object, transient: bool, text: str
) -> None:
    answer(api, status, payload, "application/json" if isinstance(payload, dict) else "text/html")
    with pytest.raises(ProviderError) as raised:
        ask(tmp_path, url=f"{api.url}/prom", query="up", op="==", value=1)
    assert isinstance(raised.value, TransientProviderError) is transient
    assert str(raised.value).startswith(f"Prometheus at {api.url}/prom, query up: ")
    assert text in str(raised.value)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"url": "prometheus:9090"}, "expected an http:// or https:// URL with a host"),
        ({"op": "=~"}, "Input should be '<', '<=', '>', '>=', '==' or '!='"),
        ({"value": "nan"}, "Input should be a finite number"),
        ({"empty": "ignore"}, "Input should be 'fail' or 'pass'"),
        ({"username": "ops"}, "give username and password together, or neither"),
        (
            {"username": "ops", "password": "x", "bearer_token": "y"},
            "give bearer_token, or username and password, not both",
        ),
        ({"timeout": "0s"}, "Input should be greater than 0"),
    ],
)
def test_parameters_are_checked_when_the_runbook_loads(params: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(error)):
        QUERY.parse({"url": "http://prometheus:9090", "query": "up", "op": "==", "value": 1, **params})


def test_the_plan_sentence_names_the_query_the_server_and_the_threshold() -> None:
    params = QUERY.parse(
        {
            "url": "http://prom:9090",
            "query": 'sum(rate(errors{site="west"}[5m]))\n  / sum(rate(requests[5m]))',
            "op": "<",
            "value": 0.01,
            "empty": "pass",
        }
    )
    assert QUERY.describe(params, Placement("west")) == (
        'Check at west that every sample of sum(rate(errors{site="west"}[5m])) / sum(rate(requests[5m])) '
        "on Prometheus at http://prom:9090 is < 0.01 (an empty answer passes)"
    )
