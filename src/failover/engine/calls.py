"""A call in a worker thread that its caller waits for until a deadline, and never longer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from failover.engine.workers import Workers

T = TypeVar("T")
TICK_S = 0.1  # how often a waiting caller looks at interruptions
Ended = Literal["done", "timeout", "interrupted"]


class Call(Generic[T]):
    """``fn()`` running in one of ``workers``; :meth:`wait` returns at the deadline at the
    latest, whatever the call still does (a thread blocked in a socket is left to itself)."""

    def __init__(self, workers: Workers, fn: Callable[[], T], wake: threading.Event | None = None) -> None:
        self.fn = fn
        self.wake = wake  # set when the call returns (one event can watch many calls)
        self.value: T | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        workers.submit(self._run)

    def _run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc
        finally:
            self.done.set()
            if self.wake is not None:
                self.wake.set()

    def wait(self, deadline: float, clock: Callable[[], float], give_up: Callable[[], bool]) -> Ended:
        """Until the call returns, its deadline (on ``clock``) passes, or ``give_up()`` says so
        (an interruption)."""
        while not self.done.is_set():
            left = deadline - clock()
            if left <= 0:
                return "timeout"
            if give_up():
                return "interrupted"
            self.done.wait(min(left, TICK_S))
        return "done"

    def result(self) -> T:
        """The value, or the call's exception raised here (only once it is done)."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]
