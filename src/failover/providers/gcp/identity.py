"""Who the run acts as in GCP: the account of the site's credentials (a service account's
email, or the user account Application Default Credentials name)."""

from __future__ import annotations

from failover.providers.base import Context
from failover.providers.gcp._client import _credentials


def caller(ctx: Context) -> str:
    credentials = _credentials(ctx)
    for attribute in ("service_account_email", "account"):
        found = getattr(credentials, attribute, None)
        if isinstance(found, str) and found and found != "default":
            return found
    return f"{type(credentials).__name__} (no account name in the credentials)"
