"""What the tool adds to RTO: how soon a wait notices a state reached, and the reference runbook
ordering only what must be ordered."""

from __future__ import annotations

import itertools

from failover.planner import make_plan
from failover.providers.base import wait_until
from failover.runbook import load_runbook
from tests.aws_helpers import context
from tests.conftest import ROOT


def test_a_wait_asks_at_once_then_soon_and_never_more_than_every_1_5_s() -> None:
    ctx = context()
    asked: list[float] = []

    def reached() -> bool:
        asked.append(ctx.clock())
        return ctx.clock() >= 60.0  # the service is there after a minute

    wait_until(ctx, "a service stable", reached, timeout=600)
    assert asked[:4] == [0.0, 0.25, 0.75, 1.75]
    assert max(b - a for a, b in itertools.pairwise(asked)) == 1.5
    assert asked[-1] - 60.0 < 1.5  # noticed within one poll of being reached


def test_the_shop_orders_only_what_must_be_ordered() -> None:
    plan = make_plan(load_runbook(ROOT / "runbooks" / "shop.yaml"), from_="east", to="west")
    steps = plan.steps_by_id
    # drains run side by side once DNS moved: the load balancers first, each service behind its own
    assert steps["drain-source.close-app"].after == steps["drain-source.close-pay"].after
    assert steps["drain-source.catalog-down"].after == ("drain-source.close-app",)
    assert steps["drain-source.payments-down"].after == ("drain-source.close-pay",)
    assert steps["drain-source.recs-down"].after == steps["drain-source.video-down"].after
    assert steps["drain-source.search-down"].after == ("drain-source.search-limits",)
    # the edge's backend services are independent of one another
    assert steps["gcp-edge.video"].after == steps["gcp-edge.search"].after
    assert plan.predicted_rto_s <= 1200  # 2,926 s when every drain and edge step waited for the one before
