"""Compute Engine's regional quotas and zone stockouts, as the compute fake plays them: the vCPUs
of a machine type and the quota metric they count against, the ``errors[]`` entries of
QUOTA_EXCEEDED and ZONE_RESOURCE_POOL_EXHAUSTED, and :class:`Capacity`, which keeps regions (status
and INSTANCES quota), quota limits and stockouts, and says why an instance cannot run in a zone.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from failover.sandbox.compute_errors import JsonDict, not_found

DEFAULT_INSTANCES_QUOTA = 24
DEFAULT_MACHINE_TYPE = "e2-medium"
STOCKOUT = "ZONE_RESOURCE_POOL_EXHAUSTED"
ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_METRIC = re.compile(r"[A-Z][A-Z0-9_]*")
_SHARED_CORE_CPUS = {"e2-micro": 2, "e2-small": 2, "e2-medium": 2, "f1-micro": 1, "g1-small": 1}
_CPUS_FAMILIES = ("e2", "n1", "f1", "g1")  # counted by the CPUS quota; others by <FAMILY>_CPUS


def cpus(machine_type: str) -> int:
    """The vCPUs of a machine type, from its name: ``n2-standard-4`` 4, ``n2-custom-6-23040`` 6,
    ``e2-medium`` 2 (shared core)."""
    name = machine_type.rsplit("/", 1)[-1]
    if name in _SHARED_CORE_CPUS:
        return _SHARED_CORE_CPUS[name]
    parts = name.split("-")
    at = parts.index("custom") + 1 if "custom" in parts else 0
    if at and at < len(parts) and parts[at].isdigit():
        return int(parts[at])
    return int(parts[-1]) if parts[-1].isdigit() else 1


def cpu_metric(machine_type: str) -> str:
    """The regional quota metric a machine type's vCPUs count against: CPUS, N2_CPUS..."""
    family = machine_type.rsplit("/", 1)[-1].split("-")[0]
    return "CPUS" if family in _CPUS_FAMILIES else f"{family.upper()}_CPUS"


def quota_error(metric: str, limit: float, region: str) -> JsonDict:
    """A QUOTA_EXCEEDED entry of ``errors[]``, with its ``quotaInfo`` as Compute Engine gives it."""
    return {
        "code": "QUOTA_EXCEEDED",
        "message": f"Quota '{metric}' exceeded.  Limit: {limit} in region {region}.",
        "errorDetails": [
            {
                "quotaInfo": {
                    "metricName": f"compute.googleapis.com/{metric.lower()}",
                    "limitName": f"{metric.replace('_CPUS', '-CPUS')}-per-project-region",
                    "dimensions": {"region": region},
                    "limit": limit,
                }
            }
        ],
    }


def stockout_error(code: str, project: str, zone: str) -> JsonDict:
    tail = (
        "'(resource type:compute)'."
        if code.endswith("_WITH_DETAILS")
        else "Try a different zone, or try again later."
    )
    message = (
        f"The zone 'projects/{project}/zones/{zone}' does not have enough resources available "
        f"to fulfill the request.  {tail}"
    )
    return {"code": code, "message": message}


