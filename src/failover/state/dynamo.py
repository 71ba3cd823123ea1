"""The DynamoDB store: runs, events, plans, leases and records in one table a team shares
(``dynamodb://TABLE?region=REGION``), in one region or a global table with multi-Region strong
consistency. The contract is in ``state/store.py``; every DynamoDB call is in
``providers/aws/statetable.py``. Events (the hash chain, group commit, unknown write outcomes)
are written and read by ``state/dynamo_journal.py``, leases by ``state/dynamo_locks.py``; this
module keeps runs, plans and records and hands the rest to those two.

Layout (keys ``pk`` and ``sk``, both strings)
    ``#meta / schema``                 {version}
    ``#counter / fence``               the fencing-token counter (UpdateItem ADD)
    ``lock#RESOURCE / lock``           {run_id, owner, caller, token, rvn, ttl_s, since, until}
    ``run#ID / head``                  {fingerprint, runbook, created_at, token, count, hash, events,
                                       segments}: the chain head and the open segment of events
    ``run#ID / seg#FIRST#LAST``        {events}: a sealed segment (positions FIRST..LAST, from 1)
    ``#runs / CREATED_AT#ID``, ``fp#FINGERPRINT / ID``   the run index
    ``plan#FINGERPRINT / part#N``      the plan's JSON, zlib-compressed, in 300 KB parts (part 0:
                                       ``parts``, written last)
    ``rec#NAME / rec``                 {value (JSON), version}
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

from failover.errors import JournalError, JournalWriteError, RefusedError
from failover.plan import Plan
from failover.providers.aws.statetable import ConditionFailedError, Item, StateTable, UnknownOutcomeError
from failover.state import chain
from failover.state.dynamo_journal import DynamoJournal, put_idempotent, run_key
from failover.state.dynamo_locks import DynamoLocks
from failover.state.events import Event
from failover.state.store import SCHEMA_VERSION, ChainHead, Holder, Lease, Record, RunRow, Then

PLAN_PART_BYTES = 300_000
_META = ("#meta", "schema")


class DynamoStore:
    """The state in a DynamoDB table; usable from many threads, processes and hosts."""

    def __init__(
        self,
        table: str,
        *,
        region: str | None = None,
        profile: str | None = None,
        read_only: bool = False,
        work_dir: Path = Path(".failover"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = StateTable(table, region=region, profile=profile)
        self.url = f"dynamodb://{table}?region={self.table.region}"
        self.work_dir = Path(work_dir)
        self.read_only = read_only
        self.clock = clock
        self._caller_lock = threading.Lock()
        self._caller: str | None = None
        self._caller_known = False
        self._check_schema()
        self.journal = DynamoJournal(
            self.table, self.url, clock=clock, writable=self._writable, fingerprint_of=self.fingerprint_of
        )
        self.locks = DynamoLocks(self.table, clock=clock, writable=self._writable, caller=self.caller)

    def caller(self) -> str | None:
        with self._caller_lock:
            if not self._caller_known:
                self._caller = self.table.caller_identity()
                self._caller_known = True
            return self._caller

    def _check_schema(self) -> None:
        meta = self.table.get(*_META)
        if meta is None and not self.read_only:
            try:
                self.table.put(
                    {"pk": _META[0], "sk": _META[1], "version": SCHEMA_VERSION},
                    condition="attribute_not_exists(#pk)",
                )
            except (ConditionFailedError, UnknownOutcomeError):
                meta = self.table.get(*_META)  # written by another process first, or by us
        version = 0 if meta is None else int(meta.get("version", 0))
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.url}: journal schema {version} is newer than this failover's "
                f"({SCHEMA_VERSION}): upgrade failover to use this state"
            )

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise JournalWriteError(f"{self.url} is open read-only: {what} was not written")

    # --- runs and plans ----------------------------------------------------------------------

    def create_run(self, run_id: str, plan: Plan, *, created_at: float | None = None) -> None:
        """Record a new run of ``plan`` (and the plan, once per fingerprint). The head is written
        first, with the fencing token this store's ``acquire`` gave the run, then the index."""
        self._writable(f"the record of run {run_id}")
        fingerprint = plan.fingerprint
        self._save_plan(plan)
        now = float(self.clock() if created_at is None else created_at)
        row: Item = {
            "run_id": run_id,
            "fingerprint": fingerprint,
            "runbook": plan.runbook.name,
            "created_at": now,
        }
        head: Item = {
            "pk": run_key(run_id),
            "sk": "head",
            **row,
            "token": self.locks.token(run_id),
            "count": 0,
            "hash": chain.GENESIS,
            "events": [],
            "segments": [],
        }
        try:
            self.table.put(head, condition="attribute_not_exists(#pk)")
        except (ConditionFailedError, UnknownOutcomeError) as exc:
            found = self.table.get(run_key(run_id), "head", projection="#fingerprint, #created_at")
            ours = found is not None and found["fingerprint"] == fingerprint and found["created_at"] == now
            if not ours and isinstance(exc, ConditionFailedError):
                raise JournalWriteError(
                    f"{self.url}: could not write the record of run {run_id}: that run exists already"
                ) from None
            if not ours:
                raise
        put_idempotent(self.table, {"pk": "#runs", "sk": f"{now:017.6f}#{run_id}", **row})
        put_idempotent(self.table, {"pk": f"fp#{fingerprint}", "sk": run_id, **row})

    def _save_plan(self, plan: Plan) -> None:
        pk = f"plan#{plan.fingerprint}"
        if self.table.get(pk, "part#0000", projection="#parts") is not None:
            return
        data = zlib.compress(plan.to_json().encode("utf-8"), 9)
        parts = [data[i : i + PLAN_PART_BYTES] for i in range(0, len(data), PLAN_PART_BYTES)] or [b""]
        for n in reversed(range(len(parts))):  # part 0 last: once it is there, they all are
            item: Item = {"pk": pk, "sk": f"part#{n:04d}", "data": parts[n]}
            if n == 0:
                item["parts"] = len(parts)
            put_idempotent(self.table, item)

    def fingerprint_of(self, run_id: str) -> str:
        """The fingerprint of the plan a run executes; JournalError for an unknown run."""
        found = self.table.get(run_key(run_id), "head", projection="#fingerprint")
        if found is None:
            known = ", ".join(r.run_id for r in self.runs()[-5:]) or "none"
            raise JournalError(f"no run {run_id!r} in {self.url} (latest runs: {known})")
        return str(found["fingerprint"])

    def run_plan(self, run_id: str) -> Plan:
        """The plan a run executes, exactly as it was when the run started."""
        try:
            return self.load_plan(self.fingerprint_of(run_id))
        except JournalError as exc:
            raise JournalError(f"run {run_id}: {exc}") from None

    def load_plan(self, fingerprint: str) -> Plan:
        pk = f"plan#{fingerprint}"
        where = f"the plan {fingerprint} in {self.url}"
        first = self.table.get(pk, "part#0000")
        if first is None:
            raise JournalError(f"its plan cannot be read: {where} does not exist")
        keys = [(pk, f"part#{n:04d}") for n in range(1, int(first.get("parts", 1)))]
        rest = self.table.get_many(keys) if keys else {}
        missing = [sk for _, sk in keys if (pk, sk) not in rest]
        if missing:
            raise JournalError(f"its plan cannot be read: {where} lacks {', '.join(missing)}")
        blobs = [bytes(first["data"]), *(bytes(rest[key]["data"]) for key in keys)]
        try:
            text = zlib.decompress(b"".join(blobs)).decode("utf-8")
        except (zlib.error, UnicodeDecodeError) as exc:
            raise JournalError(f"its plan cannot be read: {where} is damaged: {exc}") from None
        plan = Plan.from_json(text, where=where)
        if plan.fingerprint != fingerprint:
            raise JournalError(f"{where} is not the plan the run started with")
        return plan

    def runs(self, fingerprint: str | None = None) -> list[RunRow]:
        """Every run (of one plan), oldest first."""
        items = self.table.query("#runs" if fingerprint is None else f"fp#{fingerprint}")
        rows = [
            RunRow(str(i["run_id"]), str(i["fingerprint"]), str(i["runbook"]), float(i["created_at"]))
            for i in items
        ]
        return sorted(rows, key=lambda r: (r.created_at, r.run_id))

    # --- events ------------------------------------------------------------------------------

    def events(self, run_id: str) -> list[Event]:
        return self.journal.events(run_id)

    def head(self, run_id: str) -> ChainHead:
        return self.journal.head(run_id)

    def append(
        self, lease: Lease, kind: str, step: str | None = None, data: Mapping[str, object] | None = None
    ) -> Event:
        return self.journal.append(lease, kind, step, data)

    def post(
        self, lease: Lease, kind: str, step: str | None, data: Mapping[str, object] | None, then: Then
    ) -> None:
        self.journal.post(lease, kind, step, data, then)

    def flush(self) -> None:
        self.journal.flush()

    def flush_queued(self) -> None:
        self.journal.flush_queued()

    def write_error(self, error: BaseException) -> BaseException:
        return self.journal.write_error(error)

    def import_events(self, run_id: str, events: list[Event]) -> ChainHead:
        return self.journal.import_events(run_id, events)

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
        """Lease ``resources`` for ``run_id`` (``DynamoLocks.acquire``); the run's next append
        reads its head from the table."""
        lease = self.locks.acquire(run_id, resources, ttl, take_over=take_over, gone=gone)
        self.journal.forget(run_id)
        return lease

    def holder(self, resources: tuple[str, ...]) -> Holder | None:
        return self.locks.holder(resources)

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """Write what was posted, then extend the lease (the heartbeat)."""
        self.journal.flush()
        return self.locks.renew(lease, ttl)

    def release(self, lease: Lease) -> None:
        """Write what was posted, then free the lease's locks (those it still holds)."""
        self.journal.flush()
        self.locks.release(lease)

    # --- records -----------------------------------------------------------------------------

    def get_record(self, name: str) -> Record | None:
        found = self.table.get(f"rec#{name}", "rec")
        if found is None:
            return None
        return Record(json.loads(str(found["value"])), int(found["version"]))

    def put_record(self, name: str, value: Mapping[str, object], *, version: int = 0) -> Record:
        """Write a record if it is still at ``version`` (0: it must not exist); else RefusedError."""
        self._writable(f"the record {name!r}")
        encoded = chain.encode(value)
        item: Item = {"pk": f"rec#{name}", "sk": "rec", "value": encoded, "version": version + 1}
        try:
            if version == 0:
                self.table.put(item, condition="attribute_not_exists(#pk)")
            else:
                self.table.put(item, condition="#version = :v", values={":v": version})
        except (ConditionFailedError, UnknownOutcomeError) as exc:
            found = self.table.get(f"rec#{name}", "rec")
            at = 0 if found is None else int(found["version"])
            if found is None or at != version + 1 or found["value"] != encoded:
                if isinstance(exc, UnknownOutcomeError):
                    raise
                raise RefusedError(
                    f"record {name!r} is at version {at}, not {version}: read it again"
                ) from None
        return Record(dict(value), version + 1)


def init_table(table: str, region: str | None = None, profile: str | None = None) -> list[str]:
    """Create the state table (on-demand, point-in-time recovery on) and record its schema
    version, unless done already; what was done or found, line by line."""
    state = StateTable(table, region=region, profile=profile)
    lines = state.create_table()
    meta = state.get(*_META)
    if meta is None:
        try:
            state.put(
                {"pk": _META[0], "sk": _META[1], "version": SCHEMA_VERSION},
                condition="attribute_not_exists(#pk)",
            )
            lines.append(f"recorded schema version {SCHEMA_VERSION}")
        except ConditionFailedError:
            meta = state.get(*_META)
    if meta is not None:
        version = int(meta.get("version", 0))
        newer = (
            " (newer than this failover's: upgrade failover to use it)" if version > SCHEMA_VERSION else ""
        )
        lines.append(f"schema version {version}{newer}")
    lines.append(f"state: dynamodb://{table}?region={state.region}")
    return lines
