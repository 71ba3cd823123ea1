"""Secrets by reference: ``${secret:aws-ssm:/path}``, ``${secret:aws-sm:NAME#KEY}`` and
``${env:NAME}`` in step, check and hook parameters.

A reference is checked when the runbook loads (its form; an AWS one needs an AWS placement at the
site that uses it), stays as written in plans (a reviewer sees where a secret comes from, never
the secret), and is resolved only in memory, at the moment of each call, with the credentials
and region of the call's own site. Resolved values are registered with the redactor, so no log
line, journal event, report or metric shows them.

- ``aws-ssm:NAME``: an SSM Parameter Store parameter, decrypted (SecureString).
- ``aws-sm:NAME#KEY``: a Secrets Manager secret; split at the last ``#``, ``KEY`` names a field
  of a JSON secret string (without ``#KEY``, the whole secret string).
- ``env:NAME``: an environment variable of the process that runs the plan.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from failover.errors import ProviderError
from failover.providers.base import Context, Permission, Placement
from failover.redact import register_secret
from failover.templating import TemplateError

_SSM_NAME = re.compile(r"/?[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")
_SM_NAME = re.compile(r"[A-Za-z0-9/_+=.@\-:]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ANY_REF = re.compile(r"\$\{\s*((?:secret|env):[^{}]*?)\s*\}")
FORMS = "${secret:aws-ssm:/PATH}, ${secret:aws-sm:NAME#KEY} or ${env:NAME}"


@dataclass(frozen=True)
class Ref:
    kind: str  # aws-ssm | aws-sm | env
    name: str
    key: str | None = None

    @property
    def cloud(self) -> str | None:
        return "aws" if self.kind.startswith("aws-") else None


def parse_ref(expr: str) -> Ref | None:
    """The secret reference ``expr`` (what is inside ``${...}``) names, None if it is not one;
    TemplateError if it starts like one and is malformed."""
    expr = expr.strip()
    if expr.startswith("env:"):
        name = expr[4:]
        if not _ENV_NAME.fullmatch(name):
            raise TemplateError(
                f"${{{expr}}}: expected ${{env:NAME}} with NAME a variable name, found {name!r}"
            )
        return Ref("env", name)
    if not expr.startswith("secret:"):
        return None
    kind, _, rest = expr[len("secret:") :].partition(":")
    if kind == "aws-ssm" and _SSM_NAME.fullmatch(rest) and len(rest) <= 2048:
        return Ref(kind, rest)
    if kind == "aws-sm":
        name, hashed, key = rest.rpartition("#")
        name, key = (name, key) if hashed else (rest, "")
        if _SM_NAME.fullmatch(name) and (not hashed or key):
            return Ref(kind, name, key or None)
    raise TemplateError(f"${{{expr}}}: not a secret reference: expected {FORMS}")


def refs_in(value: object) -> list[Ref]:
    """Every secret reference in ``value`` (strings, mapping values, list items)."""
    found: list[Ref] = []
    if isinstance(value, str):
        for match in _ANY_REF.finditer(value):
            ref = parse_ref(match.group(1))
            if ref is not None:
                found.append(ref)
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(refs_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(refs_in(item))
    return found


def permissions(value: object, aws: Placement) -> list[Permission]:
    """What reading the AWS secrets ``value`` references needs, in the site's region."""
    region = aws.region or "*"
    account = aws.account or "*"
    found = []
    for ref in refs_in(value):
        if ref.kind == "aws-ssm":
            path = ref.name if ref.name.startswith("/") else f"/{ref.name}"
            arn = f"arn:aws:ssm:{region}:{account}:parameter{path}"
            found.append(Permission("aws", "ssm:GetParameter", arn))
        elif ref.kind == "aws-sm":
            arn = (
                ref.name
                if ref.name.startswith("arn:")
                else f"arn:aws:secretsmanager:{region}:{account}:secret:{ref.name}-*"
            )
            found.append(Permission("aws", "secretsmanager:GetSecretValue", arn))
    return found


def resolved(value: Any, aws: Callable[[], Context]) -> Any:
    """``value`` with every secret reference replaced by the secret, fetched now (AWS ones with
    the context ``aws()`` makes: the site's own AWS credentials and region); unchanged (the same
    object) when it holds none."""
    if not refs_in(value):
        return value
    return _fill(value, aws)


def _fill(value: Any, aws: Callable[[], Context]) -> Any:
    if isinstance(value, str):
        whole = _ANY_REF.fullmatch(value)
        if whole:
            return fetch(_ref(whole.group(1)), aws)
        return _ANY_REF.sub(lambda m: fetch(_ref(m.group(1)), aws), value)
    if isinstance(value, dict):
        return {k: _fill(v, aws) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, aws) for v in value]
    return value


def _ref(expr: str) -> Ref:
    ref = parse_ref(expr)
    if ref is None:  # the pattern only matches secret: and env: references
        raise TemplateError(f"${{{expr}}}: not a secret reference: expected {FORMS}")
    return ref


def fetch(ref: Ref, aws: Callable[[], Context]) -> str:
    """The secret ``ref`` names, registered with the redactor before anyone sees it."""
    if ref.kind == "env":
        value = os.environ.get(ref.name)
        if value is None:
            raise ProviderError(f"${{env:{ref.name}}}: environment variable {ref.name} is not set")
    else:
        from failover.providers.aws import secrets as aws_secrets

        ctx = aws()
        if ref.kind == "aws-ssm":
            value = aws_secrets.parameter(ctx, ref.name)
        else:
            value = aws_secrets.secret(ctx, ref.name, ref.key)
    register_secret(value)
    return value
