"""The journal: an append-only event log of runs in SQLite, and the run leases that fence it.

Every event is written durably (WAL, synchronous=FULL; concurrent events share a commit) before
and after each side effect. A run's state is never stored: it is derived by replaying its events. An event
is only written while the run's lease is held with the writer's fencing token, so a run whose
lease expired (and was taken over) cannot write any more.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from failover.errors import JournalError, JournalWriteError, LeaseHeldError, LeaseLostError
from failover.plan import Plan
from failover.sqlstore import Store
from failover.state.events import Event

JOURNAL_FILE = "journal.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    runbook TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_fingerprint ON runs (fingerprint);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    data TEXT NOT NULL,
    token INTEGER NOT NULL
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
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lease: which resources, by whom, with which fencing token, until when."""

    run_id: str
    owner: str
    token: int
    resources: tuple[str, ...]
    expires_at: float


def this_owner() -> str:
    """``host:pid`` of this process, as recorded in leases."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_dead_here(owner: str) -> bool:
    """True when ``owner`` is a process of this host that no longer runs."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Journal:
    """The journal and leases in ``STATE_DIR/journal.sqlite``; usable from many threads and processes.

    A write that fails (disk full, read-only file system, I/O error) raises JournalWriteError and
    leaves nothing behind. ``read_only`` opens an existing journal without writing, creating or
    locking anything (``status``, ``report`` and ``history`` of an auditor's copy).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir)
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
        self._check_version(rows)

    def _check_version(self, rows: list[tuple[object, ...]]) -> None:
        if rows and rows[0][0] != str(SCHEMA_VERSION):
            raise JournalError(
                f"{self.path}: journal schema {rows[0][0]}, this failover reads {SCHEMA_VERSION}"
            )

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn a failed write into a JournalWriteError that says what was not written, and where."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise JournalWriteError(f"{self.path}: could not write {what}: {exc}") from exc

    # --- runs and events ---------------------------------------------------------------------

    def create_run(self, run_id: str, plan: Plan) -> None:
        """Record a new run of ``plan``. The plan itself is kept beside the journal, in
        ``plans/FINGERPRINT.json`` (readable by its owner only): a plan's parameters are not
        journal rows, so nothing secret that a plan may carry reaches the journal."""
        plans = self.state_dir / "plans"
        path = plans / f"{plan.fingerprint}.json"
        with self._writing(f"the plan {path}"):
            plans.mkdir(mode=0o700, exist_ok=True)
            if not path.exists():
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                try:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "w", encoding="utf-8") as out:
                        out.write(plan.to_json())
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp, path)
                except OSError:
                    tmp.unlink(missing_ok=True)  # a half-written copy (a full disk) is not left behind
                    raise
        now = self.clock()
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
        fingerprint = self.fingerprint_of(run_id)
        path = self.state_dir / "plans" / f"{fingerprint}.json"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise JournalError(f"run {run_id}: its plan {path} cannot be read: {exc.strerror}") from None
        plan = Plan.from_json(text, where=str(path))
        if plan.fingerprint != fingerprint:
            raise JournalError(f"run {run_id}: {path} is not the plan the run started with")
        return plan

    def runs(self, fingerprint: str | None = None) -> list[tuple[str, str, str, float]]:
        """(run_id, fingerprint, runbook, created_at) of every run, oldest first."""
        query = "SELECT run_id, fingerprint, runbook, created_at FROM runs"
        args: tuple[str, ...] = ()
        if fingerprint is not None:
            query += " WHERE fingerprint = ?"
            args = (fingerprint,)
        rows = self.store.read(query + " ORDER BY created_at, run_id", args)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def append(
        self, lease: Lease, kind: str, step: str | None = None, data: Mapping[str, object] | None = None
    ) -> Event:
        """Write one event, durably, if and only if ``lease`` is still held with its fencing token."""
        with self._writing(f"event {kind!r} of run {lease.run_id}"):
            return self.store.add(_insert_events, self._pending(lease, kind, step, data))

    def post(
        self,
        lease: Lease,
        kind: str,
        step: str | None,
        data: Mapping[str, object] | None,
        then: Callable[[Event | None, BaseException | None], None],
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
        encoded = json.dumps(payload, sort_keys=True, default=str)
        at = self.clock()  # when it happened, not when it was committed
        return _Pending(lease, at, kind, step, payload, encoded, self.clock)

    def events(self, run_id: str) -> list[Event]:
        rows = self.store.read(
            "SELECT seq, run_id, at, kind, step, data FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [Event(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    # --- leases ------------------------------------------------------------------------------

    def acquire(
        self,
        run_id: str,
        resources: tuple[str, ...],
        ttl: float,
        *,
        take_over: bool = False,
        gone: Callable[[str], bool] = owner_is_dead_here,
    ) -> Lease:
        """Lease ``resources`` for ``run_id`` with a new fencing token, or raise LeaseHeldError.

        A live lease of another run on any resource refuses the whole request. With ``take_over``,
        a lease of the same run (its earlier process) is replaced once ``gone(owner)`` says that
        process no longer holds it (by default: known dead on this host) or its lease has expired.
        """
        owner = this_owner()
        placeholders = ",".join("?" * len(resources))

        def take(db: sqlite3.Connection) -> Lease:
            now = self.clock()
            rows = db.execute(
                f"SELECT resource, run_id, owner, acquired_at, expires_at FROM leases "
                f"WHERE resource IN ({placeholders}) AND expires_at > ?",
                (*resources, now),
            ).fetchall()
            for resource, holder, holder_owner, since, until in rows:
                if not (take_over and holder == run_id and gone(holder_owner)):
                    raise LeaseHeldError(
                        f"{resource} is locked by run {holder} ({holder_owner}) since "
                        f"{_stamp(since)}, lease until {_stamp(until)}"
                    )
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

    def holder(self, resources: tuple[str, ...]) -> tuple[str, str, float] | None:
        """(run_id, owner, expires_at) of a live lease on any of ``resources``."""
        placeholders = ",".join("?" * len(resources))
        rows = self.store.read(
            f"SELECT run_id, owner, expires_at FROM leases WHERE resource IN ({placeholders}) "
            f"AND expires_at > ? LIMIT 1",
            (*resources, self.clock()),
        )
        return None if not rows else (rows[0][0], rows[0][1], rows[0][2])

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


_ROWS_PER_INSERT = 500


def _insert_events(db: sqlite3.Connection, events: list[_Pending]) -> list[Event]:
    """Write events whose leases are all still held (fencing: else nothing is written), a few
    hundred rows per statement."""
    for lease in {e.lease for e in events}:
        if not _holds(db, lease, events[0].clock()):
            kinds = ", ".join(sorted({repr(e.kind) for e in events if e.lease == lease}))
            raise LeaseLostError(
                f"run {lease.run_id}: its lease expired or was taken over (fencing token "
                f"{lease.token} is stale); event {kinds} was not written"
            )
    written: list[Event] = []
    for first in range(0, len(events), _ROWS_PER_INSERT):
        chunk = events[first : first + _ROWS_PER_INSERT]
        db.execute(
            "INSERT INTO events (run_id, at, kind, step, data, token) VALUES "
            + ",".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)),
            [v for e in chunk for v in (e.lease.run_id, e.at, e.kind, e.step, e.encoded, e.lease.token)],
        )
        last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
        written += [
            Event(last - len(chunk) + 1 + n, e.lease.run_id, e.at, e.kind, e.step, e.payload)
            for n, e in enumerate(chunk)
        ]
    return written


def _holds(db: sqlite3.Connection, lease: Lease, now: float) -> bool:
    """Whether ``lease`` is still held: one row tells. Every resource of a lease is taken, renewed
    and expires together (renewals are all or nothing), and another run may take a resource only
    once it expired, so the first resource's row stands for all of them."""
    row = db.execute(
        "SELECT 1 FROM leases WHERE resource = ? AND run_id = ? AND token = ? AND expires_at > ?",
        (lease.resources[0], lease.run_id, lease.token, now),
    ).fetchone()
    return row is not None


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
