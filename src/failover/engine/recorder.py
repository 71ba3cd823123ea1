"""Writing a run's events: in order, fenced by the lease, and told to people only once written.

Events that a side effect waits for are durable before :meth:`Recorder.emit` returns; the others
are queued and become durable with the next of those, in order. When a write fails or the lease
is lost, the recorder remembers why and every later emit raises :class:`StoppedError`: nothing more
starts. A worker writes a step's events through a :class:`Task`; once the run gives up on that
task (its deadline passed, a second Ctrl-C), whatever the worker does later reaches neither the
journal nor the screen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from failover.engine.lease import LeaseKeeper
from failover.errors import FailoverError, JournalWriteError, LeaseLostError
from failover.plan import Plan
from failover.redact import PRE_REDACTED, redact
from failover.state.events import Event
from failover.state.store import StateStore

ENDING = frozenset(
    {"step_succeeded", "step_failed", "step_skipped", "step_compensated", "compensation_failed"}
)
DURABLE = frozenset(
    {
        "run_started",
        "run_resumed",
        "preflight_passed",
        "approval_requested",  # a person may take a while: let `failover status` see all before
        "apply_started",
        "compensation_started",
        "run_interrupted",
        "run_finished",
    }
)


_LEVELS = {  # of the log line of each kind of event; info for the others
    "apply_started": "debug",
    "attempt_failed": "warning",
    "step_failed": "warning",
    "compensation_failed": "error",
    "run_halted": "error",
    "run_interrupted": "warning",
}
_LOG_FIELDS = frozenset({"event", "step", "site", "run_id", "runbook", "level", "timestamp"})


class StoppedError(Exception):
    """Internal: the run may not start anything more (its lease was lost, or a write failed)."""


class MutedError(Exception):
    """Internal: the run gave up on this task; its worker stops quietly."""


class Task:
    """One worker's hold on a step (its run, or its compensation): it may write the step's
    events, and one that ends it, until the run gives up on it."""

    def __init__(self, recorder: Recorder, step: str) -> None:
        self.recorder = recorder
        self.step = step
        self.lock = threading.Lock()  # an event is checked and queued at once: the journal's order
        self.ended = False
        self.cancelled = False
        self.deadline: float | None = None  # once the step started, on the run's clock
        self.applying = False  # its change may be under way (apply_started is journaled)

    def emit(self, kind: str, /, **data: object) -> None:
        """Journal an event of the step; MutedError once the run gave up on the task."""
        with self.lock:
            if self.cancelled or (kind in ENDING and self.ended):
                raise MutedError(self.step)
            self.ended = self.ended or kind in ENDING
            self.recorder.emit(kind, self.step, **data)
            self.applying = self.applying or kind == "apply_started"

    def give_up(self, kind: str | None, error: str = "", **data: object) -> bool:
        """End the task on its worker's behalf and mute the worker, journaling ``kind`` with
        ``error`` (nothing when None: a step that had not started); False, with nothing written,
        when the worker had ended it already. A step whose change was under way is in doubt."""
        with self.lock:
            if self.ended:
                return False
            self.ended = self.cancelled = True
            if kind is not None and self.recorder.failure is None:
                if self.applying:
                    error += "; its change was under way and may still happen (in doubt)"
                    data["in_doubt"] = True
                self.recorder.emit(kind, self.step, error=error, **data)
            return True


class Recorder:
    """The run's only way to the journal, the log and the live view."""

    def __init__(
        self,
        journal: StateStore,
        keeper: LeaseKeeper,
        plan: Plan,
        log: Any,
        on_event: Callable[[Event], None] | None,
    ) -> None:
        self.journal = journal
        self.keeper = keeper
        self.sites = {s.id: s.site for s in plan.steps}  # for the log lines
        self.check_sites = {c.id: c.site for c in plan.preflight}
        self.log = log
        self.on_event = on_event
        self.lock = threading.Lock()
        self.failure: FailoverError | None = None  # why nothing more may start
        caller = journal.caller()
        self.identity: dict[str, object] = {  # who acts: journaled with the run's start and approvals
            "owner": keeper.lease.owner,
            **({"caller": caller} if caller else {}),
        }

    def task(self, step: str) -> Task:
        return Task(self, step)

    def emit(self, kind: str, step: str | None = None, /, **data: object) -> Event | None:
        """Journal an event (the written event when it is durable at once, else None);
        StoppedError when the run may not start anything more."""
        if self.failure is not None:
            raise StoppedError
        return self._write(kind, step, data)

    def publish(self) -> None:
        """Commit what is queued, so that the live view, the log and `failover status` see it
        now rather than with the next event a side effect waits for."""
        try:
            self.journal.flush_queued()
        except JournalWriteError as exc:
            self.fail(exc)

    def fail(self, error: FailoverError) -> None:
        """Nothing more may start, because of ``error`` (the first reason is kept)."""
        with self.lock:
            if self.failure is None:
                self.failure = error
                self.log.error("run_stopping", reason=str(error))

    def _write(self, kind: str, step: str | None, data: Mapping[str, object]) -> Event | None:
        payload = redact(data)
        if kind not in DURABLE:
            self.journal.post(self.keeper.lease, kind, step, payload, self._posted)
            return None
        try:
            event = self.journal.append(self.keeper.lease, kind, step, payload)
        except (LeaseLostError, JournalWriteError) as exc:
            self.fail(exc)
            raise StoppedError from exc
        self._written(event)
        if self.failure is not None:  # an event queued before this one could not be written
            raise StoppedError
        return event

    def _posted(self, event: Event | None, error: BaseException | None) -> None:
        if error is not None:
            failure = self.journal.write_error(error)
            self.fail(failure if isinstance(failure, FailoverError) else JournalWriteError(str(failure)))
        elif event is not None:
            self._written(event)

    def _written(self, event: Event) -> None:
        if event.step is not None:
            site = self.sites.get(event.step)
        else:  # a preflight check's answer says where it was asked
            site = self.check_sites.get(str(event.data.get("check")))
        data = {f"{k}_" if k in _LOG_FIELDS else k: v for k, v in event.data.items() if k != "before"}
        log = getattr(self.log, _LEVELS.get(event.kind, "info"))
        log(event.kind, step=event.step, site=site, **data, **{PRE_REDACTED: True})
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a live view that breaks must not break the run
                self.log.exception("on_event_failed", kind=event.kind)
