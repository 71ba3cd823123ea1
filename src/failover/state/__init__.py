"""Run state: the events a journal records, what a run is when they are replayed, and the stores
that keep them (a directory, or a DynamoDB table a team shares).

``open_store`` takes what ``--state`` / ``FAILOVER_STATE`` say: a directory, or
``dynamodb://TABLE?region=REGION``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from failover.errors import JournalError
from failover.state.store import StateStore

DEFAULT_STATE = ".failover"
SCHEMES = ("dynamodb",)


def state_spec(given: str | Path | None, declared: str | None = None) -> str:
    """The state to use: ``given`` (``--state``), else ``FAILOVER_STATE``, else what the runbook
    declares, else ``.failover``."""
    if given is not None:
        return str(given)
    return os.environ.get("FAILOVER_STATE") or declared or DEFAULT_STATE


def is_remote(spec: str | Path) -> bool:
    return isinstance(spec, str) and "://" in spec


def same_state(a: str, b: str) -> bool:
    """Whether two state specs name the same store: a directory however it is written, a table
    whichever of its regions (a global table's replicas) or profile."""
    if is_remote(a) and is_remote(b):
        return dynamodb_target(a)[0] == dynamodb_target(b)[0]
    if is_remote(a) or is_remote(b):
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def open_store(
    spec: str | Path | StateStore, *, read_only: bool = False, work_dir: Path | None = None
) -> StateStore:
    """The store ``spec`` names (a store is returned as it is). ``work_dir``: where providers keep
    local working files when the state is remote (default ``.failover``)."""
    if not isinstance(spec, str | Path):
        return spec
    if not is_remote(spec):
        from failover.state.local import DirectoryStore

        return DirectoryStore(Path(spec), read_only=read_only)
    from failover.state.dynamo import DynamoStore

    table, region, profile = dynamodb_target(str(spec))
    return DynamoStore(
        table, region=region, profile=profile, read_only=read_only, work_dir=work_dir or Path(DEFAULT_STATE)
    )


def dynamodb_target(spec: str) -> tuple[str, str | None, str | None]:
    """(table, region, profile) of ``dynamodb://TABLE?region=REGION[&profile=PROFILE]``."""
    parts = urlsplit(spec)
    if parts.scheme not in SCHEMES or not parts.netloc or parts.path not in ("", "/"):
        raise JournalError(
            f"state {spec!r}: expected a directory or dynamodb://TABLE?region=REGION, found "
            f"scheme {parts.scheme!r}"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - {"region", "profile"})
    if unknown:
        raise JournalError(f"state {spec!r}: unknown parameter {unknown[0]!r} (expected region, profile)")
    return parts.netloc, query.get("region") or None, query.get("profile") or None


__all__ = [
    "DEFAULT_STATE",
    "StateStore",
    "dynamodb_target",
    "is_remote",
    "open_store",
    "same_state",
    "state_spec",
]
