"""Threads for steps, checks and compensations that nothing ever waits for at exit."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import structlog

MAX_WORKERS = 512
log = structlog.get_logger("failover.engine")


class Workers:
    """Daemon threads that run tasks, one more whenever every thread is busy (up to a limit).

    A thread blocked in a call nobody can stop (a socket that never answers) holds up neither
    the other tasks nor the end of the process: it is a daemon, and no pool joins it.
    """

    def __init__(self, name: str, limit: int = MAX_WORKERS) -> None:
        self.name = name
        self.limit = limit
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads free for a new task, not yet promised to one
        self._threads = 0

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` in a free thread, or a new one (beyond the limit it waits for a free one)."""
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif self._threads < self.limit:
                self._threads += 1
                threading.Thread(target=self._loop, name=f"{self.name}-{self._threads}", daemon=True).start()
        self._tasks.put(task)

    def close(self) -> None:
        """Let every thread end once it is free; none is waited for."""
        for _ in range(self._threads):
            self._tasks.put(None)

    def _loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            try:
                task()  # tasks report their own outcome; this only keeps the thread alive
            except Exception:
                log.exception("worker_task_crashed", worker=threading.current_thread().name)
            with self._lock:
                self._idle += 1
