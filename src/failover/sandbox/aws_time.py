"""What the sandbox teaches moto so that a drill meets AWS's checks and takes AWS's time: moto
answers at once. Each model keeps when it was asked (``clock.now()``) on the moto object it
concerns; every describe works out from that and ``clock``'s durations where things are by then.

- Aurora global databases: switchover and failover (moto has neither) of a target named by ARN,
  ``pending`` then ``switching-over`` / ``failing-over`` (``FailoverState``) before the writer
  moves; only a failover with ``AllowDataLoss`` goes to a member not ``connected``, and leaves
  the old writer ``pending-resync``.
- A promoted replica cluster (instance) is ``promoting`` (``modifying``) with its source, then
  stands alone.
- ECS services run their desired count once the tasks started; Auto Scaling instances are
  ``Pending`` until warmed up; Route 53 changes are ``PENDING`` until ``INSYNC``.

The durations apply while a sandbox runs (``start``); plain moto (in-process tests) gets there
at once. What the sandbox declares is there when the drill starts (``settle``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from failover.sandbox import clock

_lock = threading.RLock()
_running = False
_settled_before = float("-inf")
_CHANGES: dict[str, tuple[float, Any, str | None]] = {}  # Route 53 id -> asked at, SubmittedAt, comment
_MOTO_CHANGE_IDS = {"C1PA6795UKMFR9", "C2682N5HXP0BZ4", "a1b2c3d4"}  # moto's other operations': INSYNC
_CLUSTER_ARN = re.compile(r"arn:aws[\w-]*:rds:[a-z0-9-]+:\d{12}:cluster:[A-Za-z][A-Za-z0-9-]*")


def start(running: bool = True) -> None:
    """A sandbox starts (the durations apply, to a fresh world), or stops (``running=False``)."""
    global _running, _settled_before
    with _lock:
        _running, _settled_before = running, float("-inf")
        _CHANGES.clear()


def settle() -> None:
    """Everything asked for until now has got there (the world the sandbox declares)."""
    global _settled_before
    with _lock:
        _settled_before = clock.now()


def _seconds(*names: str) -> float:
    return sum(clock.seconds(n) for n in names) if _running else 0.0


def _done(started: float, *names: str) -> bool:
    """Whether what was asked at ``started`` got there, after the durations ``names``."""
    return started <= _settled_before or clock.now() - started >= _seconds(*names)


def _wall(started: float, *names: str) -> dt.datetime:
    """When (naive UTC, as moto's times) what was asked at ``started`` got there, or now."""
    late = max(0.0, clock.now() - started - _seconds(*names))
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=late)


def _moto(module: str) -> Any:
    return importlib.import_module(f"moto.{module}")


def _stored(key: str) -> Callable[..., Any]:
    """A property setter that keeps the value under ``key`` (its getter works out the rest)."""
    return lambda self, value: self.__dict__.__setitem__(key, value)


# --- Aurora global databases ------------------------------------------------------------------


def _move_phase(gc: Any) -> str | None:
    """``pending``, ``switching-over`` or ``failing-over`` while a move is under way, else None;
    a move whose time is up is carried out here."""
    with _lock:
        move = gc.__dict__.get("_sandbox_move")
        if move is None:
            return None
        if not _done(move["started"], "aurora_pending"):
            return "pending"
        if not _done(move["started"], "aurora_pending", f"aurora_{move['kind']}"):
            return "failing-over" if move["data_loss"] else "switching-over"
        for member in gc.members:
            member.is_writer = member.db_cluster_arn == move["to"]
        if move["data_loss"]:  # the old writer rejoins as a secondary and catches up
            gc.__dict__.setdefault("_sandbox_resync", {})[move["from"]] = move["started"]
        del gc.__dict__["_sandbox_move"]
        return None


def _sync_status(gc: Any, arn: str) -> str:
    started = gc.__dict__.get("_sandbox_resync", {}).get(arn)
    resync = ("aurora_pending", "aurora_failover", "aurora_switchover")
    return "pending-resync" if started is not None and not _done(started, *resync) else "connected"


