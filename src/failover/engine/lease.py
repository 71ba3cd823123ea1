"""The run's lease, kept alive by a heartbeat and trusted only as long as this process can know.

Other processes see a lease expire on the journal's clock; this process cannot see that clock
move while it is stopped (SIGSTOP, a frozen VM, a laptop lid). So it trusts its lease only
until a local monotonic deadline: the start of the last successful renewal plus the TTL, minus a
margin. Past it, :meth:`LeaseKeeper.check` raises, and no side effect starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from failover.errors import LeaseLostError
from failover.state.store import Lease, StateStore

log = structlog.get_logger("failover.engine")


class LeaseKeeper:
    """Holds a lease: renews it every third of its TTL, retries a renewal that failed to be
    written until the lease would lapse, and says whether it may still be trusted."""

    def __init__(
        self, journal: StateStore, lease: Lease, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.journal = journal
        self.lease = lease
        self.ttl = ttl
        self.clock = clock
        self.margin = max(0.5, ttl / 5)
        self.valid_until = clock() + ttl - self.margin  # acquired just before this was made
        self.lost: LeaseLostError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="failover-heartbeat", daemon=True)

    @property
    def run_id(self) -> str:
        return self.lease.run_id

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(1.0, self.ttl))

    def check(self) -> None:
        """Raise LeaseLostError unless the lease is still ours, as far as this process can know."""
        if self.lost is not None:
            raise self.lost
        if self.clock() > self.valid_until:
            self.lost = LeaseLostError(
                f"run {self.run_id}: its lease may have lapsed (not renewed for "
                f"{self.ttl - self.margin:g}s); it stops before starting anything else"
            )
            raise self.lost

    def release(self) -> None:
        """Give the lease back (when the run ends and it was never lost)."""
        if self.lost is None:
            self.journal.release(self.lease)

    def _beat(self) -> None:
        every = max(0.05, self.ttl / 3)
        retry = max(0.05, min(1.0, self.ttl / 20))
        wait = every
        while not self._stop.wait(wait) and self.lost is None:
            began = self.clock()
            try:
                self.lease = self.journal.renew(self.lease, self.ttl)  # also commits queued events
            except LeaseLostError as exc:
                self.lost = exc
                log.error("lease_lost", run_id=self.run_id, reason=str(exc))
                return
            except Exception as exc:  # the disk, the file system: try again while the lease holds
                if self.clock() + retry > self.valid_until:
                    self.lost = LeaseLostError(f"run {self.run_id}: its lease could not be renewed: {exc}")
                    log.error("lease_lost", run_id=self.run_id, reason=str(exc))
                    return
                log.warning("lease_renewal_failed", run_id=self.run_id, error=str(exc), retry_in=retry)
                wait = retry
                continue
            self.valid_until = began + self.ttl - self.margin
            wait = every
