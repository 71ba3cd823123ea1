"""Team state on DynamoDB, as a team uses it: processes on different hosts (``FAILOVER_HOST``)
share one table behind a moto server, and exactly one of them acts on a resource at a time."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from failover.cli import main
from failover.engine import Options, execute, resume
from failover.engine.rollback import resources
from failover.errors import JournalError, LeaseHeldError, RefusedError
from failover.plan import Plan
from failover.planner import make_plan
from failover.providers.sim import SimWorld
from failover.runbook import parse_runbook
from failover.state import chain, open_store
from failover.state.events import Event
from failover.state.store import StateStore
from tests.conftest import ROOT, SITES, SharedState
from tests.executor_helpers import FORWARD, plan_from

OVERLAPPING = """
services:
  pay: {steps: [{id: move, action: sim.step, site: "${to}", with: {target: pay, duration: 3s}}]}
  own: {steps: [{id: move, action: sim.step, site: "${to}", with: {target: MINE}}]}
"""
SLOW_FIRST = """
services:
  a: {steps: [{id: x, action: sim.step, site: "${to}", with: {target: a, duration: 3s}}]}
  b:
    depends_on: [a]
    steps: [{id: y, action: sim.step, site: "${to}", with: {target: b}}]
"""


def renamed(name: str, services: str) -> Plan:
    """A plan of a runbook called ``name``."""
    text = SITES.replace("name: t\n", f"name: {name}\n") + services
    return make_plan(parse_runbook(text, f"{name}.yaml"), from_="east", to="west", mode="graceful")


def child(
    team: SharedState, cwd: Path, host: str, *args: str, go: Path | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.team_child", args[0], str(go or "-"), *args[1:]],
        cwd=cwd,
        env={**team.env, "FAILOVER_HOST": host},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events_of(store: StateStore) -> list[Event]:
    return [e for row in store.runs() for e in store.events(row.run_id)]


def wait_for(store: StateStore, kind: str, step: str | None, timeout: float = 30) -> list[Event]:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        seen = events_of(store)
        if any(e.kind == kind and e.step == step for e in seen):
            return seen
        time.sleep(0.05)
    raise AssertionError(
        f"{kind} {step} not journaled within {timeout}s: {[e.kind for e in events_of(store)]}"
    )


def changed(work: Path) -> Counter[str]:
    """How many times each simulated target was changed by an apply."""
    return Counter(e.target for e in SimWorld(work).events() if e.op == "apply" and e.changed)


def test_ten_hosts_apply_overlapping_plans_one_runs_and_nine_are_refused_naming_it(
    tmp_path: Path, shared_state: SharedState
) -> None:
    url = shared_state.table()
    go = tmp_path / "go"
    procs = []
    for i in range(10):
        host = tmp_path / f"host{i}"
        host.mkdir()
        (host / "plan.json").write_text(renamed(f"rb{i}", OVERLAPPING.replace("MINE", f"own{i}")).to_json())
        args = ("cli", "apply", "plan.json", "--state", url, "--auto-approve", "--format", "json")
        procs.append(child(shared_state, host, f"host{i}", *args, go=go))
    time.sleep(0.5)
    go.touch()  # all ten at once
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0] + [3] * 9, outcomes
    winner = next(json.loads(out) for code, out, _ in outcomes if code == 0)
    host = next(i for i, (code, _, _) in enumerate(outcomes) if code == 0)
    for code, _, err in outcomes:
        if code == 3:
            assert f"sim:pay is locked by run {winner['run_id']} (host{host}:" in err, err
    assert winner["status"] == "succeeded"


def test_the_same_plan_from_two_working_directories_runs_once(
    tmp_path: Path, shared_state: SharedState
) -> None:
    url = shared_state.table()
    plan = plan_from(FORWARD).to_json()
    results = []
    for host in ("alice", "bob"):
        (tmp_path / host).mkdir()
        (tmp_path / host / "plan.json").write_text(plan)
        proc = child(
            shared_state, tmp_path / host, host, "cli", "apply", "plan.json", "--state", url, "--auto-approve"
        )
        results.append((proc.wait(timeout=60), *proc.communicate()))
    assert results[0][0] == 0, results[0]
    assert results[1][0] == 3, results[1]
    run_id = results[0][1].split()[1].rstrip(":")
    assert f"was already applied by run {run_id}" in results[1][2]


@pytest.mark.parametrize("kill_after", [3, 6, 9])
def test_a_holder_killed_mid_run_is_resumed_from_another_host_every_change_once(
    tmp_path: Path, shared_state: SharedState, monkeypatch: pytest.MonkeyPatch, kill_after: int
) -> None:
    url = shared_state.table()
    (tmp_path / "plan.json").write_text(plan_from(FORWARD).to_json())
    dead = child(
        shared_state, tmp_path, "host-a", "apply", str(tmp_path / "plan.json"), url, "2", str(kill_after)
    )
    out, err = dead.communicate(timeout=60)
    assert dead.returncode == -signal.SIGKILL, (out, err)
    monkeypatch.setenv("FAILOVER_HOST", "host-b")
    store = open_store(url, work_dir=tmp_path / ".failover")
    run_id = store.runs()[0].run_id
    began = time.monotonic()
    result = resume(run_id, store, Options(auto_approve=True, lease_ttl=2))
    assert result.status == "succeeded", result.message
    assert time.monotonic() - began >= 2  # its lease was watched unrenewed for a full duration first
    assert changed(tmp_path / ".failover") == {"writes": 1, "writer": 1, "app": 1, "cache": 1}


def test_a_holder_stopped_past_its_lease_writes_nothing_and_changes_nothing_once_it_wakes(
    tmp_path: Path, shared_state: SharedState, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = shared_state.table()
    (tmp_path / "plan.json").write_text(plan_from(SLOW_FIRST).to_json())
    holder = child(shared_state, tmp_path, "host-a", "apply", str(tmp_path / "plan.json"), url, "2", "0")
    monkeypatch.setenv("FAILOVER_HOST", "host-b")
    store = open_store(url, work_dir=tmp_path / ".failover")
    wait_for(store, "apply_started", "a.x")
    status = CliRunner().invoke(main, ["status", "--state", url])
    assert "held by host-a:" in status.output and "as arn:aws:sts::" in status.output, status.output
    holder.send_signal(signal.SIGSTOP)  # in flight: its change is 3 s away
    run_id = store.runs()[0].run_id
    taken_over = resume(run_id, store, Options(auto_approve=True, lease_ttl=2))
    assert taken_over.status == "succeeded", taken_over.message
    written = len(store.events(run_id))
    holder.send_signal(signal.SIGCONT)
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == 3, (out, err)
    assert len(store.events(run_id)) == written  # not one event of the woken holder was accepted
    assert changed(tmp_path / ".failover") == {"a": 1, "b": 1}  # and it changed nothing


@pytest.fixture(params=["directory", "dynamodb"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Either backend: a state directory, or a table of the shared-state server."""
    if request.param == "directory":
        return str(tmp_path / "state")
    team: SharedState = request.getfixturevalue("shared_state")
    return team.table()


