"""Simulated actions and checks: real latency and failures against a small persistent world.

The world is a SQLite file in the state directory (``sim.sqlite``): each *target* has a value
(the site it was last moved to), and every apply, compensation and check is logged, so tests,
benchmarks and a later process can see what happened and how many times.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import Field, JsonValue

from failover.durations import Duration, format_duration
from failover.errors import ProviderError, TransientProviderError
from failover.providers.base import Action, Check, CheckResult, Context, Params, Placement, Provider

WORLD_FILE = "sim.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS targets (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS attempts (token TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    op TEXT NOT NULL,
    target TEXT NOT NULL,
    step TEXT NOT NULL,
    token TEXT NOT NULL,
    value TEXT,
    changed INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One logged operation on the simulated world."""

    op: str  # "apply" | "compensate" | "check"
    target: str
    step: str
    token: str
    value: JsonValue
    changed: bool


class SimWorld:
    """The simulated world kept in ``STATE_DIR/sim.sqlite``; safe across threads and processes."""

    def __init__(self, state_dir: Path | str) -> None:
        from failover.state.sqlite import Store  # here: the state package is not needed to validate

        self.path = os.path.join(state_dir, WORLD_FILE)
        self._store = Store(self.path, _SCHEMA, "NORMAL")

    def value(self, target: str) -> JsonValue:
        """The target's current value, or None if nothing ever set it."""
        rows = self._store.read("SELECT value FROM targets WHERE name = ?", (target,))
        return None if not rows else json.loads(rows[0][0])

    def values(self) -> dict[str, JsonValue]:
        """Every target and its value."""
        rows = self._store.read("SELECT name, value FROM targets ORDER BY name")
        return {name: json.loads(value) for name, value in rows}

    def events(self) -> list[SimEvent]:
        """Every operation, oldest first."""
        rows = self._store.read("SELECT op, target, step, token, value, changed FROM log ORDER BY seq")
        return [SimEvent(o, t, s, k, json.loads(v), bool(c)) for o, t, s, k, v, c in rows]

    def attempt(
        self, target: str, value: JsonValue, ctx: Context, *, fail_attempts: int | None
    ) -> tuple[int, bool | None]:
        """Count one more apply attempt of the step and, unless it is one of the attempts that
        fail (all of them when ``fail_attempts`` is None), set ``target`` to ``value``: one
        transaction. Returns the attempt's number and whether the value changed (None: failed)."""
        token = ctx.idempotency_token

        def write(db: sqlite3.Connection) -> tuple[int, bool | None]:
            db.execute(
                "INSERT INTO attempts (token, count) VALUES (?, 1) "
                "ON CONFLICT(token) DO UPDATE SET count = count + 1",
                (token,),
            )
            count = int(db.execute("SELECT count FROM attempts WHERE token = ?", (token,)).fetchone()[0])
            if fail_attempts is None or count <= fail_attempts:
                return count, None
            return count, _set(db, "apply", target, json.dumps(value), ctx)

        return self._store.run(write)

    def set(self, op: str, target: str, value: JsonValue, ctx: Context) -> bool:
        """Set ``target`` to ``value`` and log it; returns whether anything changed."""
        encoded = json.dumps(value)

        return self._store.run(lambda db: _set(db, op, target, encoded, ctx))

    def log_check(self, target: str, value: JsonValue, ctx: Context) -> None:
        self._store.run(lambda db: _log(db, "check", target, json.dumps(value), False, ctx))


@lru_cache(maxsize=64)
def _world_at(state_dir: str) -> SimWorld:
    return SimWorld(state_dir)


def _world(ctx: Context) -> SimWorld:
    """The world of the run's state directory (one instance per directory)."""
    return _world_at(str(ctx.state_dir))


def _speed(ctx: Context) -> float:
    """How many times faster than written simulated latencies run (``--sim-speed``)."""
    speed = ctx.extras.get("sim_speed", 1.0)
    return float(speed) if isinstance(speed, int | float) and speed > 0 else 1.0


def _set(db: sqlite3.Connection, op: str, target: str, encoded: str, ctx: Context) -> bool:
    row = db.execute("SELECT value FROM targets WHERE name = ?", (target,)).fetchone()
    changed = row is None or row[0] != encoded
    if changed:
        db.execute(
            "INSERT INTO targets (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (target, encoded),
        )
    _log(db, op, target, encoded, changed, ctx)
    return changed


