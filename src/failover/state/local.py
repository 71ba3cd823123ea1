"""The directory store: runs, events and leases in ``STATE_DIR/journal.sqlite``, plans beside it.

Every event is written durably (WAL, synchronous=FULL; concurrent events share a commit) before
and after each side effect. An event is only written while the run's lease is held with the
writer's fencing token, so a run whose lease expired (and was taken over) cannot write any more.
One host, one clock: a lease expires on this host's wall clock, and a holder is known dead when
its pid is gone. The contract is in ``state/store.py``.

What the store writes is its owner's only: the directories it creates 0700, the journal (with
SQLite's files beside it) and the plans 0600.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from failover.errors import JournalError, JournalWriteError, LeaseHeldError, LeaseLostError, RefusedError
from failover.plan import Plan
from failover.state import chain
from failover.state.events import Event
from failover.state.sqlite import PRIVATE_DIR, PRIVATE_FILE, Store, tighten
from failover.state.store import (
    SCHEMA_VERSION,
    ChainHead,
    Holder,
    Lease,
    Record,
    RunRow,
    Then,
    owner_is_dead_here,
    this_owner,
)

JOURNAL_FILE = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    runbook TEXT NOT NULL,
    created_at REAL NOT NULL,
    events INTEGER NOT NULL DEFAULT 0,
    head TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000'
);
CREATE INDEX IF NOT EXISTS runs_by_fingerprint ON runs (fingerprint);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    data TEXT NOT NULL,
    token INTEGER NOT NULL,
    hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, seq);
CREATE TABLE IF NOT EXISTS leases (
    resource TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    token INTEGER NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (name TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL);
"""


