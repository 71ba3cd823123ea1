"""Prometheus metrics of runs and readiness checks, in the text format, written as a file for
node_exporter's textfile collector (``--metrics-file``).

Labels name the runbook and the scenario (``runbook``, ``from_site``, ``to_site``, ``mode``), never
a run id, so a series stays the same series from one drill to the next. Every label value is
redacted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from failover.errors import MetricsError
from failover.redact import redact_strings
from failover.report.text import epoch

if TYPE_CHECKING:
    from failover.engine import Readiness
    from failover.state.store import StateStore
    from failover.watch.loop import Watcher

SCENARIO = ("runbook", "from_site", "to_site", "mode")


def check_writable(path: Path, option: str = "--metrics-file") -> None:
    """Fail before anything runs when an output file (of ``option``) could not be written
    afterwards."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MetricsError(f"{option} {path}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise MetricsError(f"{option} {path}: directory {folder} is not writable")
    if path.is_dir():
        raise MetricsError(f"{option} {path}: is a directory, expected a file name")


def _scenario(runbook: str, scenario: Mapping[str, Any]) -> tuple[str, str, str, str]:
    runbook, from_, to, mode = _labels(
        runbook, scenario["from"], scenario["to"], scenario.get("mode", "graceful")
    )
    return runbook, from_, to, mode


def _labels(*values: object) -> tuple[str, ...]:
    """Label values as text, redacted."""
    return tuple(redact_strings([str(v) for v in values]))


def _gauges(registry: CollectorRegistry) -> Callable[..., Gauge]:
    """A maker of gauges in ``registry``, labelled with the scenario and ``extra`` labels."""

    def gauge(name: str, doc: str, *extra: str) -> Gauge:
        return Gauge(name, doc, [*SCENARIO, *extra], registry=registry)

    return gauge


def run_metrics(
    reports: Iterable[Mapping[str, Any]], undone: Iterable[Mapping[str, Any]] = ()
) -> CollectorRegistry:
    """Gauges of one or more runs (a drill's failover and failback), from their report data;
    ``undone``: the same runs after a drill undid them (``failback: rollback``)."""
    registry = CollectorRegistry()
    gauge = _gauges(registry)

    success = gauge("failover_run_success", "1 if the run succeeded, 0 if not.")
    exit_code = gauge("failover_run_exit_code", "The run's exit code (0 ok, 1 failed, 3 refused).")
    finished = gauge("failover_run_finished_timestamp_seconds", "When the run finished (Unix time).")
    measured = gauge("failover_run_rto_seconds", "Measured RTO: from preflight passed to the last step done.")
    predicted = gauge("failover_run_rto_predicted_seconds", "The plan's predicted RTO.")
    target = gauge("failover_run_rto_target_seconds", "The runbook's RTO target.")
    service_rto = gauge("failover_service_rto_seconds", "Measured RTO of a service.", "service")
    service_target = gauge("failover_service_rto_target_seconds", "A service's RTO target.", "service")
    duration = gauge("failover_step_duration_seconds", "How long a step took.", "step", "service", "site")
    attempts = gauge("failover_step_attempts", "Attempts a step took.", "step", "service", "site")
    for data in reports:
        labels = _scenario(str(data["runbook"]), data["scenario"])
        success.labels(*labels).set(1 if data["status"] == "succeeded" else 0)
        exit_code.labels(*labels).set(data.get("exit_code") or 0)
        if data.get("finished_at"):
            finished.labels(*labels).set(epoch(data["finished_at"]) or 0.0)
        rto = data["rto"]
        for metric, key in ((measured, "measured_s"), (predicted, "predicted_s"), (target, "target_s")):
            if (value := rto[key]) is not None:
                metric.labels(*labels).set(value)
        for service in data["services"]:
            if service["measured_s"] is not None:
                service_rto.labels(*labels, *_labels(service["name"])).set(service["measured_s"])
            if service["rto_target_s"] is not None:
                service_target.labels(*labels, *_labels(service["name"])).set(service["rto_target_s"])
        for step in data["steps"]:
            where = _labels(step["id"], step["service"], step["site"])
            if step["duration_s"] is not None:
                duration.labels(*labels, *where).set(step["duration_s"])
            if step["attempts"]:
                attempts.labels(*labels, *where).set(step["attempts"])
    undo = gauge("failover_run_undo_success", "1 if undoing the run (the drill's failback) succeeded.")
    for data in undone:
        ok = data["status"] == "rolled_back" and data.get("exit_code") == 0
        undo.labels(*_scenario(str(data["runbook"]), data["scenario"])).set(1 if ok else 0)
    return registry


