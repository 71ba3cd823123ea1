"""failover: plan and run ordered regional failover of critical services across AWS and GCP.

Load a runbook, make a plan for a scenario, and render it for review::

    import failover

    runbook = failover.load_runbook("runbooks/examples/sim-shop.yaml")
    plan = failover.make_plan(runbook, from_="east", to="west")
    print(failover.render_plan(plan, "markdown"))

    result = failover.execute(plan, ".failover", failover.Options(auto_approve=True))
    print(result.status, result.exit_code)
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers; at run time each is imported when first used
    from failover.engine import Approval, Options, RunResult, execute, resume
    from failover.errors import (
        FailoverError,
        JournalError,
        LeaseHeldError,
        LeaseLostError,
        PlanError,
        Problem,
        ProviderError,
        RefusedError,
        RegistryError,
        RunbookError,
        ScenarioError,
        TransientProviderError,
    )
    from failover.graph import closure, impact, service_graph
    from failover.plan import Plan, PlannedCheck, PlannedStep, Scenario
    from failover.planner import make_plan
    from failover.render import render_graph, render_plan
    from failover.report import render_report, report_data
    from failover.runbook import Runbook, load_runbook, parse_runbook, runbook_json_schema
    from failover.state.events import RunState

# where each public name lives: `import failover` (and the command line) loads a module only
# when one of its names is used, so a command pays only for what it needs
_HOMES = {
    **dict.fromkeys(("Approval", "Options", "RunResult", "execute", "resume"), "failover.engine"),
    **dict.fromkeys(
        (
            "FailoverError",
            "JournalError",
            "LeaseHeldError",
            "LeaseLostError",
            "PlanError",
            "Problem",
            "ProviderError",
            "RefusedError",
            "RegistryError",
            "RunbookError",
            "ScenarioError",
            "TransientProviderError",
        ),
        "failover.errors",
    ),
    **dict.fromkeys(("closure", "impact", "service_graph"), "failover.graph"),
    **dict.fromkeys(("Plan", "PlannedCheck", "PlannedStep", "Scenario"), "failover.plan"),
    "make_plan": "failover.planner",
    **dict.fromkeys(("render_graph", "render_plan"), "failover.render"),
    **dict.fromkeys(("render_report", "report_data"), "failover.report"),
    **dict.fromkeys(("Runbook", "load_runbook", "parse_runbook", "runbook_json_schema"), "failover.runbook"),
    "RunState": "failover.state.events",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'failover' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "Approval",
    "FailoverError",
    "JournalError",
    "LeaseHeldError",
    "LeaseLostError",
    "Options",
    "Plan",
    "PlanError",
    "PlannedCheck",
    "PlannedStep",
    "Problem",
    "ProviderError",
    "RefusedError",
    "RegistryError",
    "RunResult",
    "RunState",
    "Runbook",
    "RunbookError",
    "Scenario",
    "ScenarioError",
    "TransientProviderError",
    "closure",
    "execute",
    "impact",
    "load_runbook",
    "make_plan",
    "parse_runbook",
    "render_graph",
    "render_plan",
    "render_report",
    "report_data",
    "resume",
    "runbook_json_schema",
    "service_graph",
]
