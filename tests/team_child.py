"""A failover process on a host of its own (``FAILOVER_HOST``), sharing DynamoDB state: it waits
for a start signal (a file), then runs the command line, or a run with a short lease that can
SIGKILL itself after its Nth journal event."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import structlog

from failover.cli import entry
from failover.engine import Options, execute, resume
from failover.plan import Plan
from failover.state.events import Event


def wait_for_go(go: str) -> None:
    until = time.monotonic() + 60
    while go != "-" and not os.path.exists(go) and time.monotonic() < until:
        time.sleep(0.005)


def main() -> None:
    mode, go = sys.argv[1], sys.argv[2]
    wait_for_go(go)
    if mode == "cli":  # the rest is the command line
        sys.argv = ["failover", *sys.argv[3:]]
        entry()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    what, state, ttl, kill_after = sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6])
    seen = 0

    def on_event(event: Event) -> None:
        nonlocal seen
        seen += 1
        if seen == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    options = Options(auto_approve=True, lease_ttl=ttl, on_event=on_event)
    if mode == "apply":
        result = execute(Plan.from_json(Path(what).read_text(encoding="utf-8")), state, options)
    else:
        result = resume(what, state, options)
    print(result.run_id, result.status, result.message, flush=True)
    sys.exit(result.exit_code)


if __name__ == "__main__":
    main()
