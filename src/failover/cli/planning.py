"""Commands that read a runbook and change nothing: validate, plan, graph, iam-policy, actions, schema."""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from failover.cli.app import emit, handle_errors, load_plan, main, output_opt, runbook_arg, scenario_options
from failover.formats import GRAPH_FORMATS, PLAN_FORMATS
from failover.redact import redact


@main.command()
@runbook_arg
@handle_errors
def validate(runbook: Path) -> None:
    """Check RUNBOOK and list every problem as FILE:LINE:COL: path: message (exit 2 if any)."""
    from failover.runbook import load_runbook

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
@click.option(
    "--summary",
    is_flag=True,
    help="Print a few lines (steps, pivots, approvals, predicted RTO, warnings) and where -o wrote "
    "the whole plan, instead of the plan itself.",
)
@click.option(
    "--with-secrets",
    is_flag=True,
    help="JSON: write the secrets a runbook holds as values into the plan file (redacted otherwise, "
    "and then not applicable); references are never resolved into plans.",
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
    with_secrets: bool,
    summary: bool,
) -> None:
    """Print the dry-run plan of failing RUNBOOK over from one site to another. Changes nothing."""
    from failover.plan import Scenario
    from failover.planner import make_plan
    from failover.render import plan_rich, plan_summary, render_plan
    from failover.runbook import load_runbook

    rb = load_runbook(runbook)
    scenario = Scenario.model_validate({"from": from_, "to": to, "mode": mode, "scope": scope})
    result = make_plan(rb, scenario)
    if fmt == "json":  # the plan file: when it was made, for apply --max-plan-age
        made_at = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        result = replace(result, made_at=made_at)
    live = ""
    if sandbox:
        if fmt not in ("text", "markdown"):
            raise click.UsageError(f"--sandbox shows live reads in text or markdown, not {fmt}")
        from failover.engine import Options, live_reads
        from failover.sandbox import Sandbox

        with Sandbox(rb) as box, tempfile.TemporaryDirectory() as scratch:
            seen = live_reads(result, scratch, Options(overrides=box.overrides()))
        live = _live_section(seen, fmt)
    if summary and output is None:
        raise click.UsageError("--summary says where the whole plan went: give -o FILE too")
    if fmt == "text" and output is None and sys.stdout.isatty():
        from rich.console import Console

        Console().print(plan_rich(result))
        click.echo(live, nl=False)
        return
    shown = render_plan(result, fmt) + live  # type: ignore[arg-type]
    if fmt == "json" and shown != result.to_json():
        if with_secrets:
            shown = result.to_json()
        else:
            click.echo(
                "plan: the runbook writes secrets as values; they are redacted from this plan, so it "
                "cannot be applied. Reference them instead (${secret:aws-ssm:/PATH}, "
                "${secret:aws-sm:NAME#KEY}, ${env:NAME}), or write them into the plan file with "
                "--with-secrets",
                err=True,
            )
    emit(shown, output)
    if summary:  # the plan went to the file, a few lines to the terminal
        click.echo(plan_summary(result, str(output) if output else None), nl=False)


def _live_section(seen: dict[str, Any], fmt: str) -> str:
    """What each step would change, as the sandbox has it now."""
    rows = [(step, json.dumps(redact(value), sort_keys=True)) for step, value in seen.items()]
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
    from failover.render import render_graph
    from failover.runbook import load_runbook

    rb = load_runbook(runbook)
    emit(render_graph(rb, fmt, impact_of=impact), output)  # type: ignore[arg-type]


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
@click.option(
    "--state",
    metavar="URL",
    help="Also what runs do to this DynamoDB state table (default: the runbook's state:).",
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
    state: str | None,
    output: Path | None,
) -> None:
    """Print what a plan needs (JSON): the IAM policy of its AWS permissions, or the custom role
    definition of its GCP permissions (for `gcloud iam roles create --file`)."""
    from failover.plan import Scenario
    from failover.planner import make_plan
    from failover.policy import gcp_role, iam_policy
    from failover.runbook import load_runbook

    if plan_file is not None:
        if runbook is not None:
            raise click.UsageError("give RUNBOOK (with --from and --to) or --plan PLAN.json, not both")
        planned = load_plan(plan_file)
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
        if not needed and state is None and planned.runbook.state is None:
            raise click.UsageError(
                "the plan needs no cloud permissions (its steps and checks are not aws or gcp)"
            )
        cloud = needed[0] if needed else "aws"
    elif not planned.permissions(cloud, site) and not (cloud == "aws" and (state or planned.runbook.state)):
        where = f" at site {site}" if site else ""
        used = [c for c in ("aws", "gcp") if planned.permissions(c, site)]
        raise click.UsageError(
            f"--cloud {cloud}: the plan needs no {cloud} permissions{where}; it needs "
            f"{' and '.join(used) if used else 'none'}"
        )
    document = iam_policy(planned, site, state) if cloud == "aws" else gcp_role(planned, site)
    emit(json.dumps(document, indent=2) + "\n", output)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def actions(fmt: str) -> None:
    """List every registered action and check, with parameters and permissions."""
    from failover.providers import default_registry

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
    from failover.runbook import runbook_json_schema

    emit(json.dumps(runbook_json_schema(), indent=2) + "\n", output)
