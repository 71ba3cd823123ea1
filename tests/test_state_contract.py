"""The state store contract (``state/store.py``), held to the same assertions on both backends:
a directory (SQLite) and a DynamoDB table (in-process moto). DynamoDB-only tests at the end:
round trips per group of events, taking over a lease by watching it, unknown write outcomes."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from failover.errors import JournalError, LeaseHeldError, LeaseLostError, RefusedError
from failover.state import chain
from failover.state.dynamo import DynamoStore, init_table
from failover.state.events import Event
from failover.state.local import JOURNAL_FILE, DirectoryStore
from failover.state.store import SCHEMA_VERSION, ChainHead, StateStore
from tests import executor_helpers
from tests.aws_helpers import aws  # noqa: F401 (the fixture, for the DynamoDB backend)

REGION = "us-east-1"
PLAN_A = executor_helpers.chain(1)
PLAN_B = executor_helpers.chain(2)
RESOURCES = ("shop/db", "shop/app")


class Backend:
    """Stores of one backend: ``backend(name)`` opens the store called ``name`` (a directory, or
    a table created on first use)."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.tmp = tmp
        self.tables: set[str] = set()

    def __call__(self, name: str = "main") -> StateStore:
        if self.kind == "directory":
            return DirectoryStore(self.tmp / name)
        table = f"state-{name}"
        if table not in self.tables:
            init_table(table, REGION)
            self.tables.add(table)
        return DynamoStore(table, region=REGION, work_dir=self.tmp)

    def set_schema(self, name: str, version: int) -> None:
        """Write a schema version straight into the store's meta data."""
        if self.kind == "directory":
            with sqlite3.connect(self.tmp / name / JOURNAL_FILE) as db:
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(version),))
            db.close()
            return
        boto3.client("dynamodb", region_name=REGION).put_item(
            TableName=f"state-{name}",
            Item={"pk": {"S": "#meta"}, "sk": {"S": "schema"}, "version": {"N": str(version)}},
        )


def _backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    if kind == "dynamodb":
        for key in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_STS", "AWS_REGION"):
            monkeypatch.delenv(key, raising=False)
        request.getfixturevalue("aws")  # in-process moto with credentials only it accepts
    return Backend(kind, tmp_path)


