"""Latency that polling adds to the shop's failover, the waits of before and of now side by side.

Every wait on the shop plan's critical path (east -> west, graceful) is driven through the real
``wait_until`` on a simulated clock: the resource reaches its state at a time drawn from a time
model of the service (below), and the wait notices it at its next poll. The latency added is
the time between the two. The same draws go through the previous schedule (the first poll after
1 s, doubling to a cap per service: RDS 15 s, ECS, Auto Scaling and instance groups 10 s, Route 53
5 s) and the current one (0.25 s, doubling to 1.5 s). Compute Engine operations are long-polled
(``operations.wait`` answers when they are done) and add nothing.

Target: the current schedule adds <= 5 s on the critical path, on average.

    python benchmarks/poll_latency.py [--trials N] [--seed N] [--runbook PATH]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from failover.planner import make_plan
from failover.providers.base import POLL_CAP_S, POLL_FIRST_S, Context, Placement, wait_until
from failover.runbook import load_runbook

ROOT = Path(__file__).resolve().parent.parent

# How long each kind of change takes to be observable as done (seconds, low-high, uniform), from
# the services' documented and typical behaviour; and the cap of its wait's previous schedule.
MODEL: dict[str, tuple[tuple[float, float], float]] = {
    "aws.rds.switchover_global_cluster": ((60.0, 180.0), 15.0),  # pending, then switching-over
    "aws.rds.failover_global_cluster": ((45.0, 120.0), 15.0),
    "aws.ecs.set_desired_count": ((30.0, 90.0), 10.0),  # task placement, image pull, health
    "aws.autoscaling.set_capacity": ((60.0, 180.0), 10.0),  # boot, warm-up, InService
    "gcp.compute.resize_instance_group": ((40.0, 120.0), 10.0),  # boot, health-check threshold
    "aws.route53.set_weights": ((20.0, 60.0), 5.0),  # PENDING to INSYNC
}


@dataclass
class Clock:
    now: float = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def added(reached_at: float, cap: float, first: float) -> float:
    """Seconds between the state being reached and the wait noticing it."""
    clock = Clock()
    ctx = Context(
        run_id="bench",
        step_id="wait",
        placement=Placement(site="west"),
        state_dir=Path("."),
        sleep=clock.sleep,
        clock=clock.time,
    )
    wait_until(ctx, "bench", lambda: clock.now >= reached_at, timeout=3600, every=cap, first=first)
    return clock.now - reached_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runbook", type=Path, default=ROOT / "runbooks" / "shop.yaml")
    args = parser.parse_args()
    plan = make_plan(load_runbook(args.runbook), from_="east", to="west")
    waits = [plan.steps_by_id[s] for s in plan.critical_path if plan.steps_by_id[s].action in MODEL]
    print(
        f"shop east -> west, graceful: {len(plan.critical_path)} steps on the critical path, "
        f"{len(waits)} of them wait: {', '.join(s.id for s in waits)}"
    )
    rng = random.Random(args.seed)
    before: list[float] = []
    now: list[float] = []
    for _ in range(args.trials):
        draws = [(rng.uniform(*MODEL[s.action][0]), MODEL[s.action][1]) for s in waits]
        before.append(sum(added(t, cap, 1.0) for t, cap in draws))
        now.append(sum(added(t, POLL_CAP_S, POLL_FIRST_S) for t, _ in draws))
    current = f"now ({POLL_FIRST_S:g} s doubling to {POLL_CAP_S:g} s)"
    for name, values in (("before (1 s doubling to 5-15 s)", before), (current, now)):
        print(
            f"{name:<34} added on the critical path: mean {statistics.mean(values):6.2f} s, "
            f"worst {max(values):6.2f} s  ({args.trials} draws)"
        )
    mean = statistics.mean(now)
    print(f"target: mean <= 5 s: {'met' if mean <= 5 else 'NOT met'} ({mean:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
