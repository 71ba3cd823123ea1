"""``prometheus.query``: is every sample of a PromQL instant query on the right side of a
threshold? Asked of Prometheus's HTTP API (``GET /api/v1/query``).

A check that could not ask (the server unreachable or busy) raises TransientProviderError; one
whose question cannot be answered (bad PromQL, a range vector, denied) raises ProviderError; an
answer on the wrong side of the threshold is a failing result, naming the worst sample.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue, model_validator

from failover.durations import Duration
from failover.errors import ProviderError
from failover.providers.base import Check, CheckResult, Context, Params, Placement, Provider
from failover.providers.signals.fetch import HttpUrl, fetch
from failover.providers.signals.promql import OPS, Sample, read_answer

ANSWER_BYTES = 16 * 1024 * 1024  # an answer larger than this is not read: the query is too wide
OBSERVED_SAMPLES = 10  # an observation shows this many samples at most, the worst first
QUERY_CHARS = 200  # of the query, in messages

Op = Literal["<", "<=", ">", ">=", "==", "!="]


class QueryParams(Params):
    url: HttpUrl = Field(description="The Prometheus server's base URL, e.g. http://prometheus:9090.")
    query: str = Field(min_length=1, description="PromQL giving an instant vector or a scalar.")
    op: Op = Field(description="How every sample must compare with value: <, <=, >, >=, == or !=.")
    value: float = Field(allow_inf_nan=False, description="The threshold.")
    empty: Literal["fail", "pass"] = Field("fail", description="What an answer with no sample means.")
    bearer_token: str | None = Field(None, description="Sent as Authorization: Bearer.")
    username: str | None = Field(None, description="HTTP basic authentication, with password.")
    password: str | None = Field(None, description="HTTP basic authentication, with username.")
    timeout: Duration = Field(10.0, gt=0, description="How long the query may take.")

    @model_validator(mode="after")
    def _one_way_in(self) -> QueryParams:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together, or neither")
        if self.bearer_token is not None and self.username is not None:
            raise ValueError("give bearer_token, or username and password, not both")
        return self


class Query(Check[QueryParams]):
    """Pass when every sample of a PromQL instant query compares with a threshold as asked (op, value)."""

    name = "prometheus.query"
    params_model = QueryParams
    default_estimate_s = 1.0

    def describe(self, params: QueryParams, where: Placement) -> str:
        empty = "passes" if params.empty == "pass" else "fails"
        return (
            f"Check {where.phrase()} that every sample of {_oneline(params.query)} on Prometheus at "
            f"{params.url} is {params.op} {params.value:g} (an empty answer {empty})"
        )

    def run(self, ctx: Context, params: QueryParams) -> CheckResult:
        where = f"Prometheus at {params.url}, query {_short(params.query)}"
        seconds = ctx.budget(params.timeout)
        answer = fetch(
            ctx,
            params.url.rstrip("/") + "/api/v1/query",
            what=where,
            timeout=seconds,
            limit=ANSWER_BYTES,
            fields={"query": params.query, "timeout": f"{seconds:g}"},  # the server gives up too
            headers=_auth(params),
        )
        if not answer.complete:
            raise ProviderError(f"{where}: the answer is larger than 16 MiB; narrow the query")
        result = read_answer(answer.status, answer.body, where)
        verdict = judge(result.samples, params, where)
        if result.warnings:
            warned = f"{verdict.message} (Prometheus warned: {'; '.join(result.warnings)})"
            verdict = CheckResult(verdict.ok, verdict.observed, warned)
        return verdict


def judge(samples: list[Sample], params: QueryParams, where: str) -> CheckResult:
    """Whether every sample is ``op value`` (an empty answer per ``empty``); the observation
    lists the samples, those on the wrong side first (the farthest first), then the closest.
    ``where`` names the server and the query."""
    threshold = f"{params.op} {params.value:g}"
    if not samples:
        ok = params.empty == "pass"
        verdict = "passes" if ok else "fails"
        return CheckResult(ok, [], f"{where}: no sample, which {verdict} (empty: {params.empty})")
    holds, limit = OPS[params.op], params.value
    bad = sorted(
        (s for s in samples if not holds(s.value, limit)), key=lambda s: s.distance(limit), reverse=True
    )
    good = sorted((s for s in samples if holds(s.value, limit)), key=lambda s: s.distance(limit))
    observed: list[JsonValue] = [{s.series: s.shown()} for s in (*bad, *good)[:OBSERVED_SAMPLES]]
    if bad:
        worst = bad[0]
        message = (
            f"{where}: expected every sample {threshold}, found {len(bad)} of {len(samples)} not; "
            f"worst: {worst.series} = {worst.text}"
        )
        return CheckResult(False, observed, message)
    closest = good[0]
    message = (
        f"{where}: {len(samples)} sample(s), every one {threshold}; "
        f"closest: {closest.series} = {closest.text}"
    )
    return CheckResult(True, observed, message)


def _auth(params: QueryParams) -> dict[str, str]:
    if params.bearer_token is not None:
        return {"Authorization": f"Bearer {params.bearer_token}"}
    if params.username is not None:
        from urllib3.util import make_headers

        return dict(make_headers(basic_auth=f"{params.username}:{params.password}"))
    return {}


def _oneline(query: str) -> str:
    return " ".join(query.split())


def _short(query: str) -> str:
    text = _oneline(query)
    return text if len(text) <= QUERY_CHARS else text[: QUERY_CHARS - 3] + "..."


PROVIDER = Provider(name="prometheus", checks=(Query(),))