@pytest.fixture(params=["directory", "dynamodb"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    return _backend(str(request.param), request, tmp_path, monkeypatch)


@pytest.fixture
def dynamo_factory(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    return _backend("dynamodb", request, tmp_path, monkeypatch)


@pytest.fixture
def store(store_factory: Backend) -> StateStore:
    return store_factory()


def started(store: StateStore, run_id: str = "run-1", ttl: float = 30) -> Any:
    """A run of PLAN_A with its lease, as the engine starts one: lease first, then the record."""
    lease = store.acquire(run_id, RESOURCES, ttl)
    store.create_run(run_id, PLAN_A)
    return lease


def same(a: Event, b: Event) -> bool:
    return (a.seq, a.run_id, a.at, a.kind, a.step, dict(a.data), a.hash) == (
        b.seq,
        b.run_id,
        b.at,
        b.kind,
        b.step,
        dict(b.data),
        b.hash,
    )


def intact(store: StateStore, run_id: str) -> list[Event]:
    events = store.events(run_id)
    verdict = chain.verify(run_id, events, store.head(run_id))
    assert verdict.intact, verdict.reason
    return events


# --- both backends -----------------------------------------------------------------------------


def test_runs_are_listed_oldest_first_and_by_plan_and_give_their_plan_back(store: StateStore) -> None:
    store.create_run("run-b", PLAN_A, created_at=2000.5)
    store.create_run("run-a", PLAN_B, created_at=1000.25)
    store.create_run("run-c", PLAN_A, created_at=3000.0)
    assert [(r.run_id, r.created_at) for r in store.runs()] == [
        ("run-a", 1000.25),
        ("run-b", 2000.5),
        ("run-c", 3000.0),
    ]
    assert [r.run_id for r in store.runs(PLAN_A.fingerprint)] == ["run-b", "run-c"]
    assert store.runs(PLAN_B.fingerprint)[0] == ("run-a", PLAN_B.fingerprint, PLAN_B.runbook.name, 1000.25)
    assert store.runs("0" * 64) == []
    assert store.fingerprint_of("run-b") == PLAN_A.fingerprint
    assert store.run_plan("run-a").to_json() == PLAN_B.to_json()
    assert store.load_plan(PLAN_A.fingerprint).fingerprint == PLAN_A.fingerprint
    with pytest.raises(JournalError, match=r"no run 'nope'.*latest runs: run-a, run-b, run-c"):
        store.fingerprint_of("nope")
    with pytest.raises(JournalError, match="nope"):
        store.head("nope")
    assert store.events("nope") == []


def test_appended_events_come_back_in_order_with_an_intact_chain(store: StateStore) -> None:
    lease = started(store)
    assert store.head("run-1") == ChainHead(0, chain.GENESIS)
    written = [
        store.append(lease, "run_started", None, {"mode": "graceful", "n": 1}),
        store.append(lease, "step_started", "s0.move", {"before": {"weight": [1, 2.5, None]}}),
        store.append(lease, "step_succeeded", "s0.move"),
    ]
    assert [e.seq for e in written] == sorted({e.seq for e in written})
    events = intact(store, "run-1")
    assert all(same(a, b) for a, b in zip(events, written, strict=True))
    assert events[1].data == {"before": {"weight": [1, 2.5, None]}}
    assert events[2].data == {}
    assert store.head("run-1") == ChainHead(3, written[-1].hash)
    assert events[0].at <= events[1].at <= events[2].at


def test_posted_events_are_written_in_order_with_the_next_append_or_flush(store: StateStore) -> None:
    lease = started(store)
    calls: list[tuple[Event | None, BaseException | None]] = []
    for n in range(3):
        store.post(lease, "check_passed", None, {"check": n}, lambda e, err: calls.append((e, err)))
    assert calls == []  # queued, not written
    last = store.append(lease, "preflight_passed")
    assert [err for _, err in calls] == [None, None, None]
    assert [e.data["check"] for e, _ in calls if e is not None] == [0, 1, 2]
    store.post(lease, "step_started", "s0.move", None, lambda e, err: calls.append((e, err)))
    store.flush()
    store.flush_queued()  # nothing queued: nothing to do
    events = intact(store, "run-1")
    assert [e.kind for e in events] == ["check_passed"] * 3 + ["preflight_passed", "step_started"]
    assert same(events[3], last)
    assert all(same(a, b) for a, (b, _) in zip(events[:3] + events[4:], calls, strict=True) if b is not None)


def test_a_lease_taken_over_leaves_its_old_holder_unable_to_write_or_renew(store: StateStore) -> None:
    old = started(store)
    store.append(old, "run_started")
    new = store.acquire("run-1", RESOURCES, 30, take_over=True, gone=lambda owner: True)
    assert new.token > old.token
    with pytest.raises(LeaseLostError, match=r"run-1.*'step_started' was not written"):
        store.append(old, "step_started", "s0.move")
    errors: list[BaseException | None] = []
    store.post(old, "step_succeeded", "s0.move", None, lambda e, err: errors.append(err))
    store.flush()
    assert len(errors) == 1 and isinstance(errors[0], LeaseLostError)
    assert [e.kind for e in intact(store, "run-1")] == ["run_started"]
    with pytest.raises(LeaseLostError):
        store.renew(old, 30)
    store.append(new, "run_resumed")
    renewed = store.renew(new, 30)
    assert renewed.token == new.token and renewed.resources == new.resources
    store.append(renewed, "step_started", "s0.move")
    assert [e.kind for e in intact(store, "run-1")] == ["run_started", "run_resumed", "step_started"]


def test_a_live_lease_of_another_run_refuses_the_whole_request_until_released(store: StateStore) -> None:
    lease = started(store)
    with pytest.raises(LeaseHeldError, match="shop/db is locked by run run-1"):
        store.acquire("run-2", ("shop/search", "shop/db"), 30)
    with pytest.raises(LeaseHeldError, match="locked by run run-1"):
        store.acquire("run-1", ("shop/app",), 30)  # its own run, without take_over
    found = store.holder(("shop/search", "shop/app"))
    assert found is not None and (found.resource, found.run_id, found.owner) == (
        "shop/app",
        "run-1",
        lease.owner,
    )
    assert store.holder(("shop/search",)) is None  # nothing of the refused request was kept
    other = store.acquire("run-3", ("shop/search",), 30)
    store.release(lease)
    assert store.holder(RESOURCES) is None
    taken = store.acquire("run-2", ("shop/db",), 30)
    assert taken.token > other.token > lease.token


def test_records_are_written_only_at_the_version_they_were_read(store: StateStore) -> None:
    assert store.get_record("watch/shop") is None
    first = store.put_record("watch/shop", {"fired": ["a"], "n": 1})
    assert first.version == 1
    with pytest.raises(RefusedError, match="record 'watch/shop' is at version 1, not 0"):
        store.put_record("watch/shop", {"fired": []})
    second = store.put_record("watch/shop", {"fired": ["a", "b"], "n": 2}, version=1)
    assert second.version == 2
    with pytest.raises(RefusedError, match="at version 2, not 1"):
        store.put_record("watch/shop", {"fired": []}, version=1)
    found = store.get_record("watch/shop")
    assert found is not None and (dict(found.value), found.version) == ({"fired": ["a", "b"], "n": 2}, 2)


def test_imported_events_get_the_same_chain_as_their_source(store_factory: Backend) -> None:
    source, target = store_factory("source"), store_factory("target")
    lease = started(source)
    for n in range(5):
        source.post(lease, "attempt_failed", "s0.move", {"error": f"boom {n}"}, lambda e, err: None)
    source.append(lease, "step_failed", "s0.move", {"error": "boom"})
    row = source.runs()[0]
    target.create_run(row.run_id, source.run_plan(row.run_id), created_at=row.created_at)
    copied = target.import_events(row.run_id, source.events(row.run_id))
    assert copied == source.head(row.run_id) == target.head(row.run_id)
    assert [e.hash for e in intact(target, row.run_id)] == [e.hash for e in source.events(row.run_id)]
    assert target.runs() == source.runs()
    with pytest.raises(RefusedError, match="already has 6 events"):
        target.import_events(row.run_id, source.events(row.run_id))


def test_a_newer_schema_is_refused(store_factory: Backend) -> None:
    store_factory("main")
    store_factory.set_schema("main", SCHEMA_VERSION + 1)
    with pytest.raises(JournalError, match=f"schema {SCHEMA_VERSION + 1} is newer.*upgrade failover"):
        store_factory("main")


def test_many_large_events_come_back_in_order_with_an_intact_chain(store: StateStore) -> None:
    lease = started(store)
    blob = "x" * 1000
    for group in range(8):  # 2 MB: several segments' worth
        for n in range(group * 250, group * 250 + 249):
            store.post(lease, "attempt_failed", "s0.move", {"n": n, "blob": blob}, lambda e, err: None)
        store.append(lease, "attempt_failed", "s0.move", {"n": group * 250 + 249, "blob": blob})
    events = intact(store, "run-1")
    assert [e.data["n"] for e in events] == list(range(2000))
    assert store.head("run-1") == ChainHead(2000, events[-1].hash)
    if isinstance(store, DynamoStore):
        head = store.table.get("run#run-1", "head", projection="#segments")
        assert head is not None and len(head["segments"]) >= 6


# --- DynamoDB only -----------------------------------------------------------------------------


@pytest.fixture
def dynamo(dynamo_factory: Backend) -> DynamoStore:
    store = dynamo_factory()
    assert isinstance(store, DynamoStore)
    return store


def test_a_group_of_events_costs_one_round_trip(dynamo: DynamoStore) -> None:
    lease = started(dynamo)
    dynamo.append(lease, "run_started")
    for n in range(20):
        dynamo.post(lease, "check_passed", None, {"check": n}, lambda e, err: None)
    before = dynamo.table.requests
    dynamo.append(lease, "preflight_passed")
    assert dynamo.table.requests - before == 1
    assert [e.kind for e in intact(dynamo, "run-1")] == [
        "run_started",
        *["check_passed"] * 20,
        "preflight_passed",
    ]
    assert dynamo.caller() is not None  # moto's caller, recorded in the locks
    found = dynamo.holder(RESOURCES)
    assert found is not None and found.caller == dynamo.caller()


def test_take_over_waits_a_lease_duration_and_takes_an_unrenewed_lease(dynamo: DynamoStore) -> None:
    old = started(dynamo, ttl=0.5)
    dynamo.append(old, "run_started")
    start = time.monotonic()
    new = dynamo.acquire("run-1", RESOURCES, 0.5, take_over=True)  # its holder is alive, not renewing
    assert time.monotonic() - start >= 0.5
    assert new.token > old.token and new.version != old.version
    with pytest.raises(LeaseLostError, match="stale"):
        dynamo.append(old, "step_started", "s0.move")
    dynamo.append(new, "run_resumed")


def test_take_over_refuses_a_lease_that_is_renewed_meanwhile(dynamo: DynamoStore) -> None:
    lease = started(dynamo, ttl=0.5)
    stop = threading.Event()

    def heartbeat() -> None:
        held = lease
        while not stop.wait(0.05):
            held = dynamo.renew(held, 0.5)

    beat = threading.Thread(target=heartbeat)
    beat.start()
    try:
        with pytest.raises(LeaseHeldError, match="renewed while this process watched it"):
            dynamo.acquire("run-1", RESOURCES, 0.5, take_over=True)
    finally:
        stop.set()
        beat.join()
    dynamo.append(lease, "run_started")  # still the holder


def _fail_once(dynamo: DynamoStore, event: str) -> list[str]:
    """Make the next UpdateItem raise a read timeout at ``event`` (before-call: before it is
    sent; after-call: after it was applied); returns what was raised."""
    raised: list[str] = []

    def timeout(**_: Any) -> None:
        if not raised:
            raised.append(event)
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    dynamo.table.client.meta.events.register(f"{event}.dynamodb.UpdateItem", timeout)
    return raised


def test_a_write_applied_before_its_timeout_is_settled_without_writing_it_twice(dynamo: DynamoStore) -> None:
    lease = started(dynamo)
    dynamo.append(lease, "run_started")
    raised = _fail_once(dynamo, "after-call")
    event = dynamo.append(lease, "step_started", "s0.move")
    assert raised == ["after-call"]
    events = intact(dynamo, "run-1")
    assert [e.kind for e in events] == ["run_started", "step_started"]
    assert same(events[-1], event)
    dynamo.append(lease, "step_succeeded", "s0.move")
    assert intact(dynamo, "run-1")[-1].seq == 3


def test_a_write_that_timed_out_unapplied_is_written_once_more(dynamo: DynamoStore) -> None:
    lease = started(dynamo)
    raised = _fail_once(dynamo, "before-call")
    dynamo.append(lease, "run_started")
    assert raised == ["before-call"]
    assert [e.kind for e in intact(dynamo, "run-1")] == ["run_started"]


@pytest.mark.usefixtures("dynamo_factory")
def test_a_missing_table_says_how_to_create_it_and_init_says_what_it_finds() -> None:
    with pytest.raises(JournalError, match=r"state init dynamodb://nothing\?region=us-east-1"):
        DynamoStore("nothing", region=REGION)
    first = init_table("fresh", REGION)
    assert any("created table fresh" in line for line in first)
    assert "turned on point-in-time recovery" in first
    again = init_table("fresh", REGION)
    assert "table fresh in us-east-1 exists" in again
    assert "point-in-time recovery is on" in again
    assert f"schema version {SCHEMA_VERSION}" in again
    assert DynamoStore("fresh", region=REGION).url == "dynamodb://fresh?region=us-east-1"