def test_two_runbooks_acting_on_one_resource_exclude_each_other(tmp_path: Path, state_url: str) -> None:
    first = renamed("payments", OVERLAPPING.replace("MINE", "ledger"))
    second = renamed("payments-copy", OVERLAPPING.replace("MINE", "audit-log"))
    store = open_store(state_url, work_dir=tmp_path / "work")
    held = store.acquire("run-first", resources(first), 30)
    with pytest.raises(LeaseHeldError, match="sim:pay is locked by run run-first"):
        execute(second, store, Options(auto_approve=True))
    store.release(held)
    assert execute(second, store, Options(auto_approve=True, sim_speed=100)).status == "succeeded"


def test_a_plan_locks_the_cloud_resources_its_steps_change() -> None:
    plan = plan_from(
        """
services:
  api:
    steps:
      - id: scale
        action: aws.ecs.set_desired_count
        site: "${to}"
        with: {cluster: pay, service: api, count: 3}
      - {id: group, action: gcp.compute.resize_instance_group, site: "${to}", with: {group: web, size: 2}}
"""
    )
    assert resources(plan) == (
        "arn:aws:ecs:us-west-2:*:service/pay/api",
        "gcp:projects/p/regions/us-west1/instanceGroupManagers/web",
    )
    with_role = SITES.replace(
        "aws: {region: us-west-2}", "aws: {region: us-west-2, role_arn: 'arn:aws:iam::111122223333:role/dr'}"
    )
    runbook = parse_runbook(
        with_role + "services:\n  api:\n    steps: [{id: s, action: aws.ecs.set_desired_count, "
        'site: "${to}", with: {cluster: pay, service: api, count: 3}}]\n',
        "r.yaml",
    )
    plan = make_plan(runbook, from_="east", to="west", mode="graceful")
    assert resources(plan) == ("arn:aws:ecs:us-west-2:111122223333:service/pay/api",)