class Capacity:
    """Regions (status and INSTANCES quota), regional quota limits and zone stockouts, per
    project and region as Compute Engine's regional quotas are. The fake says which instances a
    region holds (``_region_instances``)."""

    _region_instances: Callable[[str, str], list[JsonDict]]  # (project, region): the fake's

    def __init__(self) -> None:
        if not hasattr(self, "_lock"):
            self._lock = threading.RLock()
        self._regions: dict[tuple[str, str], JsonDict] = {}
        self._stockouts: dict[str, str] = {}  # zone -> error code
        self._quotas: dict[tuple[str | None, str | None, str], float] = {}  # (project, region, metric)

    def stockout(self, zone: str, active: bool = True, *, details: bool = False) -> None:
        """A zone out of resources (``us-west1-a``, in every project): no instance can be created
        or started there until ``stockout(zone, False)``. The error is
        ``ZONE_RESOURCE_POOL_EXHAUSTED``, or ``..._WITH_DETAILS`` with ``details``."""
        if not ZONE.fullmatch(zone):
            raise ValueError(f"a stockout needs a zone like us-west1-a, not {zone!r}")
        with self._lock:
            if active:
                self._stockouts[zone] = f"{STOCKOUT}_WITH_DETAILS" if details else STOCKOUT
            else:
                self._stockouts.pop(zone, None)

    def quota(
        self, metric: str, limit: float | None, *, project: str | None = None, region: str | None = None
    ) -> None:
        """The limit of a regional quota metric (``CPUS``, ``N2_CPUS``, ``INSTANCES``...) in
        ``project`` and ``region`` (every one when not given; the most specific limit applies);
        ``None`` removes it. An ``INSTANCES`` limit given here overrides the region's
        ``instances_quota``."""
        if not _METRIC.fullmatch(metric):
            raise ValueError(f"a quota needs a quota metric like CPUS or N2_CPUS, not {metric!r}")
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"a quota needs a non-negative limit, not {limit!r}")
        with self._lock:
            if limit is None:
                self._quotas.pop((project, region, metric), None)
            else:
                self._quotas[(project, region, metric)] = float(limit)

    def set_region(
        self, project: str, region: str, *, status: str | None = None, instances_quota: int | None = None
    ) -> None:
        """A region's status (UP or DOWN) and INSTANCES quota limit."""
        with self._lock:
            found = self._region(project, region)
            if status is not None:
                found["status"] = status
            if instances_quota is not None:
                found["quota"] = instances_quota

    def _zone_region(self, project: str, zone: str) -> str:
        region = zone.rsplit("-", 1)[0]
        if not re.fullmatch(r"[a-z]", zone.rsplit("-", 1)[-1]):
            raise not_found(f"projects/{project}/zones/{zone}")
        self._region(project, region)
        return region

    def _location(self, project: str, loc: str) -> str:
        """The region of ``zones/Z`` or ``regions/R``, after checking it exists."""
        kind, name = loc.split("/")
        if kind == "zones":
            return self._zone_region(project, name)
        self._region(project, name)
        return name

    def _region(self, project: str, region: str) -> JsonDict:
        if not REGION.fullmatch(region):
            raise not_found(f"projects/{project}/regions/{region}")
        return self._regions.setdefault((project, region), {"status": "UP", "quota": DEFAULT_INSTANCES_QUOTA})

    def _limit(self, project: str, region: str, metric: str) -> float | None:
        """A quota metric's limit in a project's region (``INSTANCES``: the region's own unless
        overridden), or None when there is none."""
        for key in ((project, region), (project, None), (None, region), (None, None)):
            found = self._quotas.get((*key, metric))
            if found is not None:
                return found
        if metric == "INSTANCES":
            return float(self._region(project, region)["quota"])
        return None

    def _usage(self, project: str, region: str, metric: str) -> float:
        """``INSTANCES`` counts every instance; a CPU metric the vCPUs of its family's instances
        that are not TERMINATED."""
        instances = self._region_instances(project, region)
        if metric == "INSTANCES":
            return float(len(instances))
        return float(
            sum(
                cpus(i["machineType"])
                for i in instances
                if i["status"] != "TERMINATED" and cpu_metric(i["machineType"]) == metric
            )
        )

    def _quotas_of(self, project: str, region: str) -> list[JsonDict]:
        """``regions.get``'s ``quotas``: INSTANCES and each metric given a limit, with its usage."""
        metrics = {m for p, r, m in self._quotas if p in (None, project) and r in (None, region)}
        return [
            {"metric": m, "limit": self._limit(project, region, m), "usage": self._usage(project, region, m)}
            for m in sorted({"INSTANCES", *metrics})
        ]

    def _region_body(self, project: str, name: str, url: Callable[[str], str]) -> JsonDict:
        """``regions.get``'s answer: its status, zones a, b and c, and its quotas."""
        return {
            "kind": "compute#region",
            "name": name,
            "status": self._region(project, name)["status"],
            "zones": [url(f"projects/{project}/zones/{name}-{z}") for z in "abc"],
            "quotas": self._quotas_of(project, name),
            "selfLink": url(f"projects/{project}/regions/{name}"),
        }

    def _cannot_run(self, project: str, zone: str, machine_type: str, new: bool) -> JsonDict | None:
        """Why an instance of ``machine_type`` cannot be created (``new``) or started in ``zone``
        now, as an ``errors[]`` entry of Compute Engine; None when it can."""
        region = zone.rsplit("-", 1)[0]
        wants = {cpu_metric(machine_type): cpus(machine_type)}
        if new:
            wants["INSTANCES"] = 1
        for metric, more in sorted(wants.items()):
            limit = self._limit(project, region, metric)
            if limit is not None and self._usage(project, region, metric) + more > limit:
                return quota_error(metric, limit, region)
        code = self._stockouts.get(zone)
        return None if code is None else stockout_error(code, project, zone)
