"""Provider adapters and the registry that finds them (built in, then entry points)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from failover.errors import RegistryError
from failover.providers.base import ENTRY_POINT_GROUP, Provider, Registry


def builtin_providers() -> list[Provider]:
    """The providers that ship with failover."""
    from failover.providers import aws, gcp, sim
    from failover.providers.signals import http_probe, prometheus

    return [sim.PROVIDER, aws.PROVIDER, gcp.PROVIDER, prometheus.PROVIDER, http_probe.PROVIDER]


def entry_point_providers() -> list[Provider]:
    """Third-party providers from the ``failover.providers`` entry-point group.

    An entry point names a :class:`Provider`, or a callable that returns one.
    """
    found = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
            provider = obj() if callable(obj) and not isinstance(obj, Provider) else obj
        except Exception as exc:
            raise RegistryError(
                f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP!r} failed to load: {exc}"
            ) from exc
        if not isinstance(provider, Provider):
            raise RegistryError(
                f"entry point {ep.name!r} ({ep.value}) must give a failover Provider, "
                f"found {type(provider).__name__}"
            )
        found.append(provider)
    return found


@cache
def default_registry() -> Registry:
    """Built-in providers plus every installed third-party provider."""
    return Registry([*builtin_providers(), *entry_point_providers()])


__all__ = ["builtin_providers", "default_registry", "entry_point_providers"]
