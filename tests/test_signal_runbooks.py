"""Runbooks that use prometheus.query and http.probe: they validate and plan with their
secrets redacted, `failover check` asks a real Prometheus server with a secret read from the
environment, and a run's verify probe asks again until it passes or its time is up."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from failover.cli import main
from failover.redact import is_secret_key
from tests.prom_server import Exporter, PrometheusServer
from tests.servers import HttpServer, Reply

TOKEN = "prom-t0ken-5ecret"
LITERAL = "hunter2-literal"

RUNBOOK = """\
version: 1
name: signals
sites:
  east: {{vars: {{prom: "{prom}", web: "{web}"}}}}
  west: {{vars: {{prom: "{prom}", web: "{web}"}}}}
services:
  checkout:
    preflight:
      - id: errors-low
        check: prometheus.query
        site: "${{to}}"
        with:
          url: "${{to.vars.prom}}"
          query: 'shop_error_ratio{{site="${{to}}",test="cli"}}'
          op: "<"
          value: 0.01
          bearer_token: "${{env:PROM_TOKEN}}"
      - id: up
        check: prometheus.query
        site: "${{to}}"
        with:
          url: "${{to.vars.prom}}"
          query: 'up{{job="shop"}}'
          op: "=="
          value: 1
          username: ops
          password: {literal}
    steps:
      - {{id: move, action: sim.step, site: "${{to}}"}}
    verify:
      - id: healthz
        check: http.probe
        site: "${{to}}"
        timeout: 3s
        interval: 250ms
        with:
          url: "${{to.vars.web}}/healthz"
          body: '"status":\\s*"ok"'
          headers: {{Authorization: "Bearer ${{env:PROM_TOKEN}}"}}
