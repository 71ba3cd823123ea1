"""Signals, prompts and stopped processes, tried the way people meet them: the real command in
a child process, signals sent to it, a pseudo-terminal for prompts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from failover.engine import resume
from failover.errors import JournalError
from failover.providers.sim import SimWorld
from failover.state.events import Event, RunState
from failover.state.local import DirectoryStore
from tests.conftest import ROOT
from tests.executor_helpers import plan_from, quick

TWO_STEPS = """
services:
  a: {steps: [{id: x, action: sim.step, site: "${to}", with: {target: a, duration: DURATION}}]}
  b:
    depends_on: [a]
    steps: [{id: y, action: sim.step, site: "${to}", with: {target: b}}]
"""
APPROVALS = """
services:
  lb: {steps: [{id: open, action: sim.step, site: "${to}", approval: true, with: {target: lb}}]}
  db: {steps: [{id: promote, action: sim.step, site: "${to}", pivot: true, with: {target: db}}]}
"""
ENV = {**os.environ, "COLUMNS": "160", "PYTHONUNBUFFERED": "1"}


def write_plan(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(plan_from(text).to_json())
    return path


def journal_events(state: Path) -> list[Event]:
    try:
        journal = DirectoryStore(state, read_only=True)
    except JournalError:  # not there yet, or being created
        return []
    return [e for run_id, *_ in journal.runs() for e in journal.events(run_id)]


def wait_for(state: Path, found: Callable[[list[Event]], bool], timeout: float = 20) -> list[Event]:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        seen = journal_events(state)
        if found(seen):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"not journaled within {timeout}s: {[e.kind for e in journal_events(state)]}")


def started(step: str) -> Callable[[list[Event]], bool]:
    return lambda seen: any(e.kind == "apply_started" and e.step == step for e in seen)


def apply(plan: Path, state: Path, *extra: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "failover.cli", "apply", str(plan), "--state", str(state), *extra]
    return subprocess.Popen(
        args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def replayed(state: Path) -> RunState:
    run_id = DirectoryStore(state, read_only=True).runs()[0][0]
    return RunState.replay(run_id, DirectoryStore(state, read_only=True).events(run_id))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_first_signal_lets_the_step_in_flight_end_and_says_how_to_go_on(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    state = tmp_path / "state"
    child = apply(write_plan(tmp_path, TWO_STEPS.replace("DURATION", "1500ms")), state, "--auto-approve")
    wait_for(state, started("a.x"))
    child.send_signal(sig)
    out, err = child.communicate(timeout=30)
    assert child.returncode == code, err
    assert "Traceback" not in err
    run = replayed(state)
    assert (run.status, run.exit_code, run.interrupted) == ("interrupted", code, sig.name)
    assert run.step("a.x").state == "succeeded"  # in flight: it was let finish
    assert run.step("b.y").state == "pending"  # nothing new started
    assert f"failover resume {run.run_id}" in out and f"failover rollback {run.run_id}" in out
    interrupted = next(e for e in journal_events(state) if e.kind == "run_interrupted")
    assert interrupted.data["signal"] == sig.name and "@" in str(interrupted.data["by"])
    taken_up = subprocess.run(
        [sys.executable, "-m", "failover.cli", "resume", run.run_id, "--state", str(state)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert taken_up.returncode == 0, taken_up.stderr
    assert SimWorld(state).values() == {"a": "west", "b": "west"}


def test_a_second_sigint_stops_waiting_and_journals_the_step_in_doubt(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = apply(write_plan(tmp_path, TWO_STEPS.replace("DURATION", "60s")), state, "--auto-approve")
    wait_for(state, started("a.x"))
    child.send_signal(signal.SIGINT)
    time.sleep(0.5)
    began = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert time.monotonic() - began < 5  # not the 60 s the step still sleeps
    assert child.returncode == 130, err
    run = replayed(state)
    step = run.step("a.x")
    assert (run.status, step.state, step.in_doubt) == ("interrupted", "failed", True)
    assert "interrupted twice (SIGINT)" in str(step.error)
    assert "in doubt (their change may still happen): a.x" in out


def test_a_holder_stopped_past_its_lease_starts_nothing_once_it_wakes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    plan = write_plan(tmp_path, TWO_STEPS.replace("DURATION", "3s"))
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.stale_child", str(plan), str(state), "2"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(state, started("a.x"))
    child.send_signal(signal.SIGSTOP)  # in flight: its change is 3 s away
    time.sleep(3)  # past its 2 s lease
    run_id = DirectoryStore(state, read_only=True).runs()[0][0]
    taken_over = resume(run_id, state, quick())  # verifies a.x (not done), applies it, goes on
    assert taken_over.status == "succeeded", taken_over.message
    child.send_signal(signal.SIGCONT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 3, (out, err)
    assert out.strip().splitlines()[-1].startswith("stopped") and "lease" in out
    applied = Counter(e.target for e in SimWorld(state).events() if e.op == "apply")
    assert applied == {"a": 1, "b": 1}  # the woken holder changed nothing


def spawn(plan: Path, state: Path) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "failover.cli", "apply", str(plan), "--state", str(state)],
        cwd=str(ROOT),
        env=ENV,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 160),
    )


def test_approvals_at_a_terminal_come_one_prompt_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = spawn(write_plan(tmp_path, APPROVALS), state)
    answers = {"lb.open": "yes", "db.promote": "db.promote"}
    shown: list[str] = []
    for _ in range(2):  # a prompt is redrawn with the live view, and kept above it once answered
        asking = "|".join(re.escape(s) for s in answers if s not in shown)
        child.expect(rf"approval needed: (?:PIVOT \(irreversible\) )?({asking}) at site west")
        step = child.match.group(1)
        child.expect(r"left[^:]*\): ")
        others = [s for s in answers if s not in (step, *shown)]
        assert not any(f"approval needed: {o}" in child.before for o in others)  # one at a time
        shown.append(step)
        child.sendline(answers[step])
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert sorted(shown) == ["db.promote", "lb.open"]
    run = replayed(state)
    granted = {str(a["step"]): (a["granted"], a["reason"]) for a in run.approvals}
    assert granted == dict.fromkeys(answers, (True, "answered at the terminal"))


def test_ctrl_c_at_a_prompt_denies_it_and_interrupts_the_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = spawn(write_plan(tmp_path, APPROVALS), state)
    child.expect(r"approval needed: ")
    child.expect(r"left[^:]*\): ")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    run = replayed(state)
    assert (run.status, run.interrupted) == ("interrupted", "SIGINT")
    assert run.approvals and all(not a["granted"] for a in run.approvals)
    assert any(a["reason"] == "interrupted by SIGINT" for a in run.approvals)
    assert SimWorld(state).values() == {}  # nothing was approved, nothing moved


@pytest.mark.parametrize("closed", ["stderr", "both"])
def test_a_reader_that_goes_away_neither_hangs_nor_fails_the_run(tmp_path: Path, closed: str) -> None:
    """`failover apply ... 2>&1 | head`: once the pipe is closed, logs are dropped (the journal is
    the record); a closed standard output ends the command with 141, as a shell says SIGPIPE."""
    state = tmp_path / "state"
    plan = write_plan(tmp_path, TWO_STEPS.replace("DURATION", "300ms"))
    args = [sys.executable, "-m", "failover.cli", "apply", str(plan), "--state", str(state), "--auto-approve"]
    child = subprocess.Popen(
        args, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stderr is not None
    child.stderr.close()
    if closed == "both":
        child.stdout.close()
    code = child.wait(timeout=60)
    run = replayed(state)
    assert (run.status, run.exit_code) == ("succeeded", 0)
    if closed == "both":
        assert code == 141
    else:
        out = child.stdout.read()
        child.stdout.close()
        assert code == 0 and "succeeded" in out
