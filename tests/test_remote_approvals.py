"""Approvals answered from another terminal: a run started with --wait-for-approvals prints the
exact command, `failover approve`/`deny` answer it through the state, the first answer stands,
and with the two-person rule whoever started the run cannot answer it."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner, Result

from failover.cli import main
from failover.providers.sim import SimWorld
from tests.test_interrupts import APPROVALS, apply, journal_events, replayed, wait_for, write_plan


def waiting(step: str):  # type: ignore[no-untyped-def]
    return lambda seen: any(e.kind == "approval_requested" and e.step == step for e in seen)


def answer(verb: str, run_id: str, step: str, state: Path, user: str | None = None) -> Result:
    env = {"USER": user, "LOGNAME": user} if user else None
    return CliRunner().invoke(
        main, [verb, run_id, step, "--state", str(state), "--reason", "change 42"], env=env
    )


def test_a_waiting_run_is_approved_from_another_terminal_and_says_how(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = apply(write_plan(tmp_path, APPROVALS), state, "--wait-for-approvals")
    seen = wait_for(state, waiting("lb.open"))
    run_id = seen[0].run_id
    assert answer("approve", run_id, "no.such", state).exit_code == 2
    approved = answer("approve", run_id, "lb.open", state)
    assert approved.exit_code == 0, approved.output
    again = answer("deny", run_id, "lb.open", state)  # a second answer: refused, whenever it comes
    assert again.exit_code == 3
    assert "the first answer stands" in again.output or "is not waiting for an approval" in again.output
    wait_for(state, waiting("db.promote"))
    assert answer("approve", run_id, "db.promote", state).exit_code == 0
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    late = answer("approve", run_id, "db.promote", state)
    assert late.exit_code == 3 and "is not waiting for an approval (it is succeeded)" in late.output
    assert f"failover approve {run_id} lb.open --state {state}" in err  # the exact command
    granted = [e for e in journal_events(state) if e.kind == "approval_granted"]
    assert sorted(e.step for e in granted) == ["db.promote", "lb.open"]
    assert all(e.data["reason"] == "change 42" for e in granted)
    assert SimWorld(state).values() == {"lb": "west", "db": "west"}


def test_a_denial_from_another_terminal_stops_the_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = apply(write_plan(tmp_path, APPROVALS), state, "--wait-for-approvals")
    run_id = wait_for(state, waiting("lb.open"))[0].run_id
    assert answer("deny", run_id, "lb.open", state).exit_code == 0
    _, err = child.communicate(timeout=60)
    assert child.returncode == 3, err
    assert "approval denied" in replayed(state).message
    assert SimWorld(state).values() == {}
    # the other step's request, made at the same time, is taken back: no one need answer it
    assert "no longer waiting for approval of db.promote: called off: the run is stopping" in err


def test_with_the_two_person_rule_the_starter_cannot_approve(tmp_path: Path) -> None:
    state = tmp_path / "state"
    me = os.environ.get("USER") or "root"
    child = apply(write_plan(tmp_path, APPROVALS), state, "--wait-for-approvals", "--two-person")
    run_id = wait_for(state, waiting("lb.open"))[0].run_id
    mine = answer("approve", run_id, "lb.open", state, user=me)
    assert mine.exit_code == 3 and "two-person rule" in mine.output
    assert answer("approve", run_id, "lb.open", state, user="second-operator").exit_code == 0
    wait_for(state, waiting("db.promote"))
    assert answer("approve", run_id, "db.promote", state, user="second-operator").exit_code == 0
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    started = next(e for e in journal_events(state) if e.kind == "run_started")
    assert started.data["two_person"] is True


def test_two_person_refuses_approvals_by_flag(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["apply", str(write_plan(tmp_path, APPROVALS)), "--two-person", "--auto-approve"]
    )
    assert (
        result.exit_code == 2
        and "--auto-approve and --approve are approvals by whoever starts" in result.output
    )


def test_who_is_the_same_person_under_the_two_person_rule() -> None:
    from failover.engine.remote import same_person

    alice = {"by": "alice@a", "clouds": {"aws": "arn:aws:sts::1:assumed-role/Ops/alice"}}
    bob = {"by": "bob@b", "clouds": {"aws": "arn:aws:sts::1:assumed-role/Ops/bob"}}
    unknown = {"by": "bob@b", "clouds": {"aws": "unknown (NoCredentialsError: ...)"}}
    assert same_person(alice, bob) is None
    assert same_person(alice, {**bob, "by": "alice@a"}) is None  # the clouds tell them apart
    assert "both act as" in str(same_person(alice, {**alice, "by": "bob@b"}))  # whatever USER says
    assert "shows no aws identity" in str(same_person(alice, unknown))  # cannot show who: refused
    assert "no cloud identity" in str(same_person({"by": "x@h"}, {"by": "x@h"}))
    assert same_person({"by": "x@h"}, {"by": "y@h"}) is None


def test_the_two_person_rule_holds_on_resume_and_in_the_library(tmp_path: Path) -> None:
    import pytest

    from failover.engine import Options, execute, resume
    from failover.errors import RefusedError
    from tests.executor_helpers import plan_from

    plan = plan_from(APPROVALS)
    with pytest.raises(RefusedError, match="two-person rule"):
        execute(plan, tmp_path, Options(two_person=True, auto_approve=True))
    state = tmp_path / "state"
    child = apply(
        write_plan(tmp_path, APPROVALS), state, "--wait-for-approvals", "--two-person", "--on-failure", "halt"
    )
    run_id = wait_for(state, waiting("lb.open"))[0].run_id
    assert answer("deny", run_id, "lb.open", state, user="second-operator").exit_code == 0
    child.communicate(timeout=60)
    assert replayed(state).status == "halted"  # resumable
    with pytest.raises(RefusedError, match="two-person rule"):
        resume(run_id, state, Options(auto_approve=True))
