"""The journal never lies: a write that failed is never reported as written, and when the journal
cannot be written no new side effect starts. Faults come from SQLite itself (``query_only``, as a
file system remounted read-only answers) and, where the machine allows mounting, from a real
file system that fills up; the state is read back from a read-only mount."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from failover.cli import main
from failover.engine import Options, execute, resume
from failover.engine.lease import LeaseKeeper
from failover.errors import JournalError, LeaseLostError
from failover.providers.sim import SimWorld
from failover.state.events import RUN_EVENTS, STEP_MACHINE, Event
from failover.state.local import JOURNAL_FILE, DirectoryStore
from failover.state.sqlite import Store
from tests.conftest import ROOT, SIM_SHOP
from tests.executor_helpers import chain, events, plan_from, quick


def writable(state: Path, yes: bool) -> None:
    """Let the journal of ``state`` be written, or refuse every write as a read-only file system
    does: SQLite's ``query_only`` on this process's writing connection (the one the engine uses)."""
    Store(state / JOURNAL_FILE, "", "FULL")._writer().conn.execute(f"PRAGMA query_only = {int(not yes)}")


def journaled(state: Path) -> list[Event]:
    """Every event of the state's journal, as a reader sees it while a run writes it."""
    try:
        journal = DirectoryStore(state, read_only=True)
    except JournalError:  # not there yet, or being created
        return []
    return [e for run_id, *_ in journal.runs() for e in journal.events(run_id)]


def applied(state: Path) -> Counter[str]:
    return Counter(e.target for e in SimWorld(state).events() if e.op == "apply")


def test_a_journal_that_cannot_be_written_stops_the_run_before_its_next_change(tmp_path: Path) -> None:
    seen: list[Event] = []

    def on_event(event: Event) -> None:
        seen.append(event)
        if event.kind == "step_succeeded" and event.step == "s1.move":
            writable(tmp_path, False)

    result = execute(chain(4), tmp_path, quick(on_event=on_event))
    assert (result.status, result.exit_code) == ("stopped", 3)
    assert "could not write" in result.message and "readonly database" in result.message
    assert f"failover resume {result.run_id}" in result.message
    writable(tmp_path, True)
    journaled = [(e.kind, e.step) for e in events(tmp_path, result.run_id)]
    assert [(e.kind, e.step) for e in seen] == journaled  # what was told is exactly what was written
    announced = {f"t{step[1]}" for kind, step in journaled if kind == "apply_started" and step}
    assert set(applied(tmp_path)) == announced  # every change had its write-ahead record
    assert "t3" not in announced  # and none started once the journal failed
    again = resume(result.run_id, tmp_path, quick())
    assert again.status == "succeeded"
    assert applied(tmp_path) == {"t0": 1, "t1": 1, "t2": 1, "t3": 1}


def test_a_queued_event_that_cannot_be_written_stops_the_run(tmp_path: Path) -> None:
    def on_event(event: Event) -> None:
        if event.kind == "apply_started" and event.step == "s1.move":
            writable(tmp_path, False)  # its step_succeeded is queued, and will not be written

    result = execute(chain(3), tmp_path, quick(on_event=on_event))
    writable(tmp_path, True)
    assert (result.status, result.exit_code) == ("stopped", 3)
    assert applied(tmp_path) == {"t0": 1, "t1": 1}
    assert result.state.step("s1.move").state == "applying"  # as journaled: resume will verify it
    again = resume(result.run_id, tmp_path, quick())
    assert again.status == "succeeded"
    assert applied(tmp_path) == {"t0": 1, "t1": 1, "t2": 1}  # t1 verified, not applied again


def freeze(state: Path, after: float, seconds: float) -> threading.Thread:
    def blip() -> None:
        time.sleep(after)
        writable(state, False)
        time.sleep(seconds)
        writable(state, True)

    thread = threading.Thread(target=blip, daemon=True)
    thread.start()
    return thread


