"""Custom endpoints a plan names, and which of them a run may send credentials to.

A plan can say where a site's clouds answer (``sites[].aws.endpoint_url``, ``endpoint_urls``,
``sites[].gcp.endpoint``) and where a step's API lives (ARC's ``cluster_endpoints``). Whoever
can edit the plan file can name any host there, and the run would send it the operator's signed
AWS requests and GCP bearer token. So a run honours an endpoint from a plan only when it is on
this machine (loopback), is one of the cloud's own hosts (an ARC cluster endpoint in
amazonaws.com), or its host is allowed by whoever runs the plan (``--allow-endpoint HOST``,
outside the plan); anything else refuses the run before any call.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import JsonValue

from failover.plan import Plan

_ARC_HOST = re.compile(r"[a-z0-9-]+\.route53-recovery-cluster\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_SITE_KEYS = {"aws": ("endpoint_url",), "gcp": ("endpoint",)}


_UNSAFE = re.compile(
    r"[\\@\s\x00-\x1f\x7f]|\$\{"
)  # parsed differently by different parsers, or filled in later


@dataclass(frozen=True)
class Endpoint:
    where: str  # the plan's path to it, e.g. sites.east.aws.endpoint_url
    url: str

    @property
    def host(self) -> str:
        """The host a client would connect to; empty when the URL is one that URL parsers read
        differently (a backslash, userinfo, whitespace, control characters, a reference filled
        in later): such an endpoint is never honoured."""
        if _UNSAFE.search(self.url):
            return ""
        from urllib3.util import parse_url  # here: most plans name no endpoint, and urllib3 is slow to import

        url = self.url if "//" in self.url else f"//{self.url}"  # a bare host (GCP's endpoint)
        ours = (urlsplit(url).hostname or "").lower().rstrip(".")
        theirs = (parse_url(url).host or "").lower().strip("[]").rstrip(".")
        return ours if ours == theirs else ""

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme if "//" in self.url else ""


def endpoints(plan: Plan) -> list[Endpoint]:
    """Every custom endpoint the plan names, with where it names it."""
    found: list[Endpoint] = []
    for site in plan.sites:
        for cloud, keys in _SITE_KEYS.items():
            spec = getattr(site, cloud) or {}
            for key in keys:
                value = spec.get(key)
                if isinstance(value, str) and value:
                    found.append(Endpoint(f"sites.{site.name}.{cloud}.{key}", value))
            per_service = spec.get("endpoint_urls")
            if isinstance(per_service, dict):
                for service, url in sorted(per_service.items()):
                    if isinstance(url, str) and url:
                        found.append(Endpoint(f"sites.{site.name}.{cloud}.endpoint_urls.{service}", url))
    for step in plan.steps:
        for path, url in _urls(step.params, "cluster_endpoints"):
            found.append(Endpoint(f"steps.{step.id}.params.{path}", url))
    return found


def _urls(params: dict[str, JsonValue], key: str) -> Iterator[tuple[str, str]]:
    listed = params.get(key)
    if isinstance(listed, list):
        for i, item in enumerate(listed):
            if isinstance(item, dict) and isinstance(item.get("endpoint"), str):
                yield f"{key}[{i}].endpoint", str(item["endpoint"])


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def honoured(endpoint: Endpoint, allowed: Iterable[str]) -> bool:
    """Whether a run may call ``endpoint``: loopback, an ARC cluster endpoint of AWS over HTTPS,
    or a host allowed at run time (exact, case-insensitive)."""
    host = endpoint.host
    if not host:
        return False
    if is_loopback(host):
        return True
    if endpoint.scheme == "https" and _ARC_HOST.fullmatch(host):
        return True
    return host in {h.lower() for h in allowed}


def refused(plan: Plan, allowed: Iterable[str]) -> list[Endpoint]:
    """The plan's endpoints a run may not call."""
    allowed = list(allowed)
    return [e for e in endpoints(plan) if not honoured(e, allowed)]


def custom(plan: Plan) -> list[Endpoint]:
    """The endpoints of a plan that are not the clouds' own: what a reviewer must see first."""
    return [e for e in endpoints(plan) if not (e.scheme == "https" and _ARC_HOST.fullmatch(e.host))]
