"""Commands on the state itself: ``state init``, ``state copy`` and ``audit``."""

from __future__ import annotations

import json

import click

from failover.cli.app import EXIT_BAD_INPUT, fail, handle_errors, main, state_of, state_opt


@main.group()
def state() -> None:
    """Create the state a team shares, and move runs between stores."""


@state.command(name="init")
@click.argument("url", metavar="DIR|URL")
@handle_errors
def init(url: str) -> None:
    """Create the state at DIR|URL if it is not there: a directory, or a DynamoDB table
    (dynamodb://TABLE?region=REGION: on-demand capacity, point-in-time recovery). Running it again
    changes nothing and says so."""
    from failover.state import dynamodb_target, is_remote, open_store

    if not is_remote(url):
        store = open_store(url)
        click.echo(f"{store.url}: state directory ready ({len(store.runs())} runs)")
        return
    from failover.state.dynamo import init_table

    for line in init_table(*dynamodb_target(url)):
        click.echo(line)


@state.command(name="copy")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@click.option("--run", "run_ids", multiple=True, metavar="RUN_ID", help="Copy only this run (repeatable).")
@handle_errors
def copy(source: str, target: str, run_ids: tuple[str, ...]) -> None:
    """Copy runs (their plans and events) from FROM to TO (directories or DynamoDB URLs), each
    run's chain verified before and after. Runs TO has already are left as they are."""
    from failover.engine import EXIT_REFUSED
    from failover.state import open_store
    from failover.state.copy import copy_runs

    src = open_store(source, read_only=True)
    dst = open_store(target)
    refused = 0
    for done in copy_runs(src, dst, list(run_ids) or None):
        what = f"{done.head.length} events, chain head {done.head.hash[:16]}..."
        if done.outcome == "refused":
            refused += 1
            click.echo(f"refused {done.run_id}: {done.why}", err=True)
        else:
            click.echo(f"{done.outcome} {done.run_id} ({what})")
    if refused:
        fail(f"{refused} run(s) not copied", EXIT_REFUSED)


@main.command(name="audit")
@click.argument("run_id")
@state_opt
@click.option(
    "--head",
    metavar="HASH",
    help="The chain head a report or JUnit file of the run carries: the journal must end in it.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def audit_cmd(run_id: str, state: str | None, head: str | None, fmt: str) -> None:
    """Verify RUN_ID's journal: each event's hash against the one before, the end against the
    run's record (and --head). Exit 0 when intact, 3 naming the first event that does not fit."""
    from failover.engine import EXIT_REFUSED
    from failover.state import open_store
    from failover.state.copy import audit

    if head is not None and (len(head) != 64 or any(c not in "0123456789abcdef" for c in head)):
        fail(f"error: --head: expected 64 hex digits (a sha256), found {head!r}", EXIT_BAD_INPUT)
    verdict = audit(open_store(state_of(state), read_only=True), run_id, head)
    if fmt == "json":
        doc = {
            "run_id": run_id,
            "intact": verdict.intact,
            "events": verdict.count,
            "head": verdict.head,
            "broken_at": verdict.broken_at,
            "reason": verdict.reason,
        }
        click.echo(json.dumps(doc, indent=2))
    elif verdict.intact:
        click.echo(f"run {run_id}: journal intact: {verdict.count} events, chain head {verdict.head}")
    else:
        click.echo(f"run {run_id}: journal NOT intact: {verdict.reason}")
    if not verdict.intact:
        raise SystemExit(EXIT_REFUSED)