def audit_cli(state: str, run_id: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", run_id, "--state", state, *extra])
    return result.exit_code, result.output


def tamper(state: str, run_id: str, how: str) -> None:
    """Edit the third event's data, or delete it, behind failover's back."""
    if "://" not in state:
        db = sqlite3.connect(Path(state) / "journal.sqlite")
        seq = db.execute("SELECT seq FROM events WHERE run_id = ? ORDER BY seq LIMIT 1 OFFSET 2", (run_id,))
        (row,) = seq.fetchone()
        if how == "edit":
            db.execute("UPDATE events SET data = ? WHERE seq = ?", ('{"forged": true}', row))
        else:
            db.execute("DELETE FROM events WHERE seq = ?", (row,))
        db.commit()
        db.close()
        return
    table = state.split("://")[1].split("?")[0]
    client = boto3.client("dynamodb", region_name="us-east-1")
    key = {"pk": {"S": f"run#{run_id}"}, "sk": {"S": "head"}}
    head = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    events = head["events"]["L"]
    if how == "edit":
        at, kind, step, _data, digest = json.loads(events[2]["S"])
        events[2] = {"S": json.dumps([at, kind, step, '{"forged":true}', digest])}
    else:
        del events[2]
    client.put_item(TableName=table, Item={**head, "events": {"L": events}})


@pytest.mark.parametrize("how", ["edit", "delete"])
def test_audit_finds_an_edited_or_deleted_event(tmp_path: Path, state_url: str, how: str) -> None:
    store = open_store(state_url, work_dir=tmp_path / "work")
    result = execute(plan_from(FORWARD), store, Options(auto_approve=True))
    code, out = audit_cli(state_url, result.run_id)
    assert code == 0 and "journal intact" in out, out
    head = store.head(result.run_id).hash
    tamper(state_url, result.run_id, how)
    code, out = audit_cli(state_url, result.run_id)
    assert code == 3, out
    assert "NOT intact: event 3 (" in out, out
    code, out = audit_cli(state_url, result.run_id, "--head", head)
    assert code == 3


def test_audit_finds_a_truncated_or_recomputed_journal(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = execute(plan_from(FORWARD), state, Options(auto_approve=True))
    report = CliRunner().invoke(main, ["report", result.run_id, "--state", str(state), "--format", "json"])
    head = json.loads(report.output)["journal"]["head"]
    db = sqlite3.connect(state / "journal.sqlite")
    db.execute("DELETE FROM events WHERE seq = (SELECT MAX(seq) FROM events)")
    db.commit()
    code, out = audit_cli(str(state), result.run_id)
    assert code == 3 and "1 event(s) missing at the end" in out, out
    # recompute the whole chain and the run's record, as someone covering their tracks would
    rows = db.execute("SELECT seq, at, kind, step, data FROM events ORDER BY seq").fetchall()
    items = [(at, kind, step, chain.encode(json.loads(data))) for _, at, kind, step, data in rows]
    hashes = chain.extend(chain.GENESIS, result.run_id, 0, items)
    db.executemany(
        "UPDATE events SET hash = ? WHERE seq = ?", [(h, r[0]) for h, r in zip(hashes, rows, strict=True)]
    )
    db.execute("UPDATE runs SET events = ?, head = ?", (len(rows), hashes[-1]))
    db.commit()
    db.close()
    assert audit_cli(str(state), result.run_id)[0] == 0  # consistent in itself...
    code, out = audit_cli(str(state), result.run_id, "--head", head)
    assert code == 3 and "the chain was recomputed" in out, out  # ...but not with its report


DECLARED = SITES + "state: dynamodb://team-failover?region=us-east-1\n" + FORWARD


def test_a_runbook_that_declares_its_state_runs_there_unless_an_override_says_why(tmp_path: Path) -> None:
    plan = make_plan(parse_runbook(DECLARED, "declared.yaml"), from_="east", to="west", mode="graceful")
    assert plan.runbook.state == "dynamodb://team-failover?region=us-east-1"
    with pytest.raises(RefusedError, match="keeps its state in dynamodb://team-failover"):
        execute(plan, tmp_path / "mine", Options(auto_approve=True))
    result = execute(plan, tmp_path / "mine", Options(auto_approve=True, state_override="the table is down"))
    assert result.ok, result.message
    started = open_store(tmp_path / "mine").events(result.run_id)[0]
    assert started.data["state_override"] == "the table is down"
    assert started.data["state"] == str(tmp_path / "mine")


def test_a_sandbox_drill_keeps_its_state_local_whatever_the_runbook_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / "runbooks" / "examples" / "active-active.yaml").read_text()
    runbook = tmp_path / "declared.yaml"
    runbook.write_text(text + "state: dynamodb://team-failover?region=us-east-1\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        main, ["drill", str(runbook), "--from", "east", "--to", "west", "--sandbox", "--auto-approve"]
    )
    assert result.exit_code == 0, result.output
    assert list((tmp_path / ".failover" / "sandbox").iterdir())


def test_the_iam_policy_of_a_runbook_with_team_state_covers_its_table(tmp_path: Path) -> None:
    runbook = tmp_path / "declared.yaml"
    runbook.write_text(DECLARED)
    result = CliRunner().invoke(main, ["iam-policy", str(runbook), "--from", "east", "--to", "west"])
    assert result.exit_code == 0, result.output
    state = next(s for s in json.loads(result.output)["Statement"] if s["Sid"] == "FailoverState")
    assert state["Resource"] == "arn:aws:dynamodb:*:*:table/team-failover"
    assert {"dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:PutItem"} <= set(state["Action"])


@pytest.mark.parametrize(
    ("spec", "found"),
    [("s3://bucket", "scheme 's3'"), ("dynamodb://t?region=us-east-1&consistency=weak", "'consistency'")],
)
def test_a_state_url_that_is_not_understood_is_refused_saying_what_was_expected(
    spec: str, found: str
) -> None:
    result = CliRunner().invoke(main, ["status", "--state", spec])
    assert result.exit_code == 2
    assert "expected" in result.output and found in result.output, result.output


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (run_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, runbook TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, at REAL NOT NULL,
    kind TEXT NOT NULL, step TEXT, data TEXT NOT NULL, token INTEGER NOT NULL);
CREATE TABLE leases (resource TEXT PRIMARY KEY, run_id TEXT NOT NULL, owner TEXT NOT NULL,
    token INTEGER NOT NULL, acquired_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
INSERT INTO runs VALUES ('old-run', 'f00', 'shop', 1000.0);
INSERT INTO events (run_id, at, kind, step, data, token) VALUES
    ('old-run', 1000.5, 'run_started', NULL, '{"runbook": "shop"}', 1),
    ('old-run', 1001.5, 'run_finished', NULL, '{"status": "succeeded"}', 1);
"""


def test_a_journal_of_the_previous_schema_gets_its_chains_on_first_use(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    db.executescript(V1_SCHEMA)
    db.close()
    store = open_store(tmp_path)
    assert [e.kind for e in store.events("old-run")] == ["run_started", "run_finished"]
    assert audit_cli(str(tmp_path), "old-run")[0] == 0
    assert store.head("old-run").length == 2


def test_a_store_of_a_newer_schema_is_not_written_to(tmp_path: Path) -> None:
    open_store(tmp_path)
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="schema 99 is newer"):
        open_store(tmp_path)


def test_runs_copied_to_dynamodb_and_back_keep_their_chains(
    tmp_path: Path, shared_state: SharedState
) -> None:
    url = shared_state.table()
    here = tmp_path / "here"
    first = execute(plan_from(FORWARD), here, Options(auto_approve=True))
    second = execute(plan_from(SLOW_FIRST), here, Options(auto_approve=True, sim_speed=100))
    heads = {r: open_store(here).head(r) for r in (first.run_id, second.run_id)}
    copied = CliRunner().invoke(main, ["state", "copy", str(here), url])
    assert copied.exit_code == 0, copied.output
    assert copied.output.count("copied ") == 2
    again = CliRunner().invoke(main, ["state", "copy", str(here), url])
    assert again.output.count("present ") == 2  # copying again changes nothing
    back = tmp_path / "back"
    assert CliRunner().invoke(main, ["state", "copy", url, str(back)]).exit_code == 0
    for store in (open_store(url, work_dir=tmp_path), open_store(back)):
        for run_id, head in heads.items():
            assert store.head(run_id) == head
            assert audit_cli(store.url, run_id)[0] == 0
        assert store.run_plan(first.run_id).fingerprint == plan_from(FORWARD).fingerprint
    # a run already applied here is refused from the copy too: the record travelled with it
    with pytest.raises(RefusedError, match=f"already applied by run {first.run_id}"):
        execute(plan_from(FORWARD), open_store(url, work_dir=tmp_path), Options(auto_approve=True))


def test_a_run_whose_chain_is_broken_is_not_copied(tmp_path: Path) -> None:
    here = tmp_path / "here"
    result = execute(plan_from(FORWARD), here, Options(auto_approve=True))
    tamper(str(here), result.run_id, "edit")
    copied = CliRunner().invoke(main, ["state", "copy", str(here), str(tmp_path / "there")])
    assert copied.exit_code == 3
    assert f"refused {result.run_id}: its chain is broken" in copied.output
    assert open_store(tmp_path / "there").runs() == []


def test_state_init_of_a_table_is_idempotent_and_says_what_it_did(shared_state: SharedState) -> None:
    url = f"dynamodb://init-{uuid.uuid4().hex[:8]}?region=us-east-1"
    first = CliRunner().invoke(main, ["state", "init", url])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(main, ["state", "init", url])
    assert second.exit_code == 0, second.output
    assert "created table" in first.output and "turned on point-in-time recovery" in first.output
    assert "exists" in second.output and "point-in-time recovery is on" in second.output
    assert "created" not in second.output and "turned on" not in second.output
