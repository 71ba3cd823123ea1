"""Shared fixtures: example runbooks and a way to write small ones."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from failover.runbook import Runbook, load_runbook
from tests.servers import HungServer

ROOT = Path(__file__).resolve().parent.parent
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
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


settings.register_profile("failover", deadline=None, print_blob=True)
settings.load_profile("failover")
