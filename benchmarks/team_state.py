"""Team state on DynamoDB against state in a directory, side by side in one run (ratios: this
machine is noisy). DynamoDB is a moto server on 127.0.0.1 that answers one request at a time.

1. Round trips: a run of N zero-latency simulated steps on DynamoDB state; every request the
   store sends, by operation, per journal event, and per group commit (an UpdateItem on the run's
   head carries a group of events). Target: <= 1 round trip per group on the critical path.
2. The shop sandbox drill (``make demo``'s drill, there and back) with its state in DynamoDB and in
   a directory, alternated, median of several runs. Target: DynamoDB <= 1.5 x the directory.

    python benchmarks/team_state.py [--steps N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import structlog

from execute_scale import plan_of
from failover.engine import Options, execute
from failover.state import open_store

ROOT = Path(__file__).resolve().parent.parent
DRILL = ["drill", "runbooks/shop.yaml", "--from", "east", "--to", "west", "--failback", "--sandbox"]


class Server:
    """The moto server the tests use, in a process of its own, and the environment to reach it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.moto_serial"], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        endpoint = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ENDPOINT_URL_STS": endpoint,
            "PYTHONPATH": str(ROOT),
        }

    def table(self) -> str:
        url = f"dynamodb://bench-{uuid.uuid4().hex[:10]}?region=us-east-1"
        self.failover("state", "init", url)
        return url

    def failover(self, *args: str) -> float:
        """Run the command line; its wall time."""
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "failover.cli", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return time.perf_counter() - began

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def round_trips(server: Server, steps: int) -> None:
    os.environ.update(server.env)
    plan = plan_of(steps, 10, None, 11)
    with tempfile.TemporaryDirectory() as work:
        store = open_store(server.table(), work_dir=Path(work))
        table = store.table  # type: ignore[attr-defined]
        before, ops_before = table.requests, Counter(table.by_operation)
        result = execute(plan, store, Options())
        assert result.ok, result.message
        sent = table.requests - before
        ops = Counter(table.by_operation) - ops_before
        events = len(store.events(result.run_id))
        groups, in_groups = store.journal.groups, store.journal.group_requests  # type: ignore[attr-defined]
    detail = ", ".join(f"{op} {n}" for op, n in sorted(ops.items()))
    print(f"round trips: {len(plan.steps)} steps, {events} events, {sent} requests ({detail})")
    print(f"  requests per event {sent / events:.3f}; events per group commit {events / max(1, groups):.1f}")
    appends = in_groups["UpdateItem"]
    other = ", ".join(f"{op} {n}" for op, n in sorted((in_groups - Counter(UpdateItem=appends)).items()))
    print(
        f"  critical path: {appends / max(1, groups):.2f} UpdateItem per group commit ({appends} for "
        f"{groups} groups)   target <= 1; besides: {other or 'nothing'} (a PutItem per "
        "segment sealed, every 150 KB of events; the head read once per run)"
    )
    print(f"  the rest, {sent - sum(in_groups.values())}: the lease, the plan, the run index")


def drills(server: Server, runs: int) -> None:
    directory: list[float] = []
    dynamodb: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(runs):
            directory.append(server.failover(*DRILL, "--auto-approve", "--state", f"{tmp}/state-{n}"))
            dynamodb.append(server.failover(*DRILL, "--auto-approve", "--state", server.table()))
    here, there = statistics.median(directory), statistics.median(dynamodb)
    print(
        f"shop sandbox drill there and back, median of {runs}: directory {here:.2f} s, "
        f"DynamoDB {there:.2f} s: x{there / here:.2f}   target <= 1.5"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    server = Server()
    try:
        round_trips(server, args.steps)
        drills(server, args.runs)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
