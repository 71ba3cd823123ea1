"""The service dependency graph: order, cycles, closure, impact and critical path.

Edges point from a dependency to its dependent (``orders-db -> checkout``): the direction in which
a failover proceeds, data before apps before traffic. Order, cycles and the critical path are
computed here; the graph as a whole (closure, impact, the ``graph`` command) is a networkx graph,
imported when one is first made.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from failover.errors import ScenarioError

if TYPE_CHECKING:
    import networkx as nx

    from failover.runbook import Runbook

N = TypeVar("N", bound=Hashable)


def service_graph(runbook: Runbook) -> nx.DiGraph:
    """Services as nodes (with ``tier``), an edge from each dependency to its dependent."""
    import networkx as nx

    graph = nx.DiGraph()
    for name, service in runbook.services.items():
        graph.add_node(name, tier=service.tier)
    for name, service in runbook.services.items():
        graph.add_edges_from((dep, name) for dep in service.depends_on)
    return graph


def closure(graph: nx.DiGraph, services: Iterable[str]) -> set[str]:
    """The services and everything they depend on, transitively."""
    import networkx as nx

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
    import networkx as nx

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


def cycles(successors: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle of each strongly connected component that has one, sorted, each starting at its
    least node: the first cycle a depth-first search from that node meets, following each node's
    successors in order. Successors that are not keys of ``successors`` are ignored."""
    found: list[list[str]] = []
    if not any(successors.values()):  # no edges (steps in the order written): no cycle
        return found
    for component in _components(successors):
        start = min(component)
        if len(component) == 1 and start not in successors[start]:
            continue
        cycle = _first_cycle(start, component, successors)
        least = cycle.index(min(cycle))
        found.append(cycle[least:] + cycle[:least])
    return sorted(found)


def _components(successors: Mapping[str, Sequence[str]]) -> list[set[str]]:
    """The strongly connected components (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in successors:
        if root in index:
            continue
        work = [(root, iter(successors[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            for nxt in todo:
                if nxt not in successors:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(successors[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    found.append(component)
    return found


def _first_cycle(start: str, component: set[str], successors: Mapping[str, Sequence[str]]) -> list[str]:
    """The first cycle a depth-first search from ``start`` inside ``component`` closes."""
    path, at, visited = [start], {start: 0}, {start}
    work = [iter(successors[start])]
    while work:
        for nxt in work[-1]:
            if nxt not in component:
                continue
            if nxt in at:
                return path[at[nxt] :]
            if nxt not in visited:
                visited.add(nxt)
                at[nxt] = len(path)
                path.append(nxt)
                work.append(iter(successors[nxt]))
                break
        else:
            work.pop()
            del at[path.pop()]
    raise ValueError(f"no cycle through {start!r}")  # a component of more than one node has one


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
