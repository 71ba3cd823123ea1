"""The ``failover`` command: parses arguments, calls the library, prints. Nothing else.

Exit codes: 0 success; 1 a step failed; 2 bad input; 3 refused for safety.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from click.core import ParameterSource
from rich.console import Console

from failover.errors import (
    FailoverError,
    JournalError,
    PlanError,
    RefusedError,
    RegistryError,
    RunbookError,
    SandboxError,
    ScenarioError,
)
from failover.executor import (
    EXIT_FAILED,
    EXIT_REFUSED,
    Approval,
    Options,
    Readiness,
    RunResult,
    execute,
    live_reads,
    readiness,
    resume,
    run_ids,
    run_state,
)
from failover.history import history as runbook_history
from failover.history import journals, render_history
from failover.journal import Journal, RunState
from failover.logs import configure as configure_logging
from failover.metrics import MetricsError, check_writable, readiness_metrics, run_metrics
from failover.metrics import write as write_metrics
from failover.plan import Plan, PlannedStep, Scenario
from failover.planner import make_plan
from failover.policy import gcp_role, iam_policy
from failover.progress import LiveProgress
from failover.providers import default_registry
from failover.redact import redact
from failover.render import GRAPH_FORMATS, PLAN_FORMATS, plan_rich, render_graph, render_plan
from failover.report import REPORT_FORMATS, render_report, report_data
from failover.runbook import load_runbook, runbook_json_schema
from failover.sandbox import Sandbox

EXIT_BAD_INPUT = 2  # the executor's own codes: EXIT_OK 0, EXIT_FAILED 1, EXIT_REFUSED 3

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn library errors into a message on stderr and the documented exit code, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RefusedError as exc:
            _fail(f"refused: {exc}", EXIT_REFUSED)
        except (
            RunbookError,
            ScenarioError,
            PlanError,
            RegistryError,
            JournalError,
            SandboxError,
            MetricsError,
        ) as exc:
            _fail(f"error: {exc}", EXIT_BAD_INPUT)
        except FailoverError as exc:
            _fail(f"error: {exc}", EXIT_FAILED)
        return None

    return cast(F, wrapper)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"error: cannot write {output}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    click.echo(f"wrote {output}", err=True)


runbook_arg = click.argument("runbook", type=click.Path(dir_okay=False, path_type=Path), metavar="RUNBOOK")
output_opt = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)


def scenario_options(func: F) -> F:
    """--from, --to, --scope and --mode: which failover (plan, drill, check)."""
    decorators = [
        click.option("--from", "from_", required=True, metavar="SITE", help="Site to fail over from."),
        click.option("--to", required=True, metavar="SITE", help="Site to fail over to."),
        click.option(
            "--scope",
            multiple=True,
            metavar="SERVICE",
            help="Only this service and what it depends on (repeatable).",
        ),
        click.option(
            "--mode",
            type=click.Choice(["graceful", "ungraceful"]),
            default="graceful",
            show_default=True,
            help="ungraceful: the source site is down; its steps are skipped or best-effort.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="failover")
def main() -> None:
    """Plan and run ordered regional failover of critical services across AWS and GCP."""


@main.command()
@runbook_arg
@handle_errors
def validate(runbook: Path) -> None:
    """Check RUNBOOK and list every problem as FILE:LINE:COL: path: message (exit 2 if any)."""
    rb = load_runbook(runbook)
    steps = sum(len(s.steps) for s in rb.services.values())
    click.echo(
        f"{runbook}: valid runbook {rb.name!r}: {len(rb.sites)} sites, "
        f"{len(rb.services)} services, {steps} steps"
    )


@main.command()
@runbook_arg
@scenario_options
@click.option("--format", "fmt", type=click.Choice(PLAN_FORMATS), default="text", show_default=True)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Also read, in the runbook's sandbox, what each step would change (text and markdown).",
)
@output_opt
@handle_errors
def plan(
    runbook: Path,
    from_: str,
    to: str,
    scope: tuple[str, ...],
    mode: str,
    fmt: str,
    sandbox: bool,
    output: Path | None,
) -> None:
    """Print the dry-run plan of failing RUNBOOK over from one site to another. Changes nothing."""
    rb = load_runbook(runbook)
    scenario = Scenario.model_validate({"from": from_, "to": to, "mode": mode, "scope": scope})
    result = make_plan(rb, scenario)
    live = ""
    if sandbox:
        if fmt not in ("text", "markdown"):
            raise click.UsageError(f"--sandbox shows live reads in text or markdown, not {fmt}")
        with Sandbox(rb) as box, tempfile.TemporaryDirectory() as scratch:
            seen = live_reads(result, scratch, Options(overrides=box.overrides()))
        live = _live_section(seen, fmt)
    if fmt == "text" and output is None and sys.stdout.isatty():
        Console().print(plan_rich(result))
        click.echo(live, nl=False)
        return
    _emit(render_plan(result, fmt) + live, output)  # type: ignore[arg-type]


def _live_section(seen: dict[str, Any], fmt: str) -> str:
    """What each step would change, as the sandbox has it now."""
    rows = [(step, json.dumps(value, sort_keys=True)) for step, value in seen.items()]
    if fmt == "markdown":
        lines = ["", "## Live reads (sandbox)", "", "| step | now |", "|---|---|"]
        lines += [f"| `{step}` | `{value}` |" for step, value in rows]
    else:
        width = max((len(step) for step, _ in rows), default=0)
        lines = ["", "Live reads (sandbox): what each step would change, as it is now"]
        lines += [f"  {step:<{width}}  {value}" for step, value in rows]
    return "\n".join(lines) + "\n"


@main.command()
@runbook_arg
@click.option("--format", "fmt", type=click.Choice(GRAPH_FORMATS), default="text", show_default=True)
@click.option("--impact", metavar="SERVICE", help="Show what depends on SERVICE, transitively.")
@output_opt
@handle_errors
def graph(runbook: Path, fmt: str, impact: str | None, output: Path | None) -> None:
    """Show the service dependency graph of RUNBOOK."""
    rb = load_runbook(runbook)
    _emit(render_graph(rb, fmt, impact_of=impact), output)  # type: ignore[arg-type]


@main.command(name="iam-policy")
@click.argument("runbook", type=click.Path(dir_okay=False, path_type=Path), metavar="RUNBOOK", required=False)
@click.option(
    "--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path), help="A plan file instead."
)
@click.option("--from", "from_", metavar="SITE", help="Site to fail over from (with RUNBOOK).")
@click.option("--to", metavar="SITE", help="Site to fail over to (with RUNBOOK).")
@click.option("--mode", type=click.Choice(["graceful", "ungraceful"]), default="graceful", show_default=True)
@click.option("--site", metavar="SITE", help="Only what the plan does at this site (one role per site).")
@click.option(
    "--cloud",
    type=click.Choice(["aws", "gcp"]),
    help="aws: an IAM policy; gcp: a custom role definition. Needed when the plan acts in both.",
)
@output_opt
@handle_errors
def iam_policy_command(
    runbook: Path | None,
    plan_file: Path | None,
    from_: str | None,
    to: str | None,
    mode: str,
    site: str | None,
    cloud: str | None,
    output: Path | None,
) -> None:
    """Print what a plan needs (JSON): the IAM policy of its AWS permissions, or the custom role
    definition of its GCP permissions (for `gcloud iam roles create --file`)."""
    if plan_file is not None:
        if runbook is not None:
            raise click.UsageError("give RUNBOOK (with --from and --to) or --plan PLAN.json, not both")
        planned = _load_plan(plan_file)
    elif runbook is None or from_ is None or to is None:
        raise click.UsageError("give RUNBOOK with --from SITE --to SITE, or --plan PLAN.json")
    else:
        scenario = Scenario.model_validate({"from": from_, "to": to, "mode": mode})
        planned = make_plan(load_runbook(runbook), scenario)
    if site is not None and site not in {s.name for s in planned.sites}:
        known = ", ".join(sorted(s.name for s in planned.sites))
        raise click.UsageError(f"--site {site!r}: the plan acts at {known}")
    if cloud is None:
        needed = [c for c in ("aws", "gcp") if planned.permissions(c, site)]
        if len(needed) > 1:
            raise click.UsageError(
                "the plan needs permissions in aws and gcp: give --cloud aws or --cloud gcp"
            )
        cloud = needed[0] if needed else "aws"
    document = iam_policy(planned, site) if cloud == "aws" else gcp_role(planned, site)
    _emit(json.dumps(document, indent=2) + "\n", output)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def actions(fmt: str) -> None:
    """List every registered action and check, with parameters and permissions."""
    registry = default_registry()
    entries = []
    for kind, items in (("action", registry.actions()), ("check", registry.checks())):
        for item in items:
            schema = item.params_model.model_json_schema()
            required = set(schema.get("required", []))
            entries.append(
                {
                    "name": item.name,
                    "kind": kind,
                    "cloud": item.cloud,
                    "summary": item.summary(),
                    "reversible": getattr(item, "reversible", None),
                    "parameters": {
                        name: {
                            "required": name in required,
                            "schema": {k: v for k, v in prop.items() if k != "title"},
                        }
                        for name, prop in schema.get("properties", {}).items()
                    },
                    "permissions": list(item.permission_names),
                }
            )
    if fmt == "json":
        click.echo(json.dumps(entries, indent=2))
        return
    for kind, items in (("action", registry.actions()), ("check", registry.checks())):
        for item in items:
            click.echo(f"{item.name} ({kind}, {item.cloud or 'any site'}): {item.summary()}")
            for line in _parameter_lines(item.params_model.model_json_schema()):
                click.echo(f"    {line}")
            if item.permission_names:
                click.echo(f"    permissions: {', '.join(item.permission_names)}")


def _parameter_lines(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    lines = []
    for name, spec in schema.get("properties", {}).items():
        types = [spec.get("type")] if "type" in spec else [a.get("type") for a in spec.get("anyOf", [])]
        kind = "|".join(str(t) for t in types if t) or "any"
        suffix = " (required)" if name in required else f" = {spec.get('default')!r}"
        lines.append(f"{name}: {kind}{suffix}")
    return lines


@main.command()
@output_opt
@handle_errors
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the runbook format (for editors)."""
    _emit(json.dumps(runbook_json_schema(), indent=2) + "\n", output)


