"""The ``failover`` command: parses arguments, calls the library, prints. Nothing else.

``app`` holds the group and what every command shares; ``planning``, ``running`` (and
``drilling``) and ``reading`` hold the commands that plan, run and read runs back; ``signing``
and ``approving`` those of reviewers and approvers; ``state`` those on the state itself.
"""

from __future__ import annotations

import sys

import click

from failover.cli import approving, drilling, planning, reading, running, signing, state, watching
from failover.cli.app import main

COMMANDS = (
    approving,
    drilling,
    planning,
    reading,
    running,
    signing,
    state,
    watching,
)  # imported for the commands they add to ``main``


def entry() -> None:
    """The console script: ``main``, with Ctrl-C outside a run ending in exit 130, not 1, and a
    closed standard output in 141, not a traceback."""
    try:
        code = main.main(standalone_mode=False)
    except click.exceptions.Abort:  # Ctrl-C outside a run (a run journals and reports its own)
        click.echo("\ninterrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SystemExit:
        # click ends a command whose standard output was closed (| head) with 1, the code of a
        # failed run, after wrapping the streams; say 141, as a shell reports SIGPIPE, instead:
        # what a run did is in its journal
        if type(sys.stdout).__name__ == "_PacifyFlushWrapper":
            sys.exit(141)
        raise
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["entry", "main"]
