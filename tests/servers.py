"""Local servers that stand in for a region on its worst day (the sandbox's own)."""

from __future__ import annotations

from failover.sandbox.dead import HungServer, RefusingPort

__all__ = ["HungServer", "RefusingPort"]
