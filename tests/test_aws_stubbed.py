"""AWS actions and checks whose APIs moto does not implement, tested with botocore's Stubber.

ARC routing controls, RDS global-cluster switchover/failover, Lambda invoke, DynamoDB global-table
replicas and IAM policy simulation: each test builds a Context, takes the very client the action will
use from the Context's ClientCache, queues exact request/response shapes and runs the action.
"""

from __future__ import annotations

import datetime
import io
import json
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from failover.engine import Options, execute
from failover.errors import ProviderError, TransientProviderError
from failover.planner import make_plan
from failover.providers.aws._client import client
from failover.providers.aws.arc import SetRoutingControls
from failover.providers.aws.dynamodb import GlobalTableReplicaActive
from failover.providers.aws.iam import PermissionsCheck, role_of, with_account
from failover.providers.aws.lambda_ import Invoke, invoker
from failover.providers.aws.rds import FailoverGlobalCluster, PromoteReplicaCluster, SwitchoverGlobalCluster
from failover.providers.aws.route53 import HealthCheckOk
from failover.providers.base import ClientCache, Context, Permission, Placement
from failover.providers.sim import SimWorld
from failover.runbook import parse_runbook
from tests.conftest import SITES

SITE = "standby"  # not a substring of its region, so messages naming it can be told apart
REGION = "us-west-2"
ACCOUNT = "111122223333"


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Static fake credentials and no shared config, so clients are made offline."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


class FakeTime:
    """An injected clock and sleep: sleeping records the delay and moves the clock, instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_ctx(
    tmp_path: Path,
    *,
    site: str = SITE,
    time: FakeTime | None = None,
    permissions: tuple[Permission, ...] = (),
    clients: ClientCache | None = None,
) -> Context:
    time = time or FakeTime()
    return Context(
        run_id="run-1",
        step_id="svc.step",
        placement=Placement(site, "aws", REGION),
        state_dir=tmp_path,
        sleep=time.sleep,
        clock=time.clock,
        settings={"region": REGION},
        clients=clients or ClientCache(),
        permissions=permissions,
    )


class StubFor(Protocol):
    def __call__(self, ctx: Context, service: str, **options: Any) -> Stubber: ...


@pytest.fixture
def stub() -> Iterator[StubFor]:
    """Activate a Stubber on the client the Context's cache hands to the action; deactivated after."""
    with ExitStack() as stack:

        def make(ctx: Context, service: str, **options: Any) -> Stubber:
            stubber = Stubber(client(ctx, service, **options))
            stack.enter_context(stubber)
            return stubber

        yield make


