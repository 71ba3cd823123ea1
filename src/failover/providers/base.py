"""The provider contract: actions that change a cloud, checks that only read it, and their registry.

An action declares a parameter model (validated when a runbook is loaded), describes a step in one
plain sentence, lists the permissions it needs, reads current state, applies idempotently, verifies,
and compensates (or says it cannot). A check answers one read-only question.
"""

from __future__ import annotations

import difflib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue

from failover.errors import DeadlineError, ProviderError, RegistryError, TransientProviderError


class Params(BaseModel):
    """Base for parameter models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a step runs: the site, and the cloud placement there that its action uses."""

    site: str
    cloud: str | None = None
    region: str | None = None
    project: str | None = None
    account: str | None = None  # the AWS account, where the site names one (its role's)

    def phrase(self) -> str:
        """``in us-west-2 (west)``, ``in shop-prod/us-west1 (west)`` or ``at west``."""
        if self.cloud == "gcp" and self.project and self.region:
            return f"in {self.project}/{self.region} ({self.site})"
        if self.region:
            return f"in {self.region} ({self.site})"
        return f"at {self.site}"


@dataclass(frozen=True, slots=True, order=True)
class Permission:
    """One permission a step needs: an IAM action (``autoscaling:UpdateAutoScalingGroup``) or a
    GCP permission (``compute.instanceGroupManagers.update``), on a resource (``*`` if unknown)."""

    cloud: str
    action: str
    resource: str = "*"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check saw: whether it passed, the observed value, and one line for a person."""

    ok: bool
    observed: JsonValue = None
    message: str = ""


T = TypeVar("T")


class ClientCache:
    """Clients and sessions shared by the steps of one run (one boto3 Session per site, say):
    made once, on first use, by whichever step needs them first."""

    def __init__(self) -> None:
        self._items: dict[object, object] = {}
        self._locks: dict[object, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: object, make: Callable[[], T]) -> T:
        """The item for ``key``, made by ``make`` if there is none yet. Only makers of the same
        key wait for each other (a session that assumes a role must not stall the others)."""
        found = self._items.get(key)
        if found is None:
            with self._guard:
                lock = self._locks.setdefault(key, threading.Lock())
            with lock:
                found = self._items.get(key)
                if found is None:
                    found = self._items[key] = make()
        return found  # type: ignore[return-value]


@dataclass(frozen=True)
class Context:
    """What an action or check may use while it runs; clients and time come from here, never globals.

    ``settings`` is the site's placement for the action's cloud as the plan gives it (region,
    profile, role_arn, endpoint_url for AWS; project, region, endpoint for GCP), with any
    override of the run (the sandbox points every site at itself). ``permissions`` is what the
    whole plan needs at this site, for checks that verify the caller may do it all.
    """

    run_id: str
    step_id: str
    placement: Placement
    state_dir: Path
    attempt: int = 1
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    extras: Mapping[str, object] = field(default_factory=dict)
    settings: Mapping[str, JsonValue] = field(default_factory=dict)
    clients: ClientCache = field(default_factory=ClientCache)
    permissions: tuple[Permission, ...] = ()
    deadline: float | None = None
    """When the step or check times out (on ``clock``): waits end by then, and every cloud call
    is configured to give up by then (see :meth:`budget`)."""
    guard: Callable[[], None] = field(default=lambda: None, repr=False)
    """Raises when the run may not make another cloud call for this step: its lease is no longer
    held (LeaseLostError), or the step was given up on. Called by :meth:`check_call`."""

    @property
    def idempotency_token(self) -> str:
        """Stable across retries and resumes of the same step of the same run."""
        return f"{self.run_id}:{self.step_id}"

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0 once it passed), or None when there is none."""
        return None if self.deadline is None else max(0.0, self.deadline - self.clock())

    def budget(self, cap: float) -> float:
        """How long one cloud call may wait: ``cap``, or less when the deadline is nearer, rounded
        down to one of a few values (so that clients configured from it can be shared)."""
        left = self.remaining()
        if left is None or left >= cap:
            return cap
        return max((b for b in BUDGETS if b <= left), default=BUDGETS[0])

    def check_call(self) -> None:
        """Call before every cloud request: raise DeadlineError once the deadline passed, or what
        the guard raises (the lease was lost, the step was given up on)."""
        if self.deadline is not None and self.clock() >= self.deadline:
            raise DeadlineError(f"{self.step_id}: out of time; no further cloud call is made")
        self.guard()


BUDGETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Seconds a single cloud call may be given when a deadline is near (see Context.budget)."""

_ACTIVE: ContextVar[Context | None] = ContextVar("failover_active_context", default=None)


@contextmanager
def active(ctx: Context) -> Iterator[Context]:
    """Make ``ctx`` the context of the provider calls made inside (in this thread), for code that
    is not handed it: SDK hooks, credential refreshes."""
    token = _ACTIVE.set(ctx)
    try:
        yield ctx
    finally:
        _ACTIVE.reset(token)


def active_context() -> Context | None:
    """The context of the provider call running in this thread, if any (see :func:`active`)."""
    return _ACTIVE.get()


class _Described(ABC, Generic[P]):
    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel]]
    cloud: ClassVar[str | None] = None
    default_estimate_s: ClassVar[float] = 5.0
    permission_names: ClassVar[tuple[str, ...]] = ()
    """Every permission this may need, for listings; ``permissions()`` narrows them per step."""
    control_plane: ClassVar[str | None] = None
    """The one region whose control plane this goes through, wherever it runs (Route 53 record
    changes, IAM: us-east-1); the planner warns when a plan fails away from it."""

    def parse(self, params: Mapping[str, object]) -> P:
        """Validate raw parameters; raises pydantic.ValidationError."""
        return self.params_model.model_validate(dict(params))  # type: ignore[return-value]

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring: what this action or check does."""
        return (cls.__doc__ or cls.name).strip().splitlines()[0]

    @abstractmethod
    def describe(self, params: P, where: Placement) -> str:
        """One plain sentence for the plan."""

    def permissions(self, params: P, where: Placement) -> list[Permission]:
        """The permissions this needs at ``where``, as narrow as the parameters allow.

        The default grants each of ``permission_names`` on every resource.
        """
        cloud = where.cloud or self.cloud or ""
        return [Permission(cloud, name) for name in self.permission_names]

    def estimate(self, params: P) -> float:
        """Predicted seconds, used for the plan's RTO when the runbook gives no estimate."""
        return self.default_estimate_s

    def resources(self, params: P, where: Placement) -> tuple[str, ...]:
        """The cloud resources this changes, by identity (an ARN, a Compute Engine path): what a
        run's lease covers, so two runbooks that act on one resource exclude each other.

        The default: the resources of the permissions it changes things with; with none named,
        everything this action may touch at the site.
        """
        found = {
            identity(p.cloud, p.resource, where)
            for p in self.permissions(params, where)
            if p.resource != "*" and not _reads(p.action)
        }
        return tuple(sorted(found)) or (f"{where.cloud or self.cloud or 'any'}:{where.site}:{self.name}",)


_READ_VERBS = ("Describe", "Get", "List", "get", "list", "use")


def _reads(permission: str) -> bool:
    """Whether a permission (``ecs:DescribeServices``, ``compute.instances.get``) only reads."""
    return permission.rpartition(":")[2].rpartition(".")[2].startswith(_READ_VERBS)


def identity(cloud: str, resource: str, where: Placement) -> str:
    """A resource's identity: its ARN (with the site's account where an ARN leaves it open), or
    ``gcp:`` and its path."""
    if resource.startswith("arn:"):
        parts = resource.split(":", 5)
        if len(parts) == 6 and parts[4] in ("", "*") and where.account and parts[3] != "":
            parts[4] = where.account
        return ":".join(parts)
    return f"{cloud}:{resource}"


class Action(_Described[P]):
    """A named operation that changes the world, idempotently, and can put it back if reversible."""

    reversible: ClassVar[bool] = True
    apply_verifies: ClassVar[bool] = False
    """True when ``apply`` returns only once the condition ``verify`` checks holds (it waits for
    it): the engine then does not call ``verify`` again after a successful ``apply``."""
    verifiable: ClassVar[bool] = True
    """False for actions (hooks) whose effect cannot be read back: their successful ``apply`` is
    the proof, and one in flight when a run died is applied again (with the same idempotency token)."""
    default_estimate_s: ClassVar[float] = 30.0

    def is_reversible(self, params: P) -> bool:
        """Whether ``compensate`` can undo this step; some actions decide per parameters."""
        return self.reversible

    @abstractmethod
    def read(self, ctx: Context, params: P) -> JsonValue:
        """Current state of what this step would change (the rollback snapshot)."""

    @abstractmethod
    def apply(self, ctx: Context, params: P) -> JsonValue:
        """Make the change; applying twice must be the same as applying once."""

    @abstractmethod
    def verify(self, ctx: Context, params: P) -> bool:
        """Whether the desired state has been reached."""

    def compensate(self, ctx: Context, params: P, before: JsonValue) -> None:
        """Put back the state ``read`` saw before ``apply``."""
        raise ProviderError(f"{self.name} is irreversible: it has no compensation")


