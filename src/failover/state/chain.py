"""The journal's hash chain: each event carries the hash of the one before it, and the run's record
keeps the head, so an event edited, deleted, reordered or cut off the end is caught by ``audit``.

An event's hash is sha256 over the previous hash and the event's position, time, kind, step and
data exactly as stored (its canonical JSON), so a run copied between backends keeps its hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from failover.state.events import Event

GENESIS = "0" * 64


def encode(data: Mapping[str, object]) -> str:
    """An event's data as it is stored and hashed."""
    return json.dumps(dict(data), sort_keys=True, default=str, separators=(",", ":"))


def link(prev: str, run_id: str, n: int, at: float, kind: str, step: str | None, encoded: str) -> str:
    """The hash of the ``n``-th event (from 0) of a run, after the event hashed ``prev``."""
    body = json.dumps([prev, run_id, n, repr(float(at)), kind, step, encoded], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def extend(
    prev: str, run_id: str, first: int, items: Sequence[tuple[float, str, str | None, str]]
) -> list[str]:
    """Hashes of consecutive events (at, kind, step, encoded data) from position ``first``."""
    hashes = []
    for n, (at, kind, step, encoded) in enumerate(items, start=first):
        prev = link(prev, run_id, n, at, kind, step, encoded)
        hashes.append(prev)
    return hashes


@dataclass(frozen=True)
class Verdict:
    """What ``audit`` found: intact, or the first broken event and why."""

    run_id: str
    count: int
    head: str
    broken_at: int | None = None  # position (from 1) of the first event that does not fit
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None and not self.reason


def verify(
    run_id: str, events: Sequence[Event], recorded: tuple[int, str], expected_head: str | None = None
) -> Verdict:
    """Check each event's hash against its predecessor, then the end against the run's record
    (``recorded``: count and head hash) and, if given, a head from a report or JUnit file."""
    prev = GENESIS
    for n, event in enumerate(events):
        want = link(prev, run_id, n, event.at, event.kind, event.step, encode(event.data))
        if event.hash != want:
            why = "its hash does not fit its content and the event before it (edited, or one before deleted)"
            return Verdict(run_id, len(events), prev, n + 1, f"event {n + 1} ({event.kind}): {why}")
        prev = want
    count, head = recorded
    if count != len(events) or head != prev:
        missing = (
            f"{count - len(events)} event(s) missing at the end" if count > len(events) else "a different end"
        )
        return Verdict(
            run_id,
            len(events),
            prev,
            min(len(events), count) + 1,
            f"the run's record says {count} events ending in {head[:16]}..., the journal has "
            f"{len(events)} ending in {prev[:16]}... ({missing})",
        )
    if expected_head is not None and expected_head != prev:
        return Verdict(
            run_id,
            len(events),
            prev,
            None,
            f"the chain ends in {prev[:16]}..., the report given ends in {expected_head[:16]}... "
            "(the chain was recomputed, or the report is of another run)",
        )
    return Verdict(run_id, len(events), prev)
