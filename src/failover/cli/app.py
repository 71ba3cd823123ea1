"""What every command shares: the group, errors turned into exit codes, common options.

Exit codes: 0 success; 1 a step failed; 2 bad input; 3 refused for safety (or the journal could
not be written); 130 and 143 interrupted by SIGINT and SIGTERM.
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from failover.errors import (
    FailoverError,
    JournalError,
    JournalWriteError,
    MetricsError,
    PlanError,
    PlanTamperedError,
    RefusedError,
    RegistryError,
    RunbookError,
    SandboxError,
    ScenarioError,
)
from failover.redact import redact

if TYPE_CHECKING:
    from failover.plan import Plan

# the engine's codes (failover.engine.options), here so that the command line starts without it
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED = 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> None:
    click.echo(redact(message), err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Turn library errors into a message on stderr and the documented exit code, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RefusedError as exc:
            fail(f"refused: {exc}", EXIT_REFUSED)
        except JournalWriteError as exc:
            fail(f"error: {exc}", EXIT_REFUSED)
        except (
            RunbookError,
            ScenarioError,
            PlanError,
            RegistryError,
            JournalError,
            SandboxError,
            MetricsError,
        ) as exc:
            fail(f"error: {exc}", EXIT_BAD_INPUT)
        except FailoverError as exc:
            fail(f"error: {exc}", EXIT_FAILED)
        return None

    return cast(F, wrapper)


def emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"error: cannot write {output}: {exc.strerror or exc}", EXIT_BAD_INPUT)
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
    return stacked(func, decorators)


def stacked(func: F, decorators: Sequence[Callable[[Any], Any]]) -> F:
    """``func`` with ``decorators`` applied as if written above it, in this order."""
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="failover")
def main() -> None:
    """Plan and run ordered regional failover of critical services across AWS and GCP."""


STATE_HELP = (
    "Where runs are kept: a directory or dynamodb://TABLE?region=REGION "
    "(default: $FAILOVER_STATE, else the runbook's state:, else .failover)."
)


def state_opt(func: F) -> F:
    return click.option("--state", metavar="DIR|URL", help=STATE_HELP)(func)


def state_of(value: str | None, declared: str | None = None) -> str:
    """The state a command uses (see STATE_HELP)."""
    from failover.state import state_spec

    return state_spec(value, declared)


def metrics_opt(func: F) -> F:
    return click.option(
        "--metrics-file",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="PATH",
        help="Also write Prometheus metrics here (text format, for node_exporter's textfile collector).",
    )(func)


def metrics_target(path: Path | None) -> Path | None:
    """Check now that the metrics file can be written later (before anything runs)."""
    if path is not None:
        from failover.metrics import check_writable

        check_writable(path)
    return path


def who() -> str:
    """``user@host`` of whoever runs the command, for the journal."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def load_plan(path: Path) -> Plan:
    return read_plan(path)[1]


def read_plan(path: Path) -> tuple[bytes, Plan]:
    """The plan file's bytes, read once, and the plan they hold (signatures are checked over
    the very bytes that are run)."""
    from failover.plan import MAX_PLAN_BYTES, Plan

    try:
        size = path.stat().st_size
        if size > MAX_PLAN_BYTES:  # not read, not copied
            raise PlanError(
                f"{path}: not a plan: {size:,} bytes, more than the {MAX_PLAN_BYTES:,} a plan may have"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise click.BadParameter(f"cannot read plan {path}: {exc}") from None
    try:
        return data, Plan.from_json(data, where=str(path))
    except PlanTamperedError as exc:  # changed since it was made: refused for safety (3)
        raise RefusedError(str(exc)) from None  # malformed (PlanError): bad input (2)
