"""Kill the executor at every journal event (before and after every side effect), then resume:
the world ends as an uninterrupted run leaves it, and no mutation happens twice."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from failover.engine import Options, execute, resume
from failover.plan import Plan
from failover.providers.sim import SimWorld
from failover.state.events import RunState
from failover.state.local import DirectoryStore
from tests.conftest import ROOT
from tests.executor_helpers import FORWARD, plan_from

ROLLING_BACK = """
services:
  db:
    steps: [{id: fence, action: sim.step, site: "${from}", with: {target: writes}}]
  cache:
    steps: [{id: warm, action: sim.step, site: "${to}", with: {target: cache}}]
  app:
    depends_on: [db, cache]
    steps:
      - {id: scale, action: sim.step, site: "${to}", with: {target: app}}
      - {id: boom, action: sim.step, site: "${to}", with: {target: boom, fail: true}}
"""


def quiet() -> Options:
    return Options(auto_approve=True, sleep=lambda _s: None)


def outcome(state: Path) -> tuple[dict[str, object], Counter[tuple[str, str]]]:
    world = SimWorld(state)
    calls = Counter((e.op, e.target) for e in world.events() if e.op != "check")  # every call, changed or not
    return world.values(), calls


def reference(plan: Plan, state: Path) -> tuple[int, str, tuple[dict[str, object], Counter[tuple[str, str]]]]:
    result = execute(plan, state, quiet())
    return len(DirectoryStore(state).events(result.run_id)), result.status, outcome(state)


@pytest.mark.parametrize("runbook", [FORWARD, ROLLING_BACK], ids=["forward", "rollback"])
def test_killed_at_every_event_and_resumed_ends_like_an_uninterrupted_run(
    tmp_path: Path, runbook: str
) -> None:
    plan = plan_from(runbook)
    total, status, expected = reference(plan, tmp_path / "reference")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    assert total >= 2 * len(plan.steps) + 1
    for kill_after in range(1, total + 1):
        state = tmp_path / f"kill-{kill_after}"
        child = subprocess.run(
            [sys.executable, "-m", "tests.crash_child", str(plan_file), str(state), str(kill_after)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == -9, child.stderr
        (run_id, *_), *_ = DirectoryStore(state).runs()
        result = resume(run_id, state, quiet())
        assert result.status == status, f"killed after event {kill_after}: {result.message}"
        assert outcome(state) == expected, f"killed after event {kill_after}"
        assert RunState.replay(run_id, DirectoryStore(state).events(run_id)).finished
