"""Embedded clouds for drills without a cloud account: a moto server for AWS and the Compute
Engine fake for GCP, on 127.0.0.1, holding what the runbook's ``sandbox:`` section declares, and
the faults a drill rehearses (``sandbox/faults.py``)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

from failover.errors import SandboxError
from failover.sandbox.clock import ARRIVALS, DEFAULT_SPEED, default_speed, set_speed
from failover.sandbox.dead import HungServer, RefusingPort
from failover.sandbox.faults import HOMED_IN_US_EAST_1, Fault, parse_faults

if TYPE_CHECKING:
    from failover.runbook import Runbook
    from failover.sandbox import aws, gcp
    from failover.sandbox.compute_fake import ComputeFake


_ACTIVE: str | None = None  # the runbook whose sandbox runs in this process

INSTALL_HINT = "pip install 'failover[sandbox]'"
"""How to install what the AWS sandbox needs (moto's server), which failover itself does not."""


def require_moto() -> None:
    """Raise SandboxError, saying how to install it, unless moto's server can be imported: the AWS
    sandbox's only dependencies outside failover's own (the ``sandbox`` extra)."""
    try:
        importlib.import_module("moto.moto_server.werkzeug_app")
        importlib.import_module("werkzeug.serving")
    except ImportError as exc:
        raise SandboxError(
            f"the AWS sandbox needs moto's server, which is not installed ({exc}): {INSTALL_HINT}"
        ) from None


class Sandbox:
    """The sandbox of one runbook for the duration of a ``with`` block: servers started (moto
    for AWS, the compute fake for GCP, each only if the section declares resources of that
    cloud), declared resources created, and the state they started in kept for comparison."""

    def __init__(self, runbook: Runbook, faults: Sequence[str] = (), speed: float | None = None) -> None:
        """``faults``: ``KIND:ARGS`` strings, with those of the runbook's ``sandbox: faults``;
        ``speed``: how many times faster than the clouds its resources get where they are asked
        (default: ``FAILOVER_SANDBOX_SPEED``, else 30)."""
        self.runbook = runbook
        try:
            self.speed = speed if speed is not None else default_speed()
        except ValueError as exc:
            raise SandboxError(str(exc)) from None
        declared = runbook.sandbox.faults if runbook.sandbox is not None else []
        self.faults: list[Fault] = parse_faults(declared, runbook.sites, "sandbox.faults") + parse_faults(
            faults, runbook.sites
        )
        self._dead: dict[str, HungServer | RefusingPort] = {}  # site -> its dead endpoint
        self._stack = ExitStack()
        self._moto: aws.MotoSandbox | None = None
        self._aws: aws.Builder | None = None
        self._fake: gcp.FakeSandbox | None = None
        self._gcp: gcp.Builder | None = None
        self.start: dict[str, Any] = {}

    def __enter__(self) -> Sandbox:
        spec = self.runbook.sandbox
        if spec is None or (spec.aws is None and spec.gcp is None):
            raise SandboxError(
                f"runbook {self.runbook.name} has no sandbox: section to build a sandbox from "
                "(see docs/runbook-reference.md#sandbox)"
            )
        global _ACTIVE
        if _ACTIVE is not None:  # moto keeps its world per process: two would share (and reset) it
            raise SandboxError(f"a sandbox of {_ACTIVE} is already running in this process; one at a time")
        try:
            set_speed(self.speed)
            ARRIVALS.clear()
            self._stack.callback(set_speed, DEFAULT_SPEED)
            if spec.aws is not None:
                self._start_aws()
            if spec.gcp is not None:
                self._start_gcp()
            self.start = self.state()
            self._apply_faults()
        except Exception as exc:
            self._stop()
            if isinstance(exc, SandboxError):
                raise
            raise SandboxError(f"the sandbox could not start: {type(exc).__name__}: {exc}") from exc
        _ACTIVE = self.runbook.name
        return self

    def _start_aws(self) -> None:
        require_moto()
        from failover.sandbox.aws import Builder, MotoSandbox

        assert self.runbook.sandbox is not None and self.runbook.sandbox.aws is not None
        self._moto = self._stack.enter_context(MotoSandbox())
        regions = {name: site.aws.region for name, site in self.runbook.sites.items() if site.aws is not None}
        self._aws = Builder(regions, self._moto.endpoint_url)
        self._aws.arc = self._moto.arc
        self._aws.create(self.runbook.sandbox.aws)

    def _start_gcp(self) -> None:
        from failover.sandbox.gcp import Builder, FakeSandbox

        assert self.runbook.sandbox is not None and self.runbook.sandbox.gcp is not None
        self._fake = self._stack.enter_context(FakeSandbox())
        placements = {
            name: (site.gcp.project, site.gcp.region)
            for name, site in self.runbook.sites.items()
            if site.gcp is not None
        }
        self._gcp = Builder(placements, self._fake.fake)
        self._gcp.create(self.runbook.sandbox.gcp)

    def _apply_faults(self) -> None:
        from failover.sandbox.aws_faults import DENIED, Bucket

        for fault in self.faults:
            if fault.kind in ("site-down", "site-refused"):
                dead = HungServer() if fault.kind == "site-down" else RefusingPort()
                self._stack.callback(dead.close)
                self._dead[fault.args[0]] = dead
            elif fault.kind == "throttle":
                self._aws_faults(fault).throttles[fault.args[0]] = Bucket(fault.number())
            elif fault.kind == "deny" and ":" in fault.args[0]:
                self._aws_faults(fault)
                DENIED.add(fault.args[0])
            else:
                self._gcp_fault(fault)

    def _aws_faults(self, fault: Fault) -> Any:
        if self._moto is None or self._moto.faults is None:
            raise SandboxError(f"fault {fault}: this sandbox has no AWS (its sandbox: section declares none)")
        return self._moto.faults

    def _gcp_fault(self, fault: Fault) -> None:
        fake = self.compute_fake
        if fake is None:
            raise SandboxError(f"fault {fault}: this sandbox has no GCP (its sandbox: section declares none)")
        play = getattr(fake, fault.kind.replace("-", "_"), None)
        if play is None:
            raise SandboxError(f"fault {fault}: the Compute Engine fake does not play {fault.kind} faults")
        args: list[str | float] = list(fault.args)
        if fault.kind == "quota":
            args = [fault.args[0].upper(), fault.number()]
        play(*args)

    def lift_site_faults(self) -> list[str]:
        """The sites that were down come back (before a drill fails back); what came back."""
        back = sorted(self._dead)
        for dead in self._dead.values():
            dead.close()
        self._dead.clear()
        self.faults = [f for f in self.faults if f.kind not in ("site-down", "site-refused")]
        return back

    def site_overrides(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per site and cloud, the settings that point a down site at its dead endpoint; a site
        down takes its region's ARC cluster endpoint away from every site, and one in us-east-1
        also Route 53's and IAM's control planes."""
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for site, dead in self._dead.items():
            found.setdefault(site, {}).setdefault("aws", {})["endpoint_url"] = dead.url
            found[site]["gcp"] = {"endpoint": dead.url}
            spec = self.runbook.sites[site].aws
            if spec is None:
                continue
            homed = {f"route53-recovery-cluster:{spec.region}": dead.url}  # its ARC cluster endpoint
            if spec.region == "us-east-1":
                homed.update(dict.fromkeys(HOMED_IN_US_EAST_1, dead.url))
            for other in self.runbook.sites:
                found.setdefault(other, {}).setdefault("aws", {}).setdefault("endpoint_urls", {}).update(
                    homed
                )
        return found

    def _stop(self) -> None:
        self._stack.close()
        self._dead.clear()
        self._moto = self._fake = None
        self._aws = self._gcp = None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _ACTIVE
        if self._moto is not None or self._fake is not None:
            self._stop()
            _ACTIVE = None

    @property
    def compute_fake(self) -> ComputeFake | None:
        """The GCP compute fake while the sandbox runs (to inject faults into a drill)."""
        return self._fake.fake if self._fake is not None else None

    def overrides(self) -> dict[str, dict[str, Any]]:
        """Per cloud, the settings that point a run's sites at the sandbox."""
        found: dict[str, dict[str, Any]] = {}
        if self._moto is not None:
            found["aws"] = dict(self._moto.overrides())
        if self._fake is not None:
            found["gcp"] = dict(self._fake.overrides())
        return found

    def describe(self) -> str:
        servers = []
        if self._moto is not None:
            servers.append(f"AWS (moto) on {self._moto.endpoint_url}")
        if self._fake is not None:
            servers.append(f"GCP (compute fake) on {self._fake.endpoint}")
        faults = f"; faults: {', '.join(map(str, self.faults))}" if self.faults else ""
        return (
            f"{' and '.join(servers)}, {len(self.start)} resource settings declared, "
            f"running x{self.speed:g} the clouds' speed{faults}"
        )

    def state(self) -> dict[str, Any]:
        """What a failover changes in the declared resources, now."""
        spec = self.runbook.sandbox
        assert spec is not None
        found: dict[str, Any] = {}
        if self._aws is not None and spec.aws is not None:
            found.update(self._aws.state(spec.aws))
        if self._gcp is not None and spec.gcp is not None:
            found.update(self._gcp.state(spec.gcp))
        return found

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


__all__ = ["INSTALL_HINT", "Sandbox", "SandboxError", "require_moto"]
