"""The drill: plan a failover from a runbook and run it (and with --failback, the way back),
against the clouds or the embedded sandbox, then report."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from failover.cli.app import (
    emit,
    handle_errors,
    main,
    metrics_opt,
    metrics_target,
    runbook_arg,
    scenario_options,
    state_of,
)
from failover.cli.running import _check_approvals, _options, _print_result, _report, _run, run_options
from failover.cli.signing import refuse_unsigned
from failover.sandbox.clock import DEFAULT_SPEED

if TYPE_CHECKING:
    from failover.engine import Options
    from failover.formats import ReportFormat
    from failover.sandbox import Sandbox


def sandbox_state(state: str) -> str:
    """A fresh directory for a sandbox's runs, under ``state``'s sandbox folder: its runs are
    not the real ones."""
    from failover.history import sandbox_root

    return str(fresh_dir(sandbox_root(state) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))


def fresh_dir(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... if a drill of the same second has it already."""
    from failover.state.sqlite import make_private_dirs

    make_private_dirs(path.parent)
    found, n = path, 1
    while True:
        try:
            found.mkdir(mode=0o700)  # atomic: two drills cannot both get the same one
            return found
        except FileExistsError:
            n += 1
            found = path.with_name(f"{path.name}-{n}")


@main.command()
@runbook_arg
@scenario_options
@click.option(
    "--failback",
    is_flag=True,
    help="After a successful failover, fail back: the plan with from and to swapped, or the "
    "failover undone if the runbook says failback: rollback.",
)
@click.option(
    "--failback-mode",
    type=click.Choice(["graceful", "ungraceful"]),
    default="graceful",
    show_default=True,
    help="Mode of the way back: both sites answer once the failover is done, unless told otherwise.",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report here: HTML for a .html file, JSON for .json, JUnit XML for .xml, "
    "else Markdown (default: print the Markdown, unless --format json).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Run against embedded clouds on 127.0.0.1, made from the runbook's sandbox: section.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND:ARGS",
    help="With --sandbox, rehearse this fault (repeatable): site-down:SITE, site-refused:SITE, "
    "throttle:SERVICE:PER_SECOND, stockout:ZONE, quota:METRIC:LIMIT, slow-health:GROUP:SECONDS, "
    "deny:PERMISSION. A site that is "
    "down comes back before the drill fails back.",
)
@click.option(
    "--sandbox-speed",
    type=click.FloatRange(min=0, min_open=True),
    metavar="FACTOR",
    help="With --sandbox, its resources get where they are asked this many times faster than the "
    "clouds (instance boot, ECS tasks, Aurora switchover, Route 53 sync); the runbook's timeouts stay. "
    f"Default: $FAILOVER_SANDBOX_SPEED, else {DEFAULT_SPEED:g}.",
)
@run_options
@metrics_opt
@handle_errors
def drill(
    runbook: Path,
    from_: str,
    to: str,
    scope: tuple[str, ...],
    mode: str,
    failback: bool,
    failback_mode: str,
    report_file: Path | None,
    state: str | None,
    fmt: str,
    sandbox: bool,
    faults: tuple[str, ...],
    sandbox_speed: float | None,
    metrics_file: Path | None,
    **kwargs: Any,
) -> None:
    """Plan and run a failover of RUNBOOK (and with --failback, the way back), then report."""
    from failover.engine import execute, resume
    from failover.metrics import check_writable, run_metrics
    from failover.metrics import write as write_metrics
    from failover.plan import Scenario
    from failover.planner import make_plan
    from failover.report import drill_data, render_report
    from failover.runbook import load_runbook
    from failover.sandbox import Sandbox
    from failover.state import open_store

    metrics = metrics_target(metrics_file)
    if report_file is not None:
        check_writable(report_file, "--report")  # before anything runs, not after
    if faults and not sandbox:
        raise click.UsageError("--fault is rehearsed in the sandbox: add --sandbox")
    if not sandbox:
        refuse_unsigned("a drill against real clouds", 0)
    rb = load_runbook(runbook)
    scenario = Scenario.model_validate({"from": from_, "to": to, "mode": mode, "scope": scope})
    undo = failback and rb.failback == "rollback"  # the way back is undoing the failover
    both = failback and not undo
    back = scenario.reverse().model_copy(update={"mode": failback_mode})
    legs = [make_plan(rb, leg) for leg in ([scenario, back] if both else [scenario])]
    options = _options(**kwargs)
    _check_approvals(options, legs)
    spec = state_of(state, None if sandbox else rb.state)  # a sandbox never uses the runbook's
    end_state: str | None = None
    datas: list[dict[str, Any]] = []
    undone: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        box = stack.enter_context(Sandbox(rb, faults, sandbox_speed)) if sandbox else None
        if box is not None:
            options = replace(
                options,
                overrides=box.overrides(),
                site_overrides=box.site_overrides(),
                sandbox=box.describe(),
                sandbox_speed=box.speed,
                faults=tuple(map(str, box.faults)),
            )
            if state is None:  # a fresh world each time: its runs are not the real ones
                spec = sandbox_state(spec)
            click.echo(f"sandbox: {box.describe()}; state in {spec}", err=True)
        store = open_store(spec)
        for n, planned in enumerate(legs):
            if n:
                options = _back_up(box, options)
            result = _run(planned, options, partial(execute, planned, store))
            _print_result(result, fmt, store.url)
            datas.append(_report(planned, store, result))
            if not result.ok:
                break
        if undo and result.ok:
            click.echo(
                f"failback: undoing run {result.run_id} (the runbook says failback: rollback)", err=True
            )
            run_id = result.run_id
            options = _back_up(box, options)
            result = _run(legs[0], options, lambda opts: resume(run_id, store, opts, rollback=True))
            _print_result(result, fmt, store.url)
            undone.append(_report(legs[0], store, result))
        if box is not None and failback and result.ok:
            end_state = box.compare_with_start()
            click.echo(f"sandbox: {end_state}", err=True)
    if report_file is not None or fmt == "text":
        ran = datas + undone
        doc = drill_data(ran, end_state) if len(ran) > 1 else ran[0]
        emit(render_report(doc, _format_of(report_file)), report_file)
    if metrics is not None:
        write_metrics(run_metrics(datas, undone), metrics)
    sys.exit(result.exit_code)


def _format_of(path: Path | None) -> ReportFormat:
    """A report file's format, by its name."""
    suffix = "" if path is None else path.suffix.lower()
    return {".html": "html", ".htm": "html", ".json": "json", ".xml": "junit"}.get(suffix, "markdown")  # type: ignore[return-value]


def _back_up(box: Sandbox | None, options: Options) -> Options:
    """Before a drill fails back, the sites its faults took down come back."""
    if box is None or not box.site_overrides():
        return options
    click.echo(f"sandbox: {', '.join(box.lift_site_faults())} back up to fail back", err=True)
    return replace(
        options,
        site_overrides=box.site_overrides(),
        sandbox=box.describe(),
        faults=tuple(map(str, box.faults)),
    )
