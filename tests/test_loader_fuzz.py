"""Whatever a user feeds the loader, the answer is a Runbook or a RunbookError, never a traceback."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.errors import RunbookError
from failover.runbook import Runbook, parse_runbook
from tests.conftest import SIM_SHOP

SHOP_TEXT = SIM_SHOP.read_text(encoding="utf-8")
SHOP_DATA = yaml.safe_load(SHOP_TEXT)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["${to}", "${from}", "${to.vars.asg}", "${nope}", "5m", "sim.step", "east"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)


def _load(text: str) -> None:
    try:
        result = parse_runbook(text, "fuzz.yaml")
    except RunbookError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1
            assert problem.column >= 1
            assert problem.message
    else:
        assert isinstance(result, Runbook)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_gives_a_runbook_or_a_runbook_error(text: str) -> None:
    _load(text)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_yaml_document_gives_a_runbook_or_a_runbook_error(doc: object) -> None:
    _load(yaml.safe_dump(doc))


def _paths(node: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


SHOP_PATHS = _paths(SHOP_DATA)[1:]


def _mutate(doc: object, path: tuple[object, ...], value: object, delete: bool) -> object:
    import copy

    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]  # type: ignore[index]
    if delete:
        del parent[path[-1]]  # type: ignore[attr-defined]
    else:
        parent[path[-1]] = value  # type: ignore[index]
    return doc


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SHOP_PATHS), documents, st.booleans())
def test_mutated_example_runbook_gives_a_runbook_or_a_runbook_error(
    path: tuple[object, ...], value: object, delete: bool
) -> None:
    _load(yaml.safe_dump(_mutate(SHOP_DATA, path, value, delete)))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(SHOP_TEXT) - 1), st.text(max_size=3))
def test_byte_level_edits_of_example_give_a_runbook_or_a_runbook_error(at: int, insert: str) -> None:
    _load(SHOP_TEXT[:at] + insert + SHOP_TEXT[at + 1 :])