class Check(_Described[P]):
    """A read-only question to a cloud; it never changes anything."""

    measures_lag: ClassVar[bool] = False
    """Its observation is a replica's lag in seconds: what a failover right after it may lose
    (reports give it as the achieved RPO)."""

    @abstractmethod
    def run(self, ctx: Context, params: P) -> CheckResult:
        """Ask the question and report what was seen."""


AnyAction = Action[Any]
AnyCheck = Check[Any]


@dataclass(frozen=True)
class Provider:
    """A named set of actions and checks, as built in or exposed through an entry point."""

    name: str
    actions: tuple[AnyAction, ...] = ()
    checks: tuple[AnyCheck, ...] = ()


ENTRY_POINT_GROUP = "failover.providers"


class Registry:
    """Actions and checks by dotted name. Names are unique across actions and checks."""

    def __init__(self, providers: Iterable[Provider] = ()) -> None:
        self._actions: dict[str, AnyAction] = {}
        self._checks: dict[str, AnyCheck] = {}
        self._owner: dict[str, str] = {}
        for provider in providers:
            self.add(provider)

    def add(self, provider: Provider) -> None:
        """Register every action and check of ``provider``; a name taken twice is an error."""
        for item in (*provider.actions, *provider.checks):
            if item.name in self._owner:
                raise RegistryError(
                    f"{item.name} is registered by both {self._owner[item.name]!r} and "
                    f"{provider.name!r}: each action or check name must be unique"
                )
            self._owner[item.name] = provider.name
        self._actions.update((a.name, a) for a in provider.actions)
        self._checks.update((c.name, c) for c in provider.checks)

    def actions(self) -> list[AnyAction]:
        return [self._actions[k] for k in sorted(self._actions)]

    def checks(self) -> list[AnyCheck]:
        return [self._checks[k] for k in sorted(self._checks)]

    def find_action(self, name: str) -> AnyAction | None:
        return self._actions.get(name)

    def find_check(self, name: str) -> AnyCheck | None:
        return self._checks.get(name)

    def action(self, name: str) -> AnyAction:
        found = self._actions.get(name)
        if found is None:
            raise RegistryError(self.unknown_message("action", name))
        return found

    def check(self, name: str) -> AnyCheck:
        found = self._checks.get(name)
        if found is None:
            raise RegistryError(self.unknown_message("check", name))
        return found

    def unknown_message(self, kind: str, name: str) -> str:
        """``unknown action 'sim.stp'; did you mean: sim.step`` (or the known names if none is close)."""
        known = sorted(self._actions if kind == "action" else self._checks)
        if not isinstance(name, str):
            return f"expected the name of a registered {kind}, found {name!r}"
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            return f"unknown {kind} {name!r}; did you mean: {', '.join(close)}"
        prefix = name.split(".", 1)[0] + "."
        same = [k for k in known if k.startswith(prefix)] or known
        listed = ", ".join(same[:12]) + (", ..." if len(same) > 12 else "")
        return f"unknown {kind} {name!r}; known {kind}s: {listed}"


POLL_FIRST_S = 0.25
POLL_CAP_S = 1.5
"""Waits ask at once, then after 0.25 s, backing off to every 1.5 s: a state reached is noticed
within 1.5 s, 0.75 s on average (a wait's requests stay well inside each API's rate limits: the
tightest, Route 53's GetChange, allows 5 a second per account)."""


def wait_until(
    ctx: Context,
    what: str,
    reached: Callable[[], bool],
    timeout: float,
    every: float = POLL_CAP_S,
    first: float = POLL_FIRST_S,
) -> None:
    """Poll ``reached`` until it is true, at most ``timeout`` seconds (of the context's clock);
    and never past the step's deadline; then raise a transient error, so the executor may try
    again within the step's own timeout. It asks at once, then backs off from ``first`` to
    ``every``."""
    deadline = ctx.clock() + timeout
    if ctx.deadline is not None and ctx.deadline < deadline:  # the step times out first
        deadline, timeout = ctx.deadline, max(0.0, ctx.deadline - ctx.clock())
    wait = min(every, first)
    while not reached():
        now = ctx.clock()
        if now >= deadline:
            raise TransientProviderError(f"{what}: not reached after {timeout:g}s")
        ctx.sleep(min(wait, deadline - now))
        wait = min(every, wait * 2)
