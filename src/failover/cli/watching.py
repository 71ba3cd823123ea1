"""``failover watch``: evaluate a runbook's triggers on a schedule, and act when one fires; arm
and disarm triggers for every watcher of a state."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from failover.cli.app import (
    handle_errors,
    main,
    metrics_opt,
    metrics_target,
    read_plan,
    runbook_arg,
    state_of,
    who,
)
from failover.cli.signing import signature_options, verified_signatures
from failover.errors import RefusedError

if TYPE_CHECKING:
    from failover.engine import Options
    from failover.plan import Plan
    from failover.runbook import Runbook
    from failover.signatures import Verified
    from failover.state.store import StateStore
    from failover.watch.loop import Evaluation, Watched

EXIT_FIRED = 4  # watch --once: a trigger fired, and its action was done


@main.command()
@runbook_arg
@click.option(
    "--once", is_flag=True, help="Evaluate every trigger once and exit: 0 nothing fired, 4 one fired."
)
@click.option(
    "--until-fired", is_flag=True, help="Watch until a trigger fired and its action was done (exit 4)."
)
@click.option(
    "--max-time",
    metavar="DURATION",
    help="Stop watching after this long (e.g. 30m): exit 0 if nothing fired, 4 if a trigger did.",
)
@click.option(
    "--trigger", "only", multiple=True, metavar="NAME", help="Watch only this trigger (repeatable)."
)
@click.option(
    "--disarm", metavar="TRIGGER", help="Disarm TRIGGER for every watcher of the state (needs --reason)."
)
@click.option("--arm", metavar="TRIGGER", help="Arm TRIGGER again for every watcher of the state.")
@click.option("--reason", help="Why a trigger is disarmed (recorded).")
@click.option("--sandbox", is_flag=True, help="Watch the embedded clouds of a --sandbox drill instead.")
@click.option(
    "--fault", "faults", multiple=True, metavar="KIND:ARGS", help="With --sandbox: a fault (see drill)."
)
@click.option(
    "--sandbox-speed",
    type=click.FloatRange(min=0, min_open=True),
    metavar="FACTOR",
    help="With --sandbox: the clouds run this many times faster, and so do the triggers' every, for, "
    "clear_for and cooldown.",
)
@click.option(
    "--auto-approve", is_flag=True, help="With --sandbox: approve the plan's pivots and approval steps."
)
@click.option("--allow-endpoint", multiple=True, metavar="HOST", help="A host the failover plan may call.")
@signature_options
@click.option("--state", metavar="DIR|URL", help="Where runs and the triggers' records are kept.")
@metrics_opt
@handle_errors
def watch(
    runbook: Path,
    once: bool,
    until_fired: bool,
    max_time: str | None,
    only: tuple[str, ...],
    disarm: str | None,
    arm: str | None,
    reason: str | None,
    sandbox: bool,
    faults: tuple[str, ...],
    sandbox_speed: float | None,
    auto_approve: bool,
    allow_endpoint: tuple[str, ...],
    state: str | None,
    metrics_file: Path | None,
    **signing: Any,
) -> None:
    """Evaluate RUNBOOK's triggers at their intervals; when one fires, notify or start its plan."""
    from failover.runbook import load_runbook
    from failover.state import open_store

    metrics = metrics_target(metrics_file)
    rb = load_runbook(runbook)
    for name in (*only, *filter(None, (arm, disarm))):
        if name not in rb.triggers:
            known = ", ".join(sorted(rb.triggers)) or "none"
            raise click.BadParameter(f"unknown trigger {name!r}; triggers of {rb.name}: {known}")
    if arm or disarm:
        _arm(open_store(state_of(state, rb.state)), rb.name, arm, disarm, reason)
        return
    if not rb.triggers:
        raise click.UsageError(f"{runbook}: no triggers: to watch, add a triggers: section")
    if (faults or auto_approve) and not sandbox:
        raise click.UsageError("--fault and --auto-approve are for rehearsals in the sandbox: add --sandbox")
    if once and until_fired:
        raise click.UsageError("--once or --until-fired: one of them")
    limit = None if max_time is None else _seconds(max_time)
    with contextlib.ExitStack() as stack:
        options, spec = _where(stack, rb, state, sandbox, faults, sandbox_speed, allow_endpoint)
        options = replace(options, auto_approve=auto_approve)
        ending = "once" if once else ("fired" if until_fired else None)
        deadline = None if limit is None else time.monotonic() + limit
        names = only or tuple(rb.triggers)
        code = _watch(rb, open_store(spec), options, names, (ending, deadline), metrics, signing)
    sys.exit(code)


def _arm(store: StateStore, runbook: str, arm: str | None, disarm: str | None, reason: str | None) -> None:
    from failover.watch.records import set_armed

    if arm and disarm:
        raise click.UsageError("--arm and --disarm: one at a time")
    if disarm and not reason:
        raise click.UsageError("--disarm needs --reason: say why, for whoever wonders why it did not fire")
    name = arm or disarm or ""
    set_armed(store, runbook, name, bool(arm), who(), reason or "")
    click.echo(f"trigger {name}: {'armed' if arm else 'disarmed'} for every watcher of {store.url}")


