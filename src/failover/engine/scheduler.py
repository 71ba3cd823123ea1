"""Which steps may start now: a pure function of the plan, what is done, and what runs.

No threads, no clock, no I/O: the run loop asks ``take()`` for the next task and reports back.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Literal

from failover.plan import PlannedStep

Task = tuple[Literal["ask", "run"], int]
"""Ask for step i's approval (holding no slot), or run step i (holding its slots)."""


def slot_of(step: PlannedStep) -> tuple[str, str]:
    """The limit a step counts against: its provider at its site (``("aws", "east")``)."""
    return step.action.split(".", 1)[0], step.site


class Scheduler:
    """Dependencies, approvals and limits.

    A step is ready once every step it waits for is done (succeeded, skipped, or failed but
    best-effort). A ready step that needs an approval is first handed out to be asked, holding
    no slot; then, like every other ready step, it waits for a slot: fewer than ``limit`` steps
    run in all, and fewer than ``limit_of(step)`` of its provider at its site, so a dead site
    holds only its own slots. Skipped steps take no slot.
    """

    def __init__(
        self,
        steps: Sequence[PlannedStep],
        done: Callable[[int], bool],
        needs_approval: Callable[[int], bool],
        limit: int,
        limit_of: Callable[[PlannedStep], int | None],
    ) -> None:
        self.steps = steps
        self.needs_approval = needs_approval
        self.limit = limit
        self.limit_of = limit_of
        index = {s.id: i for i, s in enumerate(steps)}
        self.waiting = [len(s.after) for s in steps]
        self.dependents: list[list[int]] = [[] for _ in steps]
        for i, s in enumerate(steps):
            for dep in s.after:
                self.dependents[index[dep]].append(i)
        self.ready: list[int] = []  # heap: to run, in plan order
        self.to_ask: list[int] = []  # heap: to ask for an approval
        self.held: dict[tuple[str, str], list[int]] = {}  # ready, but their slot is full
        self.busy: dict[tuple[str, str], int] = {}
        self.running: set[int] = set()
        self.asking: set[int] = set()
        self.stopped = False
        self.done = {i for i in range(len(steps)) if done(i)}
        for i in sorted(self.done):
            self._unlock(i, push=False)
        for i in range(len(steps)):
            if self.waiting[i] == 0 and i not in self.done:
                self._ready(i)

    @property
    def idle(self) -> bool:
        """Nothing runs or is being asked, and nothing more will start."""
        return not self.running and not self.asking and (self.stopped or not (self.ready or self.to_ask))

    def take(self) -> Task | None:
        """The next task, if the limits and the run's health allow one; it is then counted."""
        if self.stopped:
            return None
        if self.to_ask:
            i = heapq.heappop(self.to_ask)
            self.asking.add(i)
            return "ask", i
        while self.ready and len(self.running) < self.limit:
            i = heapq.heappop(self.ready)
            step = self.steps[i]
            if not step.skipped:
                slot = slot_of(step)
                cap = self.limit_of(step)
                if cap is not None and self.busy.get(slot, 0) >= cap:
                    self.held.setdefault(slot, []).append(i)
                    continue
                self.busy[slot] = self.busy.get(slot, 0) + 1
            self.running.add(i)
            return "run", i
        return None

    def approved(self, i: int) -> None:
        """Step i's approval was granted: it now waits for a slot."""
        self.asking.discard(i)
        heapq.heappush(self.ready, i)

    def denied(self, i: int) -> None:
        """Step i's approval was not granted: it will not run."""
        self.asking.discard(i)

    def finished(self, i: int, ok: bool) -> None:
        """Step i ended; its slot is free, and if ``ok`` the steps waiting for it may start."""
        if i not in self.running:
            return
        self.running.discard(i)
        step = self.steps[i]
        if not step.skipped:
            slot = slot_of(step)
            self.busy[slot] -= 1
            for h in self.held.pop(slot, []):
                heapq.heappush(self.ready, h)
        if ok:
            self.done.add(i)
            self._unlock(i, push=True)

    def stop(self) -> None:
        """Start nothing more (a failure, an interruption, a lost lease)."""
        self.stopped = True

    def _unlock(self, i: int, push: bool) -> None:
        for d in self.dependents[i]:
            self.waiting[d] -= 1
            if self.waiting[d] == 0 and push and d not in self.done:
                self._ready(d)

    def _ready(self, i: int) -> None:
        if self.needs_approval(i):
            heapq.heappush(self.to_ask, i)
        else:
            heapq.heappush(self.ready, i)
