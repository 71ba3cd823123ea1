"""failover watch: triggers that fire on a quorum of bad signals, once however many watchers,
keep their cooldown across restarts, are blocked by a sick target, notify with the run id, run
only the plan made in advance for this very runbook, never fail back by themselves, and leave
MTTD and MTTR in the history."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from failover.cli import main
from failover.providers.base import Context, Placement
from failover.providers.sim import SimWorld
from failover.report.data import iso
from failover.state.local import DirectoryStore
from tests.conftest import SITES

TRIGGERS = """
triggers:
  east-down:
    from: east
    to: west
    every: 1s
    for: 0s
    when: "2 of 3"
    signals:
      - {id: a, check: sim.check, site: "${from}", with: {target: probe-a, expect: up}}
      - {id: b, check: sim.check, site: "${from}", with: {target: probe-b, expect: up}}
      - {id: c, check: sim.check, site: "${from}", with: {target: probe-c, expect: up}}
    guard:
      - {id: healthy, check: sim.check, site: "${to}", with: {target: west-health, expect: up}}
    action: failover
    plan: east-to-west.json
    notify: [{webhook: "HOOK"}]
  west-down:
    from: west
    to: east
    for: 0s
    when: "2 of 2"
    signals:
      - {id: a, check: sim.check, site: "${from}", with: {target: probe-w1, expect: up}}
      - {id: b, check: sim.check, site: "${from}", with: {target: probe-w2, expect: up}}
    action: failover
    plan: west-to-east.json
  east-slow:
    from: east
    to: west
    for: 0s
    signals: [{id: latency, check: sim.check, site: "${from}", with: {target: probe-n, expect: up}}]
    notify: [{webhook: "HOOK"}]
"""
SERVICES = """
services:
  app:
    steps: [{id: move, action: sim.step, site: "${to}", with: {target: app}}]
