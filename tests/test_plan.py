"""The plan artifact: canonical JSON, fingerprint, and refusal of anything changed or malformed."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.errors import PlanError
from failover.plan import Plan
from failover.planner import make_plan
from failover.runbook import Runbook, load_runbook
from tests.conftest import SIM_SHOP

REQUIRED_STEP_FIELDS = {
    "id",
    "service",
    "action",
    "site",
    "params",
    "description",
    "after",
    "reversible",
    "pivot",
    "approval",
    "timeout_s",
    "estimate_s",
    "skipped",
}


@pytest.fixture
def plan(sim_shop: Runbook) -> Plan:
    return make_plan(sim_shop, from_="east", to="west")


def test_plan_json_has_the_documented_fields(plan: Plan) -> None:
    doc = json.loads(plan.to_json())
    assert doc["version"] == 1
    assert len(doc["fingerprint"]) == 64
    assert doc["runbook"]["name"] == "sim-shop"
    assert len(doc["runbook"]["sha256"]) == 64
    assert doc["scenario"] == {"from": "east", "to": "west", "mode": "graceful", "scope": []}
    assert {"id", "check", "site", "params", "description"} <= set(doc["preflight"][0])
    for step in doc["steps"]:
        assert set(step) >= REQUIRED_STEP_FIELDS
    assert doc["rollback"] == list(plan.rollback)
    assert doc["predicted_rto_s"] == plan.predicted_rto_s
    assert doc["critical_path"] == list(plan.critical_path)


def test_plan_round_trips_through_json(plan: Plan) -> None:
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.fingerprint == plan.fingerprint
    compact = json.dumps(json.loads(plan.to_json()))  # the same content in other bytes
    with pytest.raises(PlanError, match="not in canonical form"):
        Plan.from_json(compact)


def test_changed_value_is_refused_as_a_fingerprint_mismatch(plan: Plan) -> None:
    doc = json.loads(plan.to_json())
    doc["steps"][0]["params"]["duration"] = "1s"
    with pytest.raises(PlanError, match="fingerprint mismatch"):
        Plan.from_json(json.dumps(doc))


SHOP_PLAN = make_plan(load_runbook(SIM_SHOP), from_="east", to="west")


@given(st.data())
def test_any_single_byte_change_is_refused(data: st.DataObject) -> None:
    plan = SHOP_PLAN
    text = plan.to_json()
    at = data.draw(st.integers(0, len(text) - 1))
    byte = data.draw(st.characters(codec="ascii").filter(lambda c: c != text[at]))
    changed = text[:at] + byte + text[at + 1 :]
    with pytest.raises(PlanError):  # a changed value, or the same content in other bytes
        Plan.from_json(changed)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"version": 2}', "unsupported plan version 2"),
        ('{"version": 1}', "no fingerprint"),
        ('{"version": 1, "fingerprint": "x", "steps": 3}', "invalid plan"),
    ],
)
def test_malformed_plans_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        Plan.from_json(text, where="p.json")


def test_an_inconsistent_plan_is_refused_even_with_a_matching_fingerprint(plan: Plan) -> None:
    from failover.plan import fingerprint_of

    doc = json.loads(plan.to_json())
    doc.pop("fingerprint")
    doc["steps"][0]["after"] = ["no.such-step"]
    doc["fingerprint"] = fingerprint_of(doc)
    with pytest.raises(PlanError, match="not an earlier step"):
        Plan.from_json(json.dumps(doc))


def test_the_plan_describes_the_sites_it_acts_on(write_runbook) -> None:  # type: ignore[no-untyped-def]
    from failover.engine import Options, execute
    from failover.runbook import load_runbook

    path = write_runbook('services:\n  a: {steps: [{id: x, action: sim.step, site: "${to}"}]}\n')
    plan = make_plan(load_runbook(path), from_="east", to="west")
    assert [s.name for s in plan.sites] == ["west"]
    assert plan.sites[0].aws == {
        "region": "us-west-2",
        "profile": None,
        "role_arn": None,
        "endpoint_url": None,
    }
    assert plan.sites[0].gcp == {"project": "p", "region": "us-west1", "endpoint": None}
    older = dataclasses.replace(plan, sites=())
    assert Plan.from_json(older.to_json()).sites == ()  # older shape without sites still loads
    assert execute(plan, path.parent / "state", Options(sleep=lambda _s: None)).ok
