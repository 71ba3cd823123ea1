"""The Context of each step and check of a plan: where it runs, its clients, its deadline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import JsonValue

from failover.engine.options import Options
from failover.plan import Plan
from failover.providers.base import ClientCache, Context, Permission, Placement
from failover.secrets import refs_in, resolved


def _unguarded() -> None:
    """Nothing to check: a call outside a run (readiness, live reads)."""


class Contexts:
    """Makes the Context of each step and check of a plan: its site's placement (with the run's
    overrides), the clients shared by the run, and what the plan needs at that site."""

    def __init__(self, plan: Plan, options: Options, state_dir: Path) -> None:
        self.plan = plan
        self.options = options
        self.state_dir = state_dir
        self.clients = options.clients or ClientCache()
        self.needs: dict[tuple[str, str], tuple[Permission, ...]] = {}  # permissions per site, cloud

    def make(
        self,
        run_id: str,
        step_id: str,
        site: str,
        cloud: str | None,
        deadline: float | None = None,
        guard: Callable[[], None] | None = None,
    ) -> Context:
        settings = self.settings(site, cloud)
        region, project = settings.get("region"), settings.get("project")
        return Context(
            run_id=run_id,
            step_id=step_id,
            placement=Placement(
                site=site,
                cloud=cloud,
                region=region if isinstance(region, str) else None,
                project=project if isinstance(project, str) else None,
            ),
            state_dir=self.state_dir,
            sleep=self.options.sleep,
            clock=self.options.clock,
            extras={"sim_speed": self.options.sim_speed},
            settings=settings,
            clients=self.clients,
            permissions=self.permissions(site, cloud),
            deadline=deadline,
            guard=guard or _unguarded,
        )

    def live(self, ctx: Context, params: dict[str, JsonValue]) -> dict[str, JsonValue]:
        """``params`` with their secret references resolved now, in memory only (AWS ones with
        the AWS credentials and region of ``ctx``'s site, within its deadline)."""
        if not refs_in(params):
            return params

        def aws() -> Context:
            if ctx.placement.cloud == "aws":
                return ctx
            return self.make(ctx.run_id, ctx.step_id, ctx.placement.site, "aws", ctx.deadline, ctx.guard)

        found: dict[str, JsonValue] = resolved(params, aws)
        return found

    def settings(self, site: str, cloud: str | None) -> dict[str, JsonValue]:
        """The site's placement for ``cloud``, from the plan's own description of its sites, with
        the run's overrides (for every site, then for this one)."""
        spec = self.plan.sites_by_name.get(site)
        where = getattr(spec, cloud, None) if spec is not None and cloud in ("aws", "gcp") else None
        if not isinstance(where, dict) or cloud is None:
            return {}
        own = self.options.site_overrides.get(site, {}).get(cloud, {})
        return {**where, **self.options.overrides.get(cloud, {}), **own}

    def permissions(self, site: str, cloud: str | None) -> tuple[Permission, ...]:
        """What the plan's steps and checks at ``site`` need in ``cloud``."""
        if cloud is None:
            return ()
        found = self.needs.get((site, cloud))
        if found is None:
            needed = self.plan.permissions(cloud, site)
            found = self.needs[(site, cloud)] = tuple(
                Permission(p.cloud, p.action, p.resource) for p in needed
            )
        return found
