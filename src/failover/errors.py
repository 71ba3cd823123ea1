"""Errors raised by failover.

Every error the library raises on purpose derives from :class:`FailoverError`, so a caller can
catch one class. The tree::

    FailoverError
    +-- RunbookError            a runbook file is unreadable or invalid (lists every problem)
    +-- ScenarioError           a scenario does not fit the runbook (unknown site, from == to, ...)
    +-- PlanError               a plan file is malformed, inconsistent or tampered with
    |   +-- PlanTamperedError   ... tampered with (changed since it was made, or not canonical)
    +-- RegistryError           an action or check name is unknown or registered twice
    +-- RefusedError                 a run was refused for safety (stale or tampered plan, already applied)
    |   +-- LeaseHeldError           another run holds the lock on an overlapping scope
    +-- LeaseLostError               a run's lease expired or was taken over: it may not write any more
    +-- DeadlineError                a step's or check's time ran out: no more cloud calls for it
    +-- JournalError            the journal cannot be opened or does not have the run asked for
    |   +-- JournalWriteError        a journal write failed (disk full, read-only, I/O): nothing more starts
    +-- SandboxError            the embedded clouds could not start or build what the runbook declares
    +-- ProviderError           a provider call failed and retrying will not help
        +-- TransientProviderError   a provider call failed in a way worth retrying
"""

from __future__ import annotations

from dataclasses import dataclass


class FailoverError(Exception):
    """Root of every error failover raises on purpose, so callers can catch them in one place."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a runbook, located as precisely as the source allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RunbookError(FailoverError):
    """A runbook cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in runbook"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))


class ScenarioError(FailoverError):
    """A requested scenario (sites, scope, mode) does not fit the runbook it is planned from."""


class MetricsError(FailoverError):
    """An output file (metrics, a report) cannot be written where it was asked for."""


class PlanError(FailoverError):
    """A plan document is malformed, internally inconsistent, or does not match its fingerprint."""


class PlanTamperedError(PlanError):
    """A well-formed plan whose bytes are not what was made: its fingerprint does not match, it
    is not in canonical form, or its secrets were redacted for review."""


class RegistryError(FailoverError):
    """An action or check is unknown, or two providers claim the same name."""


class ProviderError(FailoverError):
    """A provider call failed for a reason that retrying will not fix (denied, invalid, missing)."""


class TransientProviderError(ProviderError):
    """A provider call failed for a reason that may pass (throttling, 5xx, timeouts): retry it."""


class RefusedError(FailoverError):
    """A run was refused for safety before it changed anything: the plan is stale, tampered with
    or already applied, or the run's lock is held elsewhere."""


class LeaseHeldError(RefusedError):
    """Another live run holds the lease on an overlapping scope; the message says who and since when."""


class LeaseLostError(FailoverError):
    """A run's lease expired or was taken over, so its fencing token is stale and it must stop writing."""


class DeadlineError(FailoverError):
    """A step or check used up the time the runbook gave it: the engine stopped waiting for it, and
    it may not start another cloud call. Not a provider error: retrying cannot help."""


class JournalError(FailoverError):
    """The journal cannot be opened or read, or does not have the run asked for."""


class JournalWriteError(JournalError):
    """A journal write failed (disk full, read-only file system, I/O error). What it was to record
    is not in the journal, so the run may not start another side effect."""


class SandboxError(FailoverError):
    """The sandbox could not start, or could not create a resource the runbook's sandbox: declares."""
