"""The compute fake's managed instance groups (zonal and regional: insert, get, resize,
listManagedInstances) and autoscalers (insert, get, patch): a group creates and deletes
instances to hold its target size as quotas and zones allow, retrying those it could not create
at each look, and an autoscaler that is on moves its group's target size to its
``recommendedSize``.
"""

from __future__ import annotations

import copy
import hashlib

from failover.providers.gcp._client import relative
from failover.sandbox import clock
from failover.sandbox.compute_errors import JsonDict, invalid
from failover.sandbox.compute_frontend import Call, merge
from failover.sandbox.compute_instances import Instances
from failover.sandbox.compute_quotas import DEFAULT_MACHINE_TYPE
from failover.sandbox.compute_rules import check_policy
from failover.sandbox.compute_store import _Group, _Pending


class ManagedGroups(Instances):
    """Managed instance groups and their autoscalers."""

    # -- managed instance groups ---------------------------------------------------------

    def _igm_insert(self, call: Call) -> JsonDict:
        project, loc, name, path = self._new(call, "instanceGroupManagers", "instance group manager")
        template = call.body.get("instanceTemplate")
        if not isinstance(template, str) or "instanceTemplates/" not in template:
            raise invalid("resource.instanceTemplate", template, "Must be an instance template URL")
        size = int(call.body.get("targetSize") or 0)
        if size < 0:
            raise invalid("resource.targetSize", size, "Must be a non-negative integer")

        def effect() -> None:
            self._resources[path] = {
                "kind": "compute#instanceGroupManager",
                "name": name,
                "baseInstanceName": call.body.get("baseInstanceName", name),
                "instanceTemplate": template,
                "instanceGroup": self.url(f"projects/{project}/{loc}/instanceGroups/{name}"),
                "targetSize": size,
                "status": {"isStable": True},
                "currentActions": {"none": 0, "creating": 0, "deleting": 0},
                loc.split("/")[0][:-1]: self.url(f"projects/{project}/{loc}"),
                "selfLink": self.url(path),
            }
            self._groups[path] = _Group()
            self._converge(path)

        return self._operation(call, path, "insert", effect)

    def _igm(self, call: Call) -> str:
        path = self._path(call, "instanceGroupManagers")
        self._get(path)
        self._look(path)
        return path

    def _igm_get(self, call: Call) -> JsonDict:
        return self._resources[self._igm(call)]

    def _look(self, path: str) -> None:
        """One look at a group: its autoscaler acts, a resize is acted on once enough looks were
        made; after that, each look tries again to create the instances it could not (Compute
        Engine retries); then what it is doing, from its instances' states."""
        self._autoscale(path)
        group = self._groups[path]
        if group.settle_left > 0:
            group.settle_left -= 1
            if group.settle_left == 0:
                self._converge(path)
        elif group.pending:
            self._converge(path)
        if group.settle_left == 0:
            igm = self._resources[path]
            booting = sum(1 for m in group.members if self._status(m) != "RUNNING")
            creating = len(group.pending) + booting
            igm["status"]["isStable"] = creating == 0
            igm["currentActions"] = {
                "none": len(group.members) - booting,
                "creating": creating,
                "deleting": 0,
            }

    def _autoscale(self, path: str) -> None:
        """An autoscaler that is on moves the group's target size to its recommended size: the
        size within its limits (ONLY_SCALE_OUT: only up to it)."""
        igm = self._resources[path]
        url = igm["status"].get("autoscaler")
        if not url:
            return
        autoscaler = self._resources[relative(url)]
        policy, size = autoscaler["autoscalingPolicy"], igm["targetSize"]
        recommended = max(policy.get("minNumReplicas", 0), min(policy["maxNumReplicas"], size))
        autoscaler["recommendedSize"] = recommended
        mode = policy.get("mode", "ON")
        if mode in ("ONLY_SCALE_OUT", "ONLY_UP"):
            recommended = max(size, recommended)
        if mode != "OFF" and recommended != size:
            self._set_target(path, recommended)

    def _igm_resize(self, call: Call) -> JsonDict:
        path = self._igm(call)
        size = int(call.query["size"])
        if size < 0:
            raise invalid("size", size, "Must be a non-negative integer")
        resize = "compute.instanceGroupManagers.resize"
        return self._operation(call, path, resize, lambda: self._set_target(path, size))

    def _set_target(self, path: str, size: int) -> None:
        igm, group = self._resources[path], self._groups[path]
        igm["targetSize"] = size
        if len(group.members) == size and not group.pending:
            return
        igm["status"]["isStable"] = False
        clock.arrives(f"gcp:{path}", "instance_boot")  # stable once its instances run
        delta = size - len(group.members)
        igm["currentActions"].update(
            creating=max(0, delta), deleting=max(0, -delta), none=min(size, len(group.members))
        )
        group.settle_left = max(1, self.settle_polls)

    def _converge(self, path: str) -> None:
        """Create or delete instances so the group holds its target size, as quotas and zones
        allow: the instances it could not create are tried again first, in the zones they were
        given; an instance that still cannot be created stays pending, with why. A new instance
        boots (``_status``)."""
        igm, group = self._resources[path], self._groups[path]
        kind, loc = path.split("/")[2:4]
        project = path.split("/")[1]
        region = loc if kind == "regions" else loc.rsplit("-", 1)[0]
        target = igm["targetSize"]
        while group.pending and len(group.members) + len(group.pending) > target:
            group.pending.pop()  # not created yet: the first to go
        while len(group.members) > target:
            gone = group.members.pop()
            self._resources.pop(gone, None)
            self._boots.pop(gone, None)
        slots, group.pending = [p.path for p in group.pending], []
        while len(group.members) + len(slots) < target:
            group.created += 1
            zone = loc if kind == "zones" else f"{region}-{'abc'[group.created % 3]}"
            suffix = hashlib.sha1(f"{path}#{group.created}".encode()).hexdigest()[:4]
            slots.append(f"projects/{project}/zones/{zone}/instances/{igm['baseInstanceName']}-{suffix}")
        machine_type = self._machine_types.get(path, DEFAULT_MACHINE_TYPE)
        for instance in slots:
            error = self._cannot_run(project, instance.split("/")[3], machine_type, new=True)
            if error is not None:
                group.pending.append(_Pending(instance, error))
                continue
            self._resources[instance] = self._instance_body(instance, machine_type)
            self._group_of[instance] = path.rsplit("/", 1)[-1]
            group.members.append(instance)

    def _igm_list(self, call: Call) -> JsonDict:
        group = self._groups[self._igm(call)]
        managed: list[JsonDict] = []
        for p in group.members:
            status = self._status(p)
            managed.append(
                {
                    "instance": self.url(p),
                    "name": p.rsplit("/", 1)[-1],
                    "id": self._resources[p]["id"],
                    "instanceStatus": status,
                    "currentAction": "NONE" if status == "RUNNING" else "CREATING",
                }
            )
        for pending in group.pending:  # the URL and name exist before the instance does
            managed.append(
                {
                    "instance": self.url(pending.path),
                    "name": pending.path.rsplit("/", 1)[-1],
                    "currentAction": "CREATING",
                    "lastAttempt": {"errors": {"errors": [copy.deepcopy(pending.error)]}},
                }
            )
        return {"managedInstances": managed}

    # -- autoscalers ---------------------------------------------------------------------

    def _autoscaler_insert(self, call: Call) -> JsonDict:
        project, loc, name, path = self._new(call, "autoscalers", "autoscaler")
        target = relative(str(call.body.get("target", "")))
        if target not in self._resources or "/instanceGroupManagers/" not in target:
            raise invalid("resource.target", call.body.get("target"), "Must be a managed instance group URL")
        if not target.startswith(f"projects/{project}/{loc}/"):
            raise invalid("resource.target", call.body.get("target"), f"Must be a group in {loc}")
        policy = call.body.get("autoscalingPolicy")
        check_policy(policy)
        assert isinstance(policy, dict)

        def effect() -> None:
            self._resources[path] = {
                "kind": "compute#autoscaler",
                "name": name,
                "target": self.url(target),
                "autoscalingPolicy": {"mode": "ON", "minNumReplicas": 0, **copy.deepcopy(policy)},
                "status": "ACTIVE",
                loc.split("/")[0][:-1]: self.url(f"projects/{project}/{loc}"),
                "selfLink": self.url(path),
            }
            self._resources[target]["status"]["autoscaler"] = self.url(path)

        return self._operation(call, path, "insert", effect)

    def _autoscaler_get(self, call: Call) -> JsonDict:
        found = self._get(self._path(call, "autoscalers"))
        self._autoscale(relative(found["target"]))  # its recommendedSize, as of now
        return found

    def _autoscaler_patch(self, call: Call) -> JsonDict:
        name = call.query.get("autoscaler") or call.body.get("name")
        path = f"projects/{call.args['project']}/{call.args['loc']}/autoscalers/{name}"
        current = self._get(path)
        if call.body.get("name", name) != name:
            raise invalid("resource.name", call.body.get("name"), f"Must be {name}")
        merged = copy.deepcopy(current)
        merge(merged, {k: v for k, v in call.body.items() if k in ("autoscalingPolicy", "description")})
        check_policy(merged["autoscalingPolicy"])

        def effect() -> None:  # the group follows when it is next looked at (_autoscale)
            current["autoscalingPolicy"] = merged["autoscalingPolicy"]

        return self._operation(call, path, "patch", effect)
