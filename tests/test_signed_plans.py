"""Plans a reviewer signs: apply runs a plan only as signed by enough allowed keys when the
run's own options or environment say so; custom endpoints a plan names get no credentials
unless allowed at apply time."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from failover.cli import main
from failover.plan import Plan
from failover.providers.sim import SimWorld
from failover.state.local import DirectoryStore
from tests.conftest import SITES

RUNBOOK = (
    SITES
    + """
services:
  db:
    steps:
      - {id: promote, action: sim.step, site: "${to}", pivot: true, with: {target: writer}}
  edge:
    depends_on: [db]
    steps:
      - {id: dns, action: sim.step, site: "${to}", approval: true, with: {target: "api.shop.example.com"}}
"""
)


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def keygen(tmp_path: Path, name: str, kind: str = "ed25519") -> Path:
    key = tmp_path / name
    extra = ["-b", "256"] if kind == "ecdsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def allowed(tmp_path: Path, *signers: tuple[str, Path], options: str = "") -> Path:
    lines = []
    for principal, key in signers:
        public = key.with_suffix(".pub").read_text().split()
        lines.append(" ".join(filter(None, [principal, options, public[0], public[1]])))
    path = tmp_path / "allowed_signers"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    runbook = tmp_path / "r.yaml"
    runbook.write_text(RUNBOOK)
    out = tmp_path / "plan.json"
    made = cli("plan", str(runbook), "--from", "east", "--to", "west", "--format", "json", "-o", str(out))
    assert made.exit_code == 0, made.output
    return out


def apply(plan: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return cli("apply", str(plan), "--state", str(tmp_path / "state"), *args, env=env)


def runs(tmp_path: Path) -> list[str]:
    if not (tmp_path / "state").exists():
        return []
    return [run_id for run_id, *_ in DirectoryStore(tmp_path / "state", read_only=True).runs()]


def resign_attack(plan: Path) -> None:
    """What someone with write access to the plan file does: point DNS elsewhere, fingerprint
    the result again, write it in canonical form."""
    doc = Plan.from_json(plan.read_bytes())
    steps = tuple(
        s._replace(params={**s.params, "target": "attacker.example.net"}) if s.id == "edge.dns" else s
        for s in doc.steps
    )
    plan.write_text(dataclasses.replace(doc, steps=steps).to_json())


def test_a_refingerprinted_plan_is_refused_when_signatures_are_required(plan: Path, tmp_path: Path) -> None:
    alice = keygen(tmp_path, "alice")
    signers = allowed(tmp_path, ("alice@example.com", alice))
    assert cli("sign", str(plan), "--key", str(alice)).exit_code == 0
    resign_attack(plan)
    env = {"FAILOVER_ALLOWED_SIGNERS": str(signers), "FAILOVER_REQUIRE_SIGNATURES": "1"}
    result = apply(plan, tmp_path, "--auto-approve", env=env)
    assert result.exit_code == 3, result.output
    assert "1 signature(s) by distinct keys" in result.output and "0 found" in result.output
    assert "does not verify" in result.output  # alice's signature no longer matches the bytes
    assert runs(tmp_path) == []  # nothing ran, nothing was journaled
    assert SimWorld(tmp_path / "state").values() == {}


def test_a_signed_plan_runs_with_its_signers_as_approvers_and_the_journal_names_them(
    plan: Path, tmp_path: Path
) -> None:
    alice, bob = keygen(tmp_path, "alice"), keygen(tmp_path, "bob", "ecdsa")
    signers = allowed(tmp_path, ("alice@example.com", alice), ("bob@example.com", bob))
    assert cli("sign", str(plan), "--key", str(alice)).exit_code == 0
    second = cli("sign", str(plan), "--key", str(bob))
    assert second.exit_code == 2 and "plan.json.sig exists" in second.output  # never over another's
    assert cli("sign", str(plan), "--key", str(bob), "-o", f"{plan}.bob.sig").exit_code == 0
    # no terminal, no --auto-approve: the two verified signers approve the pivot and the DNS step
    result = apply(
        plan,
        tmp_path,
        "--allowed-signers",
        str(signers),
        "--require-signatures",
        "2",
        "--signers-approve",
    )
    assert result.exit_code == 0, result.output
    assert SimWorld(tmp_path / "state").values() == {"writer": "west", "api.shop.example.com": "west"}
    store = DirectoryStore(tmp_path / "state", read_only=True)
    events = store.events(runs(tmp_path)[0])
    started = next(e for e in events if e.kind == "run_started")
    journaled = {tuple(s["principals"]) for s in started.data["signatures"]}
    assert journaled == {("alice@example.com",), ("bob@example.com",)}
    granted = [e for e in events if e.kind == "approval_granted"]
    assert len(granted) == 2
    assert all(
        "alice@example.com" in str(e.data["by"]) and "bob@example.com" in str(e.data["by"]) for e in granted
    )


def test_the_same_key_twice_and_a_key_not_allowed_do_not_count(plan: Path, tmp_path: Path) -> None:
    alice, mallory = keygen(tmp_path, "alice"), keygen(tmp_path, "mallory")
    signers = allowed(tmp_path, ("alice@example.com", alice))
    cli("sign", str(plan), "--key", str(alice))
    cli("sign", str(plan), "--key", str(alice), "-o", f"{plan}.again.sig")
    cli("sign", str(plan), "--key", str(mallory), "-o", f"{plan}.mallory.sig")
    result = apply(
        plan, tmp_path, "--allowed-signers", str(signers), "--require-signatures", "2", "--auto-approve"
    )
    assert result.exit_code == 3, result.output
    assert (
        "2 signature(s) by distinct keys" in result.output and "1 found: alice@example.com" in result.output
    )
    assert "plan.json.mallory.sig: signed by SHA256:" in result.output and "does not allow" in result.output
    assert runs(tmp_path) == []


def test_openssh_and_failover_read_each_others_signatures(plan: Path, tmp_path: Path) -> None:
    alice = keygen(tmp_path, "alice", "ecdsa")
    signers = allowed(tmp_path, ("alice@example.com", alice))
    made = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(alice), "-n", "failover-plan", str(plan)],
        capture_output=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr  # writes plan.json.sig
    result = apply(
        plan, tmp_path, "--allowed-signers", str(signers), "--require-signatures", "1", "--auto-approve"
    )
    assert result.exit_code == 0, result.output
    ours = tmp_path / "ours.sig"
    assert cli("sign", str(plan), "--key", str(alice), "-o", str(ours)).exit_code == 0
    checked = subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(signers),
            "-I",
            "alice@example.com",
            "-n",
            "failover-plan",
            "-s",
            str(ours),
        ],
        input=plan.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_allowed_signers_validity_and_namespaces_are_honoured(plan: Path, tmp_path: Path) -> None:
    alice = keygen(tmp_path, "alice")
    cli("sign", str(plan), "--key", str(alice))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%dZ")
    for options in (f'valid-after="{tomorrow}"', 'namespaces="git"'):
        signers = allowed(tmp_path, ("alice@example.com", alice), options=options)
        result = apply(
            plan, tmp_path, "--allowed-signers", str(signers), "--require-signatures", "1", "--auto-approve"
        )
        assert result.exit_code == 3, (options, result.output)
    signers = allowed(tmp_path, ("alice@example.com", alice), options='namespaces="git,failover-plan"')
    result = apply(
        plan, tmp_path, "--allowed-signers", str(signers), "--require-signatures", "1", "--auto-approve"
    )
    assert result.exit_code == 0, result.output


def test_an_old_plan_and_a_plan_not_in_canonical_form_are_refused(plan: Path, tmp_path: Path) -> None:
    doc = Plan.from_json(plan.read_bytes())
    made = datetime.fromisoformat(str(doc.made_at).replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - made).total_seconds()) < 600  # `plan` says when it made the file
    plan.write_text(dataclasses.replace(doc, made_at="2026-01-01T00:00:00Z").to_json())
    result = apply(plan, tmp_path, "--max-plan-age", "24h", "--auto-approve")
    assert result.exit_code == 3 and "older than --max-plan-age 24 h" in result.output
    plan.write_text(json.dumps(json.loads(plan.read_text()), indent=4))  # same content, other bytes
    result = apply(plan, tmp_path, "--auto-approve")
    assert result.exit_code == 3 and "not in canonical form" in result.output
    assert cli("sign", str(plan), "--key", str(keygen(tmp_path, "k"))).exit_code == 3  # nor signed
    assert runs(tmp_path) == []


def test_requiring_signatures_without_allowed_signers_is_refused(plan: Path, tmp_path: Path) -> None:
    result = apply(plan, tmp_path, "--auto-approve", env={"FAILOVER_REQUIRE_SIGNATURES": "1"})
    assert result.exit_code == 3 and "no allowed signers given" in result.output


def with_endpoint(plan: Path, url: str) -> None:
    doc = Plan.from_json(plan.read_bytes())
    sites = tuple(
        s._replace(aws={**(s.aws or {}), "endpoint_url": url}) if s.name == "west" else s for s in doc.sites
    )
    plan.write_text(dataclasses.replace(doc, sites=sites).to_json())


def test_a_plan_that_names_a_foreign_endpoint_gets_no_credentials_unless_allowed(
    plan: Path, tmp_path: Path
) -> None:
    with_endpoint(plan, "https://collector.example.net:8443")
    result = apply(plan, tmp_path, "--auto-approve")
    assert result.exit_code == 3, result.output
    assert "sites.west.aws.endpoint_url = https://collector.example.net:8443" in result.output
    assert "--allow-endpoint collector.example.net" in result.output
    assert runs(tmp_path) == []
    allowed_run = apply(plan, tmp_path, "--auto-approve", "--allow-endpoint", "collector.example.net")
    assert allowed_run.exit_code == 0, allowed_run.output
    with_endpoint(plan, "http://127.0.0.1:4566")  # a local emulator needs no allowing
    assert apply(plan, tmp_path / "again", "--auto-approve").exit_code == 0


def test_every_rendering_of_a_plan_with_a_custom_endpoint_says_so_first(plan: Path) -> None:
    from failover.render import render_plan

    with_endpoint(plan, "https://collector.example.net:8443")
    doc = Plan.from_json(plan.read_bytes())
    for fmt in ("text", "markdown"):
        shown = render_plan(doc, fmt, width=300)  # type: ignore[arg-type]
        first = shown.lstrip().splitlines()[:2]
        assert any("CUSTOM ENDPOINTS" in line and "collector.example.net" in line for line in first), fmt


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.2:8765\\@127.0.0.1:9",  # urllib3 connects to 192.0.2.2, urlsplit says 127.0.0.1
        "http://127.0.0.1@collector.example.net",
        "http://127.0.0.1.collector.example.net",
        "https://${env:X}@127.0.0.1/",
    ],
)
def test_an_endpoint_url_parsers_read_differently_is_never_honoured(
    plan: Path, tmp_path: Path, url: str
) -> None:
    with_endpoint(plan, url)
    result = apply(plan, tmp_path, "--auto-approve", "--allow-endpoint", "127.0.0.1")
    assert result.exit_code == 3, result.output
    assert runs(tmp_path) == []


def test_a_signature_file_that_is_not_a_small_regular_file_is_not_read(plan: Path, tmp_path: Path) -> None:
    alice = keygen(tmp_path, "alice")
    signers = allowed(tmp_path, ("alice@example.com", alice))
    os.mkfifo(f"{plan}.fifo.sig")  # would block a plain open() forever
    Path(f"{plan}.zero.sig").symlink_to("/dev/zero")  # would fill memory
    result = apply(
        plan, tmp_path, "--allowed-signers", str(signers), "--require-signatures", "1", "--auto-approve"
    )
    assert result.exit_code == 3, result.output
    assert "plan.json.fifo.sig: not a regular file" in result.output
    assert "plan.json.zero.sig: not a regular file" in result.output
    assert cli("sign", str(plan), "--key", str(alice)).exit_code == 0
    result = apply(
        plan, tmp_path, "--allowed-signers", str(signers), "--require-signatures", "1", "--auto-approve"
    )
    assert result.exit_code == 0, result.output


def test_a_plan_made_in_the_future_has_no_age_to_trust(plan: Path, tmp_path: Path) -> None:
    doc = Plan.from_json(plan.read_bytes())
    plan.write_text(dataclasses.replace(doc, made_at="2999-01-01T00:00:00Z").to_json())
    result = apply(plan, tmp_path, "--max-plan-age", "1h", "--auto-approve")
    assert result.exit_code == 3 and "in the future" in result.output
    naive = datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat()
    plan.write_text(dataclasses.replace(doc, made_at=naive).to_json())
    assert apply(plan, tmp_path, "--max-plan-age", "1h", "--auto-approve").exit_code == 0


def test_with_signatures_required_nothing_unsigned_runs_against_real_clouds(
    plan: Path, tmp_path: Path
) -> None:
    runbook = tmp_path / "r.yaml"
    env = {"FAILOVER_REQUIRE_SIGNATURES": "1"}
    drilled = cli("drill", str(runbook), "--from", "east", "--to", "west", "--auto-approve", env=env)
    assert (
        drilled.exit_code == 3 and "a drill against real clouds has 0 verified signature(s)" in drilled.output
    )
    assert apply(plan, tmp_path, "--auto-approve", "--on-failure", "halt").exit_code == 0
    resumed = cli("resume", runs(tmp_path)[0], "--state", str(tmp_path / "state"), env=env)
    assert resumed.exit_code == 3 and "0 verified signature(s)" in resumed.output
