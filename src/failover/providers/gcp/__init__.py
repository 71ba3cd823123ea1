"""The GCP provider: actions and checks on google-cloud-compute, one module per resource family.

Clients come from the step's Context (per site: its project, credentials and endpoint);
google-api-core errors never leave this package (see ``_client``).
"""

from __future__ import annotations

from failover.providers.base import Provider
from failover.providers.gcp import (
    autoscalers,
    backend_services,
    forwarding_rules,
    iam,
    instance_groups,
    instances,
    regions,
)

PROVIDER = Provider(
    name="gcp",
    actions=(
        autoscalers.SetAutoscalerLimits(),
        backend_services.SetBackendCapacity(),
        backend_services.SetFailoverPolicy(),
        forwarding_rules.SetForwardingTarget(),
        instance_groups.ResizeInstanceGroup(),
        instances.StartInstances(),
        instances.StopInstances(),
    ),
    checks=(
        backend_services.BackendsHealthy(),
        iam.PermissionsCheck(),
        instance_groups.InstanceGroupCapacity(),
        regions.RegionUp(),
    ),
)

__all__ = ["PROVIDER"]