"""


@pytest.fixture
def web() -> Iterator[HttpServer]:
    server = HttpServer()
    yield server
    server.close()


@pytest.fixture
def runbook(tmp_path: Path, web: HttpServer) -> Callable[[str], Path]:
    """The runbook, its Prometheus at ``prom``."""

    def write(prom: str) -> Path:
        path = tmp_path / "signals.yaml"
        path.write_text(RUNBOOK.format(prom=prom, web=web.url, literal=LITERAL), encoding="utf-8")
        return path

    return write


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env={"PROM_TOKEN": TOKEN})
    return result.exit_code, result.output


def test_the_secret_looking_parameters_are_the_ones_taken_for_secrets() -> None:
    assert is_secret_key("bearer_token") and is_secret_key("password") and is_secret_key("Authorization")
    assert not is_secret_key("username") and not is_secret_key("url")


def test_failover_actions_lists_both_checks_with_their_parameters() -> None:
    code, out = cli("actions")
    assert code == 0
    assert "\nprometheus.query (check, any site): Pass when every sample of a PromQL instant query" in out
    assert "\nhttp.probe (check, any site): Pass when a URL answers the expected status" in out
    code, out = cli("actions", "--format", "json")
    listed = {item["name"]: item for item in json.loads(out)}
    assert sorted(listed["prometheus.query"]["parameters"]) == sorted(
        ["url", "query", "op", "value", "empty", "bearer_token", "username", "password", "timeout"]
    )
    assert sorted(listed["http.probe"]["parameters"]) == sorted(
        ["url", "status", "body", "timeout", "verify_tls", "method", "headers"]
    )
    assert listed["http.probe"]["permissions"] == listed["prometheus.query"]["permissions"] == []


def test_the_signal_checks_import_no_cloud_sdk(tmp_path: Path) -> None:
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, failover.providers.signals.prometheus, failover.providers.signals.http_probe\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'google', 'moto'}))",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert (imported.returncode, imported.stdout.strip()) == (0, "[]"), imported.stderr


def test_it_validates_and_plans_with_its_secrets_redacted(runbook: Callable[[str], Path]) -> None:
    path = str(runbook("http://prometheus.internal:9090"))
    code, out = cli("validate", path)
    assert (code, out.strip()) == (0, f"{path}: valid runbook 'signals': 2 sites, 1 services, 1 steps")
    for fmt in ("text", "markdown", "json"):
        code, out = cli("plan", path, "--from", "east", "--to", "west", "--format", fmt)
        assert code == 0, out
        assert LITERAL not in out and TOKEN not in out
        assert "checkout.errors-low" in out and "checkout.healthz" in out
        if fmt == "markdown":  # the terminal's tables wrap sentences, JSON escapes quotes
            flat = " ".join(out.split())
            assert 'every sample of shop_error_ratio{site="west",test="cli"}' in flat
            assert (
                "on Prometheus at http://prometheus.internal:9090 is < 0.01 (an empty answer fails)" in flat
            )
            assert "answers 200 with a body matching" in flat
        if fmt == "json":
            assert out.startswith(
                "plan: the runbook writes secrets as values; they are redacted from this plan"
            )
            plan = json.loads(out[out.index("\n{") + 1 :])
            params = {c["id"]: c["params"] for c in plan["preflight"]}
            assert params["checkout.errors-low"]["bearer_token"] == "${env:PROM_TOKEN}"  # where it comes from
            assert params["checkout.up"]["password"] == "[redacted]"
            (probe,) = [s for s in plan["steps"] if s["id"] == "checkout.healthz"]
            # under a secret-looking key, what is not a reference is redacted
            assert probe["params"]["headers"] == {"Authorization": "[redacted]${env:PROM_TOKEN}"}


def test_failover_check_asks_prometheus_with_the_token_from_the_environment(
    prometheus: PrometheusServer, exporter: Exporter, runbook: Callable[[str], Path], web: HttpServer
) -> None:
    path = str(runbook(prometheus.url))
    exporter.set('shop_error_ratio{site="west",test="cli"}', 0.002)
    prometheus.wait_for('shop_error_ratio{site="west",test="cli"}', ["0.002"])
    code, out = cli("check", path, "--from", "east", "--to", "west", "--format", "json")
    assert code == 0, out
    seen = {c["id"]: c for c in json.loads(out)["checks"]}
    assert seen["checkout.errors-low"]["ok"] is True
    assert next(iter(seen["checkout.errors-low"]["observed"][0].values())) == 0.002

    exporter.set('shop_error_ratio{site="west",test="cli"}', 0.3)
    prometheus.wait_for('shop_error_ratio{site="west",test="cli"}', ["0.3"])
    code, out = cli("check", path, "--from", "east", "--to", "west")
    assert code == 3, out
    flat = " ".join(out.split())
    assert "checkout.errors-low" in flat and "expected every sample < 0.01, found 1 of 1 not; worst:" in flat
    assert TOKEN not in out


def test_a_run_verifies_with_the_probe_asking_again_until_it_passes_or_time_is_up(
    runbook: Callable[[str], Path], web: HttpServer, tmp_path: Path
) -> None:
    path = str(runbook("http://prometheus.internal:9090"))
    plan = str(tmp_path / "plan.json")
    code, out = cli(
        "plan", path, "--from", "east", "--to", "west", "--format", "json", "-o", plan, "--with-secrets"
    )
    assert code == 0, out
    skips = [
        "--reason",
        "no Prometheus here",
        "--skip-check",
        "checkout.errors-low",
        "--skip-check",
        "checkout.up",
    ]

    def apply(state: str) -> tuple[int, str]:
        return cli("apply", plan, "--auto-approve", "--state", str(tmp_path / state), *skips)

    web.reply("/healthz", Reply(200, b'{"status": "ok"}'))
    code, out = apply("healthy")
    assert code == 0, out
    assert web.seen[-1].headers["authorization"] == f"Bearer {TOKEN}"  # the secret, read at the call
    assert TOKEN not in out

    web.reply("/healthz", Reply(503, b'{"status": "draining"}'))
    code, out = apply("draining")
    assert code == 1, out
    flat = " ".join(out.split())
    assert "not passed after 3s" in flat
    asked = re.search(r"asked (\d+) times every 0.25s", flat)
    assert asked is not None and int(asked.group(1)) > 1  # asked again until its time was up
    assert f"GET {web.url}/healthz: expected status 200, found 503; expected the body to match" in flat