def _patch_global_clusters() -> None:
    models, errors = _moto("rds.models"), _moto("rds.exceptions")
    action_result = _moto("core.responses").ActionResult

    def status(self: Any) -> str:
        phase, stored = _move_phase(self), str(self.__dict__.get("_sandbox_status", "available"))
        return phase if phase not in (None, "pending") else stored

    def failover_state(self: Any) -> dict[str, Any] | None:
        phase, move = _move_phase(self), self.__dict__.get("_sandbox_move")
        if phase is None or move is None:
            return None
        keys = ("FromDbClusterArn", "ToDbClusterArn", "IsDataLossAllowed")
        return {"Status": phase} | dict(zip(keys, (move["from"], move["to"], move["data_loss"]), strict=True))

    members = models.GlobalCluster.global_cluster_members.fget

    def members_in_sync(self: Any) -> list[dict[str, Any]]:
        _move_phase(self)
        found: list[dict[str, Any]] = members(self)
        for member in found:
            if not member["IsWriter"]:  # a writer reports none
                member["SynchronizationStatus"] = _sync_status(self, member["DBClusterArn"])
        return found

    models.GlobalCluster.status = property(status, _stored("_sandbox_status"))
    models.GlobalCluster.failover_state = property(failover_state)
    models.GlobalCluster.global_cluster_members = property(members_in_sync)

    def one(self: Any, name: str) -> Any:
        clusters = self.global_backend.describe_global_clusters()
        found = next((c for c in clusters if c.global_cluster_identifier == name), None)
        if found is None:
            raise errors.RDSClientError("GlobalClusterNotFoundFault", f"Global cluster {name} not found.")
        return found

    def move_writer(self: Any, failover: bool) -> Any:
        name = str(self.params.get("GlobalClusterIdentifier") or "").lower()
        target = str(self.params.get("TargetDbClusterIdentifier") or "")
        allow, switchover = self.params.get("AllowDataLoss"), self.params.get("Switchover")
        if allow is not None and switchover is not None:
            raise errors.InvalidParameterCombination("Specify either AllowDataLoss or Switchover, not both.")
        data_loss = failover and str(allow).lower() == "true"
        gc = one(self, name)
        if not _CLUSTER_ARN.fullmatch(target):
            raise errors.InvalidParameterValue(
                f"TargetDbClusterIdentifier must be the Amazon Resource Name (ARN) of a DB cluster: {target}"
            )
        with _lock:
            phase = _move_phase(gc)
            if phase is not None:
                move = gc.__dict__["_sandbox_move"]
                raise errors.RDSClientError(
                    "InvalidGlobalClusterStateFault",
                    f"Global cluster {name} is not available: a {move['kind']} to {move['to']} is {phase}.",
                )
            member = next((m for m in gc.members if m.db_cluster_arn == target), None)
            if member is None:
                models.find_cluster(target)  # DBClusterNotFoundFault if there is no such cluster
                raise errors.InvalidParameterValue(f"DB cluster {target} is not a member of {name}.")
            if member.is_writer:
                raise errors.InvalidDBClusterStateFault(f"DB cluster {target} is already {name}'s primary.")
            sync = _sync_status(gc, target)
            if not data_loss and sync != "connected":
                raise errors.InvalidDBClusterStateFault(
                    f"DB cluster {target} is {sync}: a switchover needs it in sync with {name}'s primary."
                )
            phases = ("aurora_pending", "aurora_failover" if data_loss else "aurora_switchover")
            clock.arrives(f"arn:aws:rds::*:global-cluster:{name}", *phases)
            gc.__dict__["_sandbox_move"] = {
                "kind": "failover" if data_loss else "switchover",
                "from": next((m.db_cluster_arn for m in gc.members if m.is_writer), None),
                "to": target,
                "data_loss": data_loss,
                "started": clock.now(),
            }
        return action_result({"GlobalCluster": gc})

    def describe_one(self: Any) -> Any:  # moto ignores the identifier: filter by it
        name = self.params.get("GlobalClusterIdentifier")
        found = [one(self, str(name).lower())] if name else self.global_backend.describe_global_clusters()
        return action_result({"GlobalClusters": found})

    responses = _moto("rds.responses").RDSResponse
    responses.describe_global_clusters = describe_one
    responses.switchover_global_cluster = lambda self: move_writer(self, False)
    responses.failover_global_cluster = lambda self: move_writer(self, True)


# --- promoted replicas --------------------------------------------------------------------------


def _promoting(resource: Any) -> bool:
    """Whether ``resource`` is being promoted still; once its time is up it forgets its source."""
    with _lock:
        started = resource.__dict__.get("_sandbox_promoting")
        if started is None or not _done(started, "aurora_promote"):
            return started is not None
        del resource.__dict__["_sandbox_promoting"]
        source, resource.__dict__["_sandbox_source"] = resource.__dict__.get("_sandbox_source"), None
        if hasattr(resource, "read_replica_identifiers"):  # a cluster: its source no longer lists it
            with contextlib.suppress(Exception):  # the source is gone, or never listed it
                _moto("rds.models").find_cluster(source).read_replica_identifiers.remove(
                    resource.db_cluster_arn
                )
        return False


