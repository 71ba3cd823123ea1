"""The events of the DynamoDB store; the table's layout is in ``state/dynamo.py``.

Events
    An event is stored as one JSON string ``[at, kind, step, data, hash]`` with ``data`` exactly as
    hashed (``chain.encode``). Its ``seq`` is its position in the run, from 1. No transactions
    (multi-Region strong consistency has none): an append is one UpdateItem on the run's head that
    adds the events to the open segment and moves ``count`` and ``hash``, on the condition
    ``token = LEASE'S TOKEN AND count = COUNT BEFORE``. That condition is the fence. When the open
    segment would pass 150 KB it is sealed: the segment item is put first (unconditionally: its
    key holds its positions, so a copy left by a failed write is the same events and is never
    read), then the same UpdateItem lists it in ``segments`` and starts a new open segment. A group
    larger than a segment is written in several fenced appends. Reads are strongly consistent:
    the head, then the segments it lists.
Group commit
    ``append`` waits until its event is written; ``post`` queues one. Whichever caller finds no
    write under way writes everything queued (each run's events in one UpdateItem), the others
    wait for it. What this process last wrote to each run (count, hash, open segment, token) is
    kept, so an append costs one round trip: the lease holder is the only writer of its token.
Unknown outcomes
    An append that timed out or failed after retries (an earlier attempt may have been applied),
    or whose condition failed (maybe because an earlier attempt was applied), is settled by a
    consistent read of the head: ``count`` and ``hash`` as the write would leave them: written;
    as they were: not written, and tried once more; else ``LeaseLostError`` (taken over, or
    another writer). If that read fails too, the error is raised and the next append reads the
    head first.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from failover.errors import FailoverError, JournalError, JournalWriteError, LeaseLostError, RefusedError
from failover.providers.aws.statetable import ConditionFailedError, Item, StateTable, UnknownOutcomeError
from failover.state import chain
from failover.state.events import Event
from failover.state.store import ChainHead, Lease, Then

# An open segment is sealed before it would pass this: well under half an item's 400 KB, so an
# update that rewrites it fits even where the old and new values are counted together (moto).
SEGMENT_BYTES = 150_000


@dataclass
class _Queued:
    """An event on its way to the table (``lease`` None: a flush, which writes nothing itself)."""

    lease: Lease | None
    at: float = 0.0
    kind: str = ""
    step: str | None = None
    payload: dict[str, object] = field(default_factory=dict)
    encoded: str = ""
    then: Then | None = None
    wake: threading.Event | None = None
    done: bool = False
    event: Event | None = None
    error: BaseException | None = None


@dataclass
class _Head:
    """A run's head as this process last wrote or read it."""

    token: int | None  # None: written without a fence (an import)
    count: int
    hash: str
    open: list[str]
    open_bytes: int


def run_key(run_id: str) -> str:
    """The partition key of a run's head and segments."""
    return f"run#{run_id}"


def put_idempotent(table: StateTable, item: Item) -> None:
    """Put an item whose write may be repeated (once more if its outcome is unknown)."""
    try:
        table.put(item)
    except UnknownOutcomeError:
        table.put(item)