def readiness_metrics(
    runbook: str, scenario: Mapping[str, Any], results: Iterable[Readiness], at: float
) -> CollectorRegistry:
    """Gauges of a readiness check: ready or not, and each preflight check's outcome."""
    registry = CollectorRegistry()
    labels = _scenario(runbook, scenario)
    results = list(results)
    ready = Gauge(
        "failover_ready",
        "1 if every preflight check passed (the plan could run now).",
        SCENARIO,
        registry=registry,
    )
    ready.labels(*labels).set(0 if any(r.blocking for r in results) else 1)
    checked = Gauge(
        "failover_ready_timestamp_seconds",
        "When readiness was checked (Unix time).",
        SCENARIO,
        registry=registry,
    )
    checked.labels(*labels).set(at)
    check_ok = Gauge(
        "failover_check_ok",
        "1 if the preflight check passed (or was skipped), 0 if not.",
        [*SCENARIO, "check", "site"],
        registry=registry,
    )
    for result in results:
        check_ok.labels(*labels, *_labels(result.id, result.site)).set(1 if result.ok else 0)
    return registry


def watch_metrics(runbook: str, watcher: Watcher, store: StateStore) -> CollectorRegistry:
    """Gauges of a watcher: when it last evaluated (a dead-man: alert when it stops moving), each
    trigger's state and signals, its last firing, and the figures of its last incident."""
    from failover.watch.records import TriggerRecord, incident_figures, record_name
    from failover.watch.state import STATES

    registry = CollectorRegistry()
    rb = _labels(runbook)

    def gauge(name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, ["runbook", *labels], registry=registry)

    last = [e.at for e in watcher.last.values()]
    gauge(
        "failover_watch_last_evaluation_timestamp_seconds", "When the watcher last evaluated a trigger."
    ).labels(*rb).set(max(last, default=0.0))
    state = gauge("failover_trigger_state", "1 for the trigger's current state.", "trigger", "state")
    bad = gauge("failover_trigger_bad_signals", "How many of the trigger's signals were bad.", "trigger")
    signal_ok = gauge(
        "failover_signal_ok", "1 if the signal was good at its last evaluation.", "trigger", "signal", "site"
    )
    fired = gauge("failover_trigger_last_fired_timestamp_seconds", "When the trigger last fired.", "trigger")
    incident = gauge(
        "failover_incident_seconds",
        "The last incident of the trigger: time to detect, decide, cut over and recover.",
        "trigger",
        "phase",
    )
    for name, evaluation in watcher.last.items():
        labels = (*rb, *_labels(name))
        for each in STATES:
            state.labels(*labels, each).set(1 if evaluation.state == each else 0)
        bad.labels(*labels).set(sum(1 for r in evaluation.signals if not r.ok))
        for r in evaluation.signals:
            signal_ok.labels(*labels, *_labels(r.id, r.site)).set(1 if r.ok else 0)
        record = TriggerRecord.read(store, record_name(runbook, name))
        if record.memory.fired_at is not None:
            fired.labels(*labels).set(record.memory.fired_at)
        if record.incidents:
            for phase, value in incident_figures(record.incidents[-1]).items():
                if value is not None:
                    incident.labels(*labels, phase.removeprefix("time_to_").removesuffix("_s")).set(value)
    return registry


def write(registry: CollectorRegistry, path: Path) -> None:
    """Write the file atomically (a temporary file renamed into place), as the collector wants."""
    try:
        write_to_textfile(str(path), registry)
    except OSError as exc:
        raise MetricsError(f"cannot write --metrics-file {path}: {exc}") from exc
