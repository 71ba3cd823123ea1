"""Finding providers: built in, through entry points, and the errors when names clash or are unknown."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from failover.errors import RegistryError, RunbookError
from failover.providers import builtin_providers, entry_point_providers
from failover.providers.base import Action, Context, Placement, Provider, Registry
from failover.providers.sim import PROVIDER as SIM
from failover.providers.sim import StepParams
from failover.runbook import parse_runbook
from tests.conftest import SITES


def test_unknown_names_get_close_suggestions_or_the_known_list() -> None:
    registry = Registry(builtin_providers())
    with pytest.raises(RegistryError, match=r"did you mean: sim\.step"):
        registry.action("sim.stpe")
    with pytest.raises(RegistryError, match=r"known checks: aws\.autoscaling\.capacity_available, "):
        registry.check("aws.zzz")


def test_a_name_registered_twice_is_an_error() -> None:
    with pytest.raises(RegistryError, match="registered by both 'sim' and 'copy'"):
        Registry([SIM, Provider("copy", actions=SIM.actions)])


def _install_fake_distribution(tmp_path: Path, body: str, target: str) -> None:
    (tmp_path / "fakeprov.py").write_text(textwrap.dedent(body))
    dist = tmp_path / "fakeprov-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeprov\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[failover.providers]\nfake = {target}\n")


def test_third_party_provider_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_fake_distribution(
        tmp_path,
        """
        from failover.providers.base import Action, Provider
        from failover.providers.sim import StepParams

        class Nudge(Action[StepParams]):
            '''Nudge something.'''
            name = "fake.nudge"
            params_model = StepParams
            def describe(self, params, where): return f"Nudge {params.target} {where.phrase()}"
            def read(self, ctx, params): return None
            def apply(self, ctx, params): return None
            def verify(self, ctx, params): return True

        def provider():
            return Provider("fake", actions=(Nudge(),))
        """,
        "fakeprov:provider",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = entry_point_providers()
    assert [p.name for p in found] == ["fake"]
    assert Registry(found).action("fake.nudge").describe(StepParams(target="x"), Placement("west")) == (
        "Nudge x at west"
    )
    sys.modules.pop("fakeprov", None)


def test_broken_entry_point_is_named_in_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake_distribution(tmp_path, "raise ImportError('boom')\n", "fakeprov:provider")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError, match=r"entry point .fake. .* failed to load: boom"):
        entry_point_providers()
    sys.modules.pop("fakeprov", None)


class AwsOnly(Action[StepParams]):
    """An action that needs a site's AWS placement."""

    name = "aws.test.touch"
    params_model = StepParams
    cloud = "aws"
    permission_names = ("test:Touch",)

    def describe(self, params: StepParams, where: Placement) -> str:
        return f"Touch {params.target} {where.phrase()}"

    def read(self, ctx: Context, params: StepParams) -> None:
        return None

    def apply(self, ctx: Context, params: StepParams) -> None:
        return None

    def verify(self, ctx: Context, params: StepParams) -> bool:
        return True


def test_cloud_actions_need_that_cloud_at_every_site_they_may_run() -> None:
    registry = Registry([SIM, Provider("t", actions=(AwsOnly(),))])
    text = SITES.replace("    aws: {region: us-west-2}\n", "") + textwrap.dedent(
        """\
        services:
          app:
            steps:
              - {id: a, action: aws.test.touch, site: "${to}"}
              - {id: b, action: aws.test.touch, site: east}
        """
    )
    with pytest.raises(RunbookError) as info:
        parse_runbook(text, "r.yaml", registry)
    [problem] = info.value.problems
    assert problem.path == "services.app.steps[0].site"
    assert "aws.test.touch runs in a site's aws placement, but 'west' has no aws: section" in problem.message


def test_cloud_actions_are_placed_in_that_clouds_region() -> None:
    from failover.planner import make_plan

    registry = Registry([SIM, Provider("t", actions=(AwsOnly(),))])
    text = (
        SITES
        + "services:\n  app:\n    steps:\n"
        + '      - {id: a, action: aws.test.touch, site: "${to}", with: {target: asg}}\n'
    )
    plan = make_plan(parse_runbook(text, "r.yaml", registry), from_="east", to="west", registry=registry)
    step = plan.steps[0]
    assert step.description == "Touch asg in us-west-2 (west)"
    assert [(p.cloud, p.action, p.resource) for p in step.permissions] == [("aws", "test:Touch", "*")]
