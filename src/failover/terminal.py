"""Approvals asked at a terminal: one prompt at a time, first come first served.

Steps that need an approval can become ready at the same moment in different worker threads. If
each asked on its own, prompts would share a line and an answer typed at one would approve
another. A :class:`TerminalApprover` queues the requests and shows one prompt at a time; it
discards what was typed before a prompt appeared, so an answer applies only to the prompt on
screen; and it reads input with ``select`` rather than a blocked read, so it notices a timeout
or a cancellation (Ctrl-C) within ``poll_s``.

Below a live view (``progress.LiveProgress``), the prompt is drawn by the view at its foot (a
:class:`PromptArea`), so the view goes on redrawing above it: what is typed is read key by key and
shown there (``keys``), and once the prompt is over, what it asked and what was answered stay on
the screen above the view.
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
from typing import Protocol, TextIO

from failover.durations import format_duration
from failover.engine.approvals import Approval
from failover.keys import LineEditor, keystrokes
from failover.plan import PlannedStep


class PromptArea(Protocol):
    """Where a prompt is drawn when something else holds the terminal (a live view)."""

    def show_prompt(self, text: str, typed: str) -> None:
        """Show the prompt ``text`` and what is being typed at it."""

    def end_prompt(self, record: str) -> None:
        """The prompt is over: ``record`` (what was asked and answered) stays on screen."""


@dataclass(eq=False)
class _Request:
    step: PlannedStep
    deadline: float


class TerminalApprover:
    """An ``Approver`` that asks at a terminal, safe to call from many threads at once.

    A normal step is approved with ``y`` or ``yes``; a pivot only with its exact step id, so
    that an irreversible step is never approved by a reflex. ``n`` or ``no`` denies, end of
    input denies, and no answer within the time limit (counted from the call, queueing
    included) denies with ``by="timeout"``. Anything else re-asks, within the same limit. A
    request the run no longer waits for (``withdraw``) leaves the screen.
    """

    def __init__(
        self,
        who: str,
        *,
        input_fd: int | None = None,
        output: TextIO | None = None,
        area: PromptArea | None = None,
        poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.who = who
        self._fd = sys.stdin.fileno() if input_fd is None else input_fd
        self._out = sys.stderr if output is None else output
        self._area = area
        self._poll_s = poll_s
        self._clock = clock
        self._turn = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._typed = b""
        self._editor: LineEditor | None = None  # reading key by key, for the area
        self._transcript = ""  # the prompt on screen, as asked and answered so far
        self._mid_line = False
        self._cancelled: str | None = None
        self._withdrawn: dict[str, str] = {}  # step id: why the run no longer waits for it

    def __call__(self, step: PlannedStep, timeout_s: float) -> Approval:
        """Ask for an approval of ``step`` once the prompts before it are answered."""
        request = _Request(step, self._clock() + timeout_s)
        try:
            with self._turn:
                self._queue.append(request)
                while self._queue[0] is not request and self._open(request):
                    self._turn.wait(self._poll_s)
                if self._queue[0] is not request or not self._open(request):
                    self._leave(request)
                    return self._closed(request, timeout_s)
                behind = len(self._queue) - 1
            try:
                return self._prompt(request, timeout_s, behind)
            finally:
                with self._turn:
                    self._leave(request)
        finally:
            self._withdrawn.pop(step.id, None)

    def cancel(self, reason: str) -> None:
        """Deny the prompt on screen and every request queued or yet to come, with ``reason``.

        Meant for a signal handler: it takes none of the approver's locks and waits for no
        answer; the threads asking notice within ``poll_s``. It ends the prompt's line, so that
        the terminal is not left mid-prompt.
        """
        if self._cancelled is None:
            self._cancelled = reason
        self._end_line()

    def withdraw(self, step: PlannedStep, reason: str) -> None:
        """The run no longer waits for an answer about ``step`` (``reason``): its prompt, on
        screen or queued, goes within ``poll_s``. Takes no lock."""
        self._withdrawn[step.id] = reason

    def waiting(self) -> list[str]:
        """The ids of the steps queued behind the prompt on screen, first come first."""
        with self._turn:
            return [request.step.id for request in list(self._queue)[1:]]

    def _open(self, request: _Request) -> bool:
        return (
            self._cancelled is None
            and request.step.id not in self._withdrawn
            and self._clock() < request.deadline
        )

    def _leave(self, request: _Request) -> None:
        self._queue.remove(request)
        self._turn.notify_all()

    def _closed(self, request: _Request, timeout_s: float) -> Approval:
        if self._cancelled is not None:
            return Approval(False, self.who, self._cancelled)
        withdrawn = self._withdrawn.get(request.step.id)
        if withdrawn is not None:
            return Approval(False, self.who, withdrawn)
        return Approval(False, "timeout", f"no answer within {timeout_s:g}s")

    def _prompt(self, request: _Request, timeout_s: float, behind: int) -> Approval:
        """Show the prompt for ``request`` and read lines until one answers it."""
        step = request.step
        tty = os.isatty(self._fd)
        kind = "PIVOT (irreversible) " if step.pivot else ""
        how = f"type {step.id} to approve, n to deny" if step.pivot else "approve? [y/n]"
        hint = f"type {step.id} exactly to approve, or n to deny" if step.pivot else "answer y or n"
        queued = f"; {behind} more waiting after this one" if behind else ""
        description = " ".join(step.description.split())
        question = f"approval needed: {kind}{step.id} at site {step.site}\n  {description}\n  {how}"
        editing = self._area is not None and tty
        with keystrokes(self._fd) if editing else contextlib.nullcontext():
            if tty:
                termios.tcflush(self._fd, termios.TCIFLUSH)
            self._typed, self._transcript = b"", ""
            self._editor = LineEditor() if editing else None
            self._ask(question, request, queued)
            try:
                while (line := self._next_line(request)) is not None:
                    answer = line.strip()
                    if answer.lower() in ("n", "no"):
                        denied = Approval(False, self.who, "denied at the terminal")
                        return self._done(denied, "denied", told=False)
                    if (answer == step.id) if step.pivot else (answer.lower() in ("y", "yes")):
                        granted = Approval(True, self.who, "answered at the terminal")
                        return self._done(granted, "approved", told=False)
                    self._ask(f"  {hint}", request)
                if self._open(request):
                    denied = Approval(False, self.who, "end of input at the terminal")
                    return self._done(denied, "end of input: denied", told=False)
                closed = self._closed(request, timeout_s)
                if self._cancelled is not None:
                    return self._done(closed, f"{self._cancelled}: {step.id} denied", told=False)
                if closed.by == "timeout":
                    return self._done(closed, f"no answer within {timeout_s:g}s: {step.id} denied")
                return self._done(closed, f"{step.id} not approved: {closed.reason}")
            finally:
                self._end_line()

    def _ask(self, question: str, request: _Request, queued: str = "") -> None:
        left = math.ceil(max(0.0, request.deadline - self._clock()))
        text = f"{question} ({format_duration(left)} left{queued}): "
        self._transcript += text
        if self._area is None:
            self._say(text)
            self._mid_line = True
        else:
            self._area.show_prompt(self._transcript, "")

    def _done(self, answer: Approval, outcome: str, *, told: bool = True) -> Approval:
        """End the prompt with ``answer``; ``outcome`` says how (at a bare terminal only when
        ``told``: there, what was typed is on the screen already)."""
        if self._area is not None:
            self._area.end_prompt(f"{self._transcript.rstrip()}\n  {outcome}")
        elif told:
            self._end_line()
            self._say(f"{outcome}\n")
        return answer

    def _next_line(self, request: _Request) -> str | None:
        """The next line typed; None at end of input, once the request closed (a cancel, a
        withdrawal, its deadline)."""
        while (line := self._line()) is None:
            if not self._open(request) or (self._editor is not None and self._editor.ended):
                return None
            left = request.deadline - self._clock()
            ready, _, _ = select.select([self._fd], [], [], max(0.0, min(left, self._poll_s)))
            if not ready:
                continue
            try:
                chunk = os.read(self._fd, 1024)
            except OSError:  # EIO once the terminal hangs up: the same as end of input
                chunk = b""
            if self._editor is not None:
                self._editor.feed(chunk)
                self._editor.ended = self._editor.ended or not chunk
                if self._area is not None and not self._editor.lines:
                    self._area.show_prompt(self._transcript, self._editor.text)
            elif not chunk:  # the rest of the input, unended
                rest, self._typed = self._typed, b""
                return rest.decode(errors="replace") if rest else None
            else:
                self._typed += chunk
        self._transcript += line + "\n"
        return line

    def _line(self) -> str | None:
        """A line typed in full, if there is one."""
        if self._editor is not None:
            return self._editor.lines.pop(0) if self._editor.lines else None
        if b"\n" not in self._typed:
            return None
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
