"""Whether a run that the journal says is running still has a process behind it, and the exact
next command: the journal cannot tell a live run from one whose process was killed, but the
lease can (this host: the owner's process; anywhere: a lease its owner stopped renewing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from failover.state.events import RESUMABLE, RunState
from failover.state.store import Holder, owner_is_dead_here, stamp


@dataclass(frozen=True)
class Liveness:
    label: str  # what to add to the journaled status ("" when it says it all)
    why: str  # one sentence for the operator ("" when nothing needs saying)
    next: list[str] = field(default_factory=list)  # the commands to type, in order of preference

    def doc(self) -> dict[str, object]:
        return {"label": self.label, "why": self.why, "next": self.next}


def assess(run_id: str, run: RunState, held: Holder | None, now: float, state: str | None) -> Liveness:
    """How ``run`` stands, given the lease ``held`` on its resources (None: none held for it);
    ``state`` is the --state the next commands need (None: the default one)."""
    where = f" --state {state}" if state else ""
    again = [f"failover resume {run_id}{where}", f"failover rollback {run_id}{where}"]
    if run.sandbox:
        if run.finished and run.status not in RESUMABLE:
            return Liveness("", "")
        return Liveness(
            "sandbox drill" if run.finished else "sandbox drill, its process is gone",
            "a sandbox drill's clouds ended with its process: it cannot be resumed or rolled back",
            ["failover drill RUNBOOK --from A --to B --sandbox ... (drill it again)"],
        )
    if run.finished:
        if run.status in RESUMABLE:
            return Liveness("", f"it stopped ({run.status}) and can be taken up again", again)
        return Liveness("", "")
    if held is None:
        return Liveness(
            "no process holds it",
            "the journal ends mid-run and no process holds its lease: the process that ran it is gone",
            again,
        )
    if owner_is_dead_here(held.owner):
        return Liveness(
            "its process is gone",
            f"its process {held.owner} on this host is gone (killed or crashed): nothing runs it",
            again,
        )
    if held.until < now:
        return Liveness(
            "its lease expired",
            f"its lease expired at {stamp(held.until)}: {held.owner} stopped renewing it (dead, stopped or "
            "cut off); resume takes it over once the lease is seen unchanged for a full lease",
            again,
        )
    return Liveness("", "")
