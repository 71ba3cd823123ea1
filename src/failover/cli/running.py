"""Commands that run plans: apply, resume, rollback; and what a drill shares with them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from failover.cli.app import (
    STATE_HELP,
    F,
    handle_errors,
    main,
    metrics_opt,
    metrics_target,
    read_plan,
    stacked,
    state_of,
    state_opt,
    who,
)
from failover.cli.signing import refuse_unsigned, signature_options, verified_signatures

if TYPE_CHECKING:
    from failover.engine import Interrupt, Options, RunResult
    from failover.plan import Plan
    from failover.state.store import StateStore


def run_options(func: F) -> F:
    """Options shared by apply, drill and resume."""
    decorators = [
        click.option(
            "--approve", "approve", multiple=True, metavar="STEP_ID", help="Approve this step (repeatable)."
        ),
        click.option("--auto-approve", is_flag=True, help="Approve every step that needs it."),
        click.option(
            "--on-failure",
            type=click.Choice(["rollback", "halt"]),
            default="rollback",
            show_default=True,
            help="rollback: compensate completed steps; halt: stop and leave it to a person.",
        ),
        click.option(
            "--concurrency", type=click.IntRange(min=1), help="Most steps at once (default: no limit)."
        ),
        click.option(
            "--skip-check",
            "skip_check",
            multiple=True,
            metavar="CHECK_ID",
            help="Skip this preflight check (repeatable; needs --reason).",
        ),
        click.option("--reason", help="Why the checks given with --skip-check are skipped (journaled)."),
        click.option("--state", metavar="DIR|URL", help=STATE_HELP),
        click.option(
            "--override-state",
            "override_state",
            metavar="REASON",
            help="Run with other state than the runbook's state: says, for this reason (journaled).",
        ),
        click.option(
            "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
        ),
        click.option(
            "--sim-speed",
            type=click.FloatRange(min=0, min_open=True),
            default=1.0,
            show_default=True,
            help="Run simulated (sim.*) latencies this many times faster.",
        ),
        click.option(
            "--strict",
            is_flag=True,
            help="Exit 1 when a best-effort check or step failed (the run still goes on past it).",
        ),
        click.option(
            "--allow-endpoint",
            "allow_endpoint",
            multiple=True,
            metavar="HOST",
            envvar="FAILOVER_ALLOW_ENDPOINTS",
            help="A custom endpoint host the plan names that may receive credentials (repeatable; "
            "loopback and the clouds' own hosts need none; env FAILOVER_ALLOW_ENDPOINTS, space-separated).",
        ),
    ]
    return stacked(func, decorators)


def approval_options(func: F) -> F:
    """Approvals answered from elsewhere (apply and resume)."""
    decorators = [
        click.option(
            "--wait-for-approvals",
            is_flag=True,
            help="Wait for each approval to be answered with `failover approve RUN STEP` (or deny) "
            "from any terminal or machine that reaches the state; the exact command is printed.",
        ),
        click.option(
            "--two-person",
            is_flag=True,
            envvar="FAILOVER_TWO_PERSON",
            help="Whoever starts the run may not approve its steps: approvals come from another "
            "identity (--wait-for-approvals) or the plan's signers (env FAILOVER_TWO_PERSON=1).",
        ),
    ]
    return stacked(func, decorators)


def _check_approvals(options: Options, plans: list[Plan]) -> None:
    """``--approve STEP`` names a step of the plans that run (exit 2 otherwise: a typo would
    leave the step unapproved and found out only when the run reaches it)."""
    known = {step.id for plan in plans for step in plan.steps}
    unknown = sorted(options.approve_steps - known)
    if unknown:
        asking = sorted({s.id for plan in plans for s in plan.steps if s.approval and not s.skipped})
        raise click.UsageError(
            f"--approve {unknown[0]}: no such step in the plan; steps that ask for approval: "
            f"{', '.join(asking) or 'none'}"
        )


def _approvals(options: Options, store: StateStore, run_id: str, wait: bool, two_person: bool) -> Options:
    """The run's options with out-of-band approvals and the two-person rule, as asked."""
    from failover.engine.remote import StoreApprover

    if two_person and (options.auto_approve or options.approve_steps):
        raise click.UsageError(
            "--two-person: --auto-approve and --approve are approvals by whoever starts the run"
        )
    if two_person and not (wait or options.signers_approve):
        raise click.UsageError("--two-person needs --wait-for-approvals or --signers-approve")
    options = replace(options, two_person=two_person)
    if not wait:
        return options
    say = partial(click.echo, err=True)
    return replace(options, approver=StoreApprover(store, run_id, store.url, two_person, say=say))


