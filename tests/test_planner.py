"""The planner: order, parallelism, scope, modes, rollback, RTO, and purity."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from failover.errors import ScenarioError
from failover.plan import Plan, Scenario
from failover.planner import make_plan
from failover.runbook import Runbook, load_runbook, parse_runbook
from tests.conftest import SITES

WriteRunbook = Callable[..., Path]


def step_dag(plan: Plan) -> nx.DiGraph:
    graph = nx.DiGraph()
    for step in plan.steps:
        graph.add_node(step.id)
        graph.add_edges_from((dep, step.id) for dep in step.after)
    return graph


@st.composite
def runbooks(draw: st.DrawFn) -> dict[str, object]:
    """Random layered service DAGs with random steps and random in-service ``after:``."""
    count = draw(st.integers(min_value=1, max_value=10))
    services: dict[str, object] = {}
    for i in range(count):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        steps = []
        for j in range(draw(st.integers(0, 3))):
            step: dict[str, object] = {
                "id": f"x{j}",
                "action": "sim.step",
                "site": draw(st.sampled_from(["${to}", "${from}"])),
                "with": {"duration": f"{draw(st.integers(0, 90))}s"},
            }
            if j and draw(st.booleans()):
                step["after"] = [f"x{k}" for k in draw(st.lists(st.integers(0, j - 1), unique=True))]
            if draw(st.integers(0, 5)) == 0:
                step["pivot"] = True
            steps.append(step)
        services[f"s{i}"] = {"depends_on": [f"s{d}" for d in deps], "steps": steps}
    return {**yaml.safe_load(SITES), "services": services}


def load(doc: dict[str, object]) -> Runbook:
    return parse_runbook(yaml.safe_dump(doc, sort_keys=False), "random.yaml")


@given(runbooks(), st.sampled_from(["graceful", "ungraceful"]))
def test_every_step_of_a_dependency_precedes_every_step_of_its_dependent(
    doc: dict[str, object], mode: str
) -> None:
    runbook = load(doc)
    plan = make_plan(runbook, Scenario.model_validate({"from": "east", "to": "west", "mode": mode}))
    dag = step_dag(plan)
    position = {s.id: i for i, s in enumerate(plan.steps)}
    for step in plan.steps:
        assert all(position[dep] < position[step.id] for dep in step.after)
    services = nx.DiGraph()
    for name, service in runbook.services.items():
        services.add_node(name)
        services.add_edges_from((dep, name) for dep in service.depends_on)
    by_service: dict[str, list[str]] = {}
    for step in plan.steps:
        by_service.setdefault(step.service, []).append(step.id)
    for a in runbook.services:
        for b in runbook.services:
            if a == b:
                continue
            related = nx.has_path(services, a, b) or nx.has_path(services, b, a)
            for sa in by_service.get(a, []):
                for sb in by_service.get(b, []):
                    if nx.has_path(services, a, b):
                        assert nx.has_path(dag, sa, sb), f"{sa} must precede {sb}"
                    if not related:
                        assert not nx.has_path(dag, sa, sb), f"{sa} and {sb} are independent"


@given(runbooks())
def test_rollback_is_the_reverse_order_of_reversible_steps_before_any_pivot(doc: dict[str, object]) -> None:
    plan = make_plan(load(doc), from_="east", to="west")
    dag = step_dag(plan)
    pivots = [s.id for s in plan.steps if s.pivot]
    after_pivot = set().union(*(nx.descendants(dag, p) for p in pivots)) if pivots else set()
    expected = [
        s.id for s in reversed(plan.steps) if s.reversible and not s.pivot and s.id not in after_pivot
    ]
    assert list(plan.rollback) == expected
    for step in plan.steps:
        assert (step.follows_pivot is not None) == (step.id in after_pivot)
    position = {sid: i for i, sid in enumerate(plan.rollback)}
    for a, b in dag.edges:
        if a in position and b in position:
            assert position[b] < position[a], "a dependent is compensated before its dependency"


@given(runbooks())
def test_predicted_rto_is_the_longest_weighted_path(doc: dict[str, object]) -> None:
    plan = make_plan(load(doc), from_="east", to="west")
    dag = step_dag(plan)
    weight = {s.id: s.estimate_s for s in plan.steps}
    longest = {}
    for node in nx.topological_sort(dag):
        longest[node] = weight[node] + max((longest[p] for p in dag.predecessors(node)), default=0)
    assert plan.predicted_done_s == max(longest.values(), default=0)
    cutovers = [longest[s.id] for s in plan.steps if s.cutover]
    assert plan.predicted_rto_s == (max(cutovers) if cutovers else plan.predicted_done_s)
    path = list(plan.critical_path)
    assert sum(weight[s] for s in path) == plan.predicted_done_s
    assert all(dag.has_edge(a, b) for a, b in itertools.pairwise(path))


@given(runbooks())
def test_a_services_cutover_is_its_last_actions_on_the_target_site(doc: dict[str, object]) -> None:
    plan = make_plan(load(doc), from_="east", to="west")
    dag = step_dag(plan)
    for svc in plan.services:
        there = {
            s.id
            for s in plan.steps
            if s.service == svc.name and s.kind == "action" and s.site == "west" and not s.skipped
        }
        last = {sid for sid in there if not (nx.descendants(dag, sid) & there)}
        assert set(svc.cutover) == last
        assert {s.id for s in plan.steps if s.service == svc.name and s.cutover} == last


def test_sim_shop_orders_data_before_apps_before_traffic(sim_shop: Runbook) -> None:
    plan = make_plan(sim_shop, from_="east", to="west")
    order = [s.id for s in plan.steps]
    assert order.index("orders-db.promote") < order.index("checkout.scale")
    assert order.index("checkout.warm-cache") < order.index("payments.shift-traffic")
    assert order.index("payments.shift-traffic") < order.index("edge-dns.shift-weights")
    assert plan.steps_by_id["search.resize"].after == ()
    assert plan.steps_by_id["edge-dns.traffic-moved"].kind == "verify"
    assert plan.steps_by_id["orders-db.promote"].approval is True
    assert plan.critical_path[-1] == "edge-dns.traffic-moved"


def test_templates_resolve_per_direction_and_keep_types(write_runbook: WriteRunbook) -> None:
    runbook = load_runbook(
        write_runbook(
            """
            services:
              app:
                steps:
                  - {id: scale, action: sim.step, site: "${to}",
                     with: {target: "${to.vars.asg}@${to.aws.region}", fail_attempts: "${to.vars.count}"}}
            """
        )
    )
    west = make_plan(runbook, from_="east", to="west").steps[0]
    east = make_plan(runbook, from_="west", to="east").steps[0]
    assert west.params == {"target": "asg-west@us-west-2", "fail_attempts": 5}
    assert east.params == {"target": "asg-east@us-east-1", "fail_attempts": 3}
    assert (west.site, east.site) == ("west", "east")


def test_scope_includes_the_dependency_closure_only(sim_shop: Runbook) -> None:
    plan = make_plan(sim_shop, from_="east", to="west", scope=["payments"])
    assert {s.name for s in plan.services} == {"payments", "checkout", "orders-db", "sessions"}
    assert {s.service for s in plan.steps} <= {"payments", "checkout", "orders-db"}
    assert {c.service for c in plan.preflight} == {"orders-db", "sessions", "checkout"}


def test_ungraceful_mode_skips_source_site_steps_or_makes_them_best_effort(sim_shop: Runbook) -> None:
    plan = make_plan(sim_shop, from_="east", to="west", mode="ungraceful")
    fence = plan.steps_by_id["orders-db.fence-writes"]
    assert (fence.skipped, fence.best_effort) == (False, True)
    assert not any(s.skipped for s in plan.steps if s.site == "west")


def test_ungraceful_skip_is_explained_and_costs_no_time(write_runbook: WriteRunbook) -> None:
    runbook = load_runbook(
        write_runbook(
            """
            services:
              db:
                preflight: [{check: sim.check, site: "${from}"}]
                steps:
                  - {id: drain, action: sim.step, site: "${from}", with: {duration: 10m}}
                  - {id: graceful-only, action: sim.step, site: "${to}", modes: [graceful],
                     with: {duration: 1m}}
                  - {id: promote, action: sim.step, site: "${to}", with: {duration: 1m}}
            """
        )
    )
    plan = make_plan(runbook, from_="east", to="west", mode="ungraceful")
    drain, graceful_only, promote = plan.steps
    assert drain.skipped and "source site east is assumed down" in (drain.skip_reason or "")
    assert graceful_only.skipped and "only in graceful mode" in (graceful_only.skip_reason or "")
    assert plan.preflight[0].skipped
    assert promote.after == ("db.graceful-only",)
    assert plan.predicted_rto_s == 60
    assert "db.drain" not in plan.rollback
    assert any("skipped" in w for w in plan.warnings)


def test_failback_is_the_same_runbook_with_sites_swapped(sim_shop: Runbook) -> None:
    forward = make_plan(sim_shop, from_="east", to="west")
    back = make_plan(sim_shop, forward.scenario.reverse())
    assert back.scenario.from_ == "west"
    assert back.scenario.to == "east"
    assert [s.id for s in back.steps] == [s.id for s in forward.steps]
    assert back.steps_by_id["search.resize"].params == {"duration": "90s", "target": "search-use4"}


def test_explicit_after_lets_steps_of_a_service_run_in_parallel(write_runbook: WriteRunbook) -> None:
    runbook = load_runbook(
        write_runbook(
            """
            services:
              db:
                steps: [{id: promote, action: sim.step, site: "${to}"}]
              app:
                depends_on: [db]
                steps:
                  - {id: a, action: sim.step, site: "${to}", after: [c]}
                  - {id: b, action: sim.step, site: "${to}", after: []}
                  - {id: c, action: sim.step, site: "${to}", after: []}
            """
        )
    )
    plan = make_plan(runbook, from_="east", to="west")
    assert [s.id for s in plan.steps] == ["db.promote", "app.c", "app.a", "app.b"]
    assert plan.steps_by_id["app.a"].after == ("app.c",)
    assert plan.steps_by_id["app.b"].after == ("db.promote",)
    assert plan.steps_by_id["app.c"].after == ("db.promote",)


def test_step_settings_and_defaults(write_runbook: WriteRunbook) -> None:
    runbook = load_runbook(
        write_runbook(
            """
            defaults: {timeout: 2m, retries: 1, approval_timeout: 30s}
            services:
              db:
                steps:
                  - {id: a, action: sim.step, site: "${to}", with: {reversible: false}}
                  - {id: b, action: sim.step, site: "${to}", timeout: 10s, retries: 7, estimate: 3m,
                     approval: true, approval_timeout: 1h, rollback: none}
                  - {id: c, action: sim.step, site: "${to}", with: {duration: 4s}}
            """
        )
    )
    a, b, c = make_plan(runbook, from_="east", to="west").steps
    assert (a.timeout_s, a.retries, a.approval_timeout_s, a.approval, a.reversible) == (
        120,
        1,
        30,
        False,
        False,
    )
    assert (b.timeout_s, b.retries, b.approval_timeout_s, b.approval, b.reversible) == (
        10,
        7,
        3600,
        True,
        False,
    )
    assert (b.estimate_s, c.estimate_s, c.reversible) == (180, 4, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"from_": "east", "to": "east"}, "--from and --to are both 'east'"),
        ({"from_": "eats", "to": "west"}, "unknown site 'eats'.*did you mean 'east'"),
        ({"from_": "east", "to": "west", "scope": ["chekout"]}, "unknown service 'chekout'.*'checkout'"),
    ],
)
def test_scenarios_that_do_not_fit_the_runbook_are_refused(
    sim_shop: Runbook, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        make_plan(sim_shop, **kwargs)  # type: ignore[arg-type]


def test_planning_is_pure_and_deterministic(tmp_path: Path, write_runbook: WriteRunbook) -> None:
    path = write_runbook((Path(__file__).parent.parent / "runbooks/examples/sim-shop.yaml").read_text())
    runbook = load_runbook(path)
    first = make_plan(runbook, from_="east", to="west")
    path.unlink()  # the planner reads nothing from disk
    second = make_plan(runbook, from_="east", to="west")
    assert first.to_json() == second.to_json()
    assert first.fingerprint == second.fingerprint
    assert make_plan(runbook, from_="west", to="east").fingerprint != first.fingerprint
