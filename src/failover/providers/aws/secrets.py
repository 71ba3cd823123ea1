"""Secrets a plan references (``${secret:aws-ssm:...}``, ``${secret:aws-sm:...}``), read with the
credentials and region of the site whose call needs them; never cached, never logged."""

from __future__ import annotations

import json

from failover.errors import ProviderError
from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Context


def parameter(ctx: Context, name: str) -> str:
    """An SSM parameter's value, decrypted."""
    ssm = client(ctx, "ssm")
    with aws_errors(ctx, f"SSM parameter {name}"):
        found = ssm.get_parameter(Name=name, WithDecryption=True)
    return str(found["Parameter"]["Value"])


def secret(ctx: Context, name: str, key: str | None) -> str:
    """A Secrets Manager secret's string, or the ``key`` field of its JSON."""
    sm = client(ctx, "secretsmanager")
    with aws_errors(ctx, f"secret {name}"):
        found = sm.get_secret_value(SecretId=name)
    text = found.get("SecretString")
    if not isinstance(text, str):
        raise ProviderError(f"secret {name}: it holds binary data, not a string")
    if key is None:
        return text
    try:
        fields = json.loads(text)
    except ValueError:
        raise ProviderError(f"secret {name}: #{key} names a field, but the secret is not JSON") from None
    if not isinstance(fields, dict) or key not in fields:
        have = ", ".join(sorted(fields)) if isinstance(fields, dict) else "none"
        raise ProviderError(f"secret {name}: no field {key!r} (its fields: {have})")
    return str(fields[key])