@pytest.fixture
def stubbers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def streaming(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


# --- ARC routing controls ------------------------------------------------------------------------

PANEL = f"arn:aws:route53-recovery-control::{ACCOUNT}:controlpanel/0123abcd"
EAST_CTL = f"{PANEL}/routingcontrol/east"
WEST_CTL = f"{PANEL}/routingcontrol/west"
E1 = "https://host-1111.route53-recovery-cluster.us-east-1.amazonaws.com/v1"
E2 = "https://host-2222.route53-recovery-cluster.us-west-2.amazonaws.com/v1"
ARC = SetRoutingControls()
ARC_PARAMS = ARC.parse(
    {
        "controls": {WEST_CTL: "On", EAST_CTL: "Off"},
        "cluster_endpoints": [
            {"endpoint": E1, "region": "us-east-1"},
            {"endpoint": E2, "region": "us-west-2"},
        ],
    }
)


def arc_stubs(ctx: Context, stub: StubFor) -> tuple[Stubber, Stubber]:
    """The endpoint asked first, then the other: the step's own region's (us-west-2) first,
    though the runbook lists us-east-1's first."""
    return (
        stub(
            ctx,
            "route53-recovery-cluster",
            endpoint_url=E2,
            region="us-west-2",
            attempts=1,
            connect_timeout=3.0,
        ),
        stub(
            ctx,
            "route53-recovery-cluster",
            endpoint_url=E1,
            region="us-east-1",
            attempts=1,
            connect_timeout=3.0,
        ),
    )


def expect_state(stubber: Stubber, arn: str, state: str) -> None:
    stubber.add_response(
        "get_routing_control_state",
        {"RoutingControlArn": arn, "RoutingControlState": state, "RoutingControlName": arn.rsplit("/", 1)[1]},
        {"RoutingControlArn": arn},
    )


def expect_update(stubber: Stubber, states: dict[str, str]) -> None:
    entries = [{"RoutingControlArn": arn, "RoutingControlState": s} for arn, s in sorted(states.items())]
    stubber.add_response("update_routing_control_states", {}, {"UpdateRoutingControlStateEntries": entries})


def test_arc_apply_sets_every_control_in_one_request_and_verifies(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    first, second = arc_stubs(ctx, stub)
    expect_state(first, EAST_CTL, "On")  # read before: east serves traffic
    expect_state(first, WEST_CTL, "Off")
    expect_update(first, {EAST_CTL: "Off", WEST_CTL: "On"})  # one request, both controls
    expect_state(first, EAST_CTL, "Off")  # verify
    expect_state(first, WEST_CTL, "On")

    assert ARC.apply(ctx, ARC_PARAMS) == {EAST_CTL: "Off", WEST_CTL: "On"}
    assert ARC.verify(ctx, ARC_PARAMS) is True
    first.assert_no_pending_responses()
    second.assert_no_pending_responses()


def test_arc_apply_in_the_desired_state_sends_no_update(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    first, _ = arc_stubs(ctx, stub)
    expect_state(first, EAST_CTL, "Off")
    expect_state(first, WEST_CTL, "On")

    # an update would be an unstubbed call, which fails the apply
    assert ARC.apply(ctx, ARC_PARAMS) == {EAST_CTL: "Off", WEST_CTL: "On"}
    first.assert_no_pending_responses()


def test_arc_verify_is_false_while_a_control_differs(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    first, _ = arc_stubs(ctx, stub)
    expect_state(first, EAST_CTL, "Off")
    expect_state(first, WEST_CTL, "Off")

    assert ARC.verify(ctx, ARC_PARAMS) is False
    first.assert_no_pending_responses()


def test_arc_compensate_restores_the_snapshot_read_before_apply(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    first, _ = arc_stubs(ctx, stub)
    expect_state(first, EAST_CTL, "On")  # read: the snapshot
    expect_state(first, WEST_CTL, "Off")
    expect_state(first, EAST_CTL, "On")  # apply's own read
    expect_state(first, WEST_CTL, "Off")
    expect_update(first, {EAST_CTL: "Off", WEST_CTL: "On"})
    expect_update(first, {EAST_CTL: "On", WEST_CTL: "Off"})  # compensate: back to the snapshot

    before = ARC.read(ctx, ARC_PARAMS)
    assert before == {EAST_CTL: "On", WEST_CTL: "Off"}
    ARC.apply(ctx, ARC_PARAMS)
    ARC.compensate(ctx, ARC_PARAMS, before)
    first.assert_no_pending_responses()


def test_arc_compensate_refuses_a_snapshot_that_is_not_states(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    arc_stubs(ctx, stub)
    with pytest.raises(ProviderError, match="expected On/Off states"):
        ARC.compensate(ctx, ARC_PARAMS, {EAST_CTL: "Maybe"})


def test_arc_safety_rule_conflict_is_fatal_and_not_retried_elsewhere(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    first, second = arc_stubs(ctx, stub)
    expect_state(first, EAST_CTL, "On")
    expect_state(first, WEST_CTL, "Off")
    first.add_client_error(
        "update_routing_control_states",
        service_error_code="ConflictException",
        service_message="The request conflicts with the control panel",
        http_status_code=409,
    )

    with pytest.raises(ProviderError) as raised:
        ARC.apply(ctx, ARC_PARAMS)
    assert not isinstance(raised.value, TransientProviderError)
    message = str(raised.value)
    assert "a safety rule refused the change" in message
    assert "ConflictException" in message
    assert E2 in message  # the first endpoint answered: the second was not asked
    assert isinstance(raised.value.__cause__, ClientError)
    first.assert_no_pending_responses()
    second.assert_no_pending_responses()


def test_arc_throttled_endpoint_falls_over_to_the_next(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    first, second = arc_stubs(ctx, stub)
    throttled: dict[str, Any] = {
        "service_error_code": "ThrottlingException",
        "service_message": "Rate exceeded",
        "http_status_code": 429,
    }
    first.add_client_error("get_routing_control_state", **throttled)
    expect_state(second, EAST_CTL, "On")
    expect_state(first, WEST_CTL, "Off")  # each call starts again with the first endpoint
    first.add_client_error("update_routing_control_states", **throttled)
    expect_update(second, {EAST_CTL: "Off", WEST_CTL: "On"})

    assert ARC.apply(ctx, ARC_PARAMS) == {EAST_CTL: "Off", WEST_CTL: "On"}
    first.assert_no_pending_responses()
    second.assert_no_pending_responses()


def test_arc_every_endpoint_throttled_is_transient(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    first, second = arc_stubs(ctx, stub)
    for stubber in (first, second):
        stubber.add_client_error(
            "get_routing_control_state", service_error_code="ThrottlingException", http_status_code=429
        )

    with pytest.raises(TransientProviderError, match="ThrottlingException"):
        ARC.read(ctx, ARC_PARAMS)
    first.assert_no_pending_responses()
    second.assert_no_pending_responses()


# --- RDS global cluster: switchover and failover -------------------------------------------------

MoveWriter = SwitchoverGlobalCluster | FailoverGlobalCluster
GLOBAL = "orders"
TARGET = "orders-usw2"
TARGET_ARN = f"arn:aws:rds:us-west-2:{ACCOUNT}:cluster:orders-usw2"
SOURCE_ARN = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:orders-use1"


def expect_target(rds: Stubber, name: str = TARGET, arn: str = TARGET_ARN) -> None:
    rds.add_response(
        "describe_db_clusters",
        {"DBClusters": [{"DBClusterIdentifier": name, "DBClusterArn": arn, "Status": "available"}]},
        {"DBClusterIdentifier": name},
    )


def expect_global(rds: Stubber, writer: str, status: str = "available") -> None:
    members = [
        {"DBClusterArn": arn, "IsWriter": arn == writer, "Readers": []} for arn in (SOURCE_ARN, TARGET_ARN)
    ]
    rds.add_response(
        "describe_global_clusters",
        {
            "GlobalClusters": [
                {"GlobalClusterIdentifier": GLOBAL, "Status": status, "GlobalClusterMembers": members}
            ]
        },
        {"GlobalClusterIdentifier": GLOBAL},
    )


def expect_poll(rds: Stubber, writer: str, status: str = "available") -> None:
    """One verify: the target's ARN, then the global cluster."""
    expect_target(rds)
    expect_global(rds, writer, status)


MOVES: list[tuple[MoveWriter, str, dict[str, object]]] = [
    (SwitchoverGlobalCluster(), "switchover_global_cluster", {}),
    (FailoverGlobalCluster(), "failover_global_cluster", {"AllowDataLoss": True}),
]
MOVE_IDS = ["switchover", "failover"]


def move_params(action: MoveWriter, target: str = TARGET, **extra: object) -> Any:
    return action.parse({"global_cluster": GLOBAL, "target_cluster": target, **extra})


@pytest.mark.parametrize(("action", "api", "extra"), MOVES, ids=MOVE_IDS)
def test_moving_the_writer_sends_the_target_cluster_arn(
    tmp_path: Path, stub: StubFor, action: MoveWriter, api: str, extra: dict[str, object]
) -> None:
    time = FakeTime()
    ctx = make_ctx(tmp_path, time=time)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN)
    rds.add_response(
        api,
        {"GlobalCluster": {"GlobalClusterIdentifier": GLOBAL, "Status": "available"}},
        {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": TARGET_ARN, **extra},
    )
    expect_poll(rds, writer=TARGET_ARN)

    assert action.apply(ctx, move_params(action)) == {"writer": TARGET_ARN}
    assert time.slept == []  # reached at the first poll
    rds.assert_no_pending_responses()


@pytest.mark.parametrize(("action", "api", "extra"), MOVES, ids=MOVE_IDS)
def test_a_target_that_is_already_the_writer_is_not_moved(
    tmp_path: Path, stub: StubFor, action: MoveWriter, api: str, extra: dict[str, object]
) -> None:
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=TARGET_ARN)
    expect_poll(rds, writer=TARGET_ARN)  # no switchover/failover queued: calling it would fail the apply

    assert action.apply(ctx, move_params(action)) == {"writer": TARGET_ARN}
    rds.assert_no_pending_responses()


def test_switchover_waits_with_the_injected_sleep_until_the_target_is_the_available_writer(
    tmp_path: Path, stub: StubFor
) -> None:
    time = FakeTime()
    ctx = make_ctx(tmp_path, time=time)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN)
    rds.add_response(
        "switchover_global_cluster",
        {"GlobalCluster": {"GlobalClusterIdentifier": GLOBAL, "Status": "switching-over"}},
        {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": TARGET_ARN},
    )
    expect_poll(rds, writer=SOURCE_ARN, status="switching-over")
    expect_poll(rds, writer=TARGET_ARN, status="switching-over")  # writer moved, not yet available
    expect_poll(rds, writer=TARGET_ARN)

    action = SwitchoverGlobalCluster()
    assert action.apply(ctx, move_params(action)) == {"writer": TARGET_ARN}
    assert time.slept == [0.25, 0.5]  # backs off between polls, never really sleeps
    rds.assert_no_pending_responses()


def test_switchover_in_progress_is_not_requested_again_but_waited_for(tmp_path: Path, stub: StubFor) -> None:
    time = FakeTime()
    ctx = make_ctx(tmp_path, time=time)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN, status="switching-over")
    expect_poll(rds, writer=TARGET_ARN)

    action = SwitchoverGlobalCluster()
    assert action.apply(ctx, move_params(action)) == {"writer": TARGET_ARN}
    rds.assert_no_pending_responses()


def test_switchover_that_never_completes_times_out_as_transient(tmp_path: Path, stub: StubFor) -> None:
    time = FakeTime()
    ctx = make_ctx(tmp_path, time=time)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=TARGET_ARN, status="switching-over")
    for _ in range(23):  # polls at t = 0, 0.25, 0.75, 1.75, then every 1.5 s to 28.75, and at 30 s
        expect_poll(rds, writer=TARGET_ARN, status="switching-over")

    action = SwitchoverGlobalCluster()
    with pytest.raises(TransientProviderError, match="not reached after 30s"):
        action.apply(ctx, move_params(action, wait_timeout="30s"))
    assert time.slept == [0.25, 0.5, 1.0] + [1.5] * 18 + [1.25]
    assert time.now == 30.0
    rds.assert_no_pending_responses()


@pytest.mark.parametrize(("action", "api", "extra"), MOVES, ids=MOVE_IDS)
def test_a_target_that_is_not_a_member_is_named_in_the_error(
    tmp_path: Path, stub: StubFor, action: MoveWriter, api: str, extra: dict[str, object]
) -> None:
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    stranger_arn = f"arn:aws:rds:us-west-2:{ACCOUNT}:cluster:orders-stray"
    expect_target(rds, name="orders-stray", arn=stranger_arn)
    expect_global(rds, writer=SOURCE_ARN)

    with pytest.raises(ProviderError) as raised:
        action.apply(ctx, move_params(action, target="orders-stray"))
    assert not isinstance(raised.value, TransientProviderError)
    message = str(raised.value)
    assert "orders-stray" in message
    assert "is not a member" in message
    assert SOURCE_ARN in message and TARGET_ARN in message  # the actual members are listed
    rds.assert_no_pending_responses()


@pytest.mark.parametrize(("action", "api", "extra"), MOVES, ids=MOVE_IDS)
def test_moving_the_writer_is_irreversible(
    tmp_path: Path, stub: StubFor, action: MoveWriter, api: str, extra: dict[str, object]
) -> None:
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")  # nothing queued: any call would fail differently
    params = move_params(action)
    assert action.is_reversible(params) is False
    with pytest.raises(ProviderError, match="irreversible"):
        action.compensate(ctx, params, {"writer": SOURCE_ARN})
    rds.assert_no_pending_responses()


# --- Lambda invoke -------------------------------------------------------------------------------

FUNCTION = "flush-cache"
INVOKE = Invoke()


def record_payloads(ctx: Context) -> list[dict[str, Any]]:
    """Decode every Payload the Lambda client is asked to send (a botocore event, not a patch)."""
    sent: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: object) -> None:
        sent.append(json.loads(params["Payload"]))

    invoker(ctx, INVOKE.parse({"function": FUNCTION})).meta.events.register(
        "before-parameter-build.lambda.Invoke", capture
    )
    return sent


def expect_invoke(lam: Stubber, body: bytes, function_error: str | None = None) -> None:
    response: dict[str, Any] = {"StatusCode": 200, "Payload": streaming(body), "ExecutedVersion": "$LATEST"}
    if function_error:
        response["FunctionError"] = function_error
    lam.add_response(
        "invoke",
        response,
        {"FunctionName": FUNCTION, "InvocationType": "RequestResponse", "Payload": ANY},
    )


def test_lambda_invoke_returns_the_decoded_json_result(tmp_path: Path, stubbers: ExitStack) -> None:
    ctx = make_ctx(tmp_path)
    lam = Stubber(invoker(ctx, INVOKE.parse({"function": FUNCTION})))
    stubbers.enter_context(lam)
    expect_invoke(lam, b'{"flushed": 3, "keys": ["a", "b"]}')

    result = INVOKE.apply(ctx, INVOKE.parse({"function": FUNCTION, "payload": {"cache": "checkout"}}))
    assert result == {"flushed": 3, "keys": ["a", "b"]}
    lam.assert_no_pending_responses()


def test_lambda_payload_carries_the_idempotency_token(tmp_path: Path, stubbers: ExitStack) -> None:
    ctx = make_ctx(tmp_path)
    lam = Stubber(invoker(ctx, INVOKE.parse({"function": FUNCTION})))
    stubbers.enter_context(lam)
    sent = record_payloads(ctx)
    expect_invoke(lam, b"null")

    INVOKE.apply(ctx, INVOKE.parse({"function": FUNCTION, "payload": {"cache": "checkout"}}))
    assert sent == [
        {
            "failover": {"run_id": "run-1", "step_id": "svc.step", "token": ctx.idempotency_token},
            "cache": "checkout",
        }
    ]
    assert ctx.idempotency_token == "run-1:svc.step"


def test_lambda_function_error_fails_with_the_function_name_and_error(
    tmp_path: Path, stubbers: ExitStack
) -> None:
    ctx = make_ctx(tmp_path)
    lam = Stubber(invoker(ctx, INVOKE.parse({"function": FUNCTION})))
    stubbers.enter_context(lam)
    expect_invoke(
        lam,
        b'{"errorMessage": "redis unreachable", "errorType": "ConnectionError"}',
        function_error="Unhandled",
    )

    with pytest.raises(ProviderError) as raised:
        INVOKE.apply(ctx, INVOKE.parse({"function": FUNCTION}))
    assert not isinstance(raised.value, TransientProviderError)
    message = str(raised.value)
    assert FUNCTION in message
    assert "redis unreachable" in message
    assert "Unhandled" in message
    lam.assert_no_pending_responses()


def test_lambda_throttling_is_transient(tmp_path: Path, stubbers: ExitStack) -> None:
    ctx = make_ctx(tmp_path)
    lam = Stubber(invoker(ctx, INVOKE.parse({"function": FUNCTION})))
    stubbers.enter_context(lam)
    lam.add_client_error(
        "invoke",
        service_error_code="TooManyRequestsException",
        service_message="Rate exceeded",
        http_status_code=429,
    )

    with pytest.raises(TransientProviderError, match="TooManyRequestsException"):
        INVOKE.apply(ctx, INVOKE.parse({"function": FUNCTION}))
    lam.assert_no_pending_responses()


def test_lambda_access_denied_is_fatal_and_names_the_code_and_site(
    tmp_path: Path, stubbers: ExitStack
) -> None:
    ctx = make_ctx(tmp_path)
    lam = Stubber(invoker(ctx, INVOKE.parse({"function": FUNCTION})))
    stubbers.enter_context(lam)
    lam.add_client_error(
        "invoke",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: lambda:InvokeFunction",
        http_status_code=403,
    )

    with pytest.raises(ProviderError) as raised:
        INVOKE.apply(ctx, INVOKE.parse({"function": FUNCTION}))
    assert not isinstance(raised.value, TransientProviderError)
    message = str(raised.value)
    assert "AccessDeniedException" in message
    assert f"at {SITE} ({REGION})" in message
    assert FUNCTION in message
    lam.assert_no_pending_responses()


def test_lambda_is_reversible_only_with_an_undo_payload(tmp_path: Path, stubbers: ExitStack) -> None:
    ctx = make_ctx(tmp_path)
    lam = Stubber(invoker(ctx, INVOKE.parse({"function": FUNCTION})))
    stubbers.enter_context(lam)
    sent = record_payloads(ctx)
    without = INVOKE.parse({"function": FUNCTION, "payload": {"pause": True}})
    with_undo = INVOKE.parse(
        {"function": FUNCTION, "payload": {"pause": True}, "undo_payload": {"pause": False}}
    )
    assert INVOKE.is_reversible(without) is False
    assert INVOKE.is_reversible(with_undo) is True

    with pytest.raises(ProviderError, match="irreversible"):
        INVOKE.compensate(ctx, without, None)
    assert sent == []  # nothing was invoked

    expect_invoke(lam, b"{}")
    INVOKE.compensate(ctx, with_undo, None)
    assert [p["pause"] for p in sent] == [False]
    assert (
        sent[0]["failover"]["token"] == ctx.idempotency_token + ":undo"
    )  # a hook must not take it for a replay
    lam.assert_no_pending_responses()


# --- DynamoDB global table replica ---------------------------------------------------------------

TABLE = "carts"
REPLICA = GlobalTableReplicaActive()


def expect_table(ddb: Stubber, replicas: dict[str, str], status: str = "ACTIVE") -> None:
    ddb.add_response(
        "describe_table",
        {
            "Table": {
                "TableName": TABLE,
                "TableStatus": status,
                "Replicas": [{"RegionName": r, "ReplicaStatus": s} for r, s in replicas.items()],
            }
        },
        {"TableName": TABLE},
    )


def test_dynamodb_active_replica_in_the_region_passes(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    ddb = stub(ctx, "dynamodb")
    expect_table(ddb, {"us-east-1": "ACTIVE", REGION: "ACTIVE"})

    result = REPLICA.run(ctx, REPLICA.parse({"table": TABLE}))
    assert result.ok is True
    assert result.observed == {"us-east-1": "ACTIVE", REGION: "ACTIVE"}
    ddb.assert_no_pending_responses()


def test_dynamodb_replicas_listing_only_the_other_regions_pass(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    ddb = stub(ctx, "dynamodb")
    expect_table(ddb, {"us-east-1": "ACTIVE"})  # as AWS answers in a replica's own region

    result = REPLICA.run(ctx, REPLICA.parse({"table": TABLE}))
    assert result.ok is True
    assert "us-east-1 ACTIVE" in result.message
    ddb.assert_no_pending_responses()


def test_dynamodb_a_table_without_replicas_is_not_global(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    ddb = stub(ctx, "dynamodb")
    expect_table(ddb, {})

    result = REPLICA.run(ctx, REPLICA.parse({"table": TABLE}))
    assert result.ok is False
    assert f"{TABLE} in {REGION} is not a global table" in result.message
    ddb.assert_no_pending_responses()


def test_dynamodb_replica_still_creating_fails(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    ddb = stub(ctx, "dynamodb")
    expect_table(ddb, {"us-east-1": "ACTIVE", REGION: "CREATING"})

    result = REPLICA.run(ctx, REPLICA.parse({"table": TABLE}))
    assert result.ok is False
    assert "CREATING" in result.message
    assert REGION in result.message
    ddb.assert_no_pending_responses()


def test_dynamodb_table_not_active_fails(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    ddb = stub(ctx, "dynamodb")
    expect_table(ddb, {REGION: "ACTIVE"}, status="UPDATING")

    result = REPLICA.run(ctx, REPLICA.parse({"table": TABLE}))
    assert result.ok is False
    assert "UPDATING" in result.message


# --- IAM permission preflight --------------------------------------------------------------------

ROLE = "failover-operator"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/failover-run-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
DB_ARN = f"arn:aws:rds:us-west-2:{ACCOUNT}:cluster:orders-usw2"
FN_ARN = f"arn:aws:lambda:us-west-2:{ACCOUNT}:function:flush-cache"
NEEDED = (
    Permission("aws", "rds:SwitchoverGlobalCluster", DB_ARN),
    Permission("aws", "rds:DescribeDBClusters", DB_ARN),
    Permission("aws", "lambda:InvokeFunction", FN_ARN),
    Permission("gcp", "compute.instanceGroupManagers.update", "*"),  # not AWS: not simulated
)
PERMS = PermissionsCheck()


def expect_caller(sts: Stubber, arn: str = CALLER) -> None:
    sts.add_response(
        "get_caller_identity", {"UserId": "AROAEXAMPLE:failover-run-1", "Account": ACCOUNT, "Arn": arn}, {}
    )


def expect_role(iam: Stubber) -> None:
    iam.add_response(
        "get_role",
        {
            "Role": {
                "Path": "/",
                "RoleName": ROLE,
                "RoleId": "AROAEXAMPLEEXAMPLE1",
                "Arn": ROLE_ARN,
                "CreateDate": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
            }
        },
        {"RoleName": ROLE},
    )


def expect_simulation(
    iam: Stubber, resource: str, decisions: dict[str, str], principal: str = ROLE_ARN
) -> None:
    iam.add_response(
        "simulate_principal_policy",
        {
            "EvaluationResults": [
                {"EvalActionName": action, "EvalResourceName": resource, "EvalDecision": decision}
                for action, decision in decisions.items()
            ],
            "IsTruncated": False,
        },
        {"PolicySourceArn": principal, "ActionNames": sorted(decisions), "ResourceArns": [resource]},
    )


def test_role_of_names_the_role_of_an_assumed_role_session_only() -> None:
    assert role_of(CALLER) == ROLE
    assert role_of("arn:aws-us-gov:sts::123456789012:assumed-role/ops/jane") == "ops"
    assert role_of(f"arn:aws:iam::{ACCOUNT}:user/jane") is None


def test_with_account_fills_a_wildcard_account_only() -> None:
    assert (
        with_account("arn:aws:ecs:us-west-2:*:service/a/b", ACCOUNT)
        == f"arn:aws:ecs:us-west-2:{ACCOUNT}:service/a/b"
    )
    assert with_account("arn:aws:route53:::hostedzone/Z1", ACCOUNT) == "arn:aws:route53:::hostedzone/Z1"
    assert with_account("*", ACCOUNT) == "*"


def test_permissions_simulates_the_callers_role_per_resource_and_passes_when_all_allowed(
    tmp_path: Path, stub: StubFor
) -> None:
    ctx = make_ctx(tmp_path, permissions=NEEDED)
    sts, iam = stub(ctx, "sts"), stub(ctx, "iam")
    expect_caller(sts)
    expect_role(iam)
    # resources in sorted order, actions grouped by resource and sorted
    expect_simulation(iam, FN_ARN, {"lambda:InvokeFunction": "allowed"})
    expect_simulation(
        iam, DB_ARN, {"rds:DescribeDBClusters": "allowed", "rds:SwitchoverGlobalCluster": "allowed"}
    )

    result = PERMS.run(ctx, PERMS.parse({}))
    assert result.ok is True
    assert result.observed == {"principal": ROLE_ARN, "denied": []}
    assert "3 permission(s)" in result.message
    sts.assert_no_pending_responses()
    iam.assert_no_pending_responses()


def test_permissions_fails_naming_the_implicitly_denied_action(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path, permissions=NEEDED)
    sts, iam = stub(ctx, "sts"), stub(ctx, "iam")
    expect_caller(sts)
    expect_role(iam)
    expect_simulation(iam, FN_ARN, {"lambda:InvokeFunction": "allowed"})
    expect_simulation(
        iam, DB_ARN, {"rds:DescribeDBClusters": "allowed", "rds:SwitchoverGlobalCluster": "implicitDeny"}
    )

    result = PERMS.run(ctx, PERMS.parse({}))
    assert result.ok is False
    assert "rds:SwitchoverGlobalCluster" in result.message
    assert "implicitDeny" in result.message
    assert "rds:DescribeDBClusters" not in result.message
    assert ROLE_ARN in result.message
    assert isinstance(result.observed, dict)
    assert result.observed["denied"] == [f"rds:SwitchoverGlobalCluster on {DB_ARN} (implicitDeny)"]
    iam.assert_no_pending_responses()


def test_permissions_with_an_explicit_principal_simulates_that_principal(
    tmp_path: Path, stub: StubFor
) -> None:
    ctx = make_ctx(tmp_path, permissions=NEEDED[2:3])
    sts, iam = stub(ctx, "sts"), stub(ctx, "iam")
    expect_caller(sts)  # for the account only: a role ARN needs no lookup
    other = f"arn:aws:iam::{ACCOUNT}:role/break-glass"
    expect_simulation(iam, FN_ARN, {"lambda:InvokeFunction": "explicitDeny"}, principal=other)

    result = PERMS.run(ctx, PERMS.parse({"principal_arn": other}))
    assert result.ok is False
    assert "lambda:InvokeFunction" in result.message and "explicitDeny" in result.message
    sts.assert_no_pending_responses()
    iam.assert_no_pending_responses()


def test_permissions_with_nothing_to_check_makes_no_call(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path, permissions=NEEDED[3:])  # only a GCP permission
    sts, iam = stub(ctx, "sts"), stub(ctx, "iam")  # nothing queued: a call would raise
    result = PERMS.run(ctx, PERMS.parse({}))
    assert result.ok is True
    assert result.observed == []
    sts.assert_no_pending_responses()
    iam.assert_no_pending_responses()


def test_a_denied_permission_preflight_refuses_the_run_before_any_change(
    tmp_path: Path, stub: StubFor
) -> None:
    text = SITES + textwrap.dedent(
        """\
        services:
          app:
            preflight:
              - {id: perms, check: aws.permissions, site: "${to}", timeout: 10m}
            steps:
              - {id: move, action: sim.step, site: "${to}", with: {target: app}}
        """
    )
    plan = make_plan(parse_runbook(text, "x.yaml"), from_="east", to="west")
    cache = ClientCache()
    # the run's site and settings: same clients (the check has time for every attempt of a call,
    # so its clients are configured as those of a context without a deadline)
    ctx = make_ctx(tmp_path, site="west", clients=cache)
    sts, iam = stub(ctx, "sts"), stub(ctx, "iam")
    expect_caller(sts)
    expect_role(iam)
    # what the plan needs at west in AWS: the check's own permissions (the sim step needs none)
    expect_simulation(
        iam,
        "*",
        {
            "iam:GetRole": "allowed",
            "iam:SimulatePrincipalPolicy": "implicitDeny",
            "sts:GetCallerIdentity": "allowed",
        },
    )

    state = tmp_path / "state"
    slept: list[float] = []
    result = execute(plan, state, Options(clients=cache, auto_approve=True, sleep=slept.append))

    assert (result.exit_code, result.status) == (3, "refused")
    assert "app.perms" in result.message
    assert ROLE_ARN in result.message
    assert "iam:SimulatePrincipalPolicy on * (implicitDeny)" in result.message
    assert "sts:GetCallerIdentity" not in result.message
    assert [e for e in SimWorld(state).events() if e.op == "apply"] == []
    sts.assert_no_pending_responses()
    iam.assert_no_pending_responses()


# --- promotion in progress, health checkers ------------------------------------------------------


def test_a_promotion_in_progress_is_waited_for_not_asked_again(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    rds_stub = stub(ctx, "rds")
    cluster = {
        "DBClusterIdentifier": "orders-usw2",
        "ReplicationSourceIdentifier": "arn:src",
        "Status": "promoting",
    }
    done = {"DBClusterIdentifier": "orders-usw2", "Status": "available"}
    for answer in (cluster, cluster, done):  # apply's look, one poll while promoting, then promoted
        rds_stub.add_response(
            "describe_db_clusters", {"DBClusters": [answer]}, {"DBClusterIdentifier": "orders-usw2"}
        )
    action = PromoteReplicaCluster()
    assert action.apply(ctx, action.parse({"cluster": "orders-usw2"})) == {"promoted": "orders-usw2"}
    rds_stub.assert_no_pending_responses()  # and no PromoteReadReplicaDBCluster was sent


@pytest.mark.parametrize(
    ("statuses", "min_healthy", "ok"),
    [
        (["Success: HTTP 200", "Success: HTTP 200", "Failure: timed out"], 0.5, True),
        (["Success: HTTP 200", "Failure: HTTP 503", "Failure: timed out"], 0.5, False),
        (["Success: HTTP 200", "Success: HTTP 200", "Failure: timed out"], 1.0, False),
        ([], 0.5, False),
    ],
)
def test_health_check_ok_counts_the_healthy_checkers(
    tmp_path: Path, stub: StubFor, statuses: list[str], min_healthy: float, ok: bool
) -> None:
    ctx = make_ctx(tmp_path)
    r53 = stub(ctx, "route53")
    observations = [
        {"Region": "us-east-1", "IPAddress": f"10.0.0.{i}", "StatusReport": {"Status": s}}
        for i, s in enumerate(statuses)
    ]
    r53.add_response(
        "get_health_check_status", {"HealthCheckObservations": observations}, {"HealthCheckId": "hc-1"}
    )
    check = HealthCheckOk()
    result = check.run(ctx, check.parse({"health_check_id": "hc-1", "min_healthy": min_healthy}))
    assert result.ok is ok
    healthy = sum(s.startswith("Success") for s in statuses)
    assert result.message.startswith(f"{healthy} of {len(statuses)} checkers report healthy")
