"""Helpers for AWS provider tests: contexts on in-process moto, and clients that fail on purpose."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from failover.providers.base import ClientCache, Context, Permission, Placement
from failover.sandbox.aws import extend_moto

REGIONS = {"east": "us-east-1", "west": "us-west-2"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process moto, with credentials that only moto accepts."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore does not retry: the executor does
    extend_moto()  # what the sandbox adds to moto: global switchover, replica promotion
    with mock_aws():
        yield


def context(
    site: str = "west",
    *,
    clients: ClientCache | None = None,
    permissions: tuple[Permission, ...] = (),
    slept: list[float] | None = None,
    step: str = "svc.step",
) -> Context:
    """A step's context at ``site`` whose waits return at once (recorded in ``slept``) and move
    its clock on."""
    record = slept if slept is not None else []
    now = [0.0]

    def sleep(seconds: float) -> None:
        record.append(seconds)
        now[0] += seconds

    return Context(
        run_id="run-1",
        step_id=step,
        placement=Placement(site, "aws", REGIONS[site]),
        state_dir=Path("."),
        sleep=sleep,
        clock=lambda: now[0],
        settings={"region": REGIONS[site]},
        clients=clients or ClientCache(),
        permissions=permissions,
    )


class HookedClients(ClientCache):
    """Clients that call ``hook`` before each call; a hook that returns a response answers for AWS."""

    def get(self, key: object, make: Callable[[], Any]) -> Any:
        def hooked() -> Any:
            made = make()
            if hasattr(made, "meta"):
                made.meta.events.register_first("before-call.*.*", self.hook)
            return made

        return super().get(key, hooked)

    def hook(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        return None


class CountingClients(HookedClients):
    """Counts the calls of each operation (to tell a no-op apply from one that changed something)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def hook(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1
        return


class FailingClients(HookedClients):
    """Clients whose calls of ``operation`` (every operation if None) fail with an AWS error
    code, ``times`` times (always if None), before reaching moto."""

    def __init__(
        self, code: str, status: int, *, operation: str | None = None, times: int | None = None
    ) -> None:
        super().__init__()
        self.code, self.status, self.operation, self.left = code, status, operation, times
        self.failed: list[str] = []

    def hook(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.operation not in (None, model.name) or self.left == 0:
            return None
        if self.left is not None:
            self.left -= 1
        self.failed.append(model.name)
        parsed = {
            "Error": {"Code": self.code, "Message": f"injected {self.code}"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        return AWSResponse("https://injected", self.status, {}, None), parsed
