"""What the compute fake keeps: its resources (JSON by resource path) and the state beside them
(groups' instances, boot times, declared targets, denied permissions, health faults), and the
helpers every resource family uses. The families build on :class:`Store`: instances
(``compute_instances``), managed instance groups and autoscalers (``compute_groups``), backend
services and forwarding rules (``compute_balancing``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from failover.sandbox import clock
from failover.sandbox.compute_errors import ApiError, JsonDict, check_name, not_found
from failover.sandbox.compute_frontend import Call, Frontend
from failover.sandbox.compute_quotas import Capacity


@dataclass
class _Pending:
    """An instance of a group that could not be created yet: its path and why."""

    path: str
    error: JsonDict


@dataclass
class _Group:
    """What a managed instance group holds besides its JSON: its instances, those it could not
    create yet, and how many more looks it takes to act on a new target size."""

    members: list[str] = field(default_factory=list)  # instance resource paths
    created: int = 0
    settle_left: int = 0
    pending: list[_Pending] = field(default_factory=list)


class Store(Frontend, Capacity):
    """The fake's resources and state, served by the front end (``Frontend``) within regions,
    quotas and stockouts (``Capacity``)."""

    def __init__(
        self, *, operation_polls: int = 2, settle_polls: int = 1, now: Callable[[], float] = clock.now
    ) -> None:
        Frontend.__init__(self, operation_polls)
        Capacity.__init__(self)
        self.settle_polls = settle_polls
        self.now = now
        self._resources: dict[str, JsonDict] = {}  # projects/P/... -> JSON
        self._groups: dict[str, _Group] = {}
        self._boots: dict[str, float] = {}  # instance path -> when it was asked to run
        self._settled_before = float("-inf")
        self._targets: set[str] = set()
        self._denied: set[str] = set()
        self._unhealthy: set[str] = set()
        self._slow_health: dict[str, float] = {}  # group name -> seconds late, at the clouds' speed
        self._group_of: dict[str, str] = {}  # instance path -> the name of the group that made it
        self._machine_types: dict[str, str] = {}  # group path -> machine type of its new instances

    # -- helpers -------------------------------------------------------------------------

    def _get(self, path: str) -> JsonDict:
        found = self._resources.get(path)
        if found is None:
            raise not_found(path)
        return found

    def _path(self, call: Call, collection: str) -> str:
        return f"projects/{call.args['project']}/{call.args['loc']}/{collection}/{call.args['name']}"

    def _region_instances(self, project: str, region: str) -> list[JsonDict]:
        prefix = f"projects/{project}/zones/{region}-"
        return [r for p, r in self._resources.items() if p.startswith(prefix) and "/instances/" in p]

    def _new(self, call: Call, collection: str, what: str) -> tuple[str, str, str, str]:
        """What every insert checks: the location exists, the name is valid and not taken.
        Gives the project, location, name and path of the new resource."""
        project, loc = call.args["project"], call.args["loc"]
        if loc != "global":
            self._location(project, loc)
        name = check_name(call.body.get("name"), what)
        path = f"projects/{project}/{loc}/{collection}/{name}"
        if path in self._resources:
            raise ApiError(409, "alreadyExists", f"The resource '{path}' already exists")
        return project, loc, name, path
