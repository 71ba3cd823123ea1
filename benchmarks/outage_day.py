"""The outage day, measured: runs against a source site whose endpoints hang or refuse.

The source site's AWS endpoint is a local TCP port that accepts connections and never answers
(or, for comparison, one that refuses them); the target site is a moto server. Each scenario runs
in its own process, all at once, and prints what it measured:

- hung-call:   one step at the source, ``timeout: 20s, retries: 0``: seconds until the run ends.
- hung-check:  ungraceful, one best-effort CloudWatch check at the source: seconds of preflight.
- ungraceful:  14 services, each a best-effort step at the (hung) source then a step at the
               target, and a standby service with one target step: seconds in all, when the
               standby step started, and how many source steps ``status`` could see after 3 s.
- refused:     the same with the source refusing connections.

    python benchmarks/outage_day.py                       # this checkout
    python benchmarks/outage_day.py --compare OTHER/src   # and another checkout, side by side
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SCENARIOS = ("hung-call", "hung-check", "ungraceful", "refused")
SERVICES = 14


class HungServer:
    """Accepts TCP connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            self.held.append(conn)


def refused_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def sites(source: str, target: str) -> str:
    return f"""version: 1
name: outage
sites:
  east: {{aws: {{region: us-east-1, endpoint_url: "{source}"}}}}
  west: {{aws: {{region: us-west-2, endpoint_url: "{target}"}}}}
"""


def ecs_step(step_id: str, service: str, site: str, extra: str = "") -> str:
    return (
        f"{{id: {step_id}, action: aws.ecs.set_desired_count, site: '{site}'{extra}, "
        f"with: {{cluster: shop, service: {service}, count: 0}}}}"
    )


def runbook(scenario: str, source: str, target: str) -> str:
    text = sites(source, target) + "services:\n"
    if scenario == "hung-call":
        return text + f"  a:\n    steps: [{ecs_step('stop', 'a', '${from}', ', timeout: 20s, retries: 0')}]\n"
    if scenario == "hung-check":
        return text + (
            "  a:\n    preflight: [{id: alarms, check: aws.cloudwatch.alarms_ok, site: '${from}', "
            "ungraceful: best_effort, with: {names: [errors]}}]\n"
            "    steps: [{id: go, action: sim.step, site: '${to}'}]\n"
        )
    for i in range(SERVICES):
        source_step = ecs_step(
            "stop", f"s{i}", "${from}", ", ungraceful: best_effort, timeout: 20s, retries: 0"
        )
        text += f"  s{i}:\n    steps:\n      - {source_step}\n      - {ecs_step('start', f's{i}', '${to}')}\n"
    return text + f"  standby:\n    steps: [{ecs_step('start', 'standby', '${to}')}]\n"


def target_world(endpoint: str) -> None:
    import boto3

    ecs = boto3.client("ecs", region_name="us-west-2", endpoint_url=endpoint)
    ecs.create_cluster(clusterName="shop")
    for name in [*(f"s{i}" for i in range(SERVICES)), "standby", "a"]:
        ecs.create_service(cluster="shop", serviceName=name, desiredCount=0)


def one(scenario: str) -> dict[str, object]:
    """Run one scenario in this process, with whichever failover is on the path."""
    from moto.server import ThreadedMotoServer

    import failover

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    target = f"http://127.0.0.1:{server._server.server_port}"
    target_world(target)
    hung = HungServer()
    source = f"http://127.0.0.1:{refused_port() if scenario == 'refused' else hung.port}"
    mode = "graceful" if scenario == "hung-call" else "ungraceful"
    rb = failover.parse_runbook(runbook(scenario, source, target), "outage.yaml")
    plan = failover.make_plan(rb, from_="east", to="west", mode=mode)
    state = tempfile.mkdtemp()
    seen: dict[str, object] = {}

    def watch() -> None:
        time.sleep(3)
        seen["source_steps_visible_at_3s"] = len(journal(state, "step_started", "east"))

    threading.Thread(target=watch, daemon=True).start()
    started = time.time()
    result = failover.execute(plan, state, failover.Options(auto_approve=True))
    seen["seconds"] = round(time.time() - started, 1)
    seen["status"] = result.status
    events = journal(state, None, None)
    first = {e["step"]: e["at"] for e in reversed(events) if e["kind"] == "step_started"}
    if "standby.start" in first:
        seen["standby_started_s"] = round(first["standby.start"] - started, 2)
    preflight = [e["at"] for e in events if e["kind"] == "preflight_passed"]
    if scenario == "hung-check" and preflight:
        seen["preflight_s"] = round(preflight[0] - started, 1)
    return seen


def journal(state: str, kind: str | None, site: str | None) -> list[dict[str, object]]:
    """Events from the journal file, read with sqlite alone (any version of failover)."""
    db = sqlite3.connect(f"file:{Path(state) / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT kind, step, at FROM events ORDER BY seq").fetchall()
    finally:
        db.close()
    events = [{"kind": k, "step": s, "at": a} for k, s, a in rows]
    if kind is not None:
        events = [e for e in events if e["kind"] == kind]
    if site is not None:  # source steps are named stop
        events = [e for e in events if str(e["step"]).endswith(".stop")]
    return events


def launch(scenario: str, src: str | None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, __file__, "--one", scenario],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--compare", metavar="SRC", help="Also run another checkout's src/, side by side.")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append", help="Only these (repeatable).")
    args = parser.parse_args()
    if args.one:
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(50))
        print(json.dumps(one(args.one)))
        return 0
    chosen = args.scenario or list(SCENARIOS)
    codes = {"this": None, **({"other": args.compare} if args.compare else {})}
    procs = {(code, s): launch(s, src) for code, src in codes.items() for s in chosen}
    print(f"{'scenario':<12} {'code':<6} figures")
    for (code, scenario), proc in procs.items():
        out, _ = proc.communicate(timeout=3600)
        lines = out.strip().splitlines()
        figures = json.loads(lines[-1]) if lines else {"error": f"exit {proc.returncode}"}
        print(f"{scenario:<12} {code:<6} " + "  ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
