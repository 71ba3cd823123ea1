"""``http.probe``: does a URL answer with the expected status (and a body that matches)?

An endpoint that does not answer (refused, timed out, reset, TLS refused) is a failing result
that says which: for a probe, no answer is the answer. Redirects are not followed: a 301 is what
the URL answered.
"""

from __future__ import annotations

import codecs
import re
import time
from typing import Literal

from pydantic import Field, JsonValue, field_validator, model_validator

from failover.durations import Duration, format_duration
from failover.errors import ProviderError
from failover.providers.base import Check, CheckResult, Context, Params, Placement, Provider
from failover.providers.signals.fetch import Answer, HttpUrl, fetch

BODY_BYTES = 1024 * 1024  # the body is read, and matched, up to this many bytes
SNIPPET_CHARS = 80  # of a body that does not match, in the message
_CHARSET = re.compile(r"charset=\"?([\w.:-]+)", re.IGNORECASE)


class ProbeParams(Params):
    url: HttpUrl = Field(description="What to ask, e.g. https://shop.example.com/healthz.")
    status: int = Field(200, ge=100, le=599, description="The status the answer must have.")
    body: str | None = Field(
        None, description="A regular expression (Python's) that must match in the body's first 1 MiB."
    )
    timeout: Duration = Field(5.0, gt=0, description="How long to wait for the whole answer.")
    verify_tls: bool = Field(True, description="Verify the server's certificate and name (https).")
    method: Literal["GET", "HEAD"] = Field("GET", description="GET or HEAD.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers, e.g. Host.")

    @field_validator("body")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expected a regular expression, found {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_body(self) -> ProbeParams:
        if self.body is not None and self.method == "HEAD":
            raise ValueError("body is matched against a GET's body: a HEAD answer has none")
        return self


class Probe(Check[ProbeParams]):
    """Pass when a URL answers the expected status and, if given, a matching body (redirects not followed)."""

    name = "http.probe"
    params_model = ProbeParams
    default_estimate_s = 1.0

    def describe(self, params: ProbeParams, where: Placement) -> str:
        body = f" with a body matching /{params.body}/" if params.body is not None else ""
        tls = ", its certificate not verified" if not params.verify_tls else ""
        return (
            f"Check {where.phrase()} that {params.method} {params.url} answers {params.status}{body} "
            f"within {format_duration(params.timeout)} (redirects not followed{tls})"
        )

    def run(self, ctx: Context, params: ProbeParams) -> CheckResult:
        asked = f"{params.method} {params.url}"
        start = time.monotonic()
        try:
            answer = fetch(
                ctx,
                params.url,
                what=asked,
                timeout=params.timeout,
                limit=BODY_BYTES,
                method=params.method,
                headers=params.headers,
                verify_tls=params.verify_tls,
            )
        except ProviderError as exc:  # no answer: refused, timed out, reset, TLS
            return CheckResult(False, _seen(None, start, None), str(exc))
        matched = None if params.body is None else re.search(params.body, _text(answer)) is not None
        observed = _seen(answer.status, start, matched)
        problems = []
        if answer.status != params.status:
            problems.append(f"expected status {params.status}, found {answer.status}{_redirect(answer)}")
        if matched is False:
            problems.append(f"expected the body to match /{params.body}/, found {_body(answer)}")
        if problems:
            return CheckResult(False, observed, f"{asked}: {'; '.join(problems)}")
        body = f", its body matching /{params.body}/" if matched else ""
        took = f"in {observed['elapsed_ms']} ms"
        return CheckResult(True, observed, f"{asked} answered {answer.status} {took}{body}")


def _seen(status: int | None, start: float, matched: bool | None) -> dict[str, JsonValue]:
    """The observation: the status (None: no answer), the milliseconds since ``start`` (on the
    monotonic clock), and whether the body matched (None: not asked, or no answer)."""
    return {"status": status, "elapsed_ms": round((time.monotonic() - start) * 1000), "matched": matched}


def _text(answer: Answer) -> str:
    """The body as text, in the charset its Content-Type names (UTF-8 if none, or unknown)."""
    found = _CHARSET.search(answer.headers.get("Content-Type", ""))
    charset = found.group(1) if found else "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return answer.body.decode(charset, "replace")


def _redirect(answer: Answer) -> str:
    location = answer.headers.get("Location")
    return f" (a redirect to {location}, not followed)" if 300 <= answer.status < 400 and location else ""


def _body(answer: Answer) -> str:
    if not answer.body:
        return "an empty body"
    text = " ".join(_text(answer).split())
    cut = "..." if len(text) > SNIPPET_CHARS else ""
    read = f"its first {len(answer.body)} bytes" if not answer.complete else f"its {len(answer.body)} bytes"
    return f"no match in {read}, which start {text[:SNIPPET_CHARS] + cut!r}"


PROVIDER = Provider(name="http", checks=(Probe(),))
