"""Auditing a run's journal, and copying runs (their plans and events) from one store to another,
the chain verified on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from failover.errors import JournalError
from failover.state.chain import Verdict, verify
from failover.state.store import ChainHead, StateStore


def audit(store: StateStore, run_id: str, expected_head: str | None = None) -> Verdict:
    """Verify a run's hash chain against its events, its record and (if given) a report's head."""
    store.fingerprint_of(run_id)  # JournalError naming the runs there are, for an unknown run
    return verify(run_id, store.events(run_id), store.head(run_id), expected_head)


@dataclass(frozen=True)
class Copied:
    """What became of one run: copied, already there (same chain), or refused and why."""

    run_id: str
    outcome: str  # "copied", "present" or "refused"
    head: ChainHead
    why: str = ""


def copy_runs(source: StateStore, target: StateStore, run_ids: list[str] | None = None) -> Iterator[Copied]:
    """Copy runs (all, or ``run_ids``) with their plans and events, oldest first. A run whose
    chain is broken at the source is not copied; a run the target has already is left as it is
    when its chain is the same, refused otherwise; a copy whose chain comes out different from the
    source's is an error (JournalError)."""
    rows = source.runs()
    if run_ids is not None:
        known = {r.run_id for r in rows}
        missing = [r for r in run_ids if r not in known]
        if missing:
            raise JournalError(f"no run {missing[0]!r} in {source.url}")
        rows = [r for r in rows if r.run_id in set(run_ids)]
    there = {r.run_id for r in target.runs()}
    for row in rows:
        verdict = audit(source, row.run_id)
        head = ChainHead(verdict.count, verdict.head)
        if not verdict.intact:
            yield Copied(
                row.run_id, "refused", head, f"its chain is broken at {source.url}: {verdict.reason}"
            )
            continue
        if row.run_id in there:
            theirs = target.head(row.run_id)
            if tuple(theirs) == tuple(head):
                yield Copied(row.run_id, "present", head)
            else:
                why = f"{target.url} has another run {row.run_id} (its chain ends in {theirs.hash[:16]}...)"
                yield Copied(row.run_id, "refused", head, why)
            continue
        target.create_run(row.run_id, source.run_plan(row.run_id), created_at=row.created_at)
        written = target.import_events(row.run_id, source.events(row.run_id))
        if tuple(written) != tuple(head):
            raise JournalError(
                f"run {row.run_id}: the copy at {target.url} ends in {written.hash[:16]}... after "
                f"{written.length} events, the source in {head.hash[:16]}... after {head.length}"
            )
        yield Copied(row.run_id, "copied", head)
