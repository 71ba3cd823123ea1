"""Who a run acts as, as the clouds know it: journaled with its start and each approval, beside
a login name that is only labelled a hint."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from moto import mock_aws

from failover.engine import Options, execute
from failover.engine.approvals import LOGIN_HINT
from failover.engine.contexts import Contexts
from failover.engine.identity import cloud_callers
from failover.planner import make_plan
from failover.providers import default_registry
from failover.runbook import parse_runbook
from failover.state.local import DirectoryStore
from tests.conftest import SITES

RUNBOOK = (
    SITES
    + """
services:
  app:
    steps:
      - {id: scale, action: aws.autoscaling.set_capacity, site: "${to}", approval: true,
         with: {group: "${to.vars.asg}", desired: 1}}
"""
)


def test_the_aws_caller_is_journaled_with_the_start_and_each_approval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    plan = make_plan(parse_runbook(RUNBOOK, "r.yaml"), from_="east", to="west")
    with mock_aws():
        options = Options(approve_steps=frozenset({"app.scale"}), who="ciso-alice@laptop")
        callers = cloud_callers(
            plan, default_registry(), Contexts(plan, options, tmp_path), "r", time.monotonic()
        )
        assert callers == {"aws": "arn:aws:sts::123456789012:user/moto"}
        execute(plan, tmp_path, options)  # the group does not exist: the step fails, after its approval
    store = DirectoryStore(tmp_path, read_only=True)
    events = store.events(store.runs()[0][0])
    started = next(e for e in events if e.kind == "run_started")
    granted = next(e for e in events if e.kind == "approval_granted")
    for event in (started, granted):
        assert event.data["clouds"] == {"aws": "arn:aws:sts::123456789012:user/moto"}
    assert granted.data["by"] == "ciso-alice@laptop" and granted.data["by_is"] == LOGIN_HINT


def test_a_cloud_that_cannot_say_who_is_recorded_as_unknown_and_the_run_goes_on(tmp_path: Path) -> None:
    plan = make_plan(parse_runbook(RUNBOOK, "r.yaml"), from_="east", to="west")
    dead = {"aws": {"endpoint_url": "http://127.0.0.1:9", "credentials": "sandbox"}}
    callers = cloud_callers(
        plan, default_registry(), Contexts(plan, Options(overrides=dead), tmp_path), "r", time.monotonic()
    )
    assert callers["aws"].startswith("unknown (")
