"""Embedded clouds for drills without a cloud account: a moto server for AWS on 127.0.0.1,
made of what the runbook's ``sandbox:`` section declares."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from failover.errors import SandboxError

if TYPE_CHECKING:
    from failover.runbook import Runbook
    from failover.sandbox.aws import Builder, MotoSandbox


_ACTIVE: str | None = None  # the runbook whose sandbox runs in this process


class Sandbox:
    """The sandbox of one runbook for the duration of a ``with`` block: servers started, declared
    resources created, and the state they started in kept for comparison."""

    def __init__(self, runbook: Runbook) -> None:
        self.runbook = runbook
        self._moto: MotoSandbox | None = None
        self._builder: Builder | None = None
        self.start: dict[str, Any] = {}

    def __enter__(self) -> Sandbox:
        spec = self.runbook.sandbox
        if spec is None or spec.aws is None:
            raise SandboxError(
                f"runbook {self.runbook.name} has no sandbox: section to build a sandbox from "
                "(see docs/runbook-reference.md#sandbox)"
            )
        global _ACTIVE
        if _ACTIVE is not None:  # moto keeps its world per process: two would share (and reset) it
            raise SandboxError(f"a sandbox of {_ACTIVE} is already running in this process; one at a time")
        from failover.sandbox.aws import Builder, MotoSandbox

        try:
            self._moto = MotoSandbox().__enter__()
            regions = {
                name: site.aws.region for name, site in self.runbook.sites.items() if site.aws is not None
            }
            self._builder = Builder(regions, self._moto.endpoint_url)
            self._builder.create(spec.aws)
            self.start = self.state()
        except Exception as exc:
            if self._moto is not None:
                self._moto.stop()
                self._moto = None
            if isinstance(exc, SandboxError):
                raise
            raise SandboxError(f"the sandbox could not start: {type(exc).__name__}: {exc}") from exc
        _ACTIVE = self.runbook.name
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _ACTIVE
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
            _ACTIVE = None

    def overrides(self) -> dict[str, dict[str, Any]]:
        """Per cloud, the settings that point a run's sites at the sandbox."""
        assert self._moto is not None
        return {"aws": dict(self._moto.overrides())}

    def describe(self) -> str:
        assert self._moto is not None
        return f"AWS (moto) on {self._moto.endpoint_url}, {len(self.start)} resource settings declared"

    def state(self) -> dict[str, Any]:
        """What a failover changes in the declared resources, now."""
        assert self._builder is not None and self.runbook.sandbox is not None
        assert self.runbook.sandbox.aws is not None
        return self._builder.state(self.runbook.sandbox.aws)

    def compare_with_start(self) -> str:
        """One line: whether the resources are back where they started, and if not, how."""
        now = self.state()
        changed = [
            f"{k}: {self.start.get(k)!r} -> {now.get(k)!r}"
            for k in sorted(set(now) | set(self.start))
            if now.get(k) != self.start.get(k)
        ]
        if not changed:
            return f"end state equals the start state ({len(now)} resource settings compared)"
        return "end state differs from the start: " + "; ".join(changed)


__all__ = ["Sandbox", "SandboxError"]
