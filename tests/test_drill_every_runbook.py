"""Every runbook in runbooks/ drilled in its sandbox: there and back, and ungraceful with its
source site down, where only what the dead site holds may fail."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from failover.engine import Options, execute
from failover.planner import make_plan
from failover.runbook import load_runbook
from failover.sandbox import Sandbox
from tests.conftest import ROOT

RUNBOOKS = sorted(
    p
    for p in [ROOT / "runbooks" / "shop.yaml", *(ROOT / "runbooks" / "examples").glob("*.yaml")]
    if load_runbook(p).sandbox is not None
)


@pytest.mark.parametrize("path", RUNBOOKS, ids=[p.stem for p in RUNBOOKS])
def test_an_ungraceful_drill_with_the_source_down_fails_only_where_the_dead_site_is_needed(
    path: Path, tmp_path: Path
) -> None:
    runbook = load_runbook(path)
    source = "east"
    plan = make_plan(runbook, from_=source, to="west", mode="ungraceful")
    # a dead endpoint costs each call its step's timeout: short ones keep the drill short
    plan = dataclasses.replace(
        plan, steps=tuple(s._replace(timeout_s=min(s.timeout_s, 8.0)) for s in plan.steps)
    )
    with Sandbox(runbook, [f"site-down:{source}"], speed=400) as box:
        options = Options(
            auto_approve=True,
            overrides=box.overrides(),
            site_overrides=box.site_overrides(),
            sandbox=box.describe(),
        )
        result = execute(plan, tmp_path, options)
    failed = [sid for sid, rec in result.state.steps.items() if rec.state == "failed" and not rec.best_effort]
    failed += [cid for cid, rec in result.state.checks.items() if not rec.ok and not rec.best_effort]
    # the only things that may fail: what runs at the dead site, or goes through a control plane
    # homed there (the planner names those in a warning)
    warned = " ".join(plan.warnings)
    allowed = {s.id for s in plan.steps if s.site == source and not s.skipped}
    items = (*plan.steps_by_id, *(c.id for c in plan.preflight))
    allowed |= {i for i in items if f"{i}," in warned or f"{i}:" in warned}
    assert set(failed) <= allowed, (result.status, result.message, failed)
    if not failed:
        assert result.ok, result.message
    else:  # the run stopped in a journaled state, saying what needed the dead site
        assert result.status in ("halted", "rolled_back", "refused"), result.message
        assert failed[0] in result.message