def _options(
    approve: tuple[str, ...],
    auto_approve: bool,
    on_failure: str,
    concurrency: int | None,
    skip_check: tuple[str, ...],
    reason: str | None,
    sim_speed: float = 1.0,
    strict: bool = False,
    override_state: str | None = None,
    allow_endpoint: tuple[str, ...] = (),
) -> Options:
    from failover.engine import Options

    if skip_check and not reason:
        raise click.UsageError("--skip-check needs --reason: say why the check is skipped")
    return Options(
        on_failure="halt" if on_failure == "halt" else "rollback",
        auto_approve=auto_approve,
        approve_steps=frozenset(approve),
        concurrency=concurrency,
        skip_checks=dict.fromkeys(skip_check, reason or ""),
        who=who(),
        sim_speed=sim_speed,
        strict=strict,
        state_override=override_state,
        allowed_endpoints=frozenset(h.lower() for h in allow_endpoint),
    )


def _print_result(result: RunResult, fmt: str, state: str) -> None:
    from failover.liveness import assess
    from failover.state.events import RESUMABLE

    if fmt == "json":
        doc = {
            "run_id": result.run_id,
            "status": result.status,
            "exit_code": result.exit_code,
            "message": result.message,
            "best_effort_failures": result.best_effort_failures,
        }
        click.echo(json.dumps(doc))
        return
    click.echo(f"run {result.run_id}: {result.status}: {result.message}")
    if result.state.sandbox and result.status in RESUMABLE:  # its clouds end with this process
        alive = assess(result.run_id, result.state, None, time.time(), None)
        click.echo(f"  ({alive.why}; {alive.next[0]})")
    elif result.status in RESUMABLE and state != state_of(None):
        click.echo(f"  (its state is in {state}: give those commands --state {state})")


def _to_stderr(note: str) -> None:
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), note.encode())


