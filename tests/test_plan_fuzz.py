"""Plan files and command lines from anywhere: whatever the bytes or the options, a plan file is
a plan or a PlanError, and the command line ends with a documented exit code, never a traceback."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.cli import main
from failover.errors import PlanError
from failover.plan import Plan
from failover.planner import make_plan
from failover.runbook import load_runbook
from tests.conftest import ROOT, SIM_SHOP

PLAN = make_plan(load_runbook(SIM_SHOP), from_="east", to="west")
DOC = json.loads(PLAN.to_json())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=400))
def test_any_bytes_give_a_plan_or_a_plan_error(data: bytes) -> None:
    with contextlib.suppress(PlanError):  # anything else (a traceback) fails the test
        Plan.from_json(data)


@given(st.sampled_from(sorted(DOC)), json_values)
def test_any_field_of_a_real_plan_replaced_gives_a_plan_error(field: str, value: object) -> None:
    doc = {**DOC, field: value}
    try:
        Plan.from_json(json.dumps(doc))
    except PlanError:
        return
    raise AssertionError(f"{field} = {value!r} was accepted")  # changed: never the same fingerprint


OPTIONS = ["--approve", "--skip-check", "--concurrency", "--on-failure", "--sim-speed", "--max-plan-age",
           "--require-signatures", "--allow-endpoint", "--format", "--reason"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(OPTIONS), st.text(max_size=12)), max_size=3))
def test_any_apply_options_end_in_a_documented_exit_code(
    tmp_path_factory: object, options: list[tuple[str, str]]
) -> None:
    folder = Path(str(tmp_path_factory.mktemp("fuzz")))  # type: ignore[attr-defined]
    plan = folder / "plan.json"
    plan.write_text(PLAN.to_json())
    args = ["apply", str(plan), "--state", str(folder / "s"), "--auto-approve", "--sim-speed", "1000"]
    for name, value in options:
        args += [name, value]
    with contextlib.chdir(folder):  # whatever a value names, it is written in the test's own folder
        result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 1, 2, 3), (args, result.output)
    assert not (ROOT / "journal.sqlite").exists() and not (ROOT / "plans").exists()
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        repr(result.exception),
    )
