"""What installing failover brings: the runtime has no embedded-cloud server (moto, Flask, the docker
SDK...), which only `--sandbox` needs, from the ``sandbox`` extra; without it everything else
works, and a sandbox says how to install it. The lock file pins every package with its hashes,
and the Makefile installs from it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT, SITES

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
LOCK = ROOT / "requirements.lock"
SHOP = str(ROOT / "runbooks" / "shop.yaml")
SERVER_ONLY = {"moto", "flask", "flask-cors", "werkzeug", "docker", "cfn-lint", "sympy"}
HINT = "pip install 'failover[sandbox]'"

# Runs the failover command (or the code given with -c) in a Python where moto, Werkzeug, Flask
# and the docker SDK cannot be imported, as on a machine installed without the sandbox extra.
WITHOUT_SANDBOX = """
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"moto", "werkzeug", "flask", "flask_cors", "docker"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
if sys.argv[1] == "-c":
    exec(sys.argv[2])
else:
    from failover.cli import entry  # what the console script runs

    sys.argv = ["failover", *sys.argv[1:]]
    entry()
"""


def without_sandbox(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SANDBOX, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_the_runtime_has_no_sandbox_server_and_the_sandbox_extra_has_moto_server() -> None:
    runtime = names(PYPROJECT["dependencies"])
    assert not runtime & SERVER_ONLY
    assert {"boto3", "cryptography", "google-cloud-compute", "click"} <= runtime
    extras = PYPROJECT["optional-dependencies"]
    sandbox = [Requirement(r) for r in extras["sandbox"]]
    assert [(r.name, r.extras) for r in sandbox] == [("moto", {"server"})]
    dev = [Requirement(r) for r in extras["dev"]]
    assert any(r.name == "failover" and "sandbox" in r.extras for r in dev)  # the tests drill sandboxes


def test_without_the_sandbox_extra_failover_plans_and_runs_and_a_sandbox_says_how_to_install_it(
    tmp_path: Path,
) -> None:
    imported = without_sandbox(
        tmp_path,
        "-c",
        "import sys, failover, failover.cli, failover.sandbox, failover.sandbox.compute_fake\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('moto', 'werkzeug', 'flask')))",
    )
    assert (imported.returncode, imported.stdout.strip()) == (0, "[]"), imported.stderr

    assert "Usage: failover" in without_sandbox(tmp_path, "--help").stdout
    validated = without_sandbox(tmp_path, "validate", SHOP)
    assert validated.returncode == 0, validated.stderr
    assert "valid runbook 'shop'" in validated.stdout
    planned = without_sandbox(tmp_path, "plan", SHOP, "--from", "east", "--to", "west")
    assert planned.returncode == 0, planned.stderr
    assert "orders-db.switchover" in planned.stdout

    sim = tmp_path / "sim.yaml"  # simulated actions, no cloud: what apply runs here
    step = '{id: promote, action: sim.step, site: "${to}", pivot: true}'
    sim.write_text(f"{SITES}services:\n  db:\n    steps: [{step}]\n", encoding="utf-8")
    plan_file, state = tmp_path / "plan.json", tmp_path / "state"
    made = without_sandbox(
        tmp_path, "plan", str(sim), "--from", "east", "--to", "west", "--format", "json", "-o", str(plan_file)
    )
    assert made.returncode == 0, made.stderr
    applied = without_sandbox(tmp_path, "apply", str(plan_file), "--auto-approve", "--state", str(state))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    status = without_sandbox(tmp_path, "status", "--state", str(state))
    assert status.returncode == 0, status.stderr
    assert "succeeded" in status.stdout

    for command in (
        ["drill", SHOP, "--from", "east", "--to", "west", "--sandbox", "--auto-approve"],
        ["plan", SHOP, "--from", "east", "--to", "west", "--sandbox"],
        ["check", SHOP, "--from", "east", "--to", "west", "--sandbox"],
    ):
        done = without_sandbox(tmp_path, *command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert HINT in done.stderr, command
        assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / ".failover").exists()  # refused before a sandbox run was recorded


def locked() -> dict[str, str]:
    """Each requirement of the lock file (backslash-continued lines joined) by package name."""
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for line in map(str.strip, text.splitlines()):
        if line and not line.startswith("#"):
            found[canonicalize_name(Requirement(line.split(" --hash")[0]).name)] = line
    return found


def test_the_lock_pins_every_package_with_its_hashes() -> None:
    lock = locked()
    for name, line in lock.items():
        requirement = Requirement(line.split(" --hash")[0])
        assert [spec.operator for spec in requirement.specifier] == ["=="], line
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", line), f"{name} has no hash"
    declared = names(PYPROJECT["dependencies"]) | {
        canonicalize_name(Requirement(r).name)
        for extra in ("sandbox", "dev")
        for r in PYPROJECT["optional-dependencies"][extra]
    }
    assert declared - {"failover"} <= set(lock)
    # what moto's server brings, and what the tests import
    assert {"moto", "flask", "werkzeug", "pytest", "hypothesis", "pexpect", "jsonschema", "packaging"} <= set(
        lock
    )


@pytest.mark.parametrize("target", ["demo", "unit"])
def test_make_installs_from_the_lock_with_hashes_then_failover_without_dependencies(
    tmp_path: Path, target: str
) -> None:
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-n", f"VENV={venv}", target], cwd=ROOT, capture_output=True, text=True, check=True
    )
    commands = done.stdout.splitlines()
    hashed = next(n for n, c in enumerate(commands) if "--require-hashes -r requirements.lock" in c)
    package = next(n for n, c in enumerate(commands) if "--no-deps -e ." in c)
    assert hashed < package
    assert not any(re.search(r"pip install.*'?\.\[", c) for c in commands)  # nothing from pyproject's ranges
    assert any("openssh-client" in c for c in commands) == (target == "unit")