class DynamoJournal:
    """The events of a DynamoDB store's runs; usable from many threads."""

    def __init__(
        self,
        table: StateTable,
        url: str,
        *,
        clock: Callable[[], float],
        writable: Callable[[str], None],
        fingerprint_of: Callable[[str], str],
    ) -> None:
        """``writable(what)`` raises when the store is read-only; ``fingerprint_of(run_id)``
        raises a JournalError naming the runs there are when ``run_id`` is not one of them."""
        self.table = table
        self.url = url
        self.clock = clock
        self._writable = writable
        self._fingerprint_of = fingerprint_of
        self._lock = threading.Lock()
        self._queue: list[_Queued] = []
        self._writing = False
        self._heads: dict[str, _Head] = {}
        self.groups = 0  # group commits written (for benchmarks: round trips per group)
        self.group_requests: Counter[str] = Counter()  # the requests they took, per operation

    def head(self, run_id: str) -> ChainHead:
        found = self._counted(run_id)
        return ChainHead(int(found["count"]), str(found["hash"]))

    def _counted(self, run_id: str) -> Item:
        """The count and hash of a run's head; JournalError if there is no such run."""
        found = self.table.get(run_key(run_id), "head", projection="#count, #hash")
        if found is None:
            self._fingerprint_of(run_id)  # JournalError naming the runs there are
            raise JournalError(f"no run {run_id!r} in {self.url}")
        return found

    def events(self, run_id: str) -> list[Event]:
        pk = run_key(run_id)
        found = self.table.get(pk, "head", projection="#events, #segments")
        if found is None:
            return []
        keys = [(pk, str(sk)) for sk in found.get("segments", [])]
        segments = self.table.get_many(keys) if keys else {}
        texts: list[str] = []
        for key in keys:
            if key not in segments:
                raise JournalError(f"run {run_id}: its events {key[1]} are missing from {self.url}")
            texts += segments[key].get("events", [])
        texts += found.get("events", [])
        events = []
        for n, text in enumerate(texts, start=1):
            try:
                at, kind, step, encoded, digest = json.loads(text)
                data = json.loads(encoded)
            except (ValueError, TypeError) as exc:
                raise JournalError(f"run {run_id}: event {n} in {self.url} cannot be read: {exc}") from None
            events.append(Event(n, run_id, float(at), kind, step, data, digest))
        return events

    def append(
        self, lease: Lease, kind: str, step: str | None = None, data: Mapping[str, object] | None = None
    ) -> Event:
        """Write one event (and every event posted before it), if and only if ``lease`` still
        holds the run's fencing token."""
        mine = self._queued(lease, kind, step, data)
        mine.wake = threading.Event()
        self._commit(mine)
        if mine.error is not None:
            raise mine.error
        assert mine.event is not None
        return mine.event

    def post(
        self, lease: Lease, kind: str, step: str | None, data: Mapping[str, object] | None, then: Then
    ) -> None:
        """Queue an event no side effect waits for: it is written with the next append, flush or
        renewal, in order, and then ``then(event, error)`` is called by the writing thread."""
        item = self._queued(lease, kind, step, data)
        item.then = then
        with self._lock:
            self._queue.append(item)

    def flush(self) -> None:
        """Write whatever was posted (each posted event's outcome goes to its ``then``)."""
        with self._lock:
            if not self._queue and not self._writing:
                return
        self._commit(_Queued(None, wake=threading.Event()))

    def flush_queued(self) -> None:
        """Write queued events, if there are any (cheap when there are none)."""
        if self._queue:
            self.flush()

    def write_error(self, error: BaseException) -> BaseException:
        """What a posted write's failure means: a JournalWriteError, unless it is already ours."""
        if isinstance(error, FailoverError):
            return error
        return JournalWriteError(f"{self.url}: could not write a queued event: {error}")

    def _queued(
        self, lease: Lease, kind: str, step: str | None, data: Mapping[str, object] | None
    ) -> _Queued:
        payload = dict(data or {})
        at = float(self.clock())  # when it happened, not when it was written
        return _Queued(lease, at, kind, step, payload, chain.encode(payload))

    def _commit(self, mine: _Queued) -> None:
        """Queue ``mine`` and wait until it is written: by this thread, if no write is under way
        (it then writes everything queued), else by the writing thread, or by this one once it is
        handed the turn."""
        with self._lock:
            self._queue.append(mine)
            lead = not self._writing
            self._writing = True
        if not lead:
            assert mine.wake is not None
            mine.wake.wait()  # until written, or handed the turn
            if mine.done:
                return
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self._write(batch)
        finally:
            for item in batch:
                if not item.done and item.lease is not None and item.event is None and item.error is None:
                    item.error = JournalWriteError(f"{self.url}: event {item.kind!r} was not written")
                item.done = True
            with self._lock:  # hand the turn to a waiting write queued meanwhile
                following = next((q for q in self._queue if q.wake is not None), None)
                self._writing = following is not None
            if following is not None and following.wake is not None:
                following.wake.set()
            for item in batch:
                if item is not mine and item.wake is not None:
                    item.wake.set()
        for item in batch:
            if item.then is not None:
                item.then(item.event, item.error)

    def _write(self, batch: list[_Queued]) -> None:
        """Write a batch: each run's events in order, in one group per fencing token."""
        by_run: dict[str, list[_Queued]] = {}
        for item in batch:
            if item.lease is not None:
                by_run.setdefault(item.lease.run_id, []).append(item)
        for run_id, items in by_run.items():
            for token, grouped in itertools.groupby(items, key=lambda q: q.lease.token if q.lease else 0):
                group = list(grouped)
                try:
                    self._append_group(run_id, token, group)
                except Exception as exc:
                    error = self.write_error(exc)
                    for item in group:
                        if item.event is None:
                            item.error = error

    def _append_group(self, run_id: str, token: int, group: list[_Queued]) -> None:
        kinds = _kinds([q.kind for q in group])
        sent = Counter(self.table.by_operation)
        try:
            self._writable(f"event {kinds} of run {run_id}")
            head = self._head_for(run_id, token, kinds)
            first = head.count
            items = [(q.at, q.kind, q.step, q.encoded) for q in group]

            def written(upto: int, hashes: list[str]) -> None:
                for n in range(upto):
                    q = group[n]
                    if q.event is None:
                        q.event = Event(first + n + 1, run_id, q.at, q.kind, q.step, q.payload, hashes[n])

            self._write_events(run_id, head, items, kinds, written)
            self.groups += 1
            self.group_requests += Counter(self.table.by_operation) - sent
        except BaseException:
            self.forget(run_id)  # the next write reads the head first
            raise

    def _head_for(self, run_id: str, token: int, kinds: str) -> _Head:
        """The run's head as this process last left it, else as the table has it (and fenced
        with ``token``, if its token is lower: it was written by another store)."""
        with self._lock:
            cached = self._heads.get(run_id)
        if cached is not None and cached.token == token:
            return cached
        pk = run_key(run_id)
        found = self.table.get(pk, "head", projection="#token, #count, #hash, #events")
        if found is None:
            raise JournalWriteError(f"no run {run_id} in {self.url}: event {kinds} was not written")
        held = int(found.get("token", 0))
        if held < token:
            try:
                self.table.update(
                    pk, "head", "SET #token = :t", condition="#token < :t", values={":t": token}
                )
            except ConditionFailedError:
                held = int((self.table.get(pk, "head", projection="#token") or {}).get("token", 0))
            else:
                held = token
        if held != token:
            raise self._stale(run_id, token, kinds)
        texts = [str(t) for t in found.get("events", [])]
        head = _Head(token, int(found["count"]), str(found["hash"]), texts, sum(map(_size, texts)))
        with self._lock:
            self._heads[run_id] = head
        return head

    def _stale(self, run_id: str, token: int, kinds: str) -> LeaseLostError:
        return LeaseLostError(
            f"run {run_id}: its lease was taken over (fencing token {token} is stale); "
            f"event {kinds} was not written"
        )

    def _write_events(
        self,
        run_id: str,
        head: _Head,
        items: list[tuple[float, str, str | None, str]],
        kinds: str,
        written: Callable[[int, list[str]], None] | None = None,
    ) -> None:
        """Append events to a run's head, a segment's worth per UpdateItem, sealing the open
        segment when it is full; ``head`` follows. ``written(n, hashes)``: the first n are written."""
        hashes = chain.extend(head.hash, run_id, head.count, items)
        texts = [
            json.dumps([at, kind, step, encoded, digest], separators=(",", ":"))
            for (at, kind, step, encoded), digest in zip(items, hashes, strict=True)
        ]
        sizes = [_size(t) for t in texts]
        done = 0
        while done < len(texts):
            seal = False
            take = _fitting(sizes, done, SEGMENT_BYTES - head.open_bytes)
            if take < len(texts) - done and head.open:  # the rest does not fit: seal, start anew with it
                seal = True
                take = _fitting(sizes, done, SEGMENT_BYTES)
            take = max(take, 1)  # one event larger than a segment: alone (DynamoDB may refuse it)
            chunk = texts[done : done + take]
            self._write_chunk(run_id, head, chunk, hashes[done + take - 1], seal, kinds)
            done += take
            if written is not None:
                written(done, hashes)

    def _write_chunk(
        self, run_id: str, head: _Head, chunk: list[str], new_hash: str, seal: bool, kinds: str
    ) -> None:
        pk = run_key(run_id)
        before, before_hash = head.count, head.hash
        after = before + len(chunk)
        values: dict[str, object] = {":n1": before, ":n2": after, ":h2": new_hash, ":new": chunk}
        condition = "#count = :n1"
        if head.token is not None:
            condition += " AND #token = :t"
            values[":t"] = head.token
        if seal:
            sk = f"seg#{before - len(head.open) + 1:010d}#{before:010d}"
            put_idempotent(self.table, {"pk": pk, "sk": sk, "events": head.open})
            update = "SET #events = :new, #segments = list_append(#segments, :seg), #count = :n2, #hash = :h2"
            values[":seg"] = [sk]
        else:
            update = "SET #events = list_append(#events, :new), #count = :n2, #hash = :h2"
        for attempt in (1, 2):
            try:
                self.table.update(pk, "head", update, condition=condition, values=values)
                break
            except (ConditionFailedError, UnknownOutcomeError) as exc:
                if self._settle(run_id, head.token, (before, before_hash), (after, new_hash), kinds, exc):
                    break
                if isinstance(exc, ConditionFailedError) or attempt == 2:
                    raise self._changed(run_id, head.token, kinds) from exc
        if seal:
            head.open, head.open_bytes = [], 0
        head.open = head.open + chunk
        head.open_bytes += sum(map(_size, chunk))
        head.count, head.hash = after, new_hash

    def _settle(
        self,
        run_id: str,
        token: int | None,
        before: tuple[int, str],
        after: tuple[int, str],
        kinds: str,
        error: FailoverError,
    ) -> bool:
        """Whether a write to the head whose outcome is unknown (or whose condition failed, maybe
        after an applied attempt) was written: True if the head is as it would leave it, False
        if it is as it was; LeaseLostError if the lease was taken over or another writer wrote."""
        try:
            found = self.table.get(run_key(run_id), "head", projection="#count, #hash, #token")
        except JournalError as exc:
            raise JournalWriteError(f"{error}; and reading it back failed: {exc}") from error
        if found is None:
            raise JournalWriteError(f"no run {run_id} in {self.url}: event {kinds} was not written")
        now = (int(found["count"]), str(found["hash"]))
        if now == after:
            return True
        if token is not None and int(found.get("token", 0)) != token:
            raise self._stale(run_id, token, kinds) from None
        if now == before:
            return False
        raise self._changed(run_id, token, kinds) from None

    def _changed(self, run_id: str, token: int | None, kinds: str) -> FailoverError:
        if token is None:
            return RefusedError(f"run {run_id} was written to while its events were imported into {self.url}")
        return LeaseLostError(
            f"run {run_id}: another process wrote to it with the same lease (fencing token {token}); "
            f"event {kinds} was not written"
        )

    def import_events(self, run_id: str, events: list[Event]) -> ChainHead:
        """Write a copied run's events (``state copy``) into a run that has none yet."""
        self._writable(f"the events of run {run_id}")
        found = self._counted(run_id)
        if int(found["count"]):
            raise RefusedError(f"run {run_id} already has {found['count']} events in {self.url}")
        head = _Head(None, 0, chain.GENESIS, [], 0)
        items = [(e.at, e.kind, e.step, chain.encode(e.data)) for e in events]
        self.forget(run_id)
        self._write_events(run_id, head, items, _kinds([e.kind for e in events]))
        return ChainHead(head.count, head.hash)

    def forget(self, run_id: str) -> None:
        """Read the run's head from the table before writing to it next."""
        with self._lock:
            self._heads.pop(run_id, None)


def _fitting(sizes: list[int], start: int, room: int) -> int:
    """How many of ``sizes`` from ``start`` fit in ``room``."""
    n, used = 0, 0
    for size in itertools.islice(sizes, start, None):
        if used + size > room:
            break
        used += size
        n += 1
    return n


def _size(text: str) -> int:
    return len(text.encode("utf-8")) + 4  # and the list element's overhead, generously


def _kinds(kinds: list[str]) -> str:
    return ", ".join(sorted({repr(k) for k in kinds}))
