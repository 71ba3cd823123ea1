"""One run at a time on a scope: a lease with a heartbeat and a fencing token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from failover.errors import LeaseHeldError, LeaseLostError
from failover.planner import make_plan
from failover.runbook import parse_runbook
from failover.state.local import DirectoryStore
from tests.conftest import ROOT, SITES
from tests.executor_helpers import tiny_plan


def test_ten_processes_applying_overlapping_plans_one_runs_the_others_are_refused(tmp_path: Path) -> None:
    services = '  common: {steps: [{id: slow, action: sim.step, site: "${to}", with: {duration: 6s}}]}\n'
    for k in range(10):
        services += (
            f'  s{k}: {{depends_on: [common], steps: [{{id: x, action: sim.step, site: "${{to}}"}}]}}\n'
        )
    runbook = parse_runbook(SITES + "services:\n" + services, "r.yaml")
    files = []
    for k in range(10):
        path = tmp_path / f"plan{k}.json"
        path.write_text(make_plan(runbook, from_="east", to="west", scope=[f"s{k}"]).to_json())
        files.append(path)
    state = tmp_path / "state"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "failover.cli",
                "apply",
                str(f),
                "--state",
                str(state),
                "--format",
                "json",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    results = []
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, err))
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [3] * 9, [
        (code, [ln for ln in err.splitlines() if not ln.startswith("{")])
        for code, err in results
        if code not in (0, 3)
    ] or results
    refusals = [err for code, err in results if code == 3]
    assert all("is locked by run" in err and "since" in err for err in refusals)


def test_an_expired_holder_cannot_write_and_a_new_token_is_higher(tmp_path: Path) -> None:
    now = [1000.0]
    journal = DirectoryStore(tmp_path, clock=lambda: now[0])
    first = journal.acquire("run-a", ("shop/db",), ttl=30)
    journal.create_run("run-a", tiny_plan())
    journal.create_run("run-b", tiny_plan())
    journal.append(first, "step_started", "db.x")
    with pytest.raises(LeaseHeldError, match="locked by run run-a"):
        journal.acquire("run-b", ("shop/db", "shop/app"), ttl=30)
    now[0] += 31  # the holder stalled past its lease
    second = journal.acquire("run-b", ("shop/db", "shop/app"), ttl=30)
    assert second.token > first.token
    with pytest.raises(LeaseLostError, match="stale"):
        journal.append(first, "step_succeeded", "db.x")
    with pytest.raises(LeaseLostError):
        journal.renew(first, 30)
    journal.append(second, "step_started", "app.y")
    assert [e.kind for e in journal.events("run-a")] == ["step_started"]


def test_heartbeat_keeps_a_lease_alive_and_release_frees_it(tmp_path: Path) -> None:
    now = [0.0]
    journal = DirectoryStore(tmp_path, clock=lambda: now[0])
    lease = journal.acquire("run-a", ("shop/db",), ttl=10)
    journal.create_run("run-a", tiny_plan())
    for _ in range(5):
        now[0] += 8
        lease = journal.renew(lease, 10)
    journal.append(lease, "still_here")
    journal.release(lease)
    assert journal.holder(("shop/db",)) is None
    journal.acquire("run-b", ("shop/db",), ttl=10)


def test_disjoint_scopes_do_not_conflict(tmp_path: Path) -> None:
    journal = DirectoryStore(tmp_path)
    journal.acquire("run-a", ("shop/db",), ttl=30)
    journal.acquire("run-b", ("shop/search",), ttl=30)