def _where(
    stack: contextlib.ExitStack,
    rb: Runbook,
    state: str | None,
    sandbox: bool,
    faults: tuple[str, ...],
    speed: float | None,
    allow: tuple[str, ...],
) -> tuple[Options, str]:
    """The options the checks and runs use, and the state: the sandbox's when watching it."""
    from failover.engine import Options

    options = Options(who=who(), allowed_endpoints=frozenset(h.lower() for h in allow))
    if not sandbox:
        return options, state_of(state, rb.state)
    from failover.cli.drilling import sandbox_state
    from failover.sandbox import Sandbox

    box = stack.enter_context(Sandbox(rb, faults, speed))
    options = replace(
        options,
        overrides=box.overrides(),
        site_overrides=box.site_overrides(),
        sandbox=box.describe(),
        sandbox_speed=box.speed,
        faults=tuple(map(str, box.faults)),
    )
    spec = state or sandbox_state(state_of(None, rb.state))
    click.echo(f"sandbox: {box.describe()}; state in {spec}", err=True)
    return options, spec


def _watch(
    rb: Runbook,
    store: StateStore,
    options: Options,
    names: tuple[str, ...],
    until: tuple[str | None, float | None],
    metrics: Path | None,
    signing: dict[str, Any],
) -> int:
    from failover.logs import configure
    from failover.metrics import watch_metrics
    from failover.metrics import write as write_metrics
    from failover.watch.loop import Watched, Watcher
    from failover.watch.notify import send
    from failover.watch.runs import figures

    configure()  # the evaluations' logs on standard error: JSON lines unless on a terminal
    watched = [Watched.of(rb, name, options.sandbox_speed or 1.0) for name in names]
    for w in watched:  # a plan that would be refused is found now, not on the day it fires
        if w.action == "failover":
            _checked_plan(rb, w, signing)
    watcher = Watcher(
        rb.name,
        watched,
        store,
        options,
        start=lambda w, run_id: _start(rb, store, options, signing, w, run_id),
        follow=lambda run_id: figures(store, run_id),
        deliver=_not_sent if options.sandbox else send,
    )
    ending, deadline = until
    fired = problems = 0
    while True:
        for evaluation in watcher.evaluate_due():
            _say(evaluation)
            fired += evaluation.firing is not None
            problems += bool(evaluation.problems)
        if metrics is not None:
            write_metrics(watch_metrics(rb.name, watcher, store), metrics)
        if ending == "once" or (ending == "fired" and fired) or (deadline and time.monotonic() >= deadline):
            return 1 if problems else (EXIT_FIRED if fired else 0)
        now = time.time()
        time.sleep(max(0.05, min(watcher.next_at.values(), default=now + 1) - now))


def _seconds(text: str) -> float:
    from failover.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(f"--max-time: {exc}") from None


def _not_sent(url: str, body: dict[str, Any]) -> None:
    """In a sandbox, nobody is told: what would have been sent is shown instead."""
    click.echo(f"sandbox: not sent to {url}: {body.get('text', '')}", err=True)


def _checked_plan(
    rb: Runbook, w: Watched, signing: dict[str, Any]
) -> tuple[Path, Plan, list[Verified], bool]:
    """The trigger's plan file, if it may run: made from this very runbook, for this direction,
    signed as apply demands (checked when the watch starts, and again when it fires)."""
    path = Path(rb.path or ".").parent / str(w.plan_file)
    data, plan = read_plan(path)
    if plan.runbook.sha256 != rb.sha256:
        raise RefusedError(f"{path} was made from another version of {rb.name}: make and review it again")
    if (plan.scenario.from_, plan.scenario.to) != (w.from_, w.to):
        raise RefusedError(
            f"{path} fails over {plan.scenario.from_} -> {plan.scenario.to}, not {w.from_} -> {w.to}"
        )
    verified, signers_approve = verified_signatures(path, data, plan, dict(signing))
    return path, plan, verified, signers_approve


def _start(
    rb: Runbook, store: StateStore, base: Options, signing: dict[str, Any], w: Watched, run_id: str
) -> None:
    """Run the trigger's plan file as ``run_id``: only the plan made from this very runbook, for
    this direction, signed as apply demands, away from the active site; approvals it needs are
    given out of band (``failover approve``) unless its signers approve."""
    from failover.cli.running import _run
    from failover.engine import execute
    from failover.engine.remote import StoreApprover
    from failover.watch.runs import refuse_unless_away

    path, plan, verified, signers_approve = _checked_plan(rb, w, signing)
    refuse_unless_away(store, rb.name, w.name, w.from_, w.to)
    say = lambda text: click.echo(text, err=True)  # noqa: E731
    options = replace(
        base,
        who=f"watch:{w.name}",
        signatures=tuple(v.record() for v in verified),
        signers_approve=signers_approve,
        approver=None if base.auto_approve else StoreApprover(store, run_id, store.url, False, say=say),
    )
    click.echo(f"trigger {w.name}: run {run_id} starting ({path})", err=True)
    result = _run(plan, options, lambda given: execute(plan, store, given, run_id=run_id))
    click.echo(f"run {result.run_id}: {result.status}: {result.message}", err=True)


def _say(evaluation: Evaluation) -> None:
    bad = sum(1 for r in evaluation.signals if not r.ok)
    click.echo(
        f"{time.strftime('%H:%M:%S', time.gmtime(evaluation.at))} {evaluation.trigger}: {evaluation.state} "
        f"({bad} of {len(evaluation.signals)} signals bad): {evaluation.why}"
    )
    if evaluation.firing is not None and evaluation.firing.run_id:
        click.echo(
            f"  run {evaluation.firing.run_id}: `failover status {evaluation.firing.run_id}` follows it"
        )
    for problem in evaluation.problems:
        click.echo(f"  ! {problem}", err=True)
