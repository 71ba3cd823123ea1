"""Run a plan with a short lease in a child process (the parent stops and resumes it)."""

from __future__ import annotations

import sys
from pathlib import Path

import structlog

from failover.engine import Options, execute
from failover.plan import Plan


def main() -> None:
    plan_file, state, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    plan = Plan.from_json(Path(plan_file).read_text(encoding="utf-8"))
    result = execute(plan, state, Options(auto_approve=True, lease_ttl=ttl))
    print(result.status, result.message, flush=True)
    sys.exit(result.exit_code)


if __name__ == "__main__":
    main()
