"""Faults a sandbox drill rehearses, from ``drill --fault KIND:ARGS`` (repeatable) and the
runbook's ``sandbox: {faults: [...]}``, in the same words:

    site-down:SITE              the site's AWS and GCP endpoints accept connections, never answer
    site-refused:SITE           the site's endpoints refuse connections
    throttle:SERVICE:PER_SECOND AWS answers that service (its signing name: ecs, rds, route53...)
                                with throttling errors beyond that many requests a second
    stockout:ZONE               Compute Engine cannot create instances in that zone
    quota:METRIC:LIMIT          a Compute Engine regional quota (CPUS, INSTANCES...) at LIMIT
    slow-health:GROUP:SECONDS   the instances of that group take that long to become healthy
    deny:PERMISSION             the caller lacks that permission (ecs:UpdateService,
                                compute.instanceGroupManagers.update): calls that need it are
                                refused and the permission checks say so

A site that is down in AWS's us-east-1 also takes down what AWS homes there for every region:
Route 53's control plane (record changes) and IAM.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from failover.errors import SandboxError

KINDS: dict[str, tuple[str, ...]] = {
    "site-down": ("SITE",),
    "site-refused": ("SITE",),
    "throttle": ("SERVICE", "PER_SECOND"),
    "stockout": ("ZONE",),
    "quota": ("METRIC", "LIMIT"),
    "slow-health": ("GROUP", "SECONDS"),
    "deny": ("PERMISSION",),
}
NUMBERS = {"PER_SECOND", "LIMIT", "SECONDS"}
HOMED_IN_US_EAST_1 = ("route53", "iam")
"""AWS services whose control plane is in us-east-1 for every region."""


@dataclass(frozen=True)
class Fault:
    """One fault: its kind and arguments, as written."""

    kind: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return ":".join((self.kind, *self.args))

    def number(self) -> float:
        return float(self.args[-1])


def parse_fault(text: str, where: str = "--fault") -> Fault:
    """A fault from ``KIND:ARGS``; SandboxError saying what was expected, what was found, where."""
    kind, _, rest = text.partition(":")
    shape = KINDS.get(kind)
    if shape is None:
        known = ", ".join(f"{k}:{':'.join(v)}" for k, v in KINDS.items())
        raise SandboxError(f"{where}: unknown fault {text!r}; expected one of {known}")
    # a permission or service may not hold a colon, but a GCP permission has dots only; an AWS
    # permission (ecs:UpdateService) is the one argument that may hold one
    args = (rest,) if kind == "deny" else tuple(rest.split(":")) if rest else ()
    if len(args) != len(shape) or not all(args):
        raise SandboxError(f"{where}: fault {text!r}: expected {kind}:{':'.join(shape)}")
    for name, value in zip(shape, args, strict=True):
        if name in NUMBERS:
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not number > 0:
                raise SandboxError(
                    f"{where}: fault {text!r}: {name} must be a positive number, found {value!r}"
                )
    return Fault(kind, args)


def parse_faults(texts: Iterable[str], sites: Iterable[str], where: str = "--fault") -> list[Fault]:
    """Faults from their texts, each site named checked against the runbook's sites."""
    known = sorted(sites)
    found = []
    for text in texts:
        fault = parse_fault(text, where)
        if fault.kind in ("site-down", "site-refused") and fault.args[0] not in known:
            raise SandboxError(
                f"{where}: fault {text!r}: no site {fault.args[0]!r} in the runbook "
                f"(sites: {', '.join(known)})"
            )
        found.append(fault)
    return found