class DirectoryStore:
    """The state in a directory; usable from many threads and processes of one host.

    A write that fails (disk full, read-only file system, I/O error) raises JournalWriteError and
    leaves nothing behind. ``read_only`` opens an existing journal without writing, creating or
    locking anything (``status``, ``report``, ``history`` and ``audit`` of an auditor's copy).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        self.state_dir = self.work_dir = Path(state_dir)
        self.url = str(self.state_dir)
        self.path = self.state_dir / JOURNAL_FILE
        self.clock = clock
        self.read_only = read_only
        if read_only and not self.path.is_file():
            raise JournalError(f"no journal in {self.state_dir}: {self.path} does not exist")
        self.store = Store(self.path, _SCHEMA, "FULL", read_only=read_only)
        try:
            if read_only:
                self._check_version(self._read_meta())
            else:
                self.store.run(self._check_schema)
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"{self.path}: cannot open the journal: {exc}") from exc

    def caller(self) -> str | None:
        return None  # a directory knows no cloud identity

    def _read_meta(self) -> list[tuple[object, ...]]:
        try:
            return self.store.read("SELECT value FROM meta WHERE key = 'schema'")
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise JournalError(f"{self.path}: no runs yet (the journal is being created)") from exc
            raise

    def _check_schema(self, db: sqlite3.Connection) -> None:
        rows = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchall()
        if not rows:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif rows[0][0] == "1":
            _upgrade_from_1(db)
            return
        self._check_version(rows)

    def _check_version(self, rows: list[tuple[object, ...]]) -> None:
        if rows and str(rows[0][0]).isdigit() and int(str(rows[0][0])) > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path}: journal schema {rows[0][0]} is newer than this failover's "
                f"({SCHEMA_VERSION}): upgrade failover to use this state"
            )

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a failed write into a JournalWriteError that says what was not written, and where."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise JournalWriteError(f"{self.path}: could not write {what}: {exc}") from exc

    # --- runs, plans and events --------------------------------------------------------------

    def create_run(self, run_id: str, plan: Plan, *, created_at: float | None = None) -> None:
        """Record a new run of ``plan``. The plan itself is kept beside the journal, in
        ``plans/FINGERPRINT.json`` (readable by its owner only): a plan's parameters are not
        journal rows, so nothing secret that a plan may carry reaches the journal."""
        plans = self.state_dir / "plans"
        path = plans / f"{plan.fingerprint}.json"
        with self._writing(f"the plan {path}"):
            plans.mkdir(mode=PRIVATE_DIR, exist_ok=True)
            if path.exists():
                tighten(path)  # a copy kept by an earlier version, readable by others
            else:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                try:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
                    with os.fdopen(fd, "w", encoding="utf-8") as out:
                        out.write(plan.to_json())
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp, path)
                except OSError:
                    tmp.unlink(missing_ok=True)  # a half-written copy (a full disk) is not left behind
                    raise
        now = self.clock() if created_at is None else created_at
        with self._writing(f"the record of run {run_id}"):
            self.store.run(
                lambda db: db.execute(
                    "INSERT INTO runs (run_id, fingerprint, runbook, created_at) VALUES (?, ?, ?, ?)",
                    (run_id, plan.fingerprint, plan.runbook.name, now),
                )
            )

    def fingerprint_of(self, run_id: str) -> str:
        """The fingerprint of the plan a run executes; JournalError for an unknown run."""
        rows = self.store.read("SELECT fingerprint FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            known = ", ".join(r[0] for r in self.runs()[-5:]) or "none"
            raise JournalError(f"no run {run_id!r} in {self.state_dir} (latest runs: {known})")
        return str(rows[0][0])

    def run_plan(self, run_id: str) -> Plan:
        """The plan a run executes, exactly as it was when the run started."""
        try:
            return self.load_plan(self.fingerprint_of(run_id))
        except JournalError as exc:
            raise JournalError(f"run {run_id}: {exc}") from None

    def load_plan(self, fingerprint: str) -> Plan:
        path = self.state_dir / "plans" / f"{fingerprint}.json"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise JournalError(f"its plan {path} cannot be read: {exc.strerror}") from None
        plan = Plan.from_json(text, where=str(path))
        if plan.fingerprint != fingerprint:
            raise JournalError(f"{path} is not the plan the run started with")
        return plan

    def runs(self, fingerprint: str | None = None) -> list[RunRow]:
        """Every run (of one plan), oldest first."""
        query = "SELECT run_id, fingerprint, runbook, created_at FROM runs"
        args: tuple[str, ...] = ()
        if fingerprint is not None:
            query += " WHERE fingerprint = ?"
            args = (fingerprint,)
        rows = self.store.read(query + " ORDER BY created_at, run_id", args)
        return [RunRow(*r) for r in rows]

    def head(self, run_id: str) -> ChainHead:
        rows = self.store.read("SELECT events, head FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            self.fingerprint_of(run_id)  # JournalError naming the runs there are
        return ChainHead(int(rows[0][0]), str(rows[0][1]))

    def append(
        self, lease: Lease, kind: str, step: str | None = None, data: Mapping[str, object] | None = None
    ) -> Event:
        """Write one event, durably, if and only if ``lease`` is still held with its fencing token."""
        with self._writing(f"event {kind!r} of run {lease.run_id}"):
            return self.store.add(_insert_events, self._pending(lease, kind, step, data))

    def post(
        self, lease: Lease, kind: str, step: str | None, data: Mapping[str, object] | None, then: Then
    ) -> None:
        """Queue an event that no side effect waits for (a step's success, say): it becomes
        durable with the next event that is appended, which every side effect waits for, so the
        journal's order and the write-ahead rule hold."""
        self.store.post_item(_insert_events, self._pending(lease, kind, step, data), then)

    def flush(self) -> None:
        """Commit whatever was posted (JournalWriteError if that fails)."""
        with self._writing("the queued events"):
            self.store.flush()

    def flush_queued(self) -> None:
        """Commit queued events, if there are any (cheap when there are none)."""
        if self.store.queued():
            self.flush()

    def write_error(self, error: BaseException) -> BaseException:
        """What a posted write's failure means: a JournalWriteError, unless it is already ours."""
        if isinstance(error, sqlite3.Error | OSError):
            return JournalWriteError(f"{self.path}: could not write a queued event: {error}")
        return error

    def _pending(
        self, lease: Lease, kind: str, step: str | None, data: Mapping[str, object] | None
    ) -> _Pending:
        payload = dict(data or {})
        at = self.clock()  # when it happened, not when it was committed
        return _Pending(lease, at, kind, step, payload, chain.encode(payload), self.clock)

    def events(self, run_id: str) -> list[Event]:
        rows = self.store.read(
            "SELECT seq, run_id, at, kind, step, data, hash FROM events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        return [Event(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def import_events(self, run_id: str, events: list[Event]) -> ChainHead:
        def write(db: sqlite3.Connection) -> ChainHead:
            (count,) = db.execute("SELECT events FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if count:
                raise RefusedError(f"run {run_id} already has {count} events in {self.state_dir}")
            items = [(e.at, e.kind, e.step, chain.encode(e.data)) for e in events]
            _, hashes = _write_rows(db, run_id, 0, chain.GENESIS, items, token=0)
            return ChainHead(len(items), hashes[-1] if hashes else chain.GENESIS)

        with self._writing(f"the events of run {run_id}"):
            return self.store.run(write)

    # --- leases ------------------------------------------------------------------------------

    def acquire(
        self,
        run_id: str,
        resources: tuple[str, ...],
        ttl: float,
        *,
        take_over: bool = False,
        gone: Callable[[str], bool] | None = None,
    ) -> Lease:
        """Lease ``resources`` for ``run_id`` with a new fencing token, or raise LeaseHeldError.

        A live lease of another run on any resource refuses the whole request. With ``take_over``,
        a lease of the same run (its earlier process) is replaced once ``gone(owner)`` says that
        process no longer holds it (by default: known dead on this host) or its lease has expired.
        """
        owner = this_owner()
        dead = gone or owner_is_dead_here
        placeholders = ",".join("?" * len(resources))

        def take(db: sqlite3.Connection) -> Lease:
            now = self.clock()
            rows = db.execute(
                f"SELECT resource, run_id, owner, acquired_at, expires_at FROM leases "
                f"WHERE resource IN ({placeholders}) AND expires_at > ?",
                (*resources, now),
            ).fetchall()
            for resource, holder, holder_owner, since, until in rows:
                if not (take_over and holder == run_id and dead(holder_owner)):
                    raise LeaseHeldError(Holder(resource, holder, holder_owner, since, until).describe())
            db.execute(
                "INSERT INTO counters (name, value) VALUES ('fence', 1) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1"
            )
            token = int(db.execute("SELECT value FROM counters WHERE name = 'fence'").fetchone()[0])
            db.executemany(
                "INSERT INTO leases (resource, run_id, owner, token, acquired_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(resource) DO UPDATE SET run_id = excluded.run_id, "
                "owner = excluded.owner, token = excluded.token, acquired_at = excluded.acquired_at, "
                "expires_at = excluded.expires_at",
                [(r, run_id, owner, token, now, now + ttl) for r in resources],
            )
            return Lease(run_id, owner, token, resources, now + ttl)

        with self._writing(f"the lease of run {run_id}"):
            return self.store.run(take)

    def holder(self, resources: tuple[str, ...]) -> Holder | None:
        """Who holds a live lease on any of ``resources``."""
        placeholders = ",".join("?" * len(resources))
        rows = self.store.read(
            f"SELECT resource, run_id, owner, acquired_at, expires_at FROM leases "
            f"WHERE resource IN ({placeholders}) AND expires_at > ? ORDER BY resource LIMIT 1",
            (*resources, self.clock()),
        )
        return None if not rows else Holder(*rows[0])

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """Extend a held lease (the heartbeat); raises LeaseLostError if it is no longer held."""

        def extend(db: sqlite3.Connection) -> Lease:
            now = self.clock()
            held = db.execute(
                "SELECT COUNT(*) FROM leases WHERE run_id = ? AND token = ? AND expires_at > ?",
                (lease.run_id, lease.token, now),
            ).fetchone()[0]
            if held != len(lease.resources):  # checked before writing: a renewal is all or nothing
                raise LeaseLostError(f"run {lease.run_id}: lease lost before renewal (token {lease.token})")
            db.execute(
                "UPDATE leases SET expires_at = ? WHERE run_id = ? AND token = ?",
                (now + ttl, lease.run_id, lease.token),
            )
            return Lease(lease.run_id, lease.owner, lease.token, lease.resources, now + ttl)

        with self._writing(f"the renewal of run {lease.run_id}'s lease"):
            return self.store.run(extend)

    def release(self, lease: Lease) -> None:
        with self._writing(f"the release of run {lease.run_id}'s lease"):
            self.store.run(
                lambda db: db.execute(
                    "DELETE FROM leases WHERE run_id = ? AND token = ?", (lease.run_id, lease.token)
                )
            )

    # --- records -----------------------------------------------------------------------------

    def get_record(self, name: str) -> Record | None:
        rows = self.store.read("SELECT value, version FROM records WHERE name = ?", (name,))
        return None if not rows else Record(json.loads(rows[0][0]), int(rows[0][1]))

    def put_record(self, name: str, value: Mapping[str, object], *, version: int = 0) -> Record:
        def put(db: sqlite3.Connection) -> Record:
            row = db.execute("SELECT version FROM records WHERE name = ?", (name,)).fetchone()
            found = 0 if row is None else int(row[0])
            if found != version:
                raise RefusedError(f"record {name!r} is at version {found}, not {version}: read it again")
            db.execute(
                "INSERT INTO records (name, value, version) VALUES (?, ?, ?) ON CONFLICT(name) "
                "DO UPDATE SET value = excluded.value, version = excluded.version",
                (name, chain.encode(value), version + 1),
            )
            return Record(dict(value), version + 1)

        with self._writing(f"the record {name!r}"):
            return self.store.run(put)


@dataclass(frozen=True, slots=True)
class _Pending:
    """An event on its way to the journal."""

    lease: Lease
    at: float
    kind: str
    step: str | None
    payload: dict[str, object]
    encoded: str
    clock: Callable[[], float]


def _insert_events(db: sqlite3.Connection, events: list[_Pending]) -> list[Event]:
    """Write events whose leases are all still held (fencing: else nothing is written), each run's
    events in one go, chained to the run's head."""
    for lease in {e.lease for e in events}:
        if not _holds(db, lease, events[0].clock()):
            kinds = ", ".join(sorted({repr(e.kind) for e in events if e.lease == lease}))
            raise LeaseLostError(
                f"run {lease.run_id}: its lease expired or was taken over (fencing token "
                f"{lease.token} is stale); event {kinds} was not written"
            )
    written: dict[int, Event] = {}
    for run_id in dict.fromkeys(e.lease.run_id for e in events):
        mine = [(n, e) for n, e in enumerate(events) if e.lease.run_id == run_id]
        count, head = db.execute("SELECT events, head FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        items = [(e.at, e.kind, e.step, e.encoded) for _, e in mine]
        seqs, hashes = _write_rows(db, run_id, count, head, items, mine[0][1].lease.token)
        for (n, e), seq, digest in zip(mine, seqs, hashes, strict=True):
            written[n] = Event(seq, run_id, e.at, e.kind, e.step, e.payload, digest)
    return [written[n] for n in range(len(events))]


_ROWS_PER_INSERT = 500


def _write_rows(
    db: sqlite3.Connection,
    run_id: str,
    count: int,
    head: str,
    items: list[tuple[float, str, str | None, str]],
    token: int,
) -> tuple[list[int], list[str]]:
    """Insert a run's next events (a few hundred rows per statement) and move its chain head."""
    hashes = chain.extend(head, run_id, count, items)
    seqs: list[int] = []
    for first in range(0, len(items), _ROWS_PER_INSERT):
        chunk = list(zip(items[first : first + _ROWS_PER_INSERT], hashes[first:], strict=False))
        db.execute(
            "INSERT INTO events (run_id, at, kind, step, data, token, hash) VALUES "
            + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
            [v for (at, kind, step, data), h in chunk for v in (run_id, at, kind, step, data, token, h)],
        )
        last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
        seqs += range(last - len(chunk) + 1, last + 1)
    db.execute(
        "UPDATE runs SET events = ?, head = ? WHERE run_id = ?",
        (count + len(items), hashes[-1] if hashes else head, run_id),
    )
    return seqs, hashes


def _upgrade_from_1(db: sqlite3.Connection) -> None:
    """Give a journal of schema 1 its hash chains (from what it holds now) and records."""
    db.execute("ALTER TABLE runs ADD COLUMN events INTEGER NOT NULL DEFAULT 0")
    db.execute(f"ALTER TABLE runs ADD COLUMN head TEXT NOT NULL DEFAULT '{chain.GENESIS}'")
    db.execute("ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT ''")
    for (run_id,) in db.execute("SELECT run_id FROM runs").fetchall():
        rows = db.execute(
            "SELECT seq, at, kind, step, data FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        items = [(at, kind, step, chain.encode(json.loads(data))) for _, at, kind, step, data in rows]
        hashes = chain.extend(chain.GENESIS, run_id, 0, items)
        db.executemany(
            "UPDATE events SET hash = ? WHERE seq = ?", [(h, r[0]) for h, r in zip(hashes, rows, strict=True)]
        )
        db.execute(
            "UPDATE runs SET events = ?, head = ? WHERE run_id = ?",
            (len(rows), hashes[-1] if hashes else chain.GENESIS, run_id),
        )
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))


def _holds(db: sqlite3.Connection, lease: Lease, now: float) -> bool:
    """Whether ``lease`` is still held: one row tells. Every resource of a lease is taken, renewed
    and expires together (renewals are all or nothing), and another run may take a resource only
    once it expired, so the first resource's row stands for all of them."""
    row = db.execute(
        "SELECT 1 FROM leases WHERE resource = ? AND run_id = ? AND token = ? AND expires_at > ?",
        (lease.resources[0], lease.run_id, lease.token, now),
    ).fetchone()
    return row is not None
