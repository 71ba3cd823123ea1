"""The engine at scale, measured side by side in one run (ratios: this machine is noisy).

1. Makespan over the critical-path bound on a 1,000-service sim topology (step latencies
   10-50 ms, unlimited concurrency), median of several runs: the engine with its durable
   journal; the same with JSON log lines on (as the CLI logs off a terminal); and a bare
   Python thread DAG runner on the same graph, which is the floor. Targets: <= 1.10 and <= 1.20.
2. The same at 100-500 ms steps (200 services). Target <= 1.01.
3. The same graph run in dependency "waves" (each wave waits for the whole previous one, as
   group-based DR tools do): our speed-up over waves.
4. CPU per step: process CPU time of 5,000 zero-latency steps with the durable journal. Target
   <= 0.25 ms.

    python benchmarks/execute_scale.py [--services N] [--overhead-steps N] [--runs N]
                                       [--state dynamodb]

``--state dynamodb`` keeps every run's state in a DynamoDB table (a moto server on 127.0.0.1, as
``benchmarks/team_state.py`` starts it) instead of a directory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog
import yaml

from failover.engine import Options, execute
from failover.plan import Plan, PlannedStep
from failover.planner import make_plan
from failover.runbook import parse_runbook
from failover.state import open_store
from failover.state.store import StateStore


def topology(services: int, layers: int, max_deps: int, latency: tuple[int, int] | None, seed: int) -> str:
    rng = random.Random(seed)
    per_layer = max(1, services // layers)
    names = [f"svc{i:05d}" for i in range(services)]
    svc_docs: dict[str, object] = {}
    for i, name in enumerate(names):
        layer = min(i // per_layer, layers - 1)
        earlier = layer * per_layer
        deps = sorted(set(rng.sample(range(earlier), min(max_deps, earlier)))) if earlier else []
        duration = f"{rng.randint(*latency)}ms" if latency else "0s"
        svc_docs[name] = {
            "depends_on": [names[d] for d in deps],
            "steps": [{"id": "move", "action": "sim.step", "site": "${to}", "with": {"duration": duration}}],
        }
    doc = {
        "version": 1,
        "name": "bench",
        "sites": {"east": {}, "west": {}},
        "defaults": {"timeout": "1m", "retries": 0},
        "services": svc_docs,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def plan_of(services: int, layers: int, latency: tuple[int, int] | None, seed: int) -> Plan:
    runbook = parse_runbook(topology(services, layers, 3 if latency else 2, latency, seed), "bench.yaml")
    return make_plan(runbook, from_="east", to="west")


def step_window(store: StateStore, run_id: str) -> float:
    """Seconds from the first step start to the last step end, from the journal."""
    events = [e for e in store.events(run_id) if e.step]
    starts = [e.at for e in events if e.kind == "step_started"]
    ends = [e.at for e in events if e.kind == "step_succeeded"]
    return max(ends) - min(starts)


SHARED: list[Any] = []  # the DynamoDB server, with --state dynamodb


@contextlib.contextmanager
def fresh_store() -> Iterator[StateStore]:
    """State for one run: a new directory, or a new table with --state dynamodb."""
    with tempfile.TemporaryDirectory() as state:
        yield open_store(SHARED[0].table(), work_dir=Path(state)) if SHARED else open_store(state)


def engine(plan: Plan) -> float:
    with fresh_store() as store:
        result = execute(plan, store, Options())
        assert result.ok, result.message
        return step_window(store, result.run_id)


def bare_threads(plan: Plan) -> float:
    """The floor: each step a thread that sleeps its latency, started as soon as its
    dependencies end; no journal, no provider, no limits."""
    steps = plan.steps
    index = {s.id: i for i, s in enumerate(steps)}
    waiting = [len(s.after) for s in steps]
    dependents: list[list[int]] = [[] for _ in steps]
    for i, s in enumerate(steps):
        for dep in s.after:
            dependents[index[dep]].append(i)
    lock, done = threading.Lock(), threading.Event()
    left = [len(steps)]

    def run(i: int) -> None:
        time.sleep(steps[i].estimate_s)
        ready = []
        with lock:
            left[0] -= 1
            for d in dependents[i]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    ready.append(d)
            if not left[0]:
                done.set()
        for d in ready:
            threading.Thread(target=run, args=(d,), daemon=True).start()

    began = time.monotonic()
    for i in range(len(steps)):
        if waiting[i] == 0:
            threading.Thread(target=run, args=(i,), daemon=True).start()
    done.wait()
    return time.monotonic() - began


def in_waves(plan: Plan) -> Plan:
    """The same steps, run the way group-based DR tools run them: in dependency waves, each step
    of a wave waiting for every step of the wave before (a barrier)."""
    level: dict[str, int] = {}
    for step in plan.steps:
        level[step.id] = 1 + max((level[d] for d in step.after), default=-1)
    waves: dict[int, list[str]] = {}
    for step in plan.steps:
        waves.setdefault(level[step.id], []).append(step.id)
    steps = tuple(replace_after(s, tuple(waves.get(level[s.id] - 1, ()))) for s in plan.steps)
    return dataclasses.replace(plan, steps=steps)


def replace_after(step: PlannedStep, after: tuple[str, ...]) -> PlannedStep:
    return step._replace(after=after)


def quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))


def json_lines() -> None:
    """What the CLI does off a terminal: every event a JSON line (here to /dev/null)."""
    from failover.logs import configure

    configure(json_lines=True)
    sink = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run)
    sys.stderr = sink


def ratios(plan: Plan, runs: int, measure: Callable[[Plan], float]) -> list[float]:
    return [measure(plan) / plan.predicted_rto_s for _ in range(runs)]


def line(name: str, values: list[float], target: str = "") -> str:
    med = statistics.median(values)
    return f"{name:<34} median {med:6.3f}  (min {min(values):.3f}, max {max(values):.3f}){target}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--overhead-steps", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--state", choices=["directory", "dynamodb"], default="directory")
    args = parser.parse_args()
    quiet()
    if args.state == "dynamodb":
        from team_state import Server

        SHARED.append(Server())
        os.environ.update(SHARED[0].env)
        print("state: DynamoDB (moto server on 127.0.0.1, one request at a time)")
    plan = plan_of(args.services, 25, (10, 50), args.seed)
    slow = plan_of(200, 10, (100, 500), args.seed)
    print(
        f"topology: {len(plan.steps)} steps at 10-50 ms (bound {plan.predicted_rto_s:.3f} s), "
        f"{len(slow.steps)} steps at 100-500 ms (bound {slow.predicted_rto_s:.3f} s); makespan / bound"
    )
    floor = ratios(plan, args.runs, bare_threads)
    durable = ratios(plan, args.runs, engine)
    slow_floor = ratios(slow, max(1, args.runs // 2), bare_threads)
    slow_engine = ratios(slow, max(1, args.runs // 2), engine)
    waves = engine(in_waves(plan)) / plan.predicted_rto_s
    flat = plan_of(args.overhead_steps, 50, None, args.seed)
    with fresh_store() as store:
        cpu, wall = time.process_time(), time.perf_counter()
        assert execute(flat, store, Options()).ok
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stderr = sys.stderr
    json_lines()
    logged = ratios(plan, args.runs, engine)
    sys.stderr = stderr
    quiet()
    print(line("bare thread DAG runner (floor)", floor))
    print(line("engine, durable journal", durable, "   target <= 1.10"))
    print(line("engine, JSON log lines on", logged, "   target <= 1.20"))
    print(line("bare threads, 100-500 ms steps", slow_floor))
    print(line("engine, 100-500 ms steps", slow_engine, "   target <= 1.01"))
    speedup = waves / statistics.median(durable)
    print(f"{'in waves (barriers), same engine':<34} {waves:13.3f}  speed-up over waves x{speedup:.2f}")
    per_step = cpu / len(flat.steps) * 1000
    print(
        f"{'CPU per step':<34} {per_step:6.3f} ms  ({len(flat.steps)} zero-latency steps, {wall:.2f} s wall)"
        "   target <= 0.25 ms"
    )
    met = (
        statistics.median(durable) <= 1.10
        and statistics.median(logged) <= 1.20
        and statistics.median(slow_engine) <= 1.01
        and per_step <= 0.25
    )
    print("targets: " + ("met" if met else "NOT met"))
    if SHARED:
        SHARED[0].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
