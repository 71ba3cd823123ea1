"""The ``failover`` command: parses arguments, calls the library, prints. Nothing else.

Exit codes: 0 success; 1 a step failed; 2 bad input; 3 refused for safety.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from rich.console import Console

from failover.errors import FailoverError, PlanError, RegistryError, RunbookError, ScenarioError
from failover.plan import Scenario
from failover.planner import make_plan
from failover.providers import default_registry
from failover.render import GRAPH_FORMATS, PLAN_FORMATS, plan_rich, render_graph, render_plan
from failover.runbook import load_runbook, runbook_json_schema

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3

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
        except (RunbookError, ScenarioError, PlanError, RegistryError) as exc:
            _fail(f"error: {exc}", EXIT_BAD_INPUT)
        except FailoverError as exc:
            _fail(f"error: {exc}", EXIT_STEP_FAILED)
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
@click.option("--from", "from_", required=True, metavar="SITE", help="Site to fail over from.")
@click.option("--to", required=True, metavar="SITE", help="Site to fail over to.")
@click.option(
    "--scope",
    multiple=True,
    metavar="SERVICE",
    help="Only this service and what it depends on (repeatable).",
)
@click.option(
    "--mode",
    type=click.Choice(["graceful", "ungraceful"]),
    default="graceful",
    show_default=True,
    help="ungraceful: the source site is down; its steps are skipped or best-effort.",
)
@click.option("--format", "fmt", type=click.Choice(PLAN_FORMATS), default="text", show_default=True)
@output_opt
@handle_errors
def plan(
    runbook: Path,
    from_: str,
    to: str,
    scope: tuple[str, ...],
    mode: str,
    fmt: str,
    output: Path | None,
) -> None:
    """Print the dry-run plan of failing RUNBOOK over from one site to another. Changes nothing."""
    rb = load_runbook(runbook)
    scenario = Scenario.model_validate({"from": from_, "to": to, "mode": mode, "scope": scope})
    result = make_plan(rb, scenario)
    if fmt == "text" and output is None and sys.stdout.isatty():
        Console().print(plan_rich(result))
        return
    _emit(render_plan(result, fmt), output)  # type: ignore[arg-type]


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


if __name__ == "__main__":  # pragma: no cover
    main()
