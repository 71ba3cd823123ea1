# ruff: noqa: F811  (the fixtures aws_env and stub come from tests.test_aws_stubbed)
"""AWS behaviours that only a real account shows, held to botocore's service models with Stubber
(every request is validated against the model before the stub answers it):

- ELBv2 never returns an OIDC action's client secret, so an action read back from
  DescribeListeners / DescribeRules must be re-sent with ``UseExistingClientSecret``.
- An Aurora global database reports a switchover or failover in progress in ``FailoverState``
  (``pending`` before its own ``Status`` changes), and each member's ``SynchronizationStatus``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from failover.errors import ProviderError, TransientProviderError
from failover.providers.aws.elbv2 import SetTargetGroupWeights
from failover.providers.aws.rds import FailoverGlobalCluster, GlobalClusterHealthy, SwitchoverGlobalCluster
from tests.test_aws_stubbed import ACCOUNT, REGION, FakeTime, StubFor, aws_env, make_ctx, stub  # noqa: F401  (its fixtures: offline clients, Stubbers)

# --- ELBv2: an authenticate-oidc action read back and written again -----------------------------

LB = "shop-usw2"
LB_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/{LB}/50dc6c495c0c9188"
LISTENER_ARN = (
    f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/{LB}/50dc6c495c0c9188/f2f7dc8efc522ab2"
)
RULE_ARN = (
    f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener-rule/app/{LB}/50dc6c495c0c9188/"
    "f2f7dc8efc522ab2/9683b2d02a6cabee"
)
BLUE_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/app-blue/73e2d6bc24d8a067"
GREEN_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/app-green/2453ed029918f21f"
ELB = SetTargetGroupWeights()

# what DescribeListeners / DescribeRules answer for an OIDC action: every field but the secret
OIDC_DESCRIBED: dict[str, Any] = {
    "Type": "authenticate-oidc",
    "Order": 1,
    "AuthenticateOidcConfig": {
        "Issuer": "https://idp.example.com",
        "AuthorizationEndpoint": "https://idp.example.com/authorize",
        "TokenEndpoint": "https://idp.example.com/token",
        "UserInfoEndpoint": "https://idp.example.com/userinfo",
        "ClientId": "shop",
        "SessionCookieName": "AWSELBAuthSessionCookie",
        "Scope": "openid",
        "SessionTimeout": 604800,
        "OnUnauthenticatedRequest": "authenticate",
    },
}
# the same action as ModifyListener / ModifyRule must receive it: keep the secret AWS has
OIDC_SENT: dict[str, Any] = {
    **OIDC_DESCRIBED,
    "AuthenticateOidcConfig": {**OIDC_DESCRIBED["AuthenticateOidcConfig"], "UseExistingClientSecret": True},
}
# a forward to one target group, as Describe answers it: both TargetGroupArn and ForwardConfig
FORWARD_DESCRIBED: dict[str, Any] = {
    "Type": "forward",
    "Order": 2,
    "TargetGroupArn": BLUE_ARN,
    "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": BLUE_ARN, "Weight": 1}],
        "TargetGroupStickinessConfig": {"Enabled": False},
    },
}
WEIGHTED: dict[str, Any] = {
    "Type": "forward",
    "Order": 2,
    "ForwardConfig": {
        "TargetGroups": [
            {"TargetGroupArn": BLUE_ARN, "Weight": 0},
            {"TargetGroupArn": GREEN_ARN, "Weight": 100},
        ],
        "TargetGroupStickinessConfig": {"Enabled": False},
    },
}


def elb_params(rule: bool) -> Any:
    return ELB.parse(
        {"load_balancer": LB, "port": 443, "weights": {"app-blue": 0, "app-green": 100}}
        | ({"rule_priority": 10} if rule else {})
    )


def expect_where(elb: Stubber, actions: list[dict[str, Any]], rule: bool) -> None:
    """DescribeLoadBalancers, DescribeListeners (and DescribeRules): the listener or rule has ``actions``."""
    elb.add_response(
        "describe_load_balancers",
        {"LoadBalancers": [{"LoadBalancerArn": LB_ARN, "LoadBalancerName": LB}]},
        {"Names": [LB]},
    )
    listener: dict[str, Any] = {
        "ListenerArn": LISTENER_ARN,
        "LoadBalancerArn": LB_ARN,
        "Port": 443,
        "Protocol": "HTTPS",
        "DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}]
        if rule
        else actions,
    }
    elb.add_response("describe_listeners", {"Listeners": [listener]}, {"LoadBalancerArn": LB_ARN})
    if rule:
        elb.add_response(
            "describe_rules",
            {
                "Rules": [
                    {
                        "RuleArn": RULE_ARN,
                        "Priority": "10",
                        "Conditions": [{"Field": "path-pattern", "Values": ["/app/*"]}],
                        "Actions": actions,
                        "IsDefault": False,
                    }
                ]
            },
            {"ListenerArn": LISTENER_ARN},
        )


def expect_groups(elb: Stubber) -> None:
    elb.add_response(
        "describe_target_groups",
        {
            "TargetGroups": [
                {"TargetGroupName": "app-blue", "TargetGroupArn": BLUE_ARN},
                {"TargetGroupName": "app-green", "TargetGroupArn": GREEN_ARN},
            ]
        },
        {"Names": ["app-blue", "app-green"]},
    )


def expect_modify(elb: Stubber, actions: list[dict[str, Any]], rule: bool) -> None:
    if rule:
        elb.add_response("modify_rule", {"Rules": []}, {"RuleArn": RULE_ARN, "Actions": actions})
    else:
        elb.add_response(
            "modify_listener", {"Listeners": []}, {"ListenerArn": LISTENER_ARN, "DefaultActions": actions}
        )


@pytest.mark.parametrize("rule", [False, True], ids=["listener", "rule"])
def test_oidc_action_is_resent_with_use_existing_client_secret_on_apply_and_compensate(
    tmp_path: Path, stub: StubFor, rule: bool
) -> None:
    ctx = make_ctx(tmp_path)
    elb = stub(ctx, "elbv2")
    params = elb_params(rule)
    described = [OIDC_DESCRIBED, FORWARD_DESCRIBED]
    # read: the snapshot
    expect_where(elb, described, rule)
    expect_groups(elb)
    # apply: the forward gets the weights; the OIDC action keeps the secret AWS has
    expect_where(elb, described, rule)
    expect_groups(elb)
    expect_modify(elb, [OIDC_SENT, WEIGHTED], rule)
    # compensate: the snapshot goes back, the OIDC action again without a secret to send
    expect_where(elb, [OIDC_DESCRIBED, WEIGHTED], rule)
    expect_modify(elb, [OIDC_SENT, FORWARD_DESCRIBED], rule)

    before = ELB.read(ctx, params)
    assert before == {"weights": {"app-blue": 1, "app-green": 0}, "actions": described}
    assert ELB.apply(ctx, params) == {"app-blue": 0, "app-green": 100}
    ELB.compensate(ctx, params, before)
    elb.assert_no_pending_responses()


def test_a_journaled_client_secret_is_never_sent_back(tmp_path: Path, stub: StubFor) -> None:
    """A snapshot holding a ClientSecret (written by hand, or by another tool) is restored with
    UseExistingClientSecret, not with the secret."""
    ctx = make_ctx(tmp_path)
    elb = stub(ctx, "elbv2")
    with_secret = {
        **OIDC_DESCRIBED,
        "AuthenticateOidcConfig": {**OIDC_DESCRIBED["AuthenticateOidcConfig"], "ClientSecret": "s3cr3t"},
    }
    expect_where(elb, [OIDC_DESCRIBED, WEIGHTED], rule=False)
    expect_modify(elb, [OIDC_SENT, FORWARD_DESCRIBED], rule=False)

    ELB.compensate(ctx, elb_params(False), {"weights": {}, "actions": [with_secret, FORWARD_DESCRIBED]})
    elb.assert_no_pending_responses()


def test_a_forward_whose_target_group_arn_contradicts_its_forward_config_sends_the_config(
    tmp_path: Path, stub: StubFor
) -> None:
    """ELBv2 takes TargetGroupArn with ForwardConfig only for the same single target group."""
    ctx = make_ctx(tmp_path)
    elb = stub(ctx, "elbv2")
    both = {**WEIGHTED, "TargetGroupArn": BLUE_ARN}  # two groups in the config: the request would fail
    expect_where(elb, [OIDC_DESCRIBED, FORWARD_DESCRIBED], rule=False)
    expect_modify(elb, [OIDC_SENT, WEIGHTED], rule=False)

    ELB.compensate(ctx, elb_params(False), {"weights": {}, "actions": [OIDC_DESCRIBED, both]})
    elb.assert_no_pending_responses()


# --- Aurora global database: FailoverState and SynchronizationStatus ---------------------------

MoveWriter = SwitchoverGlobalCluster | FailoverGlobalCluster
GLOBAL = "orders"
TARGET = "orders-usw2"
TARGET_ARN = f"arn:aws:rds:us-west-2:{ACCOUNT}:cluster:orders-usw2"
SOURCE_ARN = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:orders-use1"
OTHER_ARN = f"arn:aws:rds:eu-west-1:{ACCOUNT}:cluster:orders-euw1"
MOVES: list[tuple[MoveWriter, str, dict[str, object]]] = [
    (SwitchoverGlobalCluster(), "switchover_global_cluster", {}),
    (FailoverGlobalCluster(), "failover_global_cluster", {"AllowDataLoss": True}),
]
MOVE_IDS = ["switchover", "failover"]


def expect_target(rds: Stubber) -> None:
    rds.add_response(
        "describe_db_clusters",
        {"DBClusters": [{"DBClusterIdentifier": TARGET, "DBClusterArn": TARGET_ARN, "Status": "available"}]},
        {"DBClusterIdentifier": TARGET},
    )


def expect_global(
    rds: Stubber,
    writer: str,
    status: str = "available",
    *,
    moving: dict[str, Any] | None = None,
    sync: dict[str, str] | None = None,
    members: tuple[str, ...] = (SOURCE_ARN, TARGET_ARN),
) -> None:
    """DescribeGlobalClusters: ``moving`` is its FailoverState, ``sync`` the SynchronizationStatus
    per member ARN (absent for the others, as for a writer)."""
    found: dict[str, Any] = {
        "GlobalClusterIdentifier": GLOBAL,
        "Status": status,
        "GlobalClusterMembers": [
            {"DBClusterArn": arn, "IsWriter": arn == writer, "Readers": []}
            | ({"SynchronizationStatus": sync[arn]} if sync and arn in sync else {})
            for arn in members
        ],
    }
    if moving is not None:
        found["FailoverState"] = moving
    rds.add_response(
        "describe_global_clusters", {"GlobalClusters": [found]}, {"GlobalClusterIdentifier": GLOBAL}
    )


def state(status: str, to: str = TARGET_ARN, data_loss: bool = False) -> dict[str, Any]:
    return {
        "Status": status,
        "FromDbClusterArn": SOURCE_ARN,
        "ToDbClusterArn": to,
        "IsDataLossAllowed": data_loss,
    }


def move_params(action: MoveWriter, **extra: object) -> Any:
    return action.parse({"global_cluster": GLOBAL, "target_cluster": TARGET, **extra})


@pytest.mark.parametrize(("action", "api", "extra"), MOVES, ids=MOVE_IDS)
def test_a_move_pending_toward_the_target_is_waited_for_not_requested_again(
    tmp_path: Path, stub: StubFor, action: MoveWriter, api: str, extra: dict[str, object]
) -> None:
    """A retry while the first request is ``pending``: the global cluster is still ``available``
    with the old writer; only FailoverState says a move was asked for."""
    ctx = make_ctx(tmp_path, time=FakeTime())
    rds = stub(ctx, "rds")
    loss = api == "failover_global_cluster"
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN, moving=state("pending", data_loss=loss))
    expect_target(rds)  # polls: no second switchover or failover is queued (sending one fails the test)
    expect_global(
        rds, writer=SOURCE_ARN, status="switching-over", moving=state("switching-over", data_loss=loss)
    )
    expect_target(rds)
    expect_global(rds, writer=TARGET_ARN)

    assert action.apply(ctx, move_params(action)) == {"writer": TARGET_ARN}
    rds.assert_no_pending_responses()


@pytest.mark.parametrize(("action", "api", "extra"), MOVES, ids=MOVE_IDS)
def test_a_move_in_progress_toward_another_cluster_fails_naming_it(
    tmp_path: Path, stub: StubFor, action: MoveWriter, api: str, extra: dict[str, object]
) -> None:
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(
        rds,
        writer=SOURCE_ARN,
        moving=state("pending", to=OTHER_ARN, data_loss=True),
        members=(SOURCE_ARN, TARGET_ARN, OTHER_ARN),
    )

    with pytest.raises(ProviderError) as raised:
        action.apply(ctx, move_params(action))
    assert not isinstance(raised.value, TransientProviderError)
    message = str(raised.value)
    assert OTHER_ARN in message and "pending" in message and "failover" in message
    assert TARGET in message
    rds.assert_no_pending_responses()  # and nothing was requested


@pytest.mark.parametrize(("action", "api", "extra"), MOVES, ids=MOVE_IDS)
def test_verify_is_false_while_a_failover_state_is_in_progress(
    tmp_path: Path, stub: StubFor, action: MoveWriter, api: str, extra: dict[str, object]
) -> None:
    """The target is already the writer and the cluster ``available``, but the move is not done."""
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=TARGET_ARN, moving=state("switching-over"))
    expect_target(rds)
    expect_global(rds, writer=TARGET_ARN)

    assert action.verify(ctx, move_params(action)) is False
    assert action.verify(ctx, move_params(action)) is True
    rds.assert_no_pending_responses()


def test_a_move_toward_the_target_being_cancelled_stops_the_wait_as_transient(
    tmp_path: Path, stub: StubFor
) -> None:
    time = FakeTime()
    ctx = make_ctx(tmp_path, time=time)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN, sync={TARGET_ARN: "connected"})
    rds.add_response(
        "switchover_global_cluster",
        {"GlobalCluster": {"GlobalClusterIdentifier": GLOBAL, "Status": "available"}},
        {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": TARGET_ARN},
    )
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN, moving=state("cancelling"))

    action = SwitchoverGlobalCluster()
    with pytest.raises(TransientProviderError, match="being cancelled"):
        action.apply(ctx, move_params(action))
    assert time.now == 0.0  # did not wait out wait_timeout for a move that will not happen
    rds.assert_no_pending_responses()


def test_switchover_to_a_member_pending_resync_is_not_requested(tmp_path: Path, stub: StubFor) -> None:
    """A failback after a failover with data loss: the old primary rejoins as a secondary in
    ``pending-resync``; a switchover to it must wait until it is ``connected``."""
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN, sync={TARGET_ARN: "pending-resync"})

    action = SwitchoverGlobalCluster()
    with pytest.raises(TransientProviderError) as raised:
        action.apply(ctx, move_params(action))
    message = str(raised.value)
    assert TARGET in message and "pending-resync" in message and "connected" in message
    rds.assert_no_pending_responses()  # no SwitchoverGlobalCluster was sent


def test_switchover_to_a_connected_member_is_requested(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN, sync={TARGET_ARN: "connected", SOURCE_ARN: "connected"})
    rds.add_response(
        "switchover_global_cluster",
        {"GlobalCluster": {"GlobalClusterIdentifier": GLOBAL, "Status": "switching-over"}},
        {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": TARGET_ARN},
    )
    expect_target(rds)
    expect_global(rds, writer=TARGET_ARN)

    action = SwitchoverGlobalCluster()
    assert action.apply(ctx, move_params(action)) == {"writer": TARGET_ARN}
    rds.assert_no_pending_responses()


def test_failover_with_data_loss_sends_allow_data_loss_whatever_the_synchronization(
    tmp_path: Path, stub: StubFor
) -> None:
    """The ungraceful move: FailoverGlobalCluster with AllowDataLoss (never Switchover), even to
    a member that is not in sync."""
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_target(rds)
    expect_global(rds, writer=SOURCE_ARN, sync={TARGET_ARN: "pending-resync"})
    rds.add_response(
        "failover_global_cluster",
        {"GlobalCluster": {"GlobalClusterIdentifier": GLOBAL, "Status": "failing-over"}},
        {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": TARGET_ARN, "AllowDataLoss": True},
    )
    expect_target(rds)
    expect_global(rds, writer=TARGET_ARN)

    action = FailoverGlobalCluster()
    assert action.apply(ctx, move_params(action)) == {"writer": TARGET_ARN}
    rds.assert_no_pending_responses()


HEALTHY = GlobalClusterHealthy()


def test_global_cluster_healthy_names_a_member_that_is_not_connected(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_global(rds, writer=TARGET_ARN, sync={SOURCE_ARN: "pending-resync", TARGET_ARN: "connected"})

    result = HEALTHY.run(ctx, HEALTHY.parse({"global_cluster": GLOBAL, "members": 2, "writer": TARGET}))
    assert result.ok is False
    assert "orders-use1 pending-resync" in result.message
    assert isinstance(result.observed, dict)
    assert result.observed["unsynchronized"] == {SOURCE_ARN: "pending-resync"}
    rds.assert_no_pending_responses()


def test_global_cluster_healthy_fails_while_a_move_is_in_progress(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_global(rds, writer=SOURCE_ARN, moving=state("pending"))

    result = HEALTHY.run(ctx, HEALTHY.parse({"global_cluster": GLOBAL}))
    assert result.ok is False
    assert "switchover to orders-usw2 pending" in result.message
    rds.assert_no_pending_responses()


def test_global_cluster_healthy_passes_with_every_member_connected(tmp_path: Path, stub: StubFor) -> None:
    ctx = make_ctx(tmp_path)
    rds = stub(ctx, "rds")
    expect_global(rds, writer=SOURCE_ARN, sync={SOURCE_ARN: "connected", TARGET_ARN: "connected"})

    result = HEALTHY.run(ctx, HEALTHY.parse({"global_cluster": GLOBAL, "members": 2}))
    assert result.ok is True, result.message
    rds.assert_no_pending_responses()