@contextlib.contextmanager
def _signals(interrupt: Interrupt, say: Callable[[str], None] = _to_stderr) -> Iterator[None]:
    """While a run goes on, SIGINT (Ctrl-C) and SIGTERM are requests to stop it, not tracebacks:
    the first stops new steps from starting, the second stops waiting for those in flight.
    ``say`` tells it, from the signal handler (a live view shows it in place)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        interrupt.request(name, 128 + signum)
        note = (
            f"\n{name}: stopping: no new step starts; steps in flight end or reach their timeouts "
            f"({name} again to stop waiting for them)\n"
            if interrupt.count == 1
            else f"\n{name} again: no longer waiting for the steps in flight (journaled as in doubt)\n"
        )
        say(note)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run(plan: Plan, options: Options, start: Callable[[Options], RunResult]) -> RunResult:
    """Start a run (or take one up again) the way the terminal allows: a live view and one
    approval prompt at a time on a terminal, JSON log lines otherwise; signals stop it cleanly."""
    from failover.engine import Interrupt
    from failover.logs import configure as configure_logging
    from failover.progress import LiveProgress
    from failover.terminal import TerminalApprover

    interrupt = Interrupt()
    options = replace(options, interrupt=interrupt)
    view = LiveProgress(plan) if sys.stderr.isatty() else None
    configure_logging(json_lines=view is None, level=logging.INFO if view is None else logging.WARNING)
    if sys.stdin.isatty() and not options.auto_approve and options.approver is None:  # made first: it
        # writes to the terminal itself
        approver = TerminalApprover(options.who, area=view)
        interrupt.on_request(lambda sig: approver.cancel(f"interrupted by {sig}"))
        options = replace(options, approver=approver)
    with _signals(interrupt, view.tell if view is not None else _to_stderr), contextlib.ExitStack() as stack:
        if view is not None:
            options = replace(options, on_event=stack.enter_context(view).on_event)
        return start(options)


@main.command()
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path), metavar="PLAN.json")
@run_options
@signature_options
@approval_options
@metrics_opt
@handle_errors
def apply(
    plan_file: Path,
    state: str | None,
    fmt: str,
    metrics_file: Path | None,
    wait_for_approvals: bool,
    two_person: bool,
    **kwargs: Any,
) -> None:
    """Run a reviewed plan file exactly: preflight, steps in dependency order, rollback on failure."""
    from failover.engine import execute
    from failover.engine.start import new_run_id
    from failover.metrics import run_metrics
    from failover.metrics import write as write_metrics
    from failover.state import open_store

    metrics = metrics_target(metrics_file)
    data, planned = read_plan(plan_file)
    verified, signers_approve = verified_signatures(plan_file, data, planned, kwargs)
    signatures = tuple(v.record() for v in verified)
    run_with = replace(_options(**kwargs), signatures=signatures, signers_approve=signers_approve)
    _check_approvals(run_with, [planned])
    store = open_store(state_of(state, planned.runbook.state))
    run_id = new_run_id()
    run_with = _approvals(run_with, store, run_id, wait_for_approvals, two_person)
    result = _run(planned, run_with, lambda options: execute(planned, store, options, run_id=run_id))
    _print_result(result, fmt, store.url)
    if metrics is not None:
        write_metrics(run_metrics([_report(planned, store, result)]), metrics)
    sys.exit(result.exit_code)


def _report(planned: Plan, store: StateStore, result: RunResult) -> dict[str, Any]:
    from failover.report import lag_checks, report_data
    from failover.sandbox import clock

    arrivals = clock.ARRIVALS if result.state.sandbox else None  # the sandbox's, for detection lag
    return report_data(planned, result.state, store.events(result.run_id), arrivals, lag_checks())


@main.command(name="resume")
@click.argument("run_id")
@run_options
@approval_options
@handle_errors
def resume_cmd(
    run_id: str, state: str | None, fmt: str, wait_for_approvals: bool, two_person: bool, **kwargs: Any
) -> None:
    """Continue RUN_ID after its process died, it halted or was interrupted; steps that were in
    flight or in doubt are verified before anything runs again."""
    from failover.engine import resume
    from failover.state import open_store
    from failover.state.events import RunState

    given = click.get_current_context().get_parameter_source("on_failure") == ParameterSource.COMMANDLINE
    store = open_store(state_of(state))
    recorded = RunState.replay(run_id, store.events(run_id))
    if not recorded.sandbox:
        signatures = (recorded.options or {}).get("signatures")
        refuse_unsigned(f"run {run_id}", len(signatures) if isinstance(signatures, list) else 0)
    options = _approvals(_options(**kwargs), store, run_id, wait_for_approvals, two_person)
    policy = options.on_failure if given else None
    planned = store.run_plan(run_id)
    result = _run(planned, options, lambda opts: resume(run_id, store, opts, on_failure=policy))
    _print_result(result, fmt, store.url)
    sys.exit(result.exit_code)


@main.command(name="rollback")
@click.argument("run_id")
@state_opt
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def rollback_cmd(run_id: str, state: str | None, fmt: str) -> None:
    """Compensate every completed reversible step of RUN_ID, in reverse dependency order.
    Refused (exit 3) once a pivot began, while another process holds the run, and over a later
    run on the same services."""
    from failover.engine import Options, resume
    from failover.state import open_store

    store = open_store(state_of(state))
    planned = store.run_plan(run_id)
    options = Options(who=who(), auto_approve=True)  # a rollback asks for no approval
    result = _run(planned, options, lambda opts: resume(run_id, store, opts, rollback=True))
    _print_result(result, fmt, store.url)
    sys.exit(result.exit_code)
