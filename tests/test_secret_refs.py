"""Secrets by reference: checked when the runbook loads, shown as written in plans, resolved from
SSM, Secrets Manager and the environment only at the call, with the site's own AWS placement,
and never written anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from failover.engine import Options, execute
from failover.errors import RunbookError
from failover.planner import make_plan
from failover.providers.sim import SimWorld
from failover.render import render_plan
from failover.runbook import parse_runbook
from tests.conftest import SITES

SSM_VALUE = "canary-ssm-93ab1f2c"
SM_VALUE = "canary-sm-77c0de41"
ENV_VALUE = "canary-env-5e1d09aa"
RUNBOOK = (
    SITES
    + """
services:
  db:
    preflight:
      - {id: password, check: sim.check, site: "${to}",
         with: {observed: "${secret:aws-ssm:/prod/db/password}"}}
      - {id: api, check: sim.check, site: "${to}", with: {observed: "token ${secret:aws-sm:prod/api#token}"}}
      - {id: env, check: sim.check, site: "${to}", with: {observed: {auth: "${env:FAILOVER_TEST_TOKEN}"}}}
    steps:
      - {id: promote, action: sim.step, site: "${to}", with: {target: writer}}
"""
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FAILOVER_TEST_TOKEN", ENV_VALUE)
    with mock_aws():
        boto3.client("ssm", region_name="us-west-2").put_parameter(
            Name="/prod/db/password", Value=SSM_VALUE, Type="SecureString"
        )
        boto3.client("secretsmanager", region_name="us-west-2").create_secret(
            Name="prod/api", SecretString=json.dumps({"token": SM_VALUE, "user": "svc"})
        )
        yield


def test_references_are_shown_as_written_in_every_rendering_of_the_plan() -> None:
    plan = make_plan(parse_runbook(RUNBOOK, "r.yaml"), from_="east", to="west")
    for fmt in ("text", "markdown", "json"):
        shown = render_plan(plan, fmt, width=400)  # type: ignore[arg-type]
        assert "${secret:aws-ssm:/prod/db/password}" in shown, fmt
        assert "${env:FAILOVER_TEST_TOKEN}" in shown, fmt


def test_secrets_are_read_at_the_call_in_the_sites_region_and_written_nowhere(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan(parse_runbook(RUNBOOK, "r.yaml"), from_="east", to="west")
    result = execute(
        plan, tmp_path, Options(auto_approve=True, overrides={"aws": {"credentials": "sandbox"}})
    )
    assert result.ok, result.message
    seen = [e.value for e in SimWorld(tmp_path).events() if e.op == "check"]
    # the checks got the secrets themselves (read in us-west-2, the site the checks run at)
    assert SSM_VALUE in seen and f"token {SM_VALUE}" in seen and {"auth": ENV_VALUE} in seen
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("sim.")]
    assert any(p.name == "journal.sqlite" for p in written)
    journal = b"".join(p.read_bytes() for p in written)  # the journal, its WAL, the plan copies
    logs = capsys.readouterr()
    for value in (SSM_VALUE, SM_VALUE, ENV_VALUE):
        assert value.encode() not in journal
        assert value not in logs.out and value not in logs.err
        assert value not in plan.to_json()


def test_a_secret_that_cannot_be_read_fails_its_check_saying_which(aws: None, tmp_path: Path) -> None:
    text = RUNBOOK.replace("/prod/db/password", "/prod/db/missing").replace("#token", "#nope")
    plan = make_plan(parse_runbook(text, "r.yaml"), from_="east", to="west")
    result = execute(
        plan, tmp_path, Options(auto_approve=True, overrides={"aws": {"credentials": "sandbox"}})
    )
    assert result.status == "refused"
    checks = result.state.checks
    assert (
        "ParameterNotFound" in checks["db.password"].message
        and "/prod/db/missing" in checks["db.password"].message
    )
    assert "no field 'nope' (its fields: token, user)" in checks["db.api"].message
    assert SimWorld(tmp_path).values() == {}  # nothing ran


@pytest.mark.parametrize(
    ("ref", "site", "says"),
    [
        ("${secret:aws-ssm:}", "${to}", "expected ${secret:aws-ssm:/PATH}"),
        ("${secret:vault:kv/db}", "${to}", "not a secret reference"),
        ("${secret:aws-sm:prod/api#}", "${to}", "not a secret reference"),
        ("${env:1BAD}", "${to}", "expected ${env:NAME} with NAME a variable name"),
        ("${secret:aws-ssm:/prod/db/password}", "onprem", "'onprem' has no aws: section"),
    ],
)
def test_a_malformed_or_misplaced_reference_is_refused_when_the_runbook_loads(
    ref: str, site: str, says: str
) -> None:
    text = (
        SITES
        + "  onprem: {}\n"
        + f"""
services:
  db:
    steps:
      - {{id: promote, action: sim.step, site: "{site}", with: {{target: "{ref}"}}}}
"""
    )
    with pytest.raises(RunbookError) as raised:
        parse_runbook(text, "r.yaml")
    assert says in str(raised.value)
    assert "r.yaml:" in str(raised.value)  # where: file and line


def test_the_plan_asks_for_reading_each_secret_at_the_site_that_reads_it() -> None:
    plan = make_plan(parse_runbook(RUNBOOK, "r.yaml"), from_="east", to="west")
    needed = {(p.action, p.resource) for c in plan.preflight for p in c.permissions}
    assert ("ssm:GetParameter", "arn:aws:ssm:us-west-2:*:parameter/prod/db/password") in needed
    assert ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-west-2:*:secret:prod/api-*") in needed


def test_a_plan_of_literal_secrets_is_redacted_and_not_applicable_unless_asked(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from failover.cli import main

    runbook = tmp_path / "r.yaml"
    literal = '{observed: {password: "hunter2-literal-pw"}}'
    runbook.write_text(RUNBOOK.replace('{observed: "${secret:aws-ssm:/prod/db/password}"}', literal))
    assert "hunter2-literal-pw" in runbook.read_text()
    plan = tmp_path / "plan.json"
    args = ["plan", str(runbook), "--from", "east", "--to", "west", "--format", "json", "-o", str(plan)]
    made = CliRunner().invoke(main, args)
    assert made.exit_code == 0 and "they are redacted from this plan, so it cannot be applied" in made.output
    assert "hunter2-literal-pw" not in plan.read_text()
    refused = CliRunner().invoke(main, ["apply", str(plan), "--state", str(tmp_path / "s"), "--auto-approve"])
    assert refused.exit_code == 3 and "written with its secrets redacted" in refused.output
    plan.unlink()
    assert CliRunner().invoke(main, [*args, "--with-secrets"]).exit_code == 0
    assert "hunter2-literal-pw" in plan.read_text()  # asked for: the plan file carries what runs


def test_a_service_named_like_a_secret_is_a_name_not_a_secret() -> None:
    text = (
        SITES
        + """
services:
  auth:
    description: the login service
    steps:
      - {id: move, action: sim.step, site: "${to}", with: {target: auth-service}}
"""
    )
    plan = make_plan(parse_runbook(text, "r.yaml"), from_="east", to="west")
    shown = render_plan(plan, "markdown")
    assert "Move auth-service to west" in shown and "[redacted]" not in shown
