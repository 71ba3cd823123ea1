"""Shared fixtures: example runbooks and a way to write small ones."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from failover.providers.base import Context, Placement
from failover.runbook import Runbook, load_runbook
from tests import prom_server
from tests.servers import HungServer, RefusingPort

ROOT = Path(__file__).resolve().parent.parent
# sandbox drills under the time model, ten times faster than a drill's default (tests of the
# model itself set their own speed)
os.environ.setdefault("FAILOVER_SANDBOX_SPEED", "300")
SIM_SHOP = ROOT / "runbooks" / "examples" / "sim-shop.yaml"

SITES = """\
version: 1
name: t
sites:
  east:
    aws: {region: us-east-1}
    gcp: {project: p, region: us-east4}
    vars: {asg: asg-east, count: 3}
  west:
    aws: {region: us-west-2}
    gcp: {project: p, region: us-west1}
    vars: {asg: asg-west, count: 5}
"""


def check_context(state_dir: Path, seconds_left: float | None = None, site: str = "west") -> Context:
    """The context of a check at ``site`` outside a run, on the real clock; with
    ``seconds_left``, its deadline is that far away."""
    deadline = None if seconds_left is None else time.monotonic() + seconds_left
    return Context("run-1", "shop.signal", Placement(site), state_dir, deadline=deadline)


@pytest.fixture
def sim_shop() -> Runbook:
    return load_runbook(SIM_SHOP)


@pytest.fixture
def write_runbook(tmp_path: Path) -> Callable[[str], Path]:
    """Write a runbook (dedented) to a file; a text without ``version:`` gets two standard sites."""

    def write(text: str, name: str = "runbook.yaml") -> Path:
        body = textwrap.dedent(text)
        if "version:" not in body:
            body = SITES + body
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture
def hung() -> Iterator[HungServer]:
    """A cloud endpoint of a region that is down: it accepts connections and never answers."""
    server = HungServer()
    yield server
    server.close()


@pytest.fixture
def refused() -> Iterator[str]:
    """An address on 127.0.0.1 whose port refuses connections (bound, not listening)."""
    port = RefusingPort()
    yield port.url
    port.close()


@pytest.fixture(scope="session")
def exporter() -> Iterator[prom_server.Exporter]:
    """Gauges the tests set, served as /metrics for the Prometheus server to scrape."""
    served = prom_server.Exporter()
    yield served
    served.close()


@pytest.fixture(scope="session")
def prometheus(
    exporter: prom_server.Exporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[prom_server.PrometheusServer]:
    """A real Prometheus server (Debian's package) scraping ``exporter`` every second, stopped at
    the end of the session. Without the program the tests skip, naming the package, except
    with CI=true, where they fail."""
    program = prom_server.binary()
    if program is None:
        package = prom_server.PACKAGE
        why = f"needs a Prometheus server: Debian's {package} package (apt-get install {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    server = prom_server.start(program, tmp_path_factory.mktemp("prometheus"), exporter)
    yield server
    server.close()


settings.register_profile("failover", deadline=None, print_blob=True)
settings.load_profile("failover")


@dataclass
class SharedState:
    """A moto server (one request at a time) standing in for DynamoDB and STS, and the
    environment a process needs to reach it."""

    endpoint: str
    env: dict[str, str]

    def table(self) -> str:
        """A new, initialised state table: its ``dynamodb://`` URL."""
        url = f"dynamodb://failover-{uuid.uuid4().hex[:12]}?region=us-east-1"
        done = subprocess.run(
            [sys.executable, "-m", "failover.cli", "state", "init", url],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return url


@pytest.fixture(scope="session")
def shared_state_server() -> Iterator[SharedState]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.moto_serial"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        endpoint = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ENDPOINT_URL_STS": endpoint,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        yield SharedState(endpoint, env)
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


@pytest.fixture
def shared_state(shared_state_server: SharedState, monkeypatch: pytest.MonkeyPatch) -> SharedState:
    """The shared-state server, with this process's environment pointing at it too."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in shared_state_server.env.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    return shared_state_server
