"""Requests to stop a run: Ctrl-C, SIGTERM, or a caller of the library."""

from __future__ import annotations

from collections.abc import Callable


class Interrupt:
    """The first request stops a run from starting steps (in-flight ones end or reach their
    deadlines); the second gives up on the steps in flight, journaled as in doubt.

    ``request`` is safe in a signal handler: it only counts and calls the listeners, which must
    not block or take locks that the interrupted thread may hold.
    """

    def __init__(self) -> None:
        self.count = 0
        self.signal: str | None = None
        self.exit_code = 130
        self._listeners: list[Callable[[str], None]] = []

    def request(self, signal: str = "SIGINT", exit_code: int = 130) -> None:
        self.count += 1
        if self.count == 1:
            self.signal, self.exit_code = signal, exit_code
        for listener in list(self._listeners):
            listener(signal)

    def on_request(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(signal)`` at every request (a prompt on screen must give up, say)."""
        self._listeners.append(listener)

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def abandon(self) -> bool:
        """A second request: stop waiting for the steps in flight."""
        return self.count > 1