# --- running plans ------------------------------------------------------------------------------


def _state_dir(value: Path | None) -> Path:
    return value or Path(os.environ.get("FAILOVER_STATE", ".failover"))


def metrics_opt(func: F) -> F:
    return click.option(
        "--metrics-file",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help="Also write Prometheus metrics here (text format, for node_exporter's textfile collector).",
    )(func)


def _metrics_target(path: Path | None) -> Path | None:
    """Check now that the metrics file can be written later (before anything runs)."""
    if path is not None:
        check_writable(path)
    return path


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
        click.option(
            "--state",
            type=click.Path(file_okay=False, path_type=Path),
            help="State directory (default: $FAILOVER_STATE or .failover).",
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
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _options(
    approve: tuple[str, ...],
    auto_approve: bool,
    on_failure: str,
    concurrency: int | None,
    skip_check: tuple[str, ...],
    reason: str | None,
    sim_speed: float = 1.0,
) -> Options:
    if skip_check and not reason:
        raise click.UsageError("--skip-check needs --reason: say why the check is skipped")
    approver = _prompt_approver if sys.stdin.isatty() and not auto_approve else None
    return Options(
        on_failure="halt" if on_failure == "halt" else "rollback",
        auto_approve=auto_approve,
        approve_steps=frozenset(approve),
        approver=approver,
        concurrency=concurrency,
        skip_checks=dict.fromkeys(skip_check, reason or ""),
        who=_who(),
        sim_speed=sim_speed,
    )


def _who() -> str:
    """``user@host`` of whoever runs the command, for the journal."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _prompt_approver(step: PlannedStep, timeout_s: float) -> Approval:
    kind = "PIVOT (irreversible)" if step.pivot else "step"
    who = _who()
    granted = click.confirm(
        f"Approve {kind} {step.id}: {step.description}? (no answer in {timeout_s:g}s means no)",
        default=False,
        err=True,
    )
    return Approval(granted, who, "answered at the terminal")


def _print_result(result: RunResult, fmt: str) -> None:
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "status": result.status,
                    "exit_code": result.exit_code,
                    "message": result.message,
                }
            )
        )
    else:
        click.echo(f"run {result.run_id}: {result.status}: {result.message}")


def _execute(plan: Plan, state_dir: Path, options: Options) -> RunResult:
    """Run with a live view on a terminal, JSON log lines otherwise."""
    if not sys.stderr.isatty():
        configure_logging(json_lines=True)
        return execute(plan, state_dir, options)
    configure_logging(json_lines=False, level=logging.WARNING)
    with LiveProgress(plan) as view:
        approver = options.approver
        if approver is not None:
            ask = approver
            approver = lambda step, timeout: view.paused(lambda: ask(step, timeout))  # noqa: E731
        return execute(plan, state_dir, replace(options, on_event=view.on_event, approver=approver))


def _load_plan(path: Path) -> Plan:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read plan {path}: {exc}") from None
    try:
        return Plan.from_json(text, where=str(path))
    except PlanError as exc:
        raise RefusedError(str(exc)) from None


@main.command()
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path), metavar="PLAN.json")
@run_options
@metrics_opt
@handle_errors
def apply(plan_file: Path, state: Path | None, fmt: str, metrics_file: Path | None, **kwargs: Any) -> None:
    """Run a reviewed plan file exactly: preflight, steps in dependency order, rollback on failure."""
    metrics = _metrics_target(metrics_file)
    planned = _load_plan(plan_file)
    state_dir = _state_dir(state)
    result = _execute(planned, state_dir, _options(**kwargs))
    _print_result(result, fmt)
    if metrics is not None:
        write_metrics(run_metrics([_report(planned, state_dir, result)]), metrics)
    sys.exit(result.exit_code)


def _fresh(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... if a drill of the same second has it already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    found, n = path, 1
    while True:
        try:
            found.mkdir()  # atomic: two drills cannot both get the same one
            return found
        except FileExistsError:
            n += 1
            found = path.with_name(f"{path.name}-{n}")


def _report(planned: Plan, state_dir: Path, result: RunResult) -> dict[str, Any]:
    return report_data(planned, result.state, Journal(state_dir).events(result.run_id))


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
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Markdown report here (default: print it, unless --format json).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Run against embedded clouds on 127.0.0.1, made from the runbook's sandbox: section.",
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
    report_file: Path | None,
    state: Path | None,
    fmt: str,
    sandbox: bool,
    metrics_file: Path | None,
    **kwargs: Any,
) -> None:
    """Plan and run a failover of RUNBOOK (and with --failback, the way back), then report."""
    metrics = _metrics_target(metrics_file)
    rb = load_runbook(runbook)
    scenario = Scenario.model_validate({"from": from_, "to": to, "mode": mode, "scope": scope})
    undo = failback and rb.failback == "rollback"  # the way back is undoing the failover
    both = failback and not undo
    legs = [make_plan(rb, leg) for leg in ([scenario, scenario.reverse()] if both else [scenario])]
    options = _options(**kwargs)
    state_dir = _state_dir(state)
    reports: list[str] = []
    datas: list[dict[str, Any]] = []
    undone: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        box = stack.enter_context(Sandbox(rb)) if sandbox else None
        if box is not None:
            options = replace(options, overrides=box.overrides())
            if state is None:  # a fresh world each time: its runs are not the real ones
                state_dir = _fresh(state_dir / "sandbox" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
            click.echo(f"sandbox: {box.describe()}; state in {state_dir}", err=True)
        for planned in legs:
            result = _execute(planned, state_dir, options)
            _print_result(result, fmt)
            datas.append(_report(planned, state_dir, result))
            reports.append(render_report(datas[-1], "markdown"))
            if not result.ok:
                break
        if undo and result.ok:
            click.echo(
                f"failback: undoing run {result.run_id} (the runbook says failback: rollback)", err=True
            )
            configure_logging(json_lines=not sys.stderr.isatty())
            result = resume(result.run_id, state_dir, options, rollback=True)
            _print_result(result, fmt)
            undone.append(_report(legs[0], state_dir, result))
            reports.append(render_report(undone[-1], "markdown"))
        if box is not None and failback and result.ok:
            click.echo(f"sandbox: {box.compare_with_start()}", err=True)
    if report_file is not None or fmt == "text":
        _emit("\n".join(reports), report_file)
    if metrics is not None:
        write_metrics(run_metrics(datas, undone), metrics)
    sys.exit(result.exit_code)


@main.command()
@runbook_arg
@scenario_options
@click.option(
    "--sandbox", is_flag=True, help="Ask the runbook's sandbox (embedded clouds on 127.0.0.1) instead."
)
@click.option(
    "--skip-check",
    "skip_check",
    multiple=True,
    metavar="CHECK_ID",
    help="Do not ask this check (repeatable).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@metrics_opt
@handle_errors
def check(
    runbook: Path,
    from_: str,
    to: str,
    scope: tuple[str, ...],
    mode: str,
    sandbox: bool,
    skip_check: tuple[str, ...],
    fmt: str,
    metrics_file: Path | None,
) -> None:
    """Run every preflight check of a failover plan, read-only: is the target ready now?

    Exit 0 when ready, 3 when a check failed (each named, with what it saw). Changes nothing and
    journals nothing: run it on a schedule, in both directions.
    """
    metrics = _metrics_target(metrics_file)
    rb = load_runbook(runbook)
    scenario = Scenario.model_validate({"from": from_, "to": to, "mode": mode, "scope": scope})
    planned = make_plan(rb, scenario)
    unknown = sorted(set(skip_check) - {c.id for c in planned.preflight})
    if unknown:
        known = ", ".join(c.id for c in planned.preflight) or "none"
        raise click.UsageError(
            f"--skip-check {', '.join(unknown)}: not a preflight check of the plan ({known})"
        )
    options = Options(skip_checks=dict.fromkeys(skip_check, "--skip-check"))
    with contextlib.ExitStack() as stack:
        if sandbox:
            box = stack.enter_context(Sandbox(rb))
            options = replace(options, overrides=box.overrides())
        scratch = stack.enter_context(tempfile.TemporaryDirectory())
        results = readiness(planned, scratch, options)
    ready = not any(r.blocking for r in results)
    scenario_doc = planned.scenario.model_dump(mode="json", by_alias=True)
    if fmt == "json":
        doc = {
            "runbook": planned.runbook.name,
            "scenario": scenario_doc,
            "ready": ready,
            "checks": [
                {
                    "id": r.id,
                    "check": r.check,
                    "site": r.site,
                    "ok": r.ok,
                    "observed": r.observed,
                    "message": r.message,
                    "skipped": r.skipped,
                    "best_effort": r.best_effort,
                }
                for r in results
            ],
        }
        click.echo(json.dumps(redact(doc), indent=2))
    else:
        click.echo(_readiness_text(planned, results, ready))
    if metrics is not None:
        write_metrics(readiness_metrics(planned.runbook.name, scenario_doc, results, time.time()), metrics)
    sys.exit(0 if ready else EXIT_REFUSED)


def _readiness_text(planned: Plan, results: list[Readiness], ready: bool) -> str:
    scenario = planned.scenario
    lines = [
        f"Readiness of {planned.runbook.name}: {scenario.from_} -> {scenario.to} ({scenario.mode}), "
        f"{len(results)} preflight checks"
    ]
    for r in results:
        if r.skipped is not None:
            mark, what = "skip", f"skipped: {r.skipped}"
        else:
            mark = "ok" if r.ok else ("warn" if r.best_effort else "FAIL")
            what = r.message if r.ok else f"{r.message} (observed {json.dumps(redact(r.observed))})"
        lines.append(f"  {mark:<4} {r.id} at {r.site}: {what}")
    failed = [r.id for r in results if r.blocking]
    lines.append("READY" if ready else f"NOT READY: {len(failed)} failed: {', '.join(failed)}")
    return "\n".join(lines)


@main.command()
@runbook_arg
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), help="State directory.")
@click.option("--sandbox", is_flag=True, help="The sandbox drills' runs (under STATE/sandbox) instead.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def history(runbook: Path, state: Path | None, sandbox: bool, fmt: str) -> None:
    """Past runs of RUNBOOK from the journal: measured RTO per service and overall, predicted
    against measured, and the trend from drill to drill."""
    name = load_runbook(runbook).name
    data = runbook_history(name, journals(_state_dir(state), sandbox))
    click.echo(json.dumps(data, indent=2) if fmt == "json" else render_history(data), nl=fmt == "json")


@main.command()
@click.argument("run_id", required=False)
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), help="State directory.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def status(run_id: str | None, state: Path | None, fmt: str) -> None:
    """Show a run (default: the latest) as its journal tells it, or say there is none."""
    state_dir = _state_dir(state)
    ids = run_ids(state_dir)
    if run_id is None:
        if not ids:
            _fail(f"no runs in {state_dir}", EXIT_BAD_INPUT)
        run_id = ids[-1]
    current = run_state(state_dir, run_id)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "run_id": run_id,
                    "status": current.status,
                    "exit_code": current.exit_code,
                    "message": current.message,
                    "steps": {sid: rec.state for sid, rec in current.steps.items()},
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"run {run_id}: {current.status}" + (f" (exit {current.exit_code})" if current.finished else "")
    )
    if current.message:
        click.echo(f"  {current.message}")
    for sid, rec in current.steps.items():
        click.echo(
            f"  {rec.state:<12} {sid}" + (f"  {rec.error}" if rec.error and rec.state == "failed" else "")
        )


@main.command(name="resume")
@click.argument("run_id")
@run_options
@handle_errors
def resume_cmd(run_id: str, state: Path | None, fmt: str, **kwargs: Any) -> None:
    """Continue RUN_ID after its process died or it halted; steps in flight are verified first."""
    configure_logging()
    given = click.get_current_context().get_parameter_source("on_failure") == ParameterSource.COMMANDLINE
    options = _options(**kwargs)
    result = resume(run_id, _state_dir(state), options, on_failure=options.on_failure if given else None)
    _print_result(result, fmt)
    sys.exit(result.exit_code)


@main.command(name="rollback")
@click.argument("run_id")
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), help="State directory.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def rollback_cmd(run_id: str, state: Path | None, fmt: str) -> None:
    """Compensate every completed reversible step of RUN_ID, in reverse dependency order."""
    configure_logging()
    result = resume(run_id, _state_dir(state), Options(), rollback=True)
    _print_result(result, fmt)
    sys.exit(result.exit_code)


@main.command()
@click.argument("run_id")
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), help="State directory.")
@click.option("--format", "fmt", type=click.Choice(REPORT_FORMATS), default="markdown", show_default=True)
@output_opt
@handle_errors
def report(run_id: str, state: Path | None, fmt: str, output: Path | None) -> None:
    """Report on RUN_ID: measured RTO per service, timeline, failures, approvals, rollback."""
    state_dir = _state_dir(state)
    journal = Journal(state_dir)
    plan = journal.run_plan(run_id)
    events = journal.events(run_id)
    data = report_data(plan, RunState.replay(run_id, events), events)
    _emit(render_report(data, fmt), output)  # type: ignore[arg-type]


if __name__ == "__main__":  # pragma: no cover
    main()