def test_heartbeat_failures_are_retried_while_the_lease_holds_then_the_lease_is_lost(tmp_path: Path) -> None:
    journal = DirectoryStore(tmp_path)
    keeper = LeaseKeeper(journal, journal.acquire("run-a", ("t/a",), ttl=3), ttl=3)
    keeper.start()
    freeze(tmp_path, 0.2, 1.5).join()  # a renewal fails, and is tried again
    time.sleep(1.2)
    keeper.check()
    assert keeper.lost is None
    freeze(tmp_path, 0, 4).join()  # longer than the lease: it lapses
    with pytest.raises(LeaseLostError, match=r"could not be renewed|may have lapsed"):
        keeper.check()
    keeper.stop()


def test_a_blip_that_only_hits_the_heartbeat_does_not_stop_a_healthy_run(tmp_path: Path) -> None:
    plan = plan_from(
        'services:\n  a: {steps: [{id: x, action: sim.step, site: "${to}", with: {duration: 3s}}]}\n'
    )
    blip = freeze(tmp_path, 1.0, 1.0)
    result = execute(plan, tmp_path, Options(lease_ttl=3))
    blip.join()
    assert result.ok, result.message


def test_a_run_whose_lease_lapsed_during_a_long_outage_of_the_disk_changes_nothing_more(
    tmp_path: Path,
) -> None:
    plan = plan_from(
        'services:\n  a: {steps: [{id: x, action: sim.step, site: "${to}", with: {duration: 3s}}]}\n'
    )
    blip = freeze(tmp_path, 0.5, 4.0)
    result = execute(plan, tmp_path, Options(lease_ttl=2))
    blip.join()
    assert (result.status, result.exit_code) == ("stopped", 3)
    assert "lease" in result.message
    assert applied(tmp_path) == {}  # its change was due after the lease lapsed: it never left


# --- real file systems -----------------------------------------------------------------------------


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"this machine does not let tests mount file systems: {done.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "small"
    where.mkdir()
    mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where))
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> Path:
    filler = where / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_stops_the_run_and_resume_finishes_it_once_there_is_room(small_fs: Path) -> None:
    state = small_fs / "state"
    plan = small_fs / "plan.json"
    step = '[{id: x, action: sim.step, site: "${to}", with: {duration: 1s}}]'
    text = "services:\n" + "".join(
        f"  s{i}: {{depends_on: [{f's{i - 1}' if i else ''}], steps: {step}}}\n" for i in range(4)
    )
    plan.write_text(plan_from(text).to_json())
    child = subprocess.Popen(
        [sys.executable, "-m", "failover.cli", "apply", str(plan), "--state", str(state), "--format", "json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    until = time.monotonic() + 20
    while not any(e.kind == "step_succeeded" for e in journaled(state)):
        assert time.monotonic() < until
        time.sleep(0.05)
    filler = fill(small_fs)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 3, (out, err)
    assert "Traceback" not in err
    assert "disk is full" in out
    filler.unlink()
    run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
    written = {(e.kind, e.step) for e in DirectoryStore(state).events(run_id)}
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    told = {
        (d["event"], d.get("step"))
        for d in logged
        if d.get("run_id") == run_id and (d["event"] in RUN_EVENTS or d["event"] in STEP_MACHINE)
    }
    assert told <= written  # nothing was reported that the journal lacks
    again = subprocess.run(
        [sys.executable, "-m", "failover.cli", "resume", run_id, "--state", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert applied(state) == {f"s{i}.x": 1 for i in range(4)}


def test_status_report_and_history_read_a_read_only_copy_of_the_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    drill = [
        "drill",
        str(SIM_SHOP),
        "--from",
        "east",
        "--to",
        "west",
        "--auto-approve",
        "--sim-speed",
        "1000",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "failover.cli", *drill, "--state", str(state), "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout.strip().splitlines()[0])["run_id"]
    copy = tmp_path / "audit"
    copy.mkdir()
    mount("--bind", str(state), str(copy))
    try:
        mount("-o", "remount,bind,ro", str(copy))
        listing = sorted(os.listdir(state))
        runner = CliRunner()
        for command in (
            ["status", run_id],
            ["report", run_id, "--format", "json"],
            ["history", str(SIM_SHOP)],
        ):
            result = runner.invoke(main, [*command, "--state", str(copy)])
            assert result.exit_code == 0, result.output
        assert "succeeded" in runner.invoke(main, ["status", run_id, "--state", str(copy)]).output
        assert sorted(os.listdir(state)) == listing  # nothing was written or created
    finally:
        subprocess.run(["umount", "-l", str(copy)], check=False)
