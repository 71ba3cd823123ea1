"""The service dependency graph: order, closure, impact and critical path (networkx).

Edges point from a dependency to its dependent (``orders-db -> checkout``): the direction in which
a failover proceeds, data before apps before traffic.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Mapping, Sequence
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


def stable_order(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """A topological order of ``{service: its dependencies}`` (dependencies first) that, among
    services ready at the same time, keeps the mapping's order. Dependencies outside the mapping
    are ignored; the mapping must be acyclic (the runbook loader guarantees it).
    """
    rank = {name: i for i, name in enumerate(depends_on)}
    names = list(depends_on)
    waiting = dict.fromkeys(names, 0)
    dependents: dict[str, list[str]] = {name: [] for name in names}
    for name, deps in depends_on.items():
        for dep in deps:
            if dep in waiting:
                waiting[name] += 1
                dependents[dep].append(name)
    ready = [rank[n] for n in names if not waiting[n]]
    heapq.heapify(ready)
    order = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if not waiting[dependent]:
                heapq.heappush(ready, rank[dependent])
    if len(order) != len(names):
        raise ValueError("dependency cycle among: " + ", ".join(n for n in names if waiting[n]))
    return order


def dependencies(runbook: Runbook, selected: Iterable[str] | None = None) -> dict[str, Sequence[str]]:
    """``{service: depends_on}`` in runbook order, for all services or a selection."""
    keep = None if selected is None else set(selected)
    return {
        name: service.depends_on for name, service in runbook.services.items() if keep is None or name in keep
    }


def longest_path(nodes: Iterable[tuple[N, Iterable[N], float]]) -> tuple[dict[N, float], list[N]]:
    """Earliest finish time of every node with unlimited parallelism, and one critical path.

    ``nodes`` are (node, its predecessors, its duration) in topological order. Time is the sum of
    durations along the heaviest chain; on ties the path ends at the latest node.
    """
    finish: dict[N, float] = {}
    via: dict[N, N | None] = {}
    end: N | None = None
    for node, preds, weight in nodes:
        start, best = 0.0, None
        for pred in preds:
            if best is None or finish[pred] > start:
                start, best = finish[pred], pred
        done = finish[node] = start + weight
        via[node] = best
        if end is None or done >= finish[end]:
            end = node
    path: list[N] = []
    while end is not None:
        path.append(end)
        end = via[end]
    path.reverse()
    return finish, path
