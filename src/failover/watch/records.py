"""What the watchers of a runbook keep in its state store, one record per trigger: the trigger's
memory (so a watcher that restarts keeps its cooldown), whether a person disarmed it, and its
incidents (first bad signal, firing, run, cutover, recovery: MTTD and MTTR).

Every write is conditional on the version read: of two watchers on one state, one wins a firing
and the other finds it fired.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from failover.errors import RefusedError
from failover.state.store import StateStore
from failover.watch.state import Memory

KEEP_INCIDENTS = 50
WRITE_TRIES = 5


def record_name(runbook: str, trigger: str) -> str:
    return f"trigger:{runbook}:{trigger}"


@dataclass
class TriggerRecord:
    """One trigger's record, as read (``version``) or about to be written."""

    memory: Memory = field(default_factory=Memory)
    armed: bool = True
    disarmed: dict[str, Any] | None = None  # by, reason, at
    state: str = "armed"
    evaluated_at: float | None = None
    incidents: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0

    @classmethod
    def read(cls, store: StateStore, name: str) -> TriggerRecord:
        found = store.get_record(name)
        if found is None:
            return cls()
        value = dict(found.value)
        known = {f.name for f in fields(Memory)}
        kept = value.get("memory")
        memory = Memory(**{k: v for k, v in (kept if isinstance(kept, dict) else {}).items() if k in known})
        return cls(
            memory=memory,
            armed=bool(value.get("armed", True)),
            disarmed=value.get("disarmed"),  # type: ignore[arg-type]
            state=str(value.get("state", "armed")),
            evaluated_at=value.get("evaluated_at"),  # type: ignore[arg-type]
            incidents=list(value.get("incidents") or []),  # type: ignore[call-overload]
            version=found.version,
        )

    def value(self) -> dict[str, object]:
        return {
            "memory": asdict(self.memory),
            "armed": self.armed,
            "disarmed": self.disarmed,
            "state": self.state,
            "evaluated_at": self.evaluated_at,
            "incidents": self.incidents[-KEEP_INCIDENTS:],
        }

    def open_incident(self) -> dict[str, Any] | None:
        """The incident still in hand: fired, and not yet recovered (nor closed by a person)."""
        last = self.incidents[-1] if self.incidents else None
        return (
            last if last is not None and last.get("recovered_at") is None and not last.get("closed") else None
        )


def update(
    store: StateStore, name: str, change: Callable[[TriggerRecord], TriggerRecord | None]
) -> TriggerRecord:
    """Read the record, ``change`` it and write it back if nobody wrote it in between; else read
    it again and change that. ``change`` returns None to leave it as read."""
    for _ in range(WRITE_TRIES):
        record = TriggerRecord.read(store, name)
        changed = change(record)
        if changed is None:
            return record
        try:
            written = store.put_record(name, changed.value(), version=record.version)
        except RefusedError:
            continue  # another watcher wrote it first: decide again on what it wrote
        changed.version = written.version
        return changed
    raise RefusedError(f"record {name}: written by others {WRITE_TRIES} times in a row; try again")


def set_armed(
    store: StateStore, runbook: str, trigger: str, armed: bool, by: str, reason: str
) -> TriggerRecord:
    """Arm or disarm a trigger for every watcher of the state (recorded, with who and why)."""

    def change(record: TriggerRecord) -> TriggerRecord:
        record.armed = armed
        record.disarmed = None if armed else {"by": by, "reason": reason, "at": time.time()}
        record.state = "armed" if armed else "disarmed"
        return record

    return update(store, record_name(runbook, trigger), change)


def incident_figures(incident: Mapping[str, Any]) -> dict[str, float | None]:
    """Time to detect (first bad signal to firing), to decide (firing to the run's start), to
    cut over (run start to its last cutover) and to recover (first bad signal to the target's
    guard passing after the cutover), in seconds."""

    def between(a: str, b: str) -> float | None:
        x, y = incident.get(a), incident.get(b)
        return round(y - x, 3) if isinstance(x, int | float) and isinstance(y, int | float) else None

    return {
        "time_to_detect_s": between("first_bad_at", "fired_at"),
        "time_to_decide_s": between("fired_at", "run_started_at"),
        "time_to_cutover_s": between("run_started_at", "cutover_at"),
        "time_to_recover_s": between("first_bad_at", "recovered_at"),
    }