def _patch_promotion() -> None:
    models, errors = _moto("rds.models"), _moto("rds.exceptions")
    cluster_status = models.DBCluster.status

    def source(self: Any) -> str | None:
        _promoting(self)
        found: str | None = self.__dict__.get("_sandbox_source")
        return found

    def promoting_cluster(self: Any) -> str:
        return "promoting" if _promoting(self) else str(cluster_status.fget(self))

    def modifying_instance(self: Any) -> str:
        return "modifying" if _promoting(self) else str(self.__dict__.get("_sandbox_status", "available"))

    models.DBCluster.status = property(promoting_cluster, cluster_status.fset)
    models.DBCluster.replication_source_identifier = property(source, _stored("_sandbox_source"))
    models.DBInstance.status = property(modifying_instance, _stored("_sandbox_status"))
    models.DBInstance.source_db_instance_identifier = property(source, _stored("_sandbox_source"))

    def promote_cluster(self: Any, db_cluster_identifier: str) -> Any:
        cluster = self.clusters.get(db_cluster_identifier)
        if cluster is None:
            raise errors.DBClusterNotFoundError(db_cluster_identifier)
        with _lock:
            state = f"in {cluster.status} state" if cluster.status != "available" else "not a read replica"
            if cluster.status != "available" or not cluster.replication_source_identifier:
                raise errors.InvalidDBClusterStateFault(f"DbCluster {db_cluster_identifier} is {state}.")
            cluster.__dict__["_sandbox_promoting"] = clock.now()
        return cluster

    promote = models.RDSBackend.promote_read_replica

    def promote_instance(self: Any, db_kwargs: dict[str, Any]) -> Any:
        name = str(db_kwargs.get("db_instance_identifier"))
        database = self.databases.get(name)
        if database is None:
            raise errors.DBInstanceNotFoundError(name)
        with _lock:
            state = f"in {database.status} state" if database.status != "available" else "not a read replica"
            if database.status != "available" or not database.is_replica:
                raise errors.InvalidDBInstanceStateFault(f"DB instance {name} is {state}.")
            promote(self, db_kwargs)  # no longer a replica; it forgets its source once it stands alone
            database.__dict__["_sandbox_promoting"] = clock.now()
        return database

    models.RDSBackend.promote_read_replica_db_cluster = promote_cluster
    models.RDSBackend.promote_read_replica = promote_instance


# --- ECS ----------------------------------------------------------------------------------------


def _ecs_event(service: Any, message: str, at: dt.datetime) -> None:
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": at, "message": message})


def _ecs_now(service: Any) -> None:
    """Bring ``runningCount``, ``pendingCount``, the deployment and the events up to now."""
    with _lock:
        rollout = service.__dict__.get("_sandbox_rollout")
        if rollout is None:
            return
        started, before, target = rollout
        deployment = service.deployments[0] if service.deployments else {}
        if _done(started, "ecs_task_start"):
            del service.__dict__["_sandbox_rollout"]
            service.running_count, service.pending_count = target, 0
            steady = f"(service {service.name}) has reached a steady state."
            _ecs_event(service, steady, _wall(started, "ecs_task_start"))
            if deployment.get("rolloutState") == "IN_PROGRESS":
                deployment["rolloutState"] = "COMPLETED"
                deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."
        else:
            service.running_count, service.pending_count = before, max(0, target - before)
        if deployment:
            now = (service.desired_count, service.running_count, service.pending_count)
            deployment.update(zip(("desiredCount", "runningCount", "pendingCount"), now, strict=True))


def _ecs_rollout(service: Any, before: int, target: int) -> None:
    if target != before:
        tasks = " ".join(f"(task {uuid.uuid4().hex})" for _ in range(abs(target - before)))
        verb = f"started {target - before}" if target > before else f"stopped {before - target} running"
        _ecs_event(service, f"(service {service.name}) has {verb} tasks: {tasks}.", _wall(clock.now()))
    service.__dict__["_sandbox_rollout"] = (clock.now(), before, target)
    cluster = str(service.cluster_arn).rsplit("/", 1)[-1]
    clock.arrives(f"arn:aws:ecs:{service.region_name}:*:service/{cluster}/{service.name}", "ecs_task_start")
    _ecs_now(service)


