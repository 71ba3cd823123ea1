"""Starting a run, and taking one up again: the refusals that come first, and the lease.

A plan runs once (unless its run halted or was interrupted: then it is resumed or rolled back),
only while its runbook is unchanged, and never beside another live run of the same services. A
run is taken up again only when no live process holds it, and a sandbox drill never against
real clouds.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import cast

from pydantic import JsonValue

from failover.endpoints import refused
from failover.engine.options import OnFailure, Options, RunResult
from failover.engine.rollback import refusal, resources
from failover.engine.run import Run, running_here
from failover.errors import JournalWriteError, LeaseHeldError, PlanError, RefusedError
from failover.plan import Plan
from failover.providers import default_registry
from failover.providers.base import Registry
from failover.state import open_store, same_state
from failover.state.events import RESUMABLE, RunState
from failover.state.store import Lease, StateStore, owner_is_dead_here, this_owner


def execute(
    plan: Plan,
    where: str | Path | StateStore,
    options: Options | None = None,
    *,
    registry: Registry | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run ``plan``; refuse (raise RefusedError) if it was already applied, its runbook changed since,
    or another run holds an overlapping lock."""
    options = options or Options()
    _refuse_endpoints(plan, options)
    if options.two_person and (options.auto_approve or options.approve_steps):
        raise RefusedError(
            "the two-person rule: --auto-approve and --approve are approvals by whoever starts the run"
        )
    journal = open_store(where)
    _refuse_elsewhere(plan, journal, options)
    _refuse_stale(plan, journal)
    unknown = sorted(set(options.skip_checks) - {c.id for c in plan.preflight})
    if unknown:
        raise PlanError(f"--skip-check: no preflight check {unknown[0]!r} in this plan")
    run_id = run_id or new_run_id()
    lease = journal.acquire(run_id, resources(plan), options.lease_ttl)
    try:
        journal.create_run(run_id, plan)
    except JournalWriteError:
        with contextlib.suppress(JournalWriteError):  # else it expires by itself
            journal.release(lease)
        raise
    run = Run(plan, journal, lease, options, registry or default_registry())
    return run.start()


def _refuse_endpoints(plan: Plan, options: Options) -> None:
    """No credentials to a host the plan names unless it is loopback, the cloud's own, or
    allowed by whoever runs it."""
    bad = refused(plan, options.allowed_endpoints)
    if bad:
        named = "; ".join(
            f"{e.where} = {e.url}"
            + ("" if e.host else " (URL parsers read its host differently: never honoured)")
            for e in bad
        )
        hosts = " ".join(f"--allow-endpoint {h}" for h in sorted({e.host for e in bad if e.host}))
        raise RefusedError(
            f"the plan sends credentials to endpoints that are not the clouds' own: {named}. "
            f"Check them; if they are yours, run again with {hosts or '--allow-endpoint HOST'}"
        )


def resume(
    run_id: str,
    where: str | Path | StateStore,
    options: Options | None = None,
    *,
    registry: Registry | None = None,
    rollback: bool = False,
    on_failure: OnFailure | None = None,
) -> RunResult:
    """Take up a run whose process died, or that halted or was interrupted, from what its
    journal says: forward (a failed step is tried again, one in doubt verified first), or with
    ``rollback`` by compensating what it did. With ``rollback``, a run that succeeded is undone
    too. Refused (RefusedError) while another process holds the run, for a sandbox drill outside
    its sandbox, and for a rollback that would be unsafe. A run that ended otherwise is left as
    it is. ``on_failure`` replaces the recorded policy."""
    journal = open_store(where)
    plan = journal.run_plan(run_id)
    state = RunState.replay(run_id, journal.events(run_id))
    _refuse_outside_sandbox(run_id, state, options)
    merged = _with_recorded(options, state.options or {})
    _refuse_endpoints(plan, merged)  # what the run allowed, and what is allowed now
    if rollback or state.rollback_started:  # a resumed rollback is a rollback too
        _refuse_rollback(journal, run_id, plan, state)
    if state.finished and state.status not in RESUMABLE and not (rollback and state.status == "succeeded"):
        return RunResult(run_id, state.status, state.exit_code or 0, state.message, state)
    if on_failure is not None:
        merged = replace(merged, on_failure=on_failure)
    if (
        merged.two_person
        and not rollback
        and (options is not None and (options.auto_approve or options.approve_steps))
    ):
        raise RefusedError(
            f"run {run_id} has the two-person rule: --auto-approve and --approve would be approvals by "
            "whoever resumes it; resume with --wait-for-approvals (or the plan's signers)"
        )
    lease = _take_over(journal, run_id, resources(plan), merged)
    state = RunState.replay(run_id, journal.events(run_id))  # as it is now that no one else holds it
    if rollback or state.rollback_started:
        try:
            _refuse_rollback(journal, run_id, plan, state)
        except RefusedError:
            journal.release(lease)
            raise
    run = Run(plan, journal, lease, merged, registry or default_registry())
    return run.start(resumed=state, rollback=rollback)


