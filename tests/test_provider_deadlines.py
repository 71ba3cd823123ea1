"""Every cloud call of a step or check runs under its deadline: an endpoint that accepts
connections and never answers (a region that is down) costs at most the time the runbook gave,
not botocore's 60 s x 3 attempts or google-api-core's 60 s. No request leaves once the deadline
passed or the run lost its lease: not a retry, not a paginator's next page, not a credentials
refresh. Real clients against servers on 127.0.0.1; nothing of ours is patched."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from failover.errors import DeadlineError, LeaseLostError, TransientProviderError
from failover.providers import aws as aws_provider
from failover.providers import gcp as gcp_provider
from failover.providers.aws import cloudwatch, ecs
from failover.providers.aws._client import Limits, _session, aws_errors, client, limits
from failover.providers.aws.lambda_ import Invoke, invoker
from failover.providers.base import ClientCache, Context, active
from failover.providers.gcp import instance_groups
from failover.providers.gcp._client import call_options, compute, gcp_errors, new_client, wait_operation
from failover.sandbox.compute_fake import ComputeFake
from tests.aws_helpers import context as aws_context
from tests.gcp_helpers import context as gcp_context
from tests.gcp_helpers import fake
from tests.servers import HungServer

__all__ = ["fake"]  # the fixture

DEADLINE_S = 3.0  # the step's or check's time left when the call starts
SLACK_S = 2.0  # what a call may take past it: the last request's connect timeout, and scheduling
ROLE = "arn:aws:iam::123456789012:role/failover"

ECS = ecs.SetDesiredCount()
ECS_PARAMS = ECS.parse({"cluster": "shop", "service": "catalog", "count": 3})
ALARMS = cloudwatch.AlarmsOk()
ALARMS_PARAMS = ALARMS.parse({"names": ["checkout-5xx"]})
RESIZE = instance_groups.ResizeInstanceGroup()
RESIZE_PARAMS = RESIZE.parse({"group": "web-usw1", "size": 2})


# --- local servers -------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    body: bytes


Answer = Callable[[Request, dict[str, str]], tuple[int, dict[str, str], bytes]]


def server_error(request: Request, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return 500, {"Content-Type": "application/json"}, b'{"error": "injected"}'


class LocalHttp:
    """An HTTP server on 127.0.0.1 that records every request and lets ``answer`` reply (a 500 by
    default); with ``hang`` set it records a request and holds it without an answer."""

    def __init__(self, answer: Answer = server_error) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self.hang = False
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, self.path, self.rfile.read(size) if size else b"")
                owner.requests.append(request)
                if owner.hang:
                    owner.release.wait(30)
                    return  # the connection closes with no answer
                status, headers, body = owner.answer(request, dict(self.headers.items()))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 (http.server names)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def counting() -> Iterator[LocalHttp]:
    server = LocalHttp()
    yield server
    server.close()


@pytest.fixture
def moto_front() -> Iterator[LocalHttp]:
    """A moto server behind a front that forwards every request to it, until told to hang."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()

    def forward(request: Request, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        skip = {"connection", "keep-alive", "transfer-encoding", "content-length"}
        conn.request(
            request.method,
            request.path,
            body=request.body,
            headers={k: v for k, v in headers.items() if k.lower() not in skip},
        )
        answer = conn.getresponse()
        body = answer.read()
        conn.close()
        return answer.status, {k: v for k, v in answer.getheaders() if k.lower() not in skip}, body

    front = LocalHttp(forward)
    yield front
    front.close()
    moto.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Keys only local servers accept; no profile, config file, instance metadata or retry count
    of the machine (botocore's own 3 attempts)."""
    for key in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# --- contexts ------------------------------------------------------------------------------------


def lease_lost() -> None:
    raise LeaseLostError("run-1: the lease was taken over by run-2")


def timed(ctx: Context, seconds: float | None, guard: Callable[[], None] | None) -> Context:
    """``ctx`` on the real clock, with ``seconds`` left (None: no deadline) and ``guard``."""
    return replace(
        ctx,
        clock=time.monotonic,
        sleep=time.sleep,
        deadline=None if seconds is None else time.monotonic() + seconds,
        guard=guard or ctx.guard,
    )


def aws_ctx(
    endpoint: str,
    *,
    seconds: float | None = DEADLINE_S,
    guard: Callable[[], None] | None = None,
    role: bool = False,
    clients: ClientCache | None = None,
) -> Context:
    """A step at west (us-west-2) whose every AWS call goes to ``endpoint``: with the sandbox's
    static keys, or assuming ROLE with the environment's."""
    settings: dict[str, str] = {"region": "us-west-2", "endpoint_url": endpoint}
    settings.update({"role_arn": ROLE} if role else {"credentials": "sandbox"})
    return timed(replace(aws_context("west", clients=clients), settings=settings), seconds, guard)


def gcp_ctx(
    endpoint: str, *, seconds: float | None = DEADLINE_S, guard: Callable[[], None] | None = None
) -> Context:
    """A step at west (shop-prod/us-west1) whose every GCP call goes to ``endpoint``."""
    return timed(gcp_context(None, endpoint=endpoint), seconds, guard)


def user_credentials(token_uri: str) -> Any:
    """Credentials with no token yet: the first request refreshes them at ``token_uri``."""
    from google.oauth2.credentials import Credentials

    return Credentials(  # type: ignore[no-untyped-call]
        token=None, refresh_token="refresh", token_uri=token_uri, client_id="failover", client_secret="s"
    )


# --- a dead endpoint costs at most the time left -------------------------------------------------


def test_an_aws_read_at_an_endpoint_that_never_answers_ends_by_the_deadline(hung: HungServer) -> None:
    ctx = aws_ctx(hung.url)
    started = time.monotonic()
    with active(ctx), pytest.raises((TransientProviderError, DeadlineError)):
        ECS.read(ctx, ECS_PARAMS)
    assert time.monotonic() - started < DEADLINE_S + SLACK_S
    assert hung.accepted  # it was reached, and never answered


def test_an_aws_check_at_an_endpoint_that_never_answers_ends_by_the_deadline(hung: HungServer) -> None:
    ctx = aws_ctx(hung.url)
    started = time.monotonic()
    with active(ctx), pytest.raises((TransientProviderError, DeadlineError)):
        ALARMS.run(ctx, ALARMS_PARAMS)
    assert time.monotonic() - started < DEADLINE_S + SLACK_S
    assert hung.accepted


def test_an_aws_endpoint_that_refuses_connections_is_a_transient_error_at_once(refused: str) -> None:
    ctx = aws_ctx(refused)
    started = time.monotonic()
    with active(ctx), pytest.raises(TransientProviderError, match="AWS unreachable for ECS service shop"):
        ECS.read(ctx, ECS_PARAMS)
    assert time.monotonic() - started < DEADLINE_S


def test_a_gcp_read_at_an_endpoint_that_never_answers_ends_by_the_deadline(hung: HungServer) -> None:
    ctx = gcp_ctx(hung.url)
    started = time.monotonic()
    with active(ctx), pytest.raises((TransientProviderError, DeadlineError)):
        RESIZE.read(ctx, RESIZE_PARAMS)
    assert time.monotonic() - started < DEADLINE_S + SLACK_S
    assert hung.accepted


def test_a_gcp_operation_wait_at_an_endpoint_that_never_answers_ends_by_the_deadline(
    hung: HungServer,
) -> None:
    from google.cloud import compute_v1

    ctx = gcp_ctx(hung.url)
    running = compute_v1.Operation(
        name="operation-1", status="RUNNING", zone="projects/shop-prod/zones/us-west1-a"
    )
    started = time.monotonic()
    with active(ctx), pytest.raises((TransientProviderError, DeadlineError)):
        wait_operation(ctx, running, "resize of instance group web-usw1")
    assert time.monotonic() - started < DEADLINE_S + SLACK_S  # not the 130 s of a wait call


def test_a_gcp_endpoint_that_refuses_connections_is_a_transient_error_at_once(refused: str) -> None:
    ctx = gcp_ctx(refused)
    started = time.monotonic()
    with active(ctx), pytest.raises(TransientProviderError, match="GCP unreachable"):
        RESIZE.read(ctx, RESIZE_PARAMS)
    assert time.monotonic() - started < DEADLINE_S


def test_a_gcp_token_refresh_at_an_endpoint_that_never_answers_ends_by_the_deadline(
    hung: HungServer, counting: LocalHttp
) -> None:
    ctx = gcp_ctx(counting.url)
    regions = new_client("RegionsClient", user_credentials(f"{hung.url}/token"), counting.url)
    started = time.monotonic()
    with (
        active(ctx),
        pytest.raises((TransientProviderError, DeadlineError)),
        gcp_errors(ctx, "region us-west1"),
    ):
        regions.get(request={"project": "shop-prod", "region": "us-west1"}, **call_options(ctx))
    assert time.monotonic() - started < DEADLINE_S + SLACK_S
    assert hung.accepted  # the refresh was tried, and never answered
    assert counting.requests == []  # so the call itself was not sent


def test_assuming_a_role_at_an_endpoint_that_never_answers_ends_by_the_deadline(hung: HungServer) -> None:
    ctx = aws_ctx(hung.url, role=True)
    started = time.monotonic()
    with active(ctx), pytest.raises(TransientProviderError, match=f"role {ROLE}"):
        ECS.read(ctx, ECS_PARAMS)  # the site's session is made first: it assumes the role
    assert time.monotonic() - started < DEADLINE_S + SLACK_S


def test_a_role_refresh_during_a_step_waits_no_longer_than_the_steps_deadline(
    moto_front: LocalHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = aws_ctx(moto_front.url, seconds=None, role=True)
    assert ":assumed-role/failover/failover-run-1" in client(start, "sts").get_caller_identity()["Arn"]
    credentials = _session(start).get_credentials()  # botocore's RefreshableCredentials
    # botocore's clock moves to 5 minutes before they expire: a refresh that must succeed
    monkeypatch.setattr(credentials, "_time_fetcher", lambda: credentials._expiry_time - timedelta(minutes=5))
    moto_front.requests.clear()
    moto_front.hang = True  # STS (and everything else) stops answering
    step = timed(start, DEADLINE_S, None)  # a later step of the same run, with 3 s left
    started = time.monotonic()
    with active(step), pytest.raises(TransientProviderError, match=f"AWS unreachable for role {ROLE}"):
        ECS.read(step, ECS_PARAMS)  # its request is signed with refreshed credentials
    assert time.monotonic() - started < DEADLINE_S + SLACK_S
    assert [b"Action=AssumeRole" in r.body for r in moto_front.requests] == [True]  # one attempt


# --- no request after the deadline or a lost lease -----------------------------------------------


@pytest.mark.parametrize("why", ["lease lost", "deadline passed"])
def test_no_aws_request_is_sent_once_the_lease_is_lost_or_the_deadline_passed(
    counting: LocalHttp, why: str
) -> None:
    stop = LeaseLostError if why == "lease lost" else DeadlineError
    ctx = aws_ctx(
        counting.url,
        seconds=-1.0 if why == "deadline passed" else 60.0,
        guard=lease_lost if why == "lease lost" else None,
    )
    with active(ctx), pytest.raises(stop):
        ECS.read(ctx, ECS_PARAMS)
    with pytest.raises(stop):  # a call outside the engine (no active context) is refused too
        ALARMS.run(ctx, ALARMS_PARAMS)
    assert counting.requests == []


def test_the_request_check_reaches_the_caller_unchanged_and_botocore_does_not_retry_it(
    counting: LocalHttp,
) -> None:
    ctx = aws_ctx(counting.url, seconds=None)  # no deadline: botocore's 3 attempts
    services = client(ctx, "ecs")
    with pytest.raises(TransientProviderError), aws_errors(ctx, "ECS service shop/catalog"):
        services.describe_services(cluster="shop", services=["catalog"])
    assert len(counting.requests) == 3  # a 500 is retried by botocore
    counting.requests.clear()

    lost = LeaseLostError("run-1: the lease was taken over by run-2")
    asked: list[int] = []

    def guard() -> None:
        asked.append(1)
        raise lost

    with (
        active(replace(ctx, guard=guard)),
        pytest.raises(LeaseLostError) as raised,
        aws_errors(ctx, "ECS service shop/catalog"),  # it does not make a provider error of it
    ):
        services.describe_services(cluster="shop", services=["catalog"])
    assert raised.value is lost  # not wrapped
    assert asked == [1]  # not retried
    assert counting.requests == []


def test_no_further_page_is_asked_for_once_the_lease_is_lost(counting: LocalHttp) -> None:
    def page(request: Request, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        n = len(counting.requests)
        more = f', "nextToken": "page-{n}"' if n < 5 else ""
        body = f'{{"serviceArns": ["arn:aws:ecs:us-west-2:123456789012:service/shop/s{n}"]{more}}}'
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, body.encode()

    counting.answer = page  # five pages
    ctx = aws_ctx(counting.url, seconds=None)
    asked: list[int] = []

    def guard() -> None:
        asked.append(1)
        if len(asked) > 2:
            lease_lost()

    pages = client(ctx, "ecs").get_paginator("list_services").paginate(cluster="shop")
    seen: list[str] = []

    def read_all() -> None:
        for found in pages:
            seen.extend(found["serviceArns"])

    with active(replace(ctx, guard=guard)), pytest.raises(LeaseLostError):
        read_all()
    assert len(seen) == 2 and len(counting.requests) == 2  # two pages of five, then nothing


@pytest.mark.parametrize("why", ["lease lost", "deadline passed"])
def test_no_gcp_request_is_sent_once_the_lease_is_lost_or_the_deadline_passed(
    fake: ComputeFake, why: str
) -> None:
    stop = LeaseLostError if why == "lease lost" else DeadlineError
    ctx = gcp_ctx(fake.endpoint, seconds=None)
    groups = compute(ctx, "RegionInstanceGroupManagersClient")  # made while the run could call
    stopped = timed(
        ctx, -1.0 if why == "deadline passed" else 60.0, lease_lost if why == "lease lost" else None
    )
    with active(stopped), pytest.raises(stop):
        RESIZE.read(stopped, RESIZE_PARAMS)
    with pytest.raises(stop):  # a call outside the engine (no active context) is refused too
        RESIZE.read(stopped, RESIZE_PARAMS)
    with active(stopped), pytest.raises(stop):  # the client itself asks before it sends
        groups.get(
            request={"project": "shop-prod", "region": "us-west1", "instance_group_manager": "web-usw1"},
            retry=None,
            timeout=5,
        )
    assert fake.requests == []


def test_no_gcp_token_refresh_is_sent_once_the_lease_is_lost(counting: LocalHttp) -> None:
    ctx = gcp_ctx(counting.url, seconds=None, guard=lease_lost)
    regions = new_client("RegionsClient", user_credentials(f"{counting.url}/token"), counting.url)
    with active(ctx), pytest.raises(LeaseLostError):
        regions.get(request={"project": "shop-prod", "region": "us-west1"}, retry=None, timeout=5)
    assert counting.requests == []  # neither the token request nor the call


@pytest.mark.parametrize("error", [DeadlineError("out of time"), LeaseLostError("taken over")])
def test_failover_errors_pass_through_the_error_mappings_unchanged(error: Exception) -> None:
    with pytest.raises(type(error)) as raised, aws_errors(aws_ctx("http://127.0.0.1:9", seconds=None), "x"):
        raise error
    assert raised.value is error
    with pytest.raises(type(error)) as raised, gcp_errors(gcp_ctx("http://127.0.0.1:9", seconds=None), "x"):
        raise error
    assert raised.value is error


# --- configuration from the time left ------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (None, Limits(60, 10, 3)),  # no deadline: as before
        (600, Limits(60, 10, 3)),  # time enough: the same
        (200, Limits(60, 10, 2)),
        (100, Limits(60, 10, 1)),
        (45, Limits(30, 10, 1)),
        (25, Limits(20, 5, 1)),  # a shorter connect, so that one attempt fits
        (3, Limits(2, 1, 1)),
        (0.5, Limits(1, 1, 1)),  # one short attempt still (the deadline check comes first)
    ],
)
def test_an_aws_call_is_configured_to_fit_in_the_time_left(left: float | None, expected: Limits) -> None:
    ctx = replace(aws_context(), deadline=left)  # its clock is at 0
    assert limits(ctx) == expected


def test_aws_clients_follow_the_time_left_and_are_shared_within_a_budget() -> None:
    ctx = replace(aws_context(), deadline=3.0, settings={"region": "us-west-2", "credentials": "sandbox"})
    made = client(ctx, "ecs")
    config = made.meta.config
    assert (config.read_timeout, config.connect_timeout, config.retries["total_max_attempts"]) == (2, 1, 1)
    assert client(ctx, "ecs") is made
    assert limits(ctx, connect=3.0, attempts=1) == Limits(2, 1, 1)  # ARC's caps
    assert limits(replace(ctx, deadline=None), configured=1) == Limits(60, 10, 1)  # AWS_MAX_ATTEMPTS=1
    assert limits(replace(ctx, deadline=600.0), configured=5) == Limits(60, 10, 5)
    far = replace(ctx, deadline=600.0)  # a step with time for every attempt: the usual client
    assert client(far, "ecs") is client(replace(ctx, deadline=None), "ecs") is not made
    hook = invoker(replace(ctx, deadline=None), Invoke().parse({"function": "flush-cache"}))
    assert hook.meta.config.retries["total_max_attempts"] == 1  # one invocation, never a second


def test_gcp_calls_wait_no_longer_than_the_time_left() -> None:
    ctx = gcp_ctx("http://127.0.0.1:9", seconds=None)
    assert call_options(ctx) == {"retry": None, "timeout": 60.0}
    assert call_options(ctx, 130.0)["timeout"] == 130.0  # an operation wait
    soon = replace(gcp_context(None, endpoint="http://127.0.0.1:9"), deadline=3.0)  # its clock is at 0
    assert call_options(soon) == {"retry": None, "timeout": 2.0}
    assert call_options(soon, 130.0)["timeout"] == 2.0


def test_apply_verifies_where_apply_waits_until_what_verify_checks_holds() -> None:
    declared = {
        a.name for p in (aws_provider.PROVIDER, gcp_provider.PROVIDER) for a in p.actions if a.apply_verifies
    }
    assert declared == {
        "aws.autoscaling.set_capacity",
        "aws.ecs.set_desired_count",
        "aws.rds.failover_global_cluster",
        "aws.rds.promote_replica_cluster",
        "aws.rds.promote_replica_instance",
        "aws.rds.switchover_global_cluster",
        "gcp.compute.resize_instance_group",
        "gcp.compute.set_failover_policy",
        "gcp.compute.start_instances",
        "gcp.compute.stop_instances",
    }
