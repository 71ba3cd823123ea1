"""A live view of a run for a terminal: the preflight checks' answers as they come, each step's
state and elapsed time against its estimate, and at its foot the approval prompt, if one is open.

The view is one region redrawn in place, a few times a second, from the run's events (times are
the journal's: ``runview``). Whatever must stay on the screen (a check's answer, a prompt once
answered) is printed above the region, once; the region never stops while a prompt is open, so
nothing of it is left behind in the scrollback, and what was printed is not printed again. When
the run ends, the table of every step that moved is printed in full, once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from failover.durations import format_duration
from failover.plan import Plan
from failover.runview import RunView
from failover.state.events import Event

STYLES = {
    "pending": "dim",
    "waiting approval": "yellow",
    "running": "cyan",
    "succeeded": "green",
    "skipped": "dim",
    "failed": "bold red",
    "denied": "bold red",
    "compensating": "magenta",
    "compensated": "magenta",
}
_CHECK_STYLES = {"check_passed": "green", "check_failed": "bold red", "check_skipped": "yellow"}
COLUMNS = ("step", "state", "elapsed", "estimate")
_FIXED_LINES = 3  # the table's header and rule, and a line for the steps left out


class LiveProgress:
    """Feed it the run's events (``on_event``); it draws the run until the ``with`` block ends.
    It is also the :class:`failover.terminal.PromptArea` of a terminal's approvals."""

    def __init__(
        self, plan: Plan, console: Console | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.plan = plan
        self.view = RunView(plan)
        self.console = console or Console(stderr=True)
        self.clock = clock  # wall-clock time, as the journal stamps events
        self.lock = threading.Lock()  # the view's state; never held while drawing
        self.printing = threading.Lock()  # lines printed above the region, one at a time
        self.prompt: tuple[str, str] | None = None  # its text, and what is typed at it
        self.notice: str | None = None  # set from a signal handler: an assignment, no lock
        self.final = False  # the last drawing: every step, no prompt
        self.closed = False
        self.live = Live(
            console=self.console, get_renderable=self.render, refresh_per_second=4, transient=False
        )

    def __enter__(self) -> LiveProgress:
        self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self.lock:
            self.final = True
        try:
            self.live.__exit__(kind, exc, tb)
        finally:
            self.closed = True

    def on_event(self, event: Event) -> None:
        with self.lock:
            line = self.view.apply(event)
        if line is not None:
            self._print(Text(line, style=_CHECK_STYLES.get(event.kind, "")))

    def tell(self, note: str) -> None:
        """Show ``note`` under the table until the run ends. Safe in a signal handler."""
        self.notice = " ".join(note.split())

    # --- the prompt area -----------------------------------------------------------------------

    def show_prompt(self, text: str, typed: str) -> None:
        with self.lock:
            self.prompt = (text, typed)
        self._redraw()

    def end_prompt(self, record: str) -> None:
        with self.lock:
            self.prompt = None
        self._redraw()
        self._print(Text(record))

    def _redraw(self) -> None:
        if self.live.is_started:
            self.live.refresh()

    def _print(self, line: Text) -> None:
        """Print ``line`` above the region (under the final table once the view has ended: never)."""
        with self.printing:
            if not self.closed:
                self.console.print(line)

    # --- drawing -------------------------------------------------------------------------------

    def render(self) -> RenderableType:
        """The region as it is now: called by the live display at each redraw."""
        width, height = self.console.size
        with self.lock:
            now, view = self.clock(), self.view
            prompt = None if self.final else self.prompt
            notice = self.notice
            head = self._head(now)
            foot = [notice] if notice else []
            if prompt is not None:
                foot.append(prompt[0] + prompt[1])
            used = _lines(head, width) + sum(_lines(text, width) for text in foot) + _FIXED_LINES
            rows, left = view.rows(now, None if self.final else max(1, height - used - 1))
        table = Table(expand=False, show_edge=False, pad_edge=False)
        for column in COLUMNS:
            table.add_column(column)
        for row in rows:
            table.add_row(
                row.step,
                Text(row.state, style=STYLES.get(row.state, "")),
                "-" if row.elapsed is None else format_duration(row.elapsed),
                format_duration(row.estimate),
            )
        parts: list[RenderableType] = [Text(head, style="bold"), table]
        if left:
            parts.append(Text(f"... and {left} more steps under way or done", style="dim"))
        if notice:
            parts.append(Text(notice, style="bold red"))
        if prompt is not None:
            text, typed = prompt
            shown = Text(text, style="bold yellow")
            shown.append(typed)
            shown.append(" ", style="reverse")  # where the next key goes
            parts.append(shown)
        return Group(*parts)

    def _head(self, now: float) -> str:
        view, plan = self.view, self.plan
        phase = view.phase
        if phase == "preflight checks":
            phase += f" {sum(view.checks.values())} of {len(plan.preflight)}"
        counts = "  ".join(f"{k} {v}" for k, v in view.counts().items())
        return (
            f"{plan.runbook.name}: {plan.scenario.from_} -> {plan.scenario.to}  {phase}  "
            f"elapsed {format_duration(view.elapsed(now))} of predicted "
            f"{format_duration(plan.predicted_rto_s)}  {counts}"
        )


def _lines(text: str, width: int) -> int:
    """How many lines ``text`` takes on a terminal ``width`` wide."""
    return sum(max(1, math.ceil(len(line) / max(1, width))) for line in text.split("\n"))
