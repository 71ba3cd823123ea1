"""What a plan's signatures must show before it runs, and which signatures show it.

A reviewer signs the plan file's bytes with an SSH key (``failover sign``, or ``ssh-keygen -Y
sign -n failover-plan``); each signature is a file beside the plan (``PLAN.json.sig``,
``PLAN.json.NAME.sig``) or given with ``--signature``. The requirement comes from whoever runs
the plan, never from the plan: an allowed-signers file and a number of distinct keys
(``--allowed-signers``/``FAILOVER_ALLOWED_SIGNERS``, ``--require-signatures``/
``FAILOVER_REQUIRE_SIGNATURES``), and a greatest age (``--max-plan-age``/
``FAILOVER_MAX_PLAN_AGE``). Verification reads files only: no network.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import JsonValue

from failover.errors import RefusedError
from failover.plan import Plan
from failover.sshsig import (
    NAMESPACE,
    SignatureError,
    parse_allowed_signers,
    parse_signature,
    principals_for,
    verify,
)


@dataclass(frozen=True)
class Policy:
    """What apply demands of a plan's signatures, from its options and environment."""

    allowed_signers: Path | None = None
    required: int = 0
    max_age_s: float | None = None
    signature_files: tuple[Path, ...] = ()

    @property
    def demands(self) -> bool:
        return self.required > 0 or self.allowed_signers is not None or self.max_age_s is not None


@dataclass(frozen=True)
class Verified:
    """One signature that verified, by a key the allowed signers name."""

    file: str
    key_type: str
    fingerprint: str
    principals: tuple[str, ...]

    def record(self) -> dict[str, JsonValue]:
        return {
            "file": self.file,
            "key": self.key_type,
            "fingerprint": self.fingerprint,
            "principals": list(self.principals),
        }


def signature_files(plan_file: Path, given: Iterable[Path] = ()) -> list[Path]:
    """``PLAN.json.sig``, ``PLAN.json.*.sig`` beside the plan, and the ones given, once each."""
    name = _glob_escape(plan_file.name)
    beside = [*plan_file.parent.glob(f"{name}.sig"), *sorted(plan_file.parent.glob(f"{name}.*.sig"))]
    seen: dict[Path, None] = {}
    for path in [*beside, *given]:
        seen.setdefault(path.absolute(), None)  # not resolved: a link is named as it is
    return list(seen)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def check(
    plan_file: Path, data: bytes, plan: Plan, policy: Policy, now: datetime | None = None
) -> list[Verified]:
    """The signatures that verify over ``data`` (the plan file's bytes) by allowed keys, one per
    key; RefusedError when the plan is too old or fewer than ``policy.required`` distinct
    allowed keys signed it."""
    now = now or datetime.now(UTC)
    _check_age(plan, policy, now, plan_file)
    if policy.allowed_signers is None:
        if policy.required:
            raise RefusedError(
                f"{policy.required} signature(s) required but no allowed signers given: "
                "set --allowed-signers FILE or FAILOVER_ALLOWED_SIGNERS"
            )
        return []
    try:
        text = policy.allowed_signers.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RefusedError(f"cannot read allowed signers {policy.allowed_signers}: {exc}") from None
    try:
        allowed = parse_allowed_signers(text, str(policy.allowed_signers))
    except SignatureError as exc:
        raise RefusedError(str(exc)) from None
    verified: dict[str, Verified] = {}
    ignored: list[str] = []
    for path in signature_files(plan_file, policy.signature_files):
        try:
            signature = parse_signature(_read_small(path), str(path))
            verify(data, signature, NAMESPACE)
        except (OSError, UnicodeDecodeError) as exc:
            ignored.append(f"{path}: cannot be read ({exc})")
            continue
        except SignatureError as exc:
            ignored.append(str(exc))
            continue
        principals = principals_for(allowed, signature, NAMESPACE, now)
        if not principals:
            ignored.append(
                f"{path}: signed by {signature.fingerprint}, a key {policy.allowed_signers} does not "
                f"allow to sign {NAMESPACE} now"
            )
            continue
        verified.setdefault(
            signature.fingerprint,
            Verified(str(path), signature.key_type, signature.fingerprint, tuple(principals)),
        )
    if len(verified) < policy.required:
        found = "; ".join(f"{', '.join(v.principals)} ({v.fingerprint})" for v in verified.values())
        raise RefusedError(
            f"{plan_file}: {policy.required} signature(s) by distinct keys of {policy.allowed_signers} "
            f"required, {len(verified)} found{': ' + found if found else ''}"
            + (f"; not counted: {'; '.join(ignored)}" if ignored else "")
            + f". Reviewers sign with: failover sign {plan_file} --key KEY"
        )
    return list(verified.values())


FUTURE_SKEW_S = 300.0  # clocks may differ this much
MAX_SIGNATURE_BYTES = 64 * 1024  # an armored sshsig signature is under 1 KiB


def _read_small(path: Path) -> str:
    """A signature file's text: a regular file (not a FIFO or a device a checkout may link to),
    read up to a bound; OSError or SignatureError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SignatureError(f"{path}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as raw:
            data = raw.read(MAX_SIGNATURE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"{path}: more than {MAX_SIGNATURE_BYTES:,} bytes: not a signature")
    return data.decode("utf-8")


def _check_age(plan: Plan, policy: Policy, now: datetime, plan_file: Path) -> None:
    if policy.max_age_s is None:
        return
    if plan.made_at is None:
        raise RefusedError(f"{plan_file}: --max-plan-age is set but the plan does not say when it was made")
    try:
        made = datetime.fromisoformat(plan.made_at.replace("Z", "+00:00"))
    except ValueError:
        raise RefusedError(f"{plan_file}: made_at {plan.made_at!r} is not an ISO 8601 time") from None
    if made.tzinfo is None:
        made = made.replace(tzinfo=UTC)  # the plan command writes UTC
    age = (now - made).total_seconds()
    if age < -FUTURE_SKEW_S:
        raise RefusedError(f"{plan_file}: made {plan.made_at}, in the future: its age cannot be trusted")
    if age > policy.max_age_s:
        raise RefusedError(
            f"{plan_file}: made {plan.made_at}, {age / 3600:.1f} h ago, older than --max-plan-age "
            f"{policy.max_age_s / 3600:g} h: make and review it again"
        )
