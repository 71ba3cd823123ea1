"""The sim provider: real state, latency through the injected sleep, failures, compensation."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover.errors import ProviderError, TransientProviderError
from failover.providers.base import Context, Placement
from failover.providers.sim import SimCheck, SimStep, SimWorld


def ctx(
    tmp_path: Path, step: str = "app.scale", site: str = "west", slept: list[float] | None = None
) -> Context:
    return Context(
        run_id="run-1",
        step_id=step,
        placement=Placement(site=site),
        state_dir=tmp_path,
        sleep=(slept.append if slept is not None else lambda _s: None),
    )


def test_apply_moves_the_target_and_verify_sees_it(tmp_path: Path) -> None:
    action, slept = SimStep(), []
    params = action.parse({"duration": "2s", "target": "asg"})
    context = ctx(tmp_path, slept=slept)
    before = action.read(context, params)
    assert before == {"value": None}
    assert not action.verify(context, params)
    action.apply(context, params)
    assert slept == [2.0]
    assert action.verify(context, params)
    assert SimWorld(tmp_path).value("asg") == "west"


def test_apply_twice_changes_once(tmp_path: Path) -> None:
    action = SimStep()
    params = action.parse({"target": "asg"})
    first = action.apply(ctx(tmp_path), params)
    second = action.apply(ctx(tmp_path), params)
    assert first["changed"] is True and second["changed"] is False  # type: ignore[index,call-overload]
    changes = [e for e in SimWorld(tmp_path).events() if e.changed]
    assert len(changes) == 1


def test_compensate_restores_what_read_saw(tmp_path: Path) -> None:
    action = SimStep()
    params = action.parse({"target": "asg"})
    action.apply(ctx(tmp_path, site="east"), params)
    before = action.read(ctx(tmp_path), params)
    action.apply(ctx(tmp_path), params)
    action.compensate(ctx(tmp_path), params, before)
    assert SimWorld(tmp_path).value("asg") == "east"
    assert [e.op for e in SimWorld(tmp_path).events()] == ["apply", "apply", "compensate"]


def test_irreversible_step_refuses_to_compensate(tmp_path: Path) -> None:
    action = SimStep()
    params = action.parse({"reversible": False})
    assert not action.is_reversible(params)
    with pytest.raises(ProviderError, match="irreversible"):
        action.compensate(ctx(tmp_path), params, {"value": None})


def test_fail_always_fails_fatally_and_changes_nothing(tmp_path: Path) -> None:
    action = SimStep()
    params = action.parse({"fail": True, "target": "asg"})
    with pytest.raises(ProviderError) as info:
        action.apply(ctx(tmp_path), params)
    assert not isinstance(info.value, TransientProviderError)
    assert SimWorld(tmp_path).value("asg") is None


def test_fail_attempts_fail_transiently_then_succeed_across_processes(tmp_path: Path) -> None:
    params = SimStep().parse({"fail_attempts": 2, "target": "asg"})
    for _ in range(2):
        with pytest.raises(TransientProviderError, match="attempt"):
            SimStep().apply(ctx(tmp_path), params)  # a new instance each time: state is on disk
    SimStep().apply(ctx(tmp_path), params)
    assert SimWorld(tmp_path).value("asg") == "west"


def test_attempts_are_counted_per_step_of_a_run(tmp_path: Path) -> None:
    params = SimStep().parse({"fail_attempts": 1})
    with pytest.raises(TransientProviderError):
        SimStep().apply(ctx(tmp_path, step="a.x"), params)
    with pytest.raises(TransientProviderError):
        SimStep().apply(ctx(tmp_path, step="b.x"), params)


def test_check_reports_fixed_verdicts_and_observations(tmp_path: Path) -> None:
    check = SimCheck()
    bad = check.run(ctx(tmp_path), check.parse({"ok": False, "observed": {"lag_s": 42}}))
    assert (bad.ok, bad.observed) == (False, {"lag_s": 42})
    assert check.run(ctx(tmp_path), check.parse({})).ok


def test_check_compares_a_target_with_what_is_expected(tmp_path: Path) -> None:
    check = SimCheck()
    params = check.parse({"target": "dns", "expect": "west"})
    assert not check.run(ctx(tmp_path), params).ok
    SimStep().apply(ctx(tmp_path, step="dns.shift"), SimStep().parse({"target": "dns"}))
    result = check.run(ctx(tmp_path), params)
    assert result.ok and result.observed == "west"


def test_descriptions_are_plain_sentences() -> None:
    where = Placement(site="west", cloud="aws", region="us-west-2")
    sentence = SimStep().describe(
        SimStep().parse({"duration": "90s", "target": "asg", "fail_attempts": 1}), where
    )
    assert sentence == "Move asg to west, taking 1m30s (fails its first 1 attempt(s))"
    assert SimCheck().describe(SimCheck().parse({"target": "dns", "expect": "west"}), where) == (
        "Check that dns is 'west' in us-west-2 (west)"
    )
