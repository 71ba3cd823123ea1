"""The leases of the DynamoDB store; the table's layout is in ``state/dynamo.py``.

Leases
    A lock item per resource, taken with ``attribute_not_exists``; each acquire and renewal writes
    a fresh record version number (``rvn``). No clock is compared between hosts (``since`` and
    ``until`` are for people). A lock of another run is never taken, renewed or not: unlike the
    directory store, a run that died keeps its resources until it is resumed or rolled back
    (``failover resume RUN`` takes its lease over). ``take_over`` takes a lock of the same run at
    once when its holder is ``gone``, else after watching it for one lease duration (its
    ``ttl_s``) on this process's monotonic clock without seeing its ``rvn`` change. Acquiring
    then raises the run head's ``token``, so the previous holder's next append fails. A released
    lease's holder could still append until another acquire fences the run; the engine does not.
    Lock writes whose outcome is unknown are settled as appends are (``state/dynamo_journal.py``),
    by their ``rvn``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from failover.errors import LeaseHeldError, LeaseLostError
from failover.providers.aws.statetable import ConditionFailedError, Item, StateTable, UnknownOutcomeError
from failover.state.dynamo_journal import run_key
from failover.state.store import Holder, Lease, owner_is_dead_here, this_owner


def _lock_key(resource: str) -> str:
    return f"lock#{resource}"


class DynamoLocks:
    """The leases of a DynamoDB store; usable from many threads."""

    def __init__(
        self,
        table: StateTable,
        *,
        clock: Callable[[], float],
        writable: Callable[[str], None],
        caller: Callable[[], str | None],
    ) -> None:
        """``writable(what)`` raises when the store is read-only; ``caller()`` is the cloud
        identity recorded in the locks."""
        self.table = table
        self.clock = clock
        self._writable = writable
        self._caller = caller
        self._lock = threading.Lock()
        self._tokens: dict[str, int] = {}  # the tokens this store's acquire handed out, by run

    def token(self, run_id: str) -> int:
        """The newest fencing token ``acquire`` handed ``run_id`` here (0: none)."""
        with self._lock:
            return self._tokens.get(run_id, 0)

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

        Any lock of another run refuses the whole request at once. With ``take_over``, a lock of
        the same run is taken once ``gone(owner)`` says its process is gone (by default: known
        dead on this host), or once it was not renewed while watched for its lease duration."""
        self._writable(f"the lease of run {run_id}")
        owner = this_owner()
        dead = gone or owner_is_dead_here
        wanted = sorted(set(resources))
        keys = {r: (_lock_key(r), "lock") for r in wanted}
        found = self.table.get_many(list(keys.values()))
        held = {r: found[keys[r]] for r in wanted if keys[r] in found}
        for resource, lock in held.items():
            if not (take_over and lock.get("run_id") == run_id):
                raise LeaseHeldError(_holder(resource, lock).describe())
        alive = {r: lock for r, lock in held.items() if not dead(str(lock.get("owner")))}
        for resource in self._watch(alive):
            del held[resource]  # released while watched
        caller = self._caller()
        token = self._next_token()
        rvn = uuid.uuid4().hex
        now = float(self.clock())
        taken: list[str] = []
        try:
            for resource in wanted:
                item: Item = {
                    "pk": keys[resource][0],
                    "sk": "lock",
                    "run_id": run_id,
                    "owner": owner,
                    "token": token,
                    "rvn": rvn,
                    "ttl_s": float(ttl),
                    "since": now,
                    "until": now + ttl,
                }
                if caller:
                    item["caller"] = caller
                self._take(resource, item, held.get(resource))
                taken.append(resource)
            self._fence(run_id, token)
        except BaseException:
            for resource in taken:
                self._drop(resource, token)
            raise
        with self._lock:
            self._tokens[run_id] = max(token, self._tokens.get(run_id, 0))
        return Lease(run_id, owner, token, resources, now + ttl, version=rvn)

    def _next_token(self) -> int:
        for attempt in (1, 2):
            try:
                found = self.table.update(
                    "#counter", "fence", "ADD #value :one", values={":one": 1}, updated=True
                )
                return int(found["value"])
            except UnknownOutcomeError:  # tokens need only grow: one skipped is no harm
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _watch(self, locks: dict[str, Item]) -> list[str]:
        """Watch locks, each for its own lease duration (``ttl_s``) on this process's monotonic
        clock: LeaseHeldError as soon as one is renewed (its holder is alive); else the resources
        whose locks were released meanwhile."""
        left = dict(locks)
        released: list[str] = []
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            durations = {r: float(lock.get("ttl_s", 0)) for r, lock in left.items()}
            for resource in [r for r, d in durations.items() if d <= elapsed]:
                del left[resource]  # not renewed for a whole lease duration
                del durations[resource]
            if not left:
                return released
            poll = min(max(0.01, min(1.0, d / 10)) for d in durations.values())
            time.sleep(min(poll, min(durations.values()) - elapsed))
            found = self.table.get_many([(_lock_key(r), "lock") for r in left])
            for resource, lock in list(left.items()):
                now = found.get((_lock_key(resource), "lock"))
                if now is None:
                    released.append(resource)
                    del left[resource]
                elif now.get("rvn") != lock.get("rvn"):
                    raise LeaseHeldError(
                        f"{_holder(resource, now).describe()}: it was renewed while this process "
                        f"watched it for up to {durations[resource]:g}s, so its holder is alive"
                    )

    def _take(self, resource: str, item: Item, observed: Item | None) -> None:
        """Put a lock item where there was none, or over the lock ``observed`` unchanged."""
        try:
            if observed is None:
                self._put_lock(item, "attribute_not_exists(#pk)", {})
            else:
                self._put_lock(item, "#rvn = :rvn", {":rvn": observed.get("rvn")})
        except ConditionFailedError:
            now = self.table.get(_lock_key(resource), "lock")
            holder = f"{resource} is locked" if now is None else _holder(resource, now).describe()
            raise LeaseHeldError(f"{holder}: it was renewed or taken just now") from None

    def _put_lock(self, item: Item, condition: str, values: dict[str, object]) -> None:
        """Put a lock item; a write whose outcome is unknown is settled by its ``rvn``."""
        try:
            self.table.put(item, condition=condition, values=values)
        except UnknownOutcomeError:
            now = self.table.get(str(item["pk"]), "lock", projection="#rvn, #token")
            if now is None or now.get("rvn") != item["rvn"] or now.get("token") != item["token"]:
                raise

    def _fence(self, run_id: str, token: int) -> None:
        """Raise the run head's token (if the run exists): its previous holder's appends fail."""
        for attempt in (1, 2):
            try:
                self.table.update(
                    run_key(run_id),
                    "head",
                    "SET #token = :t",
                    condition="attribute_exists(#pk) AND (attribute_not_exists(#token) OR #token < :t)",
                    values={":t": token},
                )
                return
            except ConditionFailedError:
                return  # no run yet (create_run writes the token), or fenced already
            except UnknownOutcomeError:
                if attempt == 2:
                    raise

    def _drop(self, resource: str, token: int) -> None:
        """Delete a lock if it still has ``token`` (nothing if another has taken it)."""
        for attempt in (1, 2):
            try:
                self.table.delete(_lock_key(resource), "lock", condition="#token = :t", values={":t": token})
                return
            except ConditionFailedError:
                return
            except UnknownOutcomeError:
                if attempt == 2:
                    raise

    def holder(self, resources: tuple[str, ...]) -> Holder | None:
        """Who holds a lock on any of ``resources`` (the first, by resource)."""
        ordered = sorted(set(resources))
        found = self.table.get_many([(_lock_key(r), "lock") for r in ordered])
        for resource in ordered:
            item = found.get((_lock_key(resource), "lock"))
            if item is not None:
                return _holder(resource, item)
        return None

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """Extend the lease with a new record version number (the heartbeat); LeaseLostError if it
        is no longer held."""
        self._writable(f"the renewal of run {lease.run_id}'s lease")
        rvn = uuid.uuid4().hex
        now = float(self.clock())
        values: dict[str, object] = {
            ":rvn": rvn,
            ":until": now + ttl,
            ":ttl": float(ttl),
            ":r": lease.run_id,
            ":t": lease.token,
        }
        lost = LeaseLostError(f"run {lease.run_id}: lease lost before renewal (token {lease.token})")
        for resource in sorted(set(lease.resources)):
            pk = _lock_key(resource)
            try:
                self.table.update(
                    pk,
                    "lock",
                    "SET #rvn = :rvn, #until = :until, #ttl_s = :ttl",
                    condition="#run_id = :r AND #token = :t",
                    values=values,
                )
            except ConditionFailedError:
                raise lost from None
            except UnknownOutcomeError:
                found = self.table.get(pk, "lock", projection="#rvn, #run_id, #token")
                if found is None or found.get("token") != lease.token:
                    raise lost from None
                if found.get("rvn") != rvn:
                    raise
        return Lease(lease.run_id, lease.owner, lease.token, lease.resources, now + ttl, version=rvn)

    def release(self, lease: Lease) -> None:
        """Free the lease's locks (those it still holds)."""
        self._writable(f"the release of run {lease.run_id}'s lease")
        for resource in sorted(set(lease.resources)):
            self._drop(resource, lease.token)


def _holder(resource: str, item: Item) -> Holder:
    caller = item.get("caller")
    return Holder(
        resource,
        str(item.get("run_id")),
        str(item.get("owner")),
        float(item.get("since", 0)),
        float(item.get("until", 0)),
        str(caller) if caller else None,
    )
