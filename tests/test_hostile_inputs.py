"""Inputs that cannot hurt: a YAML alias bomb, plan files too deep or too big, malformed plans,
outputs that cannot be written and approvals of steps that do not exist are all refused before
anything runs, with exit 2 and what was expected. Bounds (nodes, depth, bytes), not wall time."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from failover.cli import main
from failover.errors import RunbookError
from failover.plan import MAX_PLAN_BYTES, MAX_PLAN_DEPTH
from failover.runbook import parse_runbook
from failover.source import ALIAS_EXPANSION_LIMIT
from tests.conftest import SIM_SHOP


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def bomb(levels: int) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    names = "bcdefghijklmnop"
    for prev, name in zip("a" + names, names[: levels - 1], strict=False):
        text += f"{name}: &{name} [{','.join(['*' + prev] * 9)}]\n"
    return text


@pytest.mark.parametrize("levels", [7, 9])
def test_a_yaml_alias_bomb_is_measured_not_walked(levels: int) -> None:
    text = bomb(levels)
    assert len(text) < 400
    tracemalloc.start()
    try:
        with pytest.raises(RunbookError) as raised:
            parse_runbook(text, "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(raised.value)
    assert "nodes to " in message  # the expansion it would have had...
    assert f"more than {ALIAS_EXPANSION_LIMIT:,}" in message and "billion laughs" in message
    assert peak < 5 * 1024 * 1024  # ...measured in a few megabytes, never built


def test_yaml_aliases_a_runbook_may_reuse_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(SIM_SHOP.read_text() + "\nx-anchors: &small [1, 2, 3]\n")
    result = cli("validate", str(path))
    assert result.exit_code == 2 and "x-anchors" in result.output  # an unknown key, not a bomb


def test_a_plan_nested_too_deeply_or_too_big_or_malformed_exits_2(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    result = cli("apply", str(deep), "--state", str(tmp_path / "s"))
    assert result.exit_code == 2 and "nested too deeply" in result.output
    nested = tmp_path / "nested.json"
    nested.write_text("{" + '"a": {' * (MAX_PLAN_DEPTH + 1) + "}" * (MAX_PLAN_DEPTH + 2))
    result = cli("apply", str(nested), "--state", str(tmp_path / "s"))
    assert result.exit_code == 2 and f"nested more than {MAX_PLAN_DEPTH} levels" in result.output
    huge = tmp_path / "huge.json"
    with huge.open("wb") as out:  # sparse: the size is there, the bytes are not
        out.truncate(MAX_PLAN_BYTES + 1)
    result = cli("apply", str(huge), "--state", str(tmp_path / "s"))
    assert result.exit_code == 2 and f"more than the {MAX_PLAN_BYTES:,} a plan may have" in result.output
    for text, says in [
        ('{"version": 1, "fingerprint": "x"}', "invalid plan"),
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        result = cli("apply", str(bad), "--state", str(tmp_path / "s"))
        assert result.exit_code == 2 and says in result.output, text
    assert not (tmp_path / "s").exists()  # nothing was journaled, nothing was created


def plan_file(tmp_path: Path) -> Path:
    out = tmp_path / "plan.json"
    made = cli("plan", str(SIM_SHOP), "--from", "east", "--to", "west", "--format", "json", "-o", str(out))
    assert made.exit_code == 0, made.output
    return out


def test_approving_a_step_that_is_in_no_leg_exits_2_before_anything_runs(tmp_path: Path) -> None:
    result = cli(
        "apply", str(plan_file(tmp_path)), "--approve", "orders-db.promot", "--state", str(tmp_path / "s")
    )
    assert result.exit_code == 2 and "--approve orders-db.promot: no such step" in result.output
    assert "orders-db.promote" in result.output  # the steps that do ask
    assert not (tmp_path / "s").exists()
    result = cli(
        "drill", str(SIM_SHOP), "--from", "east", "--to", "west", "--failback", "--approve", "nope",
        "--state", str(tmp_path / "d"),
    )  # fmt: skip
    assert result.exit_code == 2 and "--approve nope" in result.output
    assert not (tmp_path / "d").exists()


def test_a_report_that_could_not_be_written_is_found_before_the_drill(tmp_path: Path) -> None:
    result = cli(
        "drill", str(SIM_SHOP), "--from", "east", "--to", "west", "--auto-approve",
        "--state", str(tmp_path / "d"), "--report", str(tmp_path / "nodir" / "r.md"),
    )  # fmt: skip
    assert result.exit_code == 2 and "--report" in result.output and "does not exist" in result.output
    assert not (tmp_path / "d").exists()  # the failover did not run


def test_iam_policy_for_a_cloud_the_plan_does_not_use_says_so(tmp_path: Path) -> None:
    result = cli("iam-policy", str(SIM_SHOP), "--from", "east", "--to", "west", "--cloud", "gcp")
    assert result.exit_code == 2 and "the plan needs no gcp permissions" in result.output
    result = cli("iam-policy", str(SIM_SHOP), "--from", "east", "--to", "west")
    assert result.exit_code == 2 and "needs no cloud permissions" in result.output


def test_arguments_that_are_not_utf_8_get_a_message_not_a_traceback(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    not_utf8 = os.fsdecode(b"\xff\xfe.yaml")  # as the kernel hands such bytes to Python
    for args in (
        ["validate", not_utf8],
        ["plan", str(SIM_SHOP), "--from", not_utf8, "--to", "west"],
        ["graph", str(SIM_SHOP), "--impact", not_utf8],
        ["iam-policy", str(SIM_SHOP), "--from", "east", "--to", "west", "--site", os.fsdecode(b"\xed\xa0")],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "failover.cli", *args], capture_output=True, check=False, cwd=tmp_path
        )
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode == 2, (args, err)
        assert "Traceback" not in err and "\\udc" in err, (args, err)  # the bytes, shown escaped
