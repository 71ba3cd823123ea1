"""The state store contract: where runs, their events, their plans and their leases live.

Two backends keep it: a directory (``state/local.py``: SQLite, embedded, one host) and a DynamoDB
table (``state/dynamo.py``: shared by a team, in one region or a global table). The engine,
``status``, ``resume``, ``rollback``, ``report``, ``history``, ``audit`` and ``state copy`` see
only this Protocol; ``tests/test_state_contract.py`` holds both backends to it.

The contract
------------
Runs
    ``create_run`` records a run of a plan and keeps the plan (``load_plan`` gives it back, exactly,
    on any machine). ``runs`` lists runs oldest first, or those of one plan fingerprint: "this plan
    was already applied" is answered from here, for everyone who shares the store.
Events (the journal)
    A run's state is never stored: it is replayed from its events. ``append`` writes one event
    durably and returns it, and only if the writer's lease still holds its fencing token: a run whose
    lease was taken over cannot write another event (``LeaseLostError``, nothing written). ``post``
    queues an event no side effect waits for; it is written with the next ``append``, ``flush`` or
    renewal, in order (group commit: many events per write). A write that fails raises
    ``JournalWriteError`` and leaves nothing behind; a write whose outcome is unknown (a timeout) is
    settled by reading the run's chain head before anything else is written.
The chain
    Each event carries ``hash`` = sha256 of the previous hash and the event (``state/chain.py``),
    and the run's record keeps the head (event count and last hash) outside the events, so an
    edited, deleted or truncated event is caught by ``audit``; reports and JUnit files carry it too.
Leases
    ``acquire`` leases resources (cloud resource identities) for a run with a fencing token from an
    atomic counter; a live lease of another run on any of them refuses the whole request at once
    (``LeaseHeldError`` naming the holder: run, host, pid, cloud caller, since, until).
    ``take_over`` lets a run take back its own lease from a process that is gone: known dead on this
    host (``gone``), or whose lease was not renewed for a full lease duration, as this process
    measures it on its own monotonic clock where the backend is shared between hosts. Once taken,
    the old holder's appends fail. ``renew`` (the heartbeat) extends a lease and commits what was
    posted; ``release`` frees it; ``holder`` says who holds any of some resources.
Records
    Small named JSON documents other features keep beside the runs (a watcher's firings, the
    site a runbook's services are active in), written with an optimistic version check.
Schema
    The store carries a schema version; a failover that finds a newer one refuses to write.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from failover.plan import Plan
from failover.state.events import Event

SCHEMA_VERSION = 2
"""The store's layout; a failover that finds a newer one refuses to write."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lease: which resources, by whom, with which fencing token, until when (the holder's
    clock: for people to read, never compared across hosts)."""

    run_id: str
    owner: str
    token: int
    resources: tuple[str, ...]
    expires_at: float
    version: str = ""  # the record version number of the last renewal (shared backends)


class Holder(NamedTuple):
    """Who holds a lease on a resource."""

    resource: str
    run_id: str
    owner: str
    since: float
    until: float
    caller: str | None = None

    def describe(self) -> str:
        by = f", as {self.caller}" if self.caller else ""
        return (
            f"{self.resource} is locked by run {self.run_id} ({self.owner}{by}) since "
            f"{stamp(self.since)}, lease until {stamp(self.until)}"
        )


class RunRow(NamedTuple):
    """A run as the store lists it."""

    run_id: str
    fingerprint: str
    runbook: str
    created_at: float


class ChainHead(NamedTuple):
    """The end of a run's hash chain: how many events, and the last one's hash."""

    length: int  # how many events
    hash: str


@dataclass(frozen=True, slots=True)
class Record:
    """A named record and the version it was read at (for a conditional write)."""

    value: Mapping[str, object]
    version: int = 0


Then = Callable[[Event | None, BaseException | None], None]


@runtime_checkable
class StateStore(Protocol):
    """Runs, events, plans, leases and records; see the module docstring for the contract."""

    url: str  # where it is: a directory, or dynamodb://TABLE?region=REGION
    work_dir: Path  # where providers keep local working files (the sandbox's world, say)
    read_only: bool

    def caller(self) -> str | None:
        """The cloud identity this process acts as, where the backend knows it (an STS ARN)."""
        ...

    # runs, plans, events
    def create_run(self, run_id: str, plan: Plan, *, created_at: float | None = None) -> None: ...
    def fingerprint_of(self, run_id: str) -> str: ...
    def run_plan(self, run_id: str) -> Plan: ...
    def load_plan(self, fingerprint: str) -> Plan: ...
    def runs(self, fingerprint: str | None = None) -> list[RunRow]: ...
    def events(self, run_id: str) -> list[Event]: ...
    def head(self, run_id: str) -> ChainHead: ...
    def append(
        self, lease: Lease, kind: str, step: str | None = None, data: Mapping[str, object] | None = None
    ) -> Event: ...
    def post(
        self, lease: Lease, kind: str, step: str | None, data: Mapping[str, object] | None, then: Then
    ) -> None: ...
    def flush(self) -> None: ...
    def flush_queued(self) -> None: ...
    def write_error(self, error: BaseException) -> BaseException: ...
    def import_events(self, run_id: str, events: list[Event]) -> ChainHead:
        """Write a copied run's events as they are (``state copy``): only into a run with none yet."""
        ...

    # leases
    def acquire(
        self,
        run_id: str,
        resources: tuple[str, ...],
        ttl: float,
        *,
        take_over: bool = False,
        gone: Callable[[str], bool] | None = None,
    ) -> Lease: ...
    def holder(self, resources: tuple[str, ...]) -> Holder | None: ...
    def renew(self, lease: Lease, ttl: float) -> Lease: ...
    def release(self, lease: Lease) -> None: ...

    # records
    def get_record(self, name: str) -> Record | None: ...
    def put_record(self, name: str, value: Mapping[str, object], *, version: int = 0) -> Record:
        """Write a record if it is still at ``version`` (0: it must not exist); else RefusedError."""
        ...


def this_host() -> str:
    """The host name recorded in leases: ``FAILOVER_HOST`` if set (a runner that wants a stable
    name), else the machine's."""
    return os.environ.get("FAILOVER_HOST") or socket.gethostname()


def this_owner() -> str:
    """``host:pid`` of this process, as recorded in leases."""
    return f"{this_host()}:{os.getpid()}"


def owner_is_dead_here(owner: str) -> bool:
    """True when ``owner`` is a process of this host that no longer runs."""
    host, _, pid = owner.rpartition(":")
    if host != this_host() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