def _patch_ecs() -> None:
    backend = _moto("ecs.models").EC2ContainerServiceBackend
    create, update, describe = backend.create_service, backend.update_service, backend.describe_services

    def create_service(self: Any, *args: Any, **kwargs: Any) -> Any:
        service = create(self, *args, **kwargs)
        with _lock:
            _ecs_rollout(service, 0, service.desired_count)
        return service

    def update_service(self: Any, props: dict[str, Any]) -> Any:
        wanted = props.get("desired_count")
        try:
            service = self._get_service(props.get("cluster", "default"), str(props["service"]).split("/")[-1])
        except Exception:  # moto says what is missing
            return update(self, props)
        with _lock:
            _ecs_now(service)
            rollout = service.__dict__.get("_sandbox_rollout")
            running, target = service.running_count, rollout[2] if rollout else service.running_count
            update(self, props)
            service.running_count = running  # moto runs the new count at once; ECS starts them
            if wanted is not None and wanted != target:
                _ecs_rollout(service, running, wanted)
            _ecs_now(service)
        return service

    def describe_services(self: Any, *args: Any, **kwargs: Any) -> Any:
        found, failures = describe(self, *args, **kwargs)
        for service in found:
            _ecs_now(service)
        return found, failures

    backend.create_service, backend.update_service = create_service, update_service
    backend.describe_services = describe_services


# --- Auto Scaling -------------------------------------------------------------------------------


def _patch_autoscaling() -> None:
    models = _moto("autoscaling.models")

    def lifecycle(self: Any) -> str:
        state = str(self.__dict__.get("_sandbox_lifecycle", "InService"))
        launched = self.__dict__.get("_sandbox_launched")
        warming = state == "InService" and launched is not None and not _done(launched, "asg_warmup")
        return "Pending" if warming else state

    def active(self: Any) -> list[Any]:  # what counts toward the desired capacity: Pending too
        return [s for s in self.instance_states if s.__dict__.get("_sandbox_lifecycle") == "InService"]

    launch = models.FakeAutoScalingGroup.replace_autoscaling_group_instances

    def launch_pending(self: Any, count_needed: int, propagated_tags: dict[str, str]) -> None:
        before = {id(s) for s in self.instance_states}
        launch(self, count_needed, propagated_tags)
        for state in self.instance_states:
            if id(state) not in before:
                state.__dict__["_sandbox_launched"] = clock.now()
        group = f"autoScalingGroup:*:autoScalingGroupName/{self.name}"
        clock.arrives(f"arn:aws:autoscaling:{self.region}:*:{group}", "asg_warmup")

    models.InstanceState.lifecycle_state = property(lifecycle, _stored("_sandbox_lifecycle"))
    models.FakeAutoScalingGroup.active_instances = active
    models.FakeAutoScalingGroup.replace_autoscaling_group_instances = launch_pending


# --- Route 53 -----------------------------------------------------------------------------------


def _change_info(change_id: str) -> dict[str, Any]:
    started, submitted, comment = _CHANGES[change_id]
    status = "INSYNC" if _done(started, "route53_insync") else "PENDING"
    info = {"Id": f"/change/{change_id}", "Status": status, "SubmittedAt": submitted}
    return info | ({"Comment": comment} if comment else {})


def _patch_route53() -> None:
    responses = _moto("route53.responses").Route53
    change, get = responses.change_resource_record_sets, responses.get_change

    def change_pending(self: Any) -> Any:
        result = change(self)
        info = result.result["ChangeInfo"]
        change_id = "C" + uuid.uuid4().hex[:13].upper()
        with _lock:
            _CHANGES[change_id] = (clock.now(), info["SubmittedAt"], self._get_param("ChangeBatch.Comment"))
            info.update(_change_info(change_id))
        return result

    def get_change(self: Any) -> Any:
        change_id = str(self._get_param("Id")).rsplit("/", 1)[-1]
        if change_id not in _CHANGES and change_id in _MOTO_CHANGE_IDS:
            return get(self)
        if change_id not in _CHANGES:
            message = f"A change with the specified change ID does not exist: {change_id}"
            raise _moto("route53.exceptions").Route53ClientError("NoSuchChange", message)
        return _moto("core.responses").ActionResult({"ChangeInfo": _change_info(change_id)})

    responses.change_resource_record_sets, responses.get_change = change_pending, get_change


_PATCHES = [_patch_global_clusters, _patch_promotion, _patch_ecs, _patch_autoscaling, _patch_route53]


def patch_moto() -> None:
    """Teach moto all of the above (once a process)."""
    with _lock:
        while _PATCHES:
            _PATCHES.pop(0)()
