"""Run a plan in a child process that SIGKILLs itself right after its Nth journal event."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import structlog

from failover.engine import Options, execute
from failover.plan import Plan
from failover.state.events import Event


def main() -> None:
    plan_file, state, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    seen = 0

    def on_event(event: Event) -> None:
        nonlocal seen
        seen += 1
        if seen == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    plan = Plan.from_json(Path(plan_file).read_text(encoding="utf-8"))
    result = execute(plan, state, Options(auto_approve=True, on_event=on_event, sleep=lambda _s: None))
    print(result.status)


if __name__ == "__main__":
    main()
