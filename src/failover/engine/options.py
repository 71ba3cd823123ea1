"""How a run is asked to go (Options), how it ended (RunResult), and the exit codes of both."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import JsonValue

from failover.engine.approvals import Approver
from failover.engine.interrupt import Interrupt
from failover.providers.base import ClientCache
from failover.state.events import Event, RunState

OnFailure = Literal["rollback", "halt"]
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 3
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal's number, as shells report it
DEFAULT_LEASE_TTL = 30.0
DEFAULT_PROVIDER_LIMITS: Mapping[str, int] = {"aws": 10, "gcp": 10}
"""Most steps of one provider at once at one site (a site's ``concurrency:`` says otherwise)."""


@dataclass(frozen=True)
class RunResult:
    """How a run ended."""

    run_id: str
    status: str
    exit_code: int
    message: str
    state: RunState

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    @property
    def best_effort_failures(self) -> list[str]:
        """The best-effort checks and steps that failed (the run did not stop for them)."""
        return list(self.state.best_effort_failures)


@dataclass(frozen=True)
class Options:
    """How to run: failure policy, approvals, limits, skipped checks, interruption, injected time."""

    on_failure: OnFailure = "rollback"
    auto_approve: bool = False
    approve_steps: frozenset[str] = frozenset()
    approver: Approver | None = None
    concurrency: int | None = None  # most steps at once in all (default: no limit)
    provider_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PROVIDER_LIMITS))
    """Per provider, most steps at once at each site, unless the site's ``concurrency:`` says."""
    skip_checks: Mapping[str, str] = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None
    lease_ttl: float = DEFAULT_LEASE_TTL
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    who: str = "failover"
    sim_speed: float = 1.0  # simulated latencies run this many times faster (drills and demos)
    overrides: Mapping[str, Mapping[str, JsonValue]] = field(default_factory=dict)
    """Per cloud, settings that replace every site's own (``{"aws": {"endpoint_url": ...}}``)."""
    site_overrides: Mapping[str, Mapping[str, Mapping[str, JsonValue]]] = field(default_factory=dict)
    """Per site and cloud, settings that replace that site's own (applied after ``overrides``)."""
    clients: ClientCache | None = None  # cloud clients to share (tests stub them); default: one per run
    strict: bool = False  # a best-effort failure makes the run exit 1
    sandbox: str | None = None
    """What the run's clouds are when they are a sandbox (recorded: such a run is never resumed
    against real clouds)."""
    sandbox_speed: float | None = None  # how many times faster than the clouds the sandbox ran
    faults: tuple[str, ...] = ()  # the faults a sandbox drill rehearsed
    interrupt: Interrupt | None = None  # requests to stop (the command line feeds it signals)
    stop_every: float = 5.0  # how often the plan's stop conditions are asked while steps run
    state_override: str | None = None
    """Why this run keeps its state elsewhere than its runbook's ``state:`` says (journaled)."""
    allowed_endpoints: frozenset[str] = frozenset()
    """Hosts of custom endpoints the plan names that this run may call (see ``endpoints``)."""
    signatures: tuple[Mapping[str, JsonValue], ...] = ()
    """Who signed the plan, as verified before the run (journaled): key, fingerprint, principals."""
    signers_approve: bool = False
    """The plan's signers count as approvers of its pivots and approval steps."""
    two_person: bool = False
    """Whoever started the run may not approve its steps (journaled; ``failover approve`` and
    the run both hold to it)."""

    def journaled(self) -> dict[str, object]:
        """The options worth recording in run_started (and reused on resume)."""
        return {
            "on_failure": self.on_failure,
            "auto_approve": self.auto_approve,
            "approve_steps": sorted(self.approve_steps),
            "concurrency": self.concurrency,
            "skip_checks": dict(self.skip_checks),
            "strict": self.strict,
            "by": self.who,
            **({"sandbox": self.sandbox} if self.sandbox else {}),
            **({"sandbox_speed": self.sandbox_speed} if self.sandbox_speed else {}),
            **({"faults": list(self.faults)} if self.faults else {}),
            **({"sim_speed": self.sim_speed} if self.sim_speed != 1.0 else {}),
            **({"state_override": self.state_override} if self.state_override else {}),
            **({"allowed_endpoints": sorted(self.allowed_endpoints)} if self.allowed_endpoints else {}),
            **({"signatures": [dict(s) for s in self.signatures]} if self.signatures else {}),
            **({"signers_approve": True} if self.signers_approve else {}),
            **({"two_person": True} if self.two_person else {}),
        }