def _log(db: sqlite3.Connection, op: str, target: str, value: str, changed: bool, ctx: Context) -> None:
    db.execute(
        "INSERT INTO log (at, op, target, step, token, value, changed) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (time.time(), op, target, ctx.step_id, ctx.idempotency_token, value, changed),
    )


class StepParams(Params):
    duration: Duration = 0.0
    fail: bool = False
    fail_attempts: int = Field(default=0, ge=0)
    reversible: bool = True
    target: str | None = None


class SimStep(Action[StepParams]):
    """Move a simulated target to the step's site, with latency and injected failures."""

    name = "sim.step"
    params_model = StepParams

    @staticmethod
    def _target(ctx: Context, params: StepParams) -> str:
        return params.target or ctx.step_id

    def describe(self, params: StepParams, where: Placement) -> str:
        what = params.target or "a simulated resource"
        extra = []
        if params.fail:
            extra.append("always fails")
        elif params.fail_attempts:
            extra.append(f"fails its first {params.fail_attempts} attempt(s)")
        if not params.reversible:
            extra.append("irreversible")
        note = f" ({', '.join(extra)})" if extra else ""
        return f"Move {what} to {where.site}, taking {format_duration(params.duration)}{note}"

    def estimate(self, params: StepParams) -> float:
        return params.duration

    def resources(self, params: StepParams, where: Placement) -> tuple[str, ...]:
        return (f"sim:{params.target}",) if params.target else super().resources(params, where)

    def is_reversible(self, params: StepParams) -> bool:
        return params.reversible

    def read(self, ctx: Context, params: StepParams) -> JsonValue:
        return {"value": _world(ctx).value(self._target(ctx, params))}

    apply_verifies = True  # apply sets the value that verify reads

    def apply(self, ctx: Context, params: StepParams) -> JsonValue:
        if params.duration:
            ctx.sleep(params.duration / _speed(ctx))
        ctx.check_call()  # the simulated request goes out after its latency
        target = self._target(ctx, params)
        fails = params.fail or params.fail_attempts > 0
        attempt, changed = _world(ctx).attempt(
            target, ctx.placement.site, ctx, fail_attempts=None if params.fail else params.fail_attempts
        )
        if fails and changed is None:
            if params.fail:
                raise ProviderError(f"simulated failure moving {target} to {ctx.placement.site}")
            raise TransientProviderError(
                f"simulated transient failure moving {target} to {ctx.placement.site} "
                f"(attempt {attempt} of {params.fail_attempts} that fail)"
            )
        return {"target": target, "value": ctx.placement.site, "changed": changed}

    def verify(self, ctx: Context, params: StepParams) -> bool:
        return _world(ctx).value(self._target(ctx, params)) == ctx.placement.site

    def compensate(self, ctx: Context, params: StepParams, before: JsonValue) -> None:
        if not params.reversible:
            super().compensate(ctx, params, before)
        value = before.get("value") if isinstance(before, dict) else None
        ctx.check_call()
        _world(ctx).set("compensate", self._target(ctx, params), value, ctx)


class CheckParams(Params):
    ok: bool = True
    observed: JsonValue = None
    duration: Duration = 0.0
    target: str | None = None
    expect: JsonValue = None


class SimCheck(Check[CheckParams]):
    """Answer a simulated question: a fixed verdict, or whether a target holds an expected value."""

    name = "sim.check"
    params_model = CheckParams
    default_estimate_s = 0.0

    def describe(self, params: CheckParams, where: Placement) -> str:
        if params.target is not None:
            return f"Check that {params.target} is {params.expect!r} {where.phrase()}"
        verdict = "pass" if params.ok else "fail"
        seen = f" (observes {params.observed!r})" if params.observed is not None else ""
        return f"Simulated check {where.phrase()} that will {verdict}{seen}"

    def estimate(self, params: CheckParams) -> float:
        return params.duration

    def run(self, ctx: Context, params: CheckParams) -> CheckResult:
        if params.duration:
            ctx.sleep(params.duration / _speed(ctx))
        ctx.check_call()
        world = _world(ctx)
        if params.target is not None:
            value = world.value(params.target)
            world.log_check(params.target, value, ctx)
            ok = value == params.expect
            return CheckResult(ok, value, f"{params.target} is {value!r}, expected {params.expect!r}")
        world.log_check("", params.observed, ctx)
        message = "simulated check passed" if params.ok else "simulated check failed"
        return CheckResult(params.ok, params.observed, message)


PROVIDER = Provider(name="sim", actions=(SimStep(),), checks=(SimCheck(),))
