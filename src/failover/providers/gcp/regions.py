"""Regions: whether Compute Engine reports a region up."""

from __future__ import annotations

from pydantic import Field

from failover.providers.base import Check, CheckResult, Context, Params, Permission, Placement
from failover.providers.gcp._client import call_options, compute, gcp_errors, project, region


class RegionParams(Params):
    region: str | None = Field(None, description="Region name; the site's region if not given.")


class RegionUp(Check[RegionParams]):
    """Pass when Compute Engine reports the region UP."""

    name = "gcp.compute.region_up"
    cloud = "gcp"
    params_model = RegionParams
    default_estimate_s = 1.0
    permission_names = ("compute.regions.get",)

    def describe(self, params: RegionParams, where: Placement) -> str:
        return f"Check that region {params.region or where.region} {where.phrase()} is UP"

    def permissions(self, params: RegionParams, where: Placement) -> list[Permission]:
        return [
            Permission(
                "gcp",
                "compute.regions.get",
                f"projects/{where.project or '*'}/regions/{params.region or where.region or '*'}",
            )
        ]

    def run(self, ctx: Context, params: RegionParams) -> CheckResult:
        name = params.region or region(ctx)
        with gcp_errors(ctx, f"region {name}"):
            found = compute(ctx, "RegionsClient").get(
                request={"project": project(ctx), "region": name}, **call_options(ctx)
            )
        observed = {"status": found.status}
        if found.deprecated and found.deprecated.state:
            observed["deprecated"] = found.deprecated.state
        return CheckResult(found.status == "UP", observed, f"region {name} is {found.status}")
