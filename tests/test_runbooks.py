"""Every runbook in runbooks/ validates, plans in both directions, and drills with failback (in
the sandbox when it declares one, where the end state must equal the start); and the commands
around drills: readiness checks, history, metrics, undoing an active-active failover."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from failover.cli import main
from failover.planner import make_plan
from failover.runbook import load_runbook
from tests.conftest import ROOT

RUNBOOKS = sorted((ROOT / "runbooks").rglob("*.yaml"))


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    hits = [v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()]
    assert len(hits) == 1, f"{name} {labels}: {len(hits)} samples"
    return hits[0]


def test_the_reference_runbooks_are_all_here() -> None:
    names = {p.relative_to(ROOT / "runbooks").as_posix() for p in RUNBOOKS}
    assert {
        "shop.yaml",
        "examples/aws-warm-standby.yaml",
        "examples/pilot-light.yaml",
        "examples/active-active.yaml",
        "examples/gcp-regional.yaml",
    } <= names


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_every_runbook_validates_plans_both_ways_and_drills_there_and_back(
    path: Path, tmp_path: Path
) -> None:
    runbook = load_runbook(path)
    first, second = list(runbook.sites)[:2]
    for a, b in ((first, second), (second, first)):
        plan = make_plan(runbook, from_=a, to=b)
        assert plan.steps and not any("unknown" in w for w in plan.warnings)
    args = ["drill", str(path), "--from", first, "--to", second, "--failback", "--auto-approve"]
    args += ["--format", "json", "--state", str(tmp_path)]
    if runbook.sandbox is not None:
        args.append("--sandbox")
    else:
        args += ["--sim-speed", "1000"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    outcomes = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"run_id"')]
    assert len(outcomes) == 2 and outcomes[0]["status"] == "succeeded"
    assert outcomes[1]["status"] == ("rolled_back" if runbook.failback == "rollback" else "succeeded")
    if runbook.sandbox is not None:
        assert "sandbox: end state equals the start state" in result.stderr


def test_the_shop_spans_both_clouds_with_the_expected_shape() -> None:
    shop = load_runbook(ROOT / "runbooks" / "shop.yaml")
    assert 12 <= len(shop.services) <= 20
    plan = make_plan(shop, from_="east", to="west")
    clouds = {s.action.split(".")[0] for s in plan.steps if s.kind == "action"}
    assert {"aws", "gcp"} <= clouds
    pivots = {s.service for s in plan.steps if s.pivot}
    assert pivots == {"orders-db", "inventory-db"}
    order = [s.id for s in plan.steps]
    assert order.index("orders-db.switchover") < order.index("checkout.scale-up") < order.index("dns.shift")
    assert {s.id for s in plan.steps if s.approval} >= {"payments-lb.open", "dns.shift"}
    checks = {c.check for c in plan.preflight}
    assert {"aws.rds.replica_lag", "aws.autoscaling.capacity_available", "aws.cloudwatch.alarms_ok"} <= checks
    assert {"aws.permissions", "gcp.permissions", "gcp.compute.instance_group_capacity"} <= checks


def test_check_reports_ready_in_the_sandbox_with_metrics(tmp_path: Path) -> None:
    metrics = tmp_path / "ready.prom"
    args = ["check", str(ROOT / "runbooks" / "shop.yaml"), "--from", "east", "--to", "west", "--sandbox"]
    result = CliRunner().invoke(main, [*args, "--format", "json", "--metrics-file", str(metrics)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ready"] is True and len(doc["checks"]) == 11
    assert all(c["ok"] for c in doc["checks"])
    samples = _samples(metrics)
    assert _value(samples, "failover_ready", runbook="shop", from_site="east", to_site="west") == 1
    assert _value(samples, "failover_check_ok", check="sessions.replica-active", site="west") == 1


def test_check_names_each_failing_check_with_what_it_saw_and_exits_3(tmp_path: Path) -> None:
    text = (ROOT / "runbooks/examples/gcp-regional.yaml").read_text(encoding="utf-8")
    path = tmp_path / "down.yaml"
    path.write_text(
        text.replace(
            "- {site: west, instances_quota: 24}", "- {site: west, status: DOWN, instances_quota: 2}"
        ),
        encoding="utf-8",
    )
    metrics = tmp_path / "ready.prom"
    args = ["check", str(path), "--from", "east", "--to", "west", "--sandbox", "--metrics-file", str(metrics)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    assert (
        '  FAIL web-standby.region-up at west: region us-west1 is DOWN (observed {"status": "DOWN"})'
        in result.stdout
    )
    assert "  FAIL web-standby.capacity at west: 2 more instances needed" in result.stdout
    assert "  ok   web-standby.permissions at west" in result.stdout
    assert result.stdout.rstrip().endswith("NOT READY: 2 failed: web-standby.region-up, web-standby.capacity")
    samples = _samples(metrics)
    assert _value(samples, "failover_ready", runbook="gcp-regional") == 0
    assert _value(samples, "failover_check_ok", check="web-standby.region-up") == 0
    assert _value(samples, "failover_check_ok", check="web-standby.permissions") == 1
    skipped = CliRunner().invoke(
        main, [*args[:-2], "--skip-check", "web-standby.region-up", "--skip-check", "web-standby.capacity"]
    )
    assert skipped.exit_code == 0, skipped.output
    assert "  skip web-standby.region-up at west: skipped: --skip-check" in skipped.stdout


def test_check_refuses_an_unknown_check_and_an_unwritable_metrics_file(tmp_path: Path) -> None:
    args = ["check", str(ROOT / "runbooks/examples/gcp-regional.yaml"), "--from", "east", "--to", "west"]
    unknown = CliRunner().invoke(main, [*args, "--skip-check", "web-standby.nope"])
    assert unknown.exit_code == 2
    assert (
        "--skip-check web-standby.nope: not a preflight check of the plan (web-standby.region-up"
        in unknown.stderr
    )
    nowhere = CliRunner().invoke(main, [*args, "--metrics-file", str(tmp_path / "no" / "such" / "m.prom")])
    assert nowhere.exit_code == 2
    assert (
        f"--metrics-file {tmp_path}/no/such/m.prom: directory {tmp_path}/no/such does not exist"
        in nowhere.stderr
    )


def test_history_shows_rto_per_service_and_the_trend_across_drills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILOVER_STATE", str(tmp_path / "state"))
    path = str(ROOT / "runbooks/examples/gcp-regional.yaml")
    metrics = tmp_path / "drill.prom"
    for _ in range(2):
        drill = ["drill", path, "--from", "east", "--to", "west", "--failback", "--sandbox", "--auto-approve"]
        result = CliRunner().invoke(main, [*drill, "--format", "json", "--metrics-file", str(metrics)])
        assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "state" / "sandbox").iterdir())) == 2  # one world per drill
    samples = _samples(metrics)
    assert (
        _value(samples, "failover_run_success", runbook="gcp-regional", from_site="east", to_site="west") == 1
    )
    assert _value(samples, "failover_run_success", from_site="west", to_site="east") == 1
    assert _value(samples, "failover_run_rto_target_seconds", from_site="east") == 1200
    assert _value(samples, "failover_run_rto_predicted_seconds", from_site="east") > 0
    assert _value(samples, "failover_step_duration_seconds", from_site="east", step="traffic.shift") > 0
    assert _value(samples, "failover_service_rto_target_seconds", from_site="east", service="traffic") == 900
    shown = CliRunner().invoke(main, ["history", path, "--sandbox", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert [r["direction"] for r in data["runs"]] == ["east -> west", "west -> east"] * 2
    assert all(r["status"] == "succeeded" for r in data["runs"])
    rows = data["services"]["east -> west"]
    assert rows["traffic"]["runs"] == 2 and rows["traffic"]["target_s"] == 900
    assert rows["(overall)"]["trend"] in ("steady", "faster", "slower")
    text = CliRunner().invoke(main, ["history", path, "--sandbox"]).stdout
    assert text.startswith("History of gcp-regional: 4 finished runs")
    assert "east -> west, succeeded runs:" in text
    empty = CliRunner().invoke(main, ["history", path])  # the real journal has none
    assert empty.exit_code == 0 and "0 finished runs" in empty.stdout


def test_a_succeeded_failover_past_a_pivot_cannot_be_undone(tmp_path: Path) -> None:
    path = str(ROOT / "runbooks/examples/sim-shop.yaml")
    args = ["drill", path, "--from", "east", "--to", "west", "--auto-approve", "--sim-speed", "1000"]
    result = CliRunner().invoke(main, [*args, "--format", "json", "--state", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout.splitlines()[-1])["run_id"]
    refused = CliRunner().invoke(main, ["rollback", run_id, "--state", str(tmp_path)])
    assert refused.exit_code == 3
    assert f"run {run_id} began pivot" in refused.stderr and "cannot be rolled back" in refused.stderr


def test_failback_rollback_is_refused_for_a_runbook_with_a_pivot(tmp_path: Path) -> None:
    text = (ROOT / "runbooks/examples/aws-warm-standby.yaml").read_text(encoding="utf-8")
    path = tmp_path / "undo.yaml"
    path.write_text(text.replace("defaults:", "failback: rollback\ndefaults:", 1), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        "services.orders-db.steps[0].pivot: a runbook with failback: rollback undoes its failover"
        in result.stderr
    )
    assert "every step must be reversible: expected no pivot: true, or failback: reverse" in result.stderr


def test_a_run_is_not_undone_over_a_later_run_on_the_same_services(tmp_path: Path) -> None:
    text = (ROOT / "runbooks/examples/sim-shop.yaml").read_text(encoding="utf-8")
    path = tmp_path / "nopivot.yaml"
    path.write_text(text.replace("pivot: true, rollback: none,", ""), encoding="utf-8")
    state = str(tmp_path / "state")
    ids = []
    for a, b in (("east", "west"), ("west", "east")):
        args = ["drill", str(path), "--from", a, "--to", b, "--auto-approve", "--sim-speed", "1000"]
        result = CliRunner().invoke(main, [*args, "--format", "json", "--state", state])
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.stdout.splitlines()[-1])["run_id"])
    refused = CliRunner().invoke(main, ["rollback", ids[0], "--state", state])
    assert refused.exit_code == 3, refused.output
    assert f"run {ids[0]} cannot be rolled back: run {ids[1]}, started after it, acted on" in refused.stderr
    undone = CliRunner().invoke(main, ["rollback", ids[1], "--state", state, "--format", "json"])
    assert undone.exit_code == 0, undone.output
    assert json.loads(undone.stdout.splitlines()[-1])["status"] == "rolled_back"


def test_an_undone_drill_keeps_its_failover_in_history_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILOVER_STATE", str(tmp_path / "state"))
    path = str(ROOT / "runbooks/examples/active-active.yaml")
    metrics = tmp_path / "drill.prom"
    drill = ["drill", path, "--from", "east", "--to", "west", "--failback", "--sandbox", "--auto-approve"]
    result = CliRunner().invoke(main, [*drill, "--format", "json", "--metrics-file", str(metrics)])
    assert result.exit_code == 0, result.output
    samples = _samples(metrics)
    assert _value(samples, "failover_run_success", runbook="active-active", from_site="east") == 1
    assert _value(samples, "failover_run_undo_success", runbook="active-active", from_site="east") == 1
    data = json.loads(CliRunner().invoke(main, ["history", path, "--sandbox", "--format", "json"]).stdout)
    (run,) = data["runs"]
    assert (run["status"], run["undone"], run["direction"]) == ("succeeded", True, "east -> west")
    assert run["rto"]["measured_s"] is not None
    assert data["services"]["east -> west"]["api"]["runs"] == 1
    text = CliRunner().invoke(main, ["history", path, "--sandbox"]).stdout
    assert "succeeded, undone" in text
