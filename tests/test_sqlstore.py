"""The shared SQLite store: group commit, and items of a kind written by one call."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from failover.errors import LeaseLostError
from failover.state.events import Event
from failover.state.local import DirectoryStore
from failover.state.sqlite import Store
from tests.executor_helpers import tiny_plan

SCHEMA = "CREATE TABLE IF NOT EXISTS rows (n INTEGER NOT NULL);"


def test_items_from_parallel_writers_share_calls_and_each_gets_its_own_result(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", SCHEMA, "FULL")
    calls: list[int] = []

    def insert(db: sqlite3.Connection, items: list[int]) -> list[int]:
        calls.append(len(items))
        db.executemany("INSERT INTO rows (n) VALUES (?)", [(n,) for n in items])
        return [n * 10 for n in items]

    results: dict[int, int] = {}
    start = threading.Barrier(16)

    def writer(base: int) -> None:
        start.wait()
        for n in range(base, base + 25):
            results[n] = store.add(insert, n)

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {k * 100 + i for k in range(16) for i in range(25)}
    assert results == {n: n * 10 for n in expected}
    assert sorted(r[0] for r in store.read("SELECT n FROM rows")) == sorted(expected)
    assert sum(calls) == len(expected)
    assert len(calls) < len(expected)  # parallel items were written together


def test_a_failing_item_fails_alone_and_the_rest_of_its_batch_is_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite", SCHEMA, "FULL")

    def insert(db: sqlite3.Connection, items: list[int]) -> list[int]:
        db.executemany("INSERT INTO rows (n) VALUES (?)", [(n,) for n in items])
        if 13 in items:
            raise ValueError("13 is refused")
        return items

    outcomes: dict[int, object] = {}
    for n in (11, 12, 13, 14):
        store.post_item(insert, n, lambda result, error, n=n: outcomes.__setitem__(n, error or result))
    store.flush()
    assert outcomes[11] == 11 and outcomes[12] == 12 and outcomes[14] == 14
    assert isinstance(outcomes[13], ValueError)
    assert sorted(r[0] for r in store.read("SELECT n FROM rows")) == [11, 12, 14]


def test_events_of_a_lost_lease_are_refused_without_losing_others_committed_with_them(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    journal = DirectoryStore(tmp_path, clock=lambda: now[0])
    stale = journal.acquire("run-a", ("shop/db",), ttl=30)
    now[0] += 31
    live = journal.acquire("run-b", ("shop/db",), ttl=30)
    for run_id in ("run-a", "run-b"):
        journal.create_run(run_id, tiny_plan())
    outcomes: list[tuple[str, Event | None, BaseException | None]] = []
    for lease, kind in ((live, "one"), (stale, "late"), (live, "two")):
        journal.post(lease, kind, None, {}, lambda e, err, k=kind: outcomes.append((k, e, err)))
    journal.flush()
    by_kind = {k: (e, err) for k, e, err in outcomes}
    assert isinstance(by_kind["late"][1], LeaseLostError)
    assert [e.kind for e in journal.events("run-b")] == ["one", "two"]
    assert [by_kind[k][0].seq for k in ("one", "two")] == [e.seq for e in journal.events("run-b")]  # type: ignore[union-attr]
    assert journal.events("run-a") == []


def test_a_renewal_is_all_or_nothing(tmp_path: Path) -> None:
    now = [1000.0]
    journal = DirectoryStore(tmp_path, clock=lambda: now[0])
    lease = journal.acquire("run-a", ("shop/db", "shop/app"), ttl=30)
    now[0] += 31
    journal.acquire("run-b", ("shop/db",), ttl=30)  # takes one resource of the expired lease
    with pytest.raises(LeaseLostError):
        journal.renew(lease, 30)
    expiries = journal.store.read("SELECT expires_at FROM leases WHERE run_id = 'run-a'")
    assert expiries == [(1030.0,)]  # the other resource was not extended
