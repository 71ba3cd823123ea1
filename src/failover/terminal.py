"""Approvals asked at a terminal: one prompt at a time, first come first served.

Steps that need an approval can become ready at the same moment in different worker threads. If
each asked on its own, prompts would share a line and an answer typed at one would approve
another. A :class:`TerminalApprover` queues the requests and shows one prompt at a time; it
discards what was typed before a prompt appeared, so an answer applies only to the prompt on
screen; and it reads input with ``select`` rather than a blocked read, so it notices a timeout
or a cancellation (Ctrl-C) within ``poll_s``.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import termios
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from failover.durations import format_duration
from failover.engine.approvals import Approval
from failover.plan import PlannedStep

Pause = Callable[[], contextlib.AbstractContextManager[object]]


@dataclass(eq=False)
class _Request:
    step: PlannedStep
    deadline: float


class TerminalApprover:
    """An ``Approver`` that asks at a terminal, safe to call from many threads at once.

    A normal step is approved with ``y`` or ``yes``; a pivot only with its exact step id, so
    that an irreversible step is never approved by a reflex. ``n`` or ``no`` denies, end of
    input denies, and no answer within the time limit (counted from the call, queueing
    included) denies with ``by="timeout"``. Anything else re-asks, within the same limit.
    """

    def __init__(
        self,
        who: str,
        *,
        input_fd: int | None = None,
        output: TextIO | None = None,
        pause: Pause | None = None,
        poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.who = who
        self._fd = sys.stdin.fileno() if input_fd is None else input_fd
        self._out = sys.stderr if output is None else output
        self._pause: Pause = pause or contextlib.nullcontext
        self._poll_s = poll_s
        self._clock = clock
        self._turn = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._typed = b""
        self._mid_line = False
        self._cancelled: str | None = None

    def __call__(self, step: PlannedStep, timeout_s: float) -> Approval:
        """Ask for an approval of ``step`` once the prompts before it are answered."""
        request = _Request(step, self._clock() + timeout_s)
        with self._turn:
            self._queue.append(request)
            while self._queue[0] is not request and self._open(request):
                self._turn.wait(self._poll_s)
            if self._queue[0] is not request or not self._open(request):
                self._leave(request)
                return self._closed(timeout_s)
            behind = len(self._queue) - 1
        try:
            with self._pause():
                return self._prompt(request, timeout_s, behind)
        finally:
            with self._turn:
                self._leave(request)

    def cancel(self, reason: str) -> None:
        """Deny the prompt on screen and every request queued or yet to come, with ``reason``.

        Meant for a signal handler: it takes none of the approver's locks and waits for no
        answer; the threads asking notice within ``poll_s``. It ends the prompt's line, so that
        the terminal is not left mid-prompt.
        """
        if self._cancelled is None:
            self._cancelled = reason
        self._end_line()

    def waiting(self) -> list[str]:
        """The ids of the steps queued behind the prompt on screen, first come first."""
        with self._turn:
            return [request.step.id for request in list(self._queue)[1:]]

    def _open(self, request: _Request) -> bool:
        return self._cancelled is None and self._clock() < request.deadline

    def _leave(self, request: _Request) -> None:
        self._queue.remove(request)
        self._turn.notify_all()

    def _closed(self, timeout_s: float) -> Approval:
        if self._cancelled is not None:
            return Approval(False, self.who, self._cancelled)
        return Approval(False, "timeout", f"no answer within {timeout_s:g}s")

    def _prompt(self, request: _Request, timeout_s: float, behind: int) -> Approval:
        """Show the prompt for ``request`` and read lines until one answers it."""
        step = request.step
        if os.isatty(self._fd):
            termios.tcflush(self._fd, termios.TCIFLUSH)
        self._typed = b""
        kind = "PIVOT (irreversible) " if step.pivot else ""
        how = f"type {step.id} to approve, n to deny" if step.pivot else "approve? [y/n]"
        hint = f"type {step.id} exactly to approve, or n to deny" if step.pivot else "answer y or n"
        queued = f"; {behind} more waiting after this one" if behind else ""
        description = " ".join(step.description.split())
        question = f"approval needed: {kind}{step.id} at site {step.site}\n  {description}\n  {how}"
        self._ask(question, request, queued)
        try:
            while (line := self._next_line(request.deadline)) is not None:
                answer = line.strip()
                if answer.lower() in ("n", "no"):
                    return Approval(False, self.who, "denied at the terminal")
                if (answer == step.id) if step.pivot else (answer.lower() in ("y", "yes")):
                    return Approval(True, self.who, "answered at the terminal")
                self._ask(f"  {hint}", request)
            self._end_line()
            if self._open(request):
                return Approval(False, self.who, "end of input at the terminal")
            if self._cancelled is None:
                self._say(f"no answer within {timeout_s:g}s: {step.id} denied\n")
            return self._closed(timeout_s)
        finally:
            self._end_line()

    def _ask(self, question: str, request: _Request, queued: str = "") -> None:
        left = math.ceil(max(0.0, request.deadline - self._clock()))
        self._say(f"{question} ({format_duration(left)} left{queued}): ")
        self._mid_line = True

    def _next_line(self, deadline: float) -> str | None:
        """The next line typed; None at end of input, on cancel, or once ``deadline`` passes."""
        while b"\n" not in self._typed:
            left = deadline - self._clock()
            if self._cancelled is not None or left <= 0:
                return None
            ready, _, _ = select.select([self._fd], [], [], min(left, self._poll_s))
            if not ready:
                continue
            try:
                chunk = os.read(self._fd, 1024)
            except OSError:  # EIO once the terminal hangs up: the same as end of input
                chunk = b""
            if not chunk:
                line, self._typed = self._typed, b""
                return line.decode(errors="replace") if line else None
            self._typed += chunk
        line, _, self._typed = self._typed.partition(b"\n")
        self._mid_line = False
        return line.decode(errors="replace")

    def _end_line(self) -> None:
        if self._mid_line:
            self._mid_line = False
            self._say("\n")

    def _say(self, text: str) -> None:
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            self._out.write(text)
            self._out.flush()
