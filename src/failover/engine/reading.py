"""Runs read back from a journal without writing, creating or locking anything: for ``status``,
``report`` and ``history``, on a read-only copy of the state too."""

from __future__ import annotations

from pathlib import Path

from failover.journal import Journal
from failover.state.events import RunState


def run_ids(state_dir: str | Path) -> list[str]:
    """Every run in the state directory, oldest first."""
    return [r[0] for r in Journal(Path(state_dir), read_only=True).runs()]


def run_state(state_dir: str | Path, run_id: str) -> RunState:
    journal = Journal(Path(state_dir), read_only=True)
    journal.fingerprint_of(run_id)  # JournalError for an unknown run
    return RunState.replay(run_id, journal.events(run_id))
