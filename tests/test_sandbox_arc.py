"""The sandbox's ARC cluster: ARC's data plane held to its botocore model and its safety rules,
one endpoint per region (a site that is down takes only its own), and the DNS answers that
follow the routing controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from failover.engine import Options, execute
from failover.planner import make_plan
from failover.runbook import RunbookError, parse_runbook
from failover.sandbox import Sandbox
from tests.conftest import SITES

PANEL = "arn:aws:route53-recovery-control::123456789012:controlpanel/p"
EAST, WEST, GATE = (f"{PANEL}/routingcontrol/{name}" for name in ("east", "west", "gate"))
ENDPOINTS = "\n".join(
    f"            - {{region: {r}, endpoint: 'https://c.route53-recovery-cluster.{r}.amazonaws.com/v1'}}"
    for r in ("us-east-1", "us-west-2")
)
ARC = f"""
services:
  dns:
    steps:
      - id: shift
        action: aws.arc.set_routing_controls
        site: "${{to}}"
        with:
          controls: {{"{PANEL}/routingcontrol/${{to}}": "On", "{PANEL}/routingcontrol/${{from}}": "Off"}}
          cluster_endpoints:
{ENDPOINTS}
sandbox:
  aws:
    hosted_zones:
      - name: example.com
        records:
          - {{name: api.example.com, set_identifier: east, failover: PRIMARY, value: 10.0.0.1,
             routing_control: "{EAST}"}}
          - {{name: api.example.com, set_identifier: west, failover: SECONDARY, value: 10.0.0.2,
             routing_control: "{WEST}"}}
    control_panels:
      - arn: "{PANEL}"
        controls: {{east: "On", west: "Off", gate: "On"}}
        rules:
          - {{name: one-serves, type: ATLEAST, threshold: 1, asserted: [east, west]}}
          - {{name: gated, type: AND, gating: [gate], targets: [east, west]}}
"""


def arc(box: Sandbox, region: str = "us-west-2") -> Any:
    return boto3.client(
        "route53-recovery-cluster",
        region_name=region,
        endpoint_url=box.overrides()["aws"]["endpoint_url"],
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False),
    )


def refused(call: Any, **params: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as raised:
        call(**params)
    response = raised.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def states(client: Any) -> dict[str, str]:
    return {
        c["RoutingControlName"]: c["RoutingControlState"]
        for c in client.list_routing_controls()["RoutingControls"]
    }


def entries(**found: str) -> list[dict[str, str]]:
    return [
        {"RoutingControlArn": f"{PANEL}/routingcontrol/{k}", "RoutingControlState": v}
        for k, v in found.items()
    ]


def test_requests_are_held_to_the_model_and_unknown_controls_are_not_found() -> None:
    with Sandbox(parse_runbook(SITES + ARC, "t.yaml")) as box:
        client = arc(box)
        assert client.get_routing_control_state(RoutingControlArn=EAST)["RoutingControlState"] == "On"
        code, kind, message = refused(
            client.update_routing_control_state, RoutingControlArn=EAST, RoutingControlState="off"
        )
        assert (code, kind) == (400, "ValidationException") and "'off' is not one of ['On', 'Off']" in message
        code, kind, message = refused(client.get_routing_control_state, RoutingControlArn="arn with spaces")
        assert (code, kind) == (400, "ValidationException") and "does not match" in message
        code, kind, _ = refused(client.update_routing_control_states)  # no entries: a required member
        assert (code, kind) == (400, "ValidationException")
        code, kind, message = refused(
            client.get_routing_control_state, RoutingControlArn=f"{PANEL}/routingcontrol/x"
        )
        assert (code, kind) == (404, "ResourceNotFoundException") and "routingcontrol/x not found" in message
        assert states(client) == {"east": "On", "west": "Off", "gate": "On"}


def test_safety_rules_refuse_a_change_that_breaks_them_and_change_nothing() -> None:
    with Sandbox(parse_runbook(SITES + ARC, "t.yaml")) as box:
        client = arc(box)
        code, kind, message = refused(
            client.update_routing_control_state, RoutingControlArn=EAST, RoutingControlState="Off"
        )
        assert (code, kind) == (409, "ConflictException") and "assertion rule one-serves" in message
        # both in one request: the rule holds over the states after it
        client.update_routing_control_states(UpdateRoutingControlStateEntries=entries(east="Off", west="On"))
        assert states(client) == {"east": "Off", "west": "On", "gate": "On"}
        client.update_routing_control_state(RoutingControlArn=GATE, RoutingControlState="Off")
        code, kind, message = refused(
            client.update_routing_control_states,
            UpdateRoutingControlStateEntries=entries(east="On", west="Off"),
        )
        assert (code, kind) == (409, "ConflictException") and "gating rule gated" in message
        assert states(client) == {"east": "Off", "west": "On", "gate": "Off"}
        client.update_routing_control_states(  # an operator may override a rule, naming it
            UpdateRoutingControlStateEntries=entries(east="On", west="Off"),
            SafetyRulesToOverride=[f"{PANEL}/safetyrule/gated"],
        )
        assert states(client) == {"east": "On", "west": "Off", "gate": "Off"}


def test_a_site_down_takes_only_its_regions_endpoint_and_dns_follows_the_controls(tmp_path: Path) -> None:
    runbook = parse_runbook(SITES + ARC, "t.yaml")
    plan = make_plan(runbook, from_="east", to="west", mode="ungraceful")
    assert not plan.warnings  # ARC needs no control plane homed in us-east-1
    with Sandbox(runbook, ["site-down:east"]) as box:
        overrides = box.site_overrides()
        dead = overrides["east"]["aws"]["endpoint_url"]
        for site in ("east", "west"):  # every site's calls to the us-east-1 endpoint go to the dead one
            assert overrides[site]["aws"]["endpoint_urls"]["route53-recovery-cluster:us-east-1"] == dead
            assert "route53-recovery-cluster:us-west-2" not in overrides[site]["aws"]["endpoint_urls"]
        assert box.state()["answers api.example.com A"] == ["east"]
        options = Options(
            auto_approve=True, overrides=box.overrides(), site_overrides=overrides, sandbox=box.describe()
        )
        result = execute(plan, tmp_path, options)
        assert result.ok, result.message
        after = box.state()
    assert after["arc controlpanel/p/routingcontrol/west"] == "On"
    assert after["answers api.example.com A"] == ["west"]  # the SECONDARY once the PRIMARY's control is Off


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (', gate: "On"}', "}", "safety rule gated names controls not in controls: ['gate']"),
        ('123456789012:controlpanel/p"', '1:controlpanel/p"', "is not a control panel ARN"),
        ('routingcontrol/east"}', 'routingcontrol/north"}', "routingcontrol/north is not declared"),
        ("asserted: [east, west]", "asserted: [east, west], targets: [east]", "a safety rule has asserted"),
    ],
)
def test_the_sandbox_refuses_a_control_panel_it_could_not_be(old: str, new: str, says: str) -> None:
    text = SITES + ARC
    assert old in text
    with pytest.raises(RunbookError) as raised:
        parse_runbook(text.replace(old, new, 1), "t.yaml")
    assert says in str(raised.value)
