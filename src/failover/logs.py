"""Logging set-up for the command line (the library itself never configures logging).

Events are structlog events with fields; secrets are redacted before any renderer, tracebacks
included (they are formatted first). Not on a terminal: JSON lines on standard error. On a
terminal: readable lines.
"""

from __future__ import annotations

import logging
import sys

import structlog

from failover.redact import redact_processor


def configure(*, json_lines: bool | None = None, level: int = logging.INFO) -> None:
    """Route structlog events to standard error, as JSON lines unless on a terminal."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # a traceback is text, redacted like the rest
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing (tests and embedders swap it). A log that
    cannot be written (a closed pipe, a full disk) is dropped, and so is the rest once one was:
    the journal is the record of a run, and a step must never fail for want of a log line."""

    def __init__(self) -> None:
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return 0
        try:
            return sys.stderr.write(text)
        except (OSError, ValueError):  # EPIPE, ENOSPC, EIO; ValueError: stderr was closed
            self.broken = True
            return 0

    def flush(self) -> None:
        if self.broken:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            self.broken = True