"""


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def folder(tmp_path: Path, hook: Receiver) -> Path:
    (tmp_path / "shop.yaml").write_text(SITES + SERVICES + TRIGGERS.replace("HOOK", hook.url))
    for from_, to in (("east", "west"), ("west", "east")):
        made = _in(tmp_path, "plan", "shop.yaml", "--from", from_, "--to", to, "--format", "json",
                   "-o", f"{from_}-to-{to}.json")  # fmt: skip
        assert made.exit_code == 0, made.output
    world(
        tmp_path,
        **dict.fromkeys(
            ("probe-a", "probe-b", "probe-c", "probe-w1", "probe-w2", "probe-n", "west-health"), "up"
        ),
    )
    return tmp_path


def _in(folder: Path, *args: str) -> Result:
    with contextlib.chdir(folder):
        return CliRunner(env={"FAILOVER_STATE": str(folder / "state")}).invoke(main, list(args))


def world(folder: Path, **values: str) -> None:
    state = folder / "state"
    state.mkdir(exist_ok=True)
    ctx = Context(run_id="test", step_id="test", placement=Placement(site="east"), state_dir=state)
    for target, value in values.items():
        SimWorld(state).set("set", target, value, ctx)


def watch_once(folder: Path, *extra: str) -> Result:
    return _in(folder, "watch", "shop.yaml", "--once", *extra)


def test_healthy_signals_fire_nothing(folder: Path, hook: Receiver) -> None:
    result = watch_once(folder, "--trigger", "east-down")
    assert result.exit_code == 0, result.output
    assert "east-down: armed (0 of 3 signals bad)" in result.output
    assert hook.bodies == []


def test_a_quorum_of_bad_signals_fails_over_notifies_with_the_run_and_keeps_the_incidents_times(
    folder: Path, hook: Receiver
) -> None:
    world(folder, **{"probe-a": "down"})
    one = watch_once(folder, "--trigger", "east-down")
    assert one.exit_code == 0 and "1 of 3 signals bad" in one.output  # one vantage point is not a quorum
    world(folder, **{"probe-b": "down"})
    fired = watch_once(folder, "--trigger", "east-down", "--metrics-file", str(folder / "watch.prom"))
    assert fired.exit_code == 4, fired.output
    assert "east-down: firing (2 of 3 signals bad)" in fired.output
    assert SimWorld(folder / "state").value("app") == "west"
    store = DirectoryStore(folder / "state")
    (row,) = store.runs()
    (body,) = hook.bodies
    told = body["failover"]
    assert (told["trigger"], told["run_id"], told["action"]) == ("east-down", row.run_id, "failover")
    assert sorted(s["id"] for s in told["signals"] if not s["ok"]) == [
        "east-down.signals.a",
        "east-down.signals.b",
    ]
    assert row.run_id in body["text"]

    events = store.events(row.run_id)
    assert events[0].data["by"] == "watch:east-down"
    (incident,) = json.loads(_in(folder, "history", "shop.yaml", "--format", "json").output)["incidents"]
    started = next(e.at for e in events if e.kind == "run_started")
    cutover = next(e.at for e in events if e.kind == "step_succeeded" and e.step == "app.move")
    assert incident["run_id"] == row.run_id
    assert incident["run_started_at"] == iso(started)
    assert incident["cutover_at"] == iso(cutover)
    assert incident["time_to_cutover_s"] == round(cutover - started, 3)
    assert incident["time_to_detect_s"] is not None and incident["time_to_detect_s"] >= 0
    assert incident["time_to_recover_s"] >= incident["time_to_detect_s"]
    prom = (folder / "watch.prom").read_text()
    assert 'failover_trigger_state{runbook="t",state="fired",trigger="east-down"} 1.0' in prom or (
        'state="firing",trigger="east-down"} 1.0' in prom
    )
    assert "failover_watch_last_evaluation_timestamp_seconds" in prom
    assert 'failover_incident_seconds{phase="cutover",runbook="t",trigger="east-down"}' in prom

    again = watch_once(folder, "--trigger", "east-down")  # a watcher started again: no second firing
    assert again.exit_code == 0 and "east-down: fired" in again.output
    assert len(store.runs()) == 1 and len(hook.bodies) == 1


def test_a_sick_target_blocks_the_failover(folder: Path, hook: Receiver) -> None:
    world(folder, **{"probe-a": "down", "probe-b": "down", "west-health": "degraded"})
    result = watch_once(folder, "--trigger", "east-down")
    assert result.exit_code == 0, result.output
    assert "east-down: blocked" in result.output and "the target is not healthy" in result.output
    assert DirectoryStore(folder / "state").runs() == [] and hook.bodies == []


def test_a_disarmed_trigger_does_not_fire_until_armed_again(folder: Path, hook: Receiver) -> None:
    assert _in(folder, "watch", "shop.yaml", "--disarm", "east-down").exit_code == 2  # needs --reason
    off = _in(folder, "watch", "shop.yaml", "--disarm", "east-down", "--reason", "planned maintenance")
    assert off.exit_code == 0, off.output
    world(folder, **{"probe-a": "down", "probe-b": "down"})
    assert "east-down: disarmed" in watch_once(folder, "--trigger", "east-down").output
    assert _in(folder, "watch", "shop.yaml", "--arm", "east-down").exit_code == 0
    assert watch_once(folder, "--trigger", "east-down").exit_code == 4


def test_a_plan_made_before_the_runbook_changed_is_refused_when_the_watch_starts(
    folder: Path, hook: Receiver
) -> None:
    runbook = folder / "shop.yaml"
    runbook.write_text(runbook.read_text() + "\n# edited after the plan was made\n")
    world(folder, **{"probe-a": "down", "probe-b": "down"})
    result = watch_once(folder, "--trigger", "east-down")
    assert result.exit_code == 3, result.output  # found now, not on the day it would fire
    assert "was made from another version of t: make and review it again" in result.output
    assert DirectoryStore(folder / "state").runs() == [] and hook.bodies == []
    slow = watch_once(folder, "--trigger", "east-slow")
    assert slow.exit_code == 0, slow.output  # a notify trigger needs no plan


def test_it_never_fails_back_by_itself(folder: Path, hook: Receiver) -> None:
    world(folder, **{"probe-a": "down", "probe-b": "down"})
    assert watch_once(folder, "--trigger", "east-down").exit_code == 4
    world(folder, **{"probe-w1": "down", "probe-w2": "down"})
    back = watch_once(folder, "--trigger", "west-down")
    assert back.exit_code == 1, back.output
    assert "failback is never automatic" in back.output
    assert len(DirectoryStore(folder / "state").runs()) == 1


def test_two_watchers_on_one_state_start_one_run(folder: Path, hook: Receiver) -> None:
    world(folder, **{"probe-a": "down", "probe-b": "down"})
    command = [sys.executable, "-m", "failover.cli", "watch", "shop.yaml", "--once", "--trigger", "east-down"]
    env = {**os.environ, "FAILOVER_STATE": str(folder / "state")}
    pipe = subprocess.PIPE
    watchers = [
        subprocess.Popen(command, cwd=folder, env=env, stdout=pipe, stderr=pipe, text=True) for _ in range(2)
    ]
    codes = sorted(w.wait(timeout=120) for w in watchers)
    outputs = [w.communicate()[0] for w in watchers]
    assert codes == [0, 4], outputs
    assert len(DirectoryStore(folder / "state").runs()) == 1 and len(hook.bodies) == 1


def test_an_automatic_failover_without_a_quorum_is_refused_by_validate(tmp_path: Path) -> None:
    text = TRIGGERS.replace('when: "2 of 3"', "when: any").replace("HOOK", "http://127.0.0.1:9/hook")
    (tmp_path / "shop.yaml").write_text(SITES + SERVICES + text)
    result = _in(tmp_path, "validate", "shop.yaml")
    assert result.exit_code == 2
    assert (
        "triggers.east-down.when: an automatic failover needs a quorum of independent signals"
        in result.output
    )


def test_a_notification_leads_to_the_run_a_person_starts_and_its_time_to_decide(
    folder: Path, hook: Receiver
) -> None:
    world(folder, **{"probe-n": "down"})
    fired = watch_once(folder, "--trigger", "east-slow")
    assert fired.exit_code == 4, fired.output
    (body,) = hook.bodies
    assert body["failover"]["run_id"] is None and body["failover"]["action"] == "notify"
    assert "failover apply" not in body["text"] or "next:" in body["text"]
    applied = _in(folder, "apply", "east-to-west.json", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert watch_once(folder, "--trigger", "east-slow").exit_code == 0  # follows the incident
    (row,) = DirectoryStore(folder / "state").runs()
    (incident,) = json.loads(_in(folder, "history", "shop.yaml", "--format", "json").output)["incidents"]
    started = next(
        e.at for e in DirectoryStore(folder / "state").events(row.run_id) if e.kind == "run_started"
    )
    assert incident["run_id"] == row.run_id
    assert incident["run_started_at"] == iso(started)
    assert incident["time_to_decide_s"] is not None and incident["time_to_decide_s"] > 0
    assert incident["recovered_at"] is not None
    text = _in(folder, "history", "shop.yaml").output
    assert "Incidents the watchers fired on:" in text and row.run_id in text


def test_pagerduty_gets_an_events_v2_trigger_one_incident_per_firing(hook: Receiver) -> None:
    from failover.watch.notify import Firing, pagerduty_body, send

    firing = Firing("shop", "east-down", "east", "west", "failover", "2026-11-26T23:00:00.000Z",
                    [{"id": "a", "site": "east", "ok": False, "observed": 0.3, "message": "0.3 >= 0.05"}],
                    run_id="R1")  # fmt: skip
    assert send(hook.url, pagerduty_body(firing, "routing-key-1")) is None
    (body,) = hook.bodies
    assert (body["routing_key"], body["event_action"]) == ("routing-key-1", "trigger")
    assert body["dedup_key"] == "failover:shop:east-down:2026-11-26T23:00:00.000Z"
    assert body["payload"]["severity"] == "critical"
    assert body["payload"]["custom_details"]["run_id"] == "R1"
    assert send("http://127.0.0.1:9/hook", {}) is not None  # nobody listens: said, not raised
