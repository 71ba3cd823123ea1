"""Permission preflight: may the caller do everything the plan does in the site's project?"""

from __future__ import annotations

from pydantic import JsonValue

from failover.providers.base import Check, CheckResult, Context, Params, Permission, Placement
from failover.providers.gcp._client import call_options, gcp_errors, project, projects_client

BATCH = 100  # testIamPermissions takes at most 100 permissions per call


class PermissionsParams(Params):
    pass


class PermissionsCheck(Check[PermissionsParams]):
    """Pass when the caller holds every GCP permission the plan needs in the site's project.

    Asked with Resource Manager's testIamPermissions (which needs no permission of its own).
    """

    name = "gcp.permissions"
    cloud = "gcp"
    params_model = PermissionsParams
    default_estimate_s = 2.0

    def describe(self, params: PermissionsParams, where: Placement) -> str:
        return f"Check that the caller holds every GCP permission the plan needs {where.phrase()}"

    def permissions(self, params: PermissionsParams, where: Placement) -> list[Permission]:
        return []  # anyone may test their own permissions

    def run(self, ctx: Context, params: PermissionsParams) -> CheckResult:
        needed = sorted({p.action for p in ctx.permissions if p.cloud == "gcp"})
        at = project(ctx)
        held: set[str] = set()
        client = projects_client(ctx)
        for start in range(0, len(needed), BATCH):
            with gcp_errors(ctx, f"project {at}"):
                answer = client.test_iam_permissions(
                    request={"resource": f"projects/{at}", "permissions": needed[start : start + BATCH]},
                    **call_options(ctx),
                )
            held.update(answer.permissions)
        missing = [p for p in needed if p not in held]
        observed: JsonValue = {"needed": len(needed), "missing": list(missing)}
        if missing:
            return CheckResult(False, observed, f"missing in project {at}: {', '.join(missing)}")
        return CheckResult(True, observed, f"all {len(needed)} permissions held in project {at}")
