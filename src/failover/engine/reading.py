"""Runs read back from a journal without writing, creating or locking anything: for ``status``,
``report`` and ``history``, on a read-only copy of the state too."""

from __future__ import annotations

from pathlib import Path

from failover.state import open_store
from failover.state.events import RunState
from failover.state.store import StateStore


def run_ids(state: str | Path | StateStore) -> list[str]:
    """Every run in the state, oldest first."""
    return [r.run_id for r in open_store(state, read_only=True).runs()]


def run_state(state: str | Path | StateStore, run_id: str) -> RunState:
    journal = open_store(state, read_only=True)
    journal.fingerprint_of(run_id)  # JournalError for an unknown run
    return RunState.replay(run_id, journal.events(run_id))