def _refuse_outside_sandbox(run_id: str, state: RunState, options: Options | None) -> None:
    if state.sandbox and (options is None or options.sandbox is None):
        raise RefusedError(
            f"run {run_id} was a sandbox drill ({state.sandbox}); its embedded clouds ended with "
            "the process that ran them, and it is never sent to real clouds: drill again instead"
        )


def _refuse_elsewhere(plan: Plan, journal: StateStore, options: Options) -> None:
    """A runbook that declares its state is run there, where everyone shares its lock, unless an
    override says why not (journaled); a sandbox drill always keeps its own local state."""
    declared = plan.runbook.state
    if declared is None or options.sandbox is not None or same_state(declared, journal.url):
        return
    if not options.state_override:
        raise RefusedError(
            f"runbook {plan.runbook.name} keeps its state in {declared}, where everyone who runs it "
            f"shares one lock; this run would use {journal.url} instead: drop --state and "
            "FAILOVER_STATE, or give --override-state REASON (journaled)"
        )


def _refuse_rollback(journal: StateStore, run_id: str, plan: Plan, state: RunState) -> None:
    why = refusal(journal, run_id, plan, state)
    if why is not None:
        raise RefusedError(why)


def _with_recorded(given: Options | None, recorded: Mapping[str, object]) -> Options:
    """Options for a resumed run: its recorded policy and approvals, plus what is given now
    (more approvals, callbacks, limits, injected time)."""
    base = given or Options()
    steps = recorded.get("approve_steps")
    skips = recorded.get("skip_checks")
    return replace(
        base,
        on_failure="halt" if recorded.get("on_failure") == "halt" else "rollback",
        auto_approve=base.auto_approve or bool(recorded.get("auto_approve")),
        approve_steps=base.approve_steps
        | (frozenset(str(s) for s in steps) if isinstance(steps, list) else frozenset()),
        skip_checks={
            **({str(k): str(v) for k, v in skips.items()} if isinstance(skips, dict) else {}),
            **base.skip_checks,
        },
        strict=base.strict or bool(recorded.get("strict")),
        two_person=base.two_person or bool(recorded.get("two_person")),
        signatures=base.signatures or _records(recorded.get("signatures")),
        signers_approve=base.signers_approve or bool(recorded.get("signers_approve")),
        allowed_endpoints=base.allowed_endpoints
        | frozenset(str(h) for h in cast(list[object], recorded.get("allowed_endpoints") or [])),
    )


def _records(found: object) -> tuple[Mapping[str, JsonValue], ...]:
    """The signatures a run recorded when it started (they were verified then)."""
    return (
        tuple(cast(Mapping[str, JsonValue], s) for s in found if isinstance(s, dict))
        if isinstance(found, list)
        else ()
    )


def new_run_id() -> str:
    """A new run's id: its UTC start, to the second, and 8 random hex digits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def _refuse_stale(plan: Plan, journal: StateStore) -> None:
    if plan.runbook.path:
        path = Path(plan.runbook.path)
        if path.exists():
            now = hashlib.sha256(path.read_bytes()).hexdigest()
            if now != plan.runbook.sha256:
                raise RefusedError(
                    f"runbook {path} changed since the plan was made (sha256 {plan.runbook.sha256[:12]}... "
                    f"then, {now[:12]}... now): make and review a new plan"
                )
    for run_id, *_ in journal.runs(plan.fingerprint):
        state = RunState.replay(run_id, journal.events(run_id))
        if state.status == "succeeded":
            raise RefusedError(f"plan {plan.fingerprint[:12]}... was already applied by run {run_id}")
        if not state.finished or state.status in RESUMABLE:
            raise RefusedError(
                f"plan {plan.fingerprint[:12]}... has a run that did not finish, {run_id} "
                f"({state.status}): `failover resume {run_id}` or `failover rollback {run_id}`"
            )


def _take_over(journal: StateStore, run_id: str, resources: tuple[str, ...], options: Options) -> Lease:
    """The run's lease, if no live process holds it: taken at once when its holder is known dead
    on this host or its lease has expired; refused otherwise, saying who holds it until when."""

    def gone(owner: str) -> bool:
        return owner_is_dead_here(owner) or (owner == this_owner() and not running_here(run_id))

    try:
        return journal.acquire(run_id, resources, options.lease_ttl, take_over=True, gone=gone)
    except LeaseHeldError:
        holder = journal.holder(resources)
        if holder is None or holder.run_id != run_id:
            raise
        until = time.strftime("%H:%M:%S UTC", time.gmtime(holder.until))
        by = f" as {holder.caller}" if holder.caller else ""
        pid = holder.owner.rpartition(":")[2]
        alive = "" if gone(holder.owner) else f" (if it is alive: let it finish, or `kill -INT {pid}`)"
        raise LeaseHeldError(
            f"run {run_id} is held by process {holder.owner}{by}, lease until {until}: it may still "
            f"be running{alive}; if that process is gone, try again after {until}"
        ) from None
