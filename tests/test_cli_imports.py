"""Reading a runbook loads what reading needs: ``validate`` and ``plan`` check every step's
parameters against its action's schema without importing a cloud SDK (boto3, botocore,
google-cloud), networkx, the engine or the state store, and ``validate`` no HTTP client either."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import failover
from tests.conftest import ROOT

SHOP = str(ROOT / "runbooks" / "shop.yaml")
NOT_LOADED = ("boto3", "botocore", "s3transfer", "google", "networkx", "failover.engine", "failover.state")

# runs the command in the process, then lists every module it loaded
PROBE = """
import contextlib, io, sys
from failover.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main.main(sys.argv[1:], standalone_mode=False)
print("\\n".join(sorted(sys.modules)))
"""


def loaded_by(args: list[str], cwd: Path) -> list[str]:
    source = Path(failover.__file__).resolve().parents[1]  # this checkout's, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize(
    ("args", "not_loaded"),
    [
        (["validate", SHOP], (*NOT_LOADED, "urllib3", "requests")),
        # the text plan checks where the shop's ARC cluster endpoints point, with urllib3's parser
        (["plan", SHOP, "--from", "east", "--to", "west"], NOT_LOADED),
        (
            ["plan", SHOP, "--from", "west", "--to", "east", "--mode", "ungraceful", "--format", "json"],
            NOT_LOADED,
        ),
    ],
    ids=["validate", "plan", "plan-json"],
)
def test_validate_and_plan_import_no_cloud_sdk_networkx_or_engine(
    args: list[str], not_loaded: tuple[str, ...], tmp_path: Path
) -> None:
    loaded = loaded_by(args, tmp_path)
    assert "failover.providers.aws.rds" in loaded and "failover.providers.gcp.instance_groups" in loaded
    heavy = [m for m in loaded if any(m == n or m.startswith(n + ".") for n in not_loaded)]
    assert heavy == []
