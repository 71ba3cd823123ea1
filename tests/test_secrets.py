"""Secrets planted in parameters, the environment and action results reach no log line, no
journal row and no report."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SITES

CANARIES = {
    "param": "canary-param-7f3a91",
    "aws_key": "AKIAZ7CANARY0000TEST",
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY1",
    "env": "canary-env-5521c0",
    "result": "canary-result-88d2e4",
}

RUNBOOK = f"""
services:
  db:
    preflight:
      - {{id: lag, check: sim.check, site: "${{to}}",
         with: {{ok: true, observed: {{password: {CANARIES["param"]}, key: {CANARIES["aws_key"]}}}}}}}
    steps:
      - {{id: promote, action: sim.step, site: "${{to}}", with: {{target: "db-{CANARIES["aws_key"]}"}}}}
    verify:
      - {{id: token, check: sim.check, site: "${{to}}",
         with: {{ok: true, observed: {{api_token: {CANARIES["result"]}, blob: "{CANARIES["aws_secret"]}"}}}}}}
"""


def test_canaries_reach_no_log_line_no_journal_row_and_no_report(tmp_path: Path) -> None:
    runbook = tmp_path / "r.yaml"
    runbook.write_text(SITES + RUNBOOK)
    state = tmp_path / "state"
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": CANARIES["env"], "FAILOVER_DB_PASSWORD": CANARIES["env"]}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "failover.cli",
            "drill",
            str(runbook),
            "--from",
            "east",
            "--to",
            "west",
            "--auto-approve",
            "--state",
            str(state),
            "--report",
            str(tmp_path / "report.md"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    logs = proc.stdout + proc.stderr
    assert '"event": "step_succeeded"' in logs  # JSON lines: there was something to leak into
    with sqlite3.connect(state / "journal.sqlite") as db:
        rows = "\n".join(
            repr(row)
            for table in ("events", "runs", "leases")
            for row in db.execute(f"SELECT * FROM {table}")
        )
    assert "step_succeeded" in rows
    run_id = proc.stdout.split()[1].rstrip(":")  # "run RUN_ID: succeeded: ..."
    as_json = subprocess.run(
        [sys.executable, "-m", "failover.cli", "report", run_id, "--state", str(state), "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "observes" in as_json  # the check descriptions, which quote what they observe
    report = (tmp_path / "report.md").read_text() + as_json
    for name, canary in CANARIES.items():
        assert canary not in logs, f"{name} canary in the logs"
        assert canary not in rows, f"{name} canary in the journal"
        assert canary not in report, f"{name} canary in the report"
