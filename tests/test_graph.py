"""Cycles of a dependency graph: the ones networkx finds, without networkx."""

from __future__ import annotations

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.graph import cycles

NAMES = [f"n{i}" for i in range(8)]

graphs = st.dictionaries(
    st.sampled_from(NAMES),
    st.lists(st.sampled_from([*NAMES, "outside"]), max_size=4),
    max_size=len(NAMES),
)


def networkx_cycles(successors: dict[str, list[str]]) -> list[list[str]]:
    """What the validator reported before: one cycle per component, by networkx's find_cycle."""
    graph = nx.DiGraph()
    graph.add_nodes_from(successors)
    for node, nexts in successors.items():
        graph.add_edges_from((node, n) for n in nexts if n in successors)
    found = []
    for component in nx.strongly_connected_components(graph):
        nodes = sorted(component)
        if len(nodes) == 1 and not graph.has_edge(nodes[0], nodes[0]):
            continue
        cycle = [u for u, _ in nx.find_cycle(graph.subgraph(nodes), source=nodes[0])]
        start = cycle.index(min(cycle))
        found.append(cycle[start:] + cycle[:start])
    return sorted(found)


@settings(max_examples=300)
@given(graphs)
def test_cycles_are_those_networkx_finds(successors: dict[str, list[str]]) -> None:
    assert cycles(successors) == networkx_cycles(successors)


def test_cycles_of_a_long_chain_need_no_recursion() -> None:
    chain = {f"s{i:05d}": [f"s{i + 1:05d}"] for i in range(20_000)}
    assert cycles(chain) == []
    chain["s20000"] = ["s00000"]
    (cycle,) = cycles(chain)
    assert len(cycle) == 20_001 and cycle[0] == "s00000"


def test_a_self_dependency_is_a_cycle_of_one() -> None:
    assert cycles({"a": ["a"], "b": ["a"]}) == [["a"]]
