"""`status` tells the truth about a run whose process is gone: the journal says running, the
lease says nobody runs it; it says so, with the exact commands (and the --state they need)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from click.testing import CliRunner

from failover.cli import main
from tests.test_interrupts import TWO_STEPS, apply, started, wait_for, write_plan


def test_a_run_whose_process_was_killed_is_shown_as_such_with_the_next_commands(tmp_path: Path) -> None:
    state = tmp_path / "state"
    child = apply(write_plan(tmp_path, TWO_STEPS.replace("DURATION", "3s")), state, "--auto-approve")
    run_id = wait_for(state, started("a.x"))[0].run_id
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    shown = CliRunner().invoke(main, ["status", "--state", str(state)])
    assert shown.exit_code == 0, shown.output
    first = shown.output.splitlines()[0]
    assert first.startswith(f"run {run_id}: running (")
    assert "its process is gone" in first or "no process holds it" in first
    assert f"next: failover resume {run_id} --state {state}" in shown.output
    assert f"next: failover rollback {run_id} --state {state}" in shown.output
    doc = json.loads(CliRunner().invoke(main, ["status", "--state", str(state), "--format", "json"]).output)
    assert doc["status"] == "running" and doc["liveness"]["label"]
    assert doc["waiting"] == {}  # nothing waits on a process that is gone
    taken_up = CliRunner().invoke(main, ["resume", run_id, "--state", str(state)])
    assert taken_up.exit_code == 0, taken_up.output
    after = CliRunner().invoke(main, ["status", "--state", str(state)])
    assert "next:" not in after.output and "succeeded" in after.output.splitlines()[0]


def test_read_only_commands_create_no_state(tmp_path: Path) -> None:
    for args in (["status"], ["history", "runbooks/shop.yaml"]):
        result = CliRunner().invoke(main, [*args, "--state", str(tmp_path / "typo")])
        assert result.exit_code == 2 and "no journal" in result.output
    assert not (tmp_path / "typo").exists()
