"""A trigger on a real Prometheus server (Debian's package), its time injected: it fires after
for: and not before, a cooldown refuses a second firing, and a sick target blocks it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover.engine import Options
from failover.runbook import parse_runbook
from failover.state.local import DirectoryStore
from failover.watch.loop import Watched, Watcher
from tests.conftest import SITES
from tests.prom_server import Exporter, PrometheusServer

TRIGGER = """
services:
  app:
    steps: [{{id: move, action: sim.step, site: "${{to}}", with: {{target: app}}}}]
triggers:
  errors:
    from: east
    to: west
    every: 10s
    for: 1m
    clear_for: 5m
    cooldown: 1h
    signals:
      - {{id: ratio, check: prometheus.query, site: "${{from}}",
         with: {{url: "{url}", op: "<", value: 0.05,
                query: 'shop_error_ratio{{test="{test}",site="${{from}}"}}'}}}}
    guard:
      - {{id: ratio, check: prometheus.query, site: "${{to}}",
         with: {{url: "{url}", op: "<", value: 0.05,
                query: 'shop_error_ratio{{test="{test}",site="${{to}}"}}'}}}}
    notify: [{{webhook: "http://127.0.0.1:9/hook"}}]
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def watcher(
    prometheus: PrometheusServer, test: str, state: Path
) -> tuple[Watcher, Clock, list[dict[str, Any]]]:
    rb = parse_runbook(SITES + TRIGGER.format(url=prometheus.url, test=test), "t.yaml")
    clock, told = Clock(), []
    found = Watcher(
        rb.name,
        [Watched.of(rb, "errors")],
        DirectoryStore(state),
        Options(),
        start=lambda w, run_id: None,
        follow=lambda run_id: None,
        clock=clock,
        deliver=lambda url, body: told.append(body),  # type: ignore[func-returns-value]
    )
    return found, clock, told


def serve(prometheus: PrometheusServer, exporter: Exporter, test: str, east: float, west: float) -> None:
    for site, value in (("east", east), ("west", west)):
        exporter.set(f'shop_error_ratio{{site="{site}",test="{test}"}}', value)
    prometheus.wait_for(f'shop_error_ratio{{test="{test}"}}', [str(east), str(west)])


def states(w: Watcher, clock: Clock, at: list[float]) -> list[str]:
    found = []
    for t in at:
        clock.now = 1_000_000.0 + t
        found.append(w.evaluate(w.triggers[0]).state)
    return found


def test_a_prometheus_signal_fires_after_for_and_not_before_then_cooldown_holds(
    prometheus: PrometheusServer, exporter: Exporter, tmp_path: Path
) -> None:
    serve(prometheus, exporter, "fires", east=0.002, west=0.001)
    w, clock, told = watcher(prometheus, "fires", tmp_path)
    assert states(w, clock, [0]) == ["armed"]
    serve(prometheus, exporter, "fires", east=0.31, west=0.001)
    assert states(w, clock, [10, 40, 69, 70, 80]) == ["pending", "pending", "pending", "firing", "fired"]
    (body,) = told
    (signal,) = body["failover"]["signals"]
    assert signal["ok"] is False and "0.31" in str(signal["observed"])
    serve(prometheus, exporter, "fires", east=0.002, west=0.001)  # good for clear_for: re-armed
    assert states(w, clock, [100, 400])[-1] == "armed"
    serve(prometheus, exporter, "fires", east=0.4, west=0.001)
    assert states(w, clock, [500, 600]) == ["pending", "cooling"]  # an hour after the firing: not yet
    assert len(told) == 1


def test_a_sick_target_blocks_the_firing(
    prometheus: PrometheusServer, exporter: Exporter, tmp_path: Path
) -> None:
    serve(prometheus, exporter, "sick", east=0.5, west=0.2)
    w, clock, told = watcher(prometheus, "sick", tmp_path)
    assert states(w, clock, [0, 30, 60]) == ["pending", "pending", "blocked"]
    assert told == []
    evaluation = w.last["errors"]
    assert evaluation.guard is not None and not evaluation.guard[0].ok
    assert "0.2" in str(evaluation.guard[0].observed)
