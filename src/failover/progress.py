"""A live view of a run for a terminal: each step's state, elapsed against predicted."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from failover.durations import format_duration
from failover.plan import Plan
from failover.state.events import Event

STYLES = {
    "pending": "dim",
    "waiting approval": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "skipped": "dim",
    "failed": "bold red",
    "compensating": "magenta",
    "compensated": "magenta",
}
_STATE_OF = {
    "approval_requested": "waiting approval",
    "step_started": "running",
    "apply_started": "running",
    "approval_granted": "pending",
    "approval_denied": "pending",
    "step_succeeded": "succeeded",
    "step_skipped": "skipped",
    "step_failed": "failed",
    "compensation_started": "compensating",
    "step_compensated": "compensated",
}


class LiveProgress:
    """Feed it the run's events (``on_event``); it redraws a table while the run goes on."""

    def __init__(self, plan: Plan, console: Console | None = None) -> None:
        self.plan = plan
        self.console = console or Console(stderr=True)
        self.state = {s.id: "pending" for s in plan.steps}
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.begin = time.monotonic()
        self.note = "preflight checks"
        self.lock = threading.Lock()
        self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.live.update(self.render())
        self.live.__exit__(kind, exc, tb)

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Stop redrawing while a prompt is on screen, so the two do not fight."""
        with self.lock:
            self.live.stop()
        try:
            yield
        finally:
            with self.lock:
                self.live.start()

    def on_event(self, event: Event) -> None:
        with self.lock:
            now = time.monotonic()
            if event.kind == "preflight_passed":
                self.note = "running"
            elif event.kind == "rollback_started":
                self.note = "rolling back"
            elif event.kind == "run_finished":
                self.note = str(event.data.get("status"))
            if event.step in self.state and event.kind in _STATE_OF:
                self.state[event.step] = _STATE_OF[event.kind]
                if event.kind == "step_started":
                    self.started.setdefault(event.step, now)
                elif event.kind in ("step_succeeded", "step_failed", "step_skipped"):
                    self.ended[event.step] = now
            self.live.update(self.render())

    def render(self) -> Group:
        now = time.monotonic()
        counts: dict[str, int] = {}
        for state in self.state.values():
            counts[state] = counts.get(state, 0) + 1
        head = Text(
            f"{self.plan.runbook.name}: {self.plan.scenario.from_} -> {self.plan.scenario.to}  "
            f"{self.note}  elapsed {format_duration(now - self.begin)} of predicted "
            f"{format_duration(self.plan.predicted_rto_s)}  "
            + "  ".join(f"{k} {v}" for k, v in sorted(counts.items())),
            style="bold",
        )
        table = Table(expand=False, show_edge=False, pad_edge=False)
        for column in ("step", "state", "elapsed", "estimate"):
            table.add_column(column)
        for step in self.plan.steps:
            state = self.state[step.id]
            if state == "pending":
                continue
            start = self.started.get(step.id)
            took = (self.ended.get(step.id, now) - start) if start is not None else 0.0
            table.add_row(
                step.id,
                Text(state, style=STYLES.get(state, "")),
                format_duration(took),
                format_duration(step.estimate_s),
            )
        return Group(head, table)
