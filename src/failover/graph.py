"""The service dependency graph: order, closure, impact and critical path (networkx).

Edges point from a dependency to its dependent (``orders-db -> checkout``): the direction in which
a failover proceeds, data before apps before traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

import networkx as nx

from failover.errors import ScenarioError
from failover.runbook import Runbook

N = TypeVar("N", bound=Hashable)


def service_graph(runbook: Runbook) -> nx.DiGraph:
    """Services as nodes (with ``tier``), an edge from each dependency to its dependent."""
    graph = nx.DiGraph()
    for name, service in runbook.services.items():
        graph.add_node(name, tier=service.tier)
    for name, service in runbook.services.items():
        graph.add_edges_from((dep, name) for dep in service.depends_on)
    return graph


def closure(graph: nx.DiGraph, services: Iterable[str]) -> set[str]:
    """The services and everything they depend on, transitively."""
    out: set[str] = set()
    for service in services:
        if service not in graph:
            raise ScenarioError(f"unknown service {service!r}")
        if service not in out:
            out.add(service)
            out |= nx.ancestors(graph, service)
    return out


def impact(graph: nx.DiGraph, service: str) -> set[str]:
    """Every service that depends on ``service``, transitively: what breaks if it moves or fails."""
    if service not in graph:
        raise ScenarioError(f"unknown service {service!r}; services: {', '.join(sorted(graph.nodes))}")
    return set(nx.descendants(graph, service))


def stable_order(graph: nx.DiGraph, rank: Mapping[str, int]) -> list[str]:
    """A topological order that, among services ready at the same time, keeps the runbook's order."""
    return list(nx.lexicographical_topological_sort(graph, key=lambda n: rank[n]))


def longest_path(
    order: Sequence[N],
    predecessors: Callable[[N], Iterable[N]],
    weight: Callable[[N], float],
) -> tuple[dict[N, float], list[N]]:
    """Earliest finish time of every node with unlimited parallelism, and one critical path.

    ``order`` must be topological. Time is the sum of node weights along the heaviest chain.
    """
    finish: dict[N, float] = {}
    via: dict[N, N | None] = {}
    for node in order:
        start, best = 0.0, None
        for pred in predecessors(node):
            if best is None or finish[pred] > start:
                start, best = finish[pred], pred
        finish[node] = start + weight(node)
        via[node] = best
    if not finish:
        return finish, []
    end: N | None = max(reversed(order), key=lambda n: finish[n])
    path: list[N] = []
    while end is not None:
        path.append(end)
        end = via[end]
    path.reverse()
    return finish, path


def service_critical_path(runbook: Runbook, weight: Callable[[str], float]) -> tuple[float, list[str]]:
    """Length and services of the heaviest dependency chain, each service weighted by ``weight``."""
    graph = service_graph(runbook)
    rank = {name: i for i, name in enumerate(runbook.services)}
    finish, path = longest_path(stable_order(graph, rank), graph.predecessors, weight)
    return (finish[path[-1]] if path else 0.0), path
