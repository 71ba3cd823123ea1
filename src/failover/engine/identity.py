"""Who a run acts as in each cloud it changes, as the clouds know it (not a login name): asked
once when the run starts or is taken up, journaled with it and with every approval."""

from __future__ import annotations

from importlib import import_module

from failover.engine.contexts import Contexts
from failover.plan import Plan
from failover.providers.base import Context, Registry, active

ASK_S = 5.0  # at most, per cloud: a dead region must not hold up the start
_CALLERS = {"aws": "failover.providers.aws.identity", "gcp": "failover.providers.gcp.identity"}


def cloud_callers(
    plan: Plan, registry: Registry, contexts: Contexts, run_id: str, now: float
) -> dict[str, str]:
    """Per cloud the plan's steps change, the identity of the credentials at the target site (or
    the first site where that cloud's steps run); what went wrong, if it cannot be known."""
    sites: dict[str, str] = {}
    for step in plan.steps:
        if step.skipped or step.kind != "action":
            continue
        cloud = registry.action(step.action).cloud
        if cloud in _CALLERS and (cloud not in sites or step.site == plan.scenario.to):
            sites[cloud] = step.site
    found: dict[str, str] = {}
    for cloud, site in sorted(sites.items()):
        ctx: Context = contexts.make(run_id, "identity", site, cloud, now + ASK_S)
        try:
            with active(ctx):
                found[cloud] = import_module(_CALLERS[cloud]).caller(ctx)
        except Exception as exc:  # not known: the run goes on and says so
            found[cloud] = f"unknown ({type(exc).__name__}: {exc})"
    return found
