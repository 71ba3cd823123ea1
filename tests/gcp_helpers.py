"""Helpers for GCP provider tests: the compute fake on 127.0.0.1, seeded through the real
google-cloud-compute client, and step contexts pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from failover.providers.base import ClientCache, Context, Permission, Placement
from failover.sandbox import clock
from failover.sandbox.compute_fake import ComputeFake
from failover.sandbox.gcp import Builder
from failover.sandbox.spec import GcpSandbox

PLACES = {"east": ("shop-prod", "us-east4"), "west": ("shop-prod", "us-west1")}

SPEC: dict[str, Any] = {
    "regions": [{"site": "west", "instances_quota": 12}],
    "instance_groups": [
        {"site": "east", "name": "web-use4", "size": 3},
        {"site": "west", "name": "web-usw1", "size": 1},
        {"site": "west", "name": "ilb-b", "zone": "us-west1-b", "size": 1},
    ],
    "autoscalers": [
        {"site": "east", "name": "web-use4", "group": "web-use4", "min": 3, "max": 10},
        {"site": "west", "name": "web-usw1", "group": "web-usw1", "min": 1, "max": 2},
    ],
    "backend_services": [
        {
            "site": "east",
            "name": "web",
            "backends": [
                {"site": "east", "group": "web-use4", "capacity": 1.0},
                {"site": "west", "group": "web-usw1", "capacity": 0.0},
            ],
        },
        {
            "site": "west",
            "name": "ilb",
            "scope": "regional",
            "backends": [
                {"site": "west", "group": "web-usw1"},
                {"site": "west", "group": "ilb-b", "zone": "us-west1-b", "failover": True},
            ],
            "failover_policy": {"failover_ratio": 0.5},
        },
    ],
    "forwarding_rules": [
        {"site": "west", "name": "ingest", "target": "regions/us-west1/targetPools/ingest-a"},
        {"site": "east", "name": "shop", "scope": "global", "target": "global/targetHttpProxies/maint"},
    ],
    "instances": [
        {"site": "east", "zone": "us-east4-a", "name": "scheduler-use4"},
        {"site": "west", "zone": "us-west1-a", "name": "scheduler-usw1", "status": "TERMINATED"},
    ],
}


@pytest.fixture
def fake() -> Iterator[ComputeFake]:
    """The compute fake with SPEC's resources, created through the real client; instances boot
    and pass their health checks at once (these tests' clocks are their own)."""
    clock.set_speed(1e9)
    try:
        with ComputeFake() as running:
            Builder(PLACES, running).create(GcpSandbox.model_validate(SPEC))
            for target in ("regions/us-west1/targetPools/ingest-b", "global/targetHttpProxies/app"):
                running.declare_target(f"projects/shop-prod/{target}")
            running.requests.clear()
            yield running
    finally:
        clock.set_speed(clock.DEFAULT_SPEED)


def state(fake: ComputeFake) -> dict[str, Any]:
    return Builder(PLACES, fake).state(GcpSandbox.model_validate(SPEC))


def context(
    fake: ComputeFake | None,
    site: str = "west",
    *,
    step: str = "svc.step",
    run: str = "run-1",
    slept: list[float] | None = None,
    permissions: tuple[Permission, ...] = (),
    endpoint: str | None = None,
    clients: ClientCache | None = None,
) -> Context:
    """A step's context at ``site``, pointed at the fake (or ``endpoint``), whose waits return at
    once (recorded in ``slept``) and move its clock on."""
    record = slept if slept is not None else []
    now = [0.0]

    def sleep(seconds: float) -> None:
        record.append(seconds)
        now[0] += seconds

    project, region = PLACES[site]
    return Context(
        run_id=run,
        step_id=step,
        placement=Placement(site, "gcp", region, project),
        state_dir=Path("."),
        sleep=sleep,
        clock=lambda: now[0],
        settings={
            "project": project,
            "region": region,
            "endpoint": endpoint or (fake.endpoint if fake else ""),
            "credentials": "anonymous",
        },
        clients=clients or ClientCache(),
        permissions=permissions,
    )


def calls(fake: ComputeFake, method: str, suffix: str) -> list[dict[str, Any]]:
    """The requests the fake received with ``method`` whose path ends with ``suffix``."""
    return [r for r in fake.requests if r["method"] == method and r["path"].endswith(suffix)]
