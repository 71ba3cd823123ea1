"""failover: plan and run ordered regional failover of critical services across AWS and GCP.

Load a runbook, make a plan for a scenario, and render it for review::

    import failover

    runbook = failover.load_runbook("runbooks/examples/sim-shop.yaml")
    plan = failover.make_plan(runbook, from_="east", to="west")
    print(failover.render_plan(plan, "markdown"))
"""

from failover.errors import (
    FailoverError,
    PlanError,
    Problem,
    ProviderError,
    RegistryError,
    RunbookError,
    ScenarioError,
    TransientProviderError,
)
from failover.graph import closure, impact, service_graph
from failover.plan import Plan, PlannedCheck, PlannedStep, Scenario
from failover.planner import make_plan
from failover.render import render_graph, render_plan
from failover.runbook import Runbook, load_runbook, parse_runbook, runbook_json_schema

__all__ = [
    "FailoverError",
    "Plan",
    "PlanError",
    "PlannedCheck",
    "PlannedStep",
    "Problem",
    "ProviderError",
    "RegistryError",
    "Runbook",
    "RunbookError",
    "Scenario",
    "ScenarioError",
    "TransientProviderError",
    "closure",
    "impact",
    "load_runbook",
    "make_plan",
    "parse_runbook",
    "render_graph",
    "render_plan",
    "runbook_json_schema",
    "service_graph",
]
