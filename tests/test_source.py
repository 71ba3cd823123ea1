"""YAML with positions: the data is what PyYAML's safe loader gives, every key and value is
located where it is written (through aliases and merge keys too), and loading leaves the
garbage collector as it found it."""

from __future__ import annotations

import gc
import textwrap

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.errors import RunbookError
from failover.runbook import parse_runbook
from failover.source import parse_yaml, paused_gc
from tests.conftest import SIM_SHOP

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.dates(),
    st.binary(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(documents)
def test_the_data_is_what_the_safe_loader_gives(doc: object) -> None:
    text = yaml.safe_dump(doc)
    # repr, not ==: a NaN is never equal to itself, yet both loaders must give one
    assert repr(parse_yaml(text, "d.yaml").data) == repr(yaml.safe_load(text))


@pytest.mark.parametrize(
    "text",
    [
        "a: &x {b: 1, c: [1, 2]}\nd: *x\ne: {f: *x}\n",
        "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n",
        "a: &a {x: 1}\nb: &b {x: 2, q: 2}\nm:\n  <<: [*a, *b]\n  w: 3\n",
        "m: {<<: {x: 1}, w: 2}\n",
        "'<<': 1\n=: 2\n",
        "s: !!set {a, b}\no: !!omap [a: 1, b: 2]\nx: !!binary aGVsbG8=\n",
        "1: a\ntrue: b\nnull: c\nt: 2020-01-02\nh: 0x1f\ns: 1:30\nf: .inf\n",
        "a: [&k key, *k]\n? *k\n: 2\n",
        "[1, {a: b}]\n",
        "plain\n",
    ],
)
def test_anchors_merges_tags_and_odd_keys_load_as_pyyaml_loads_them(text: str) -> None:
    assert parse_yaml(text, "d.yaml").data == yaml.safe_load(text)


def test_what_lies_under_an_alias_is_located_where_its_anchor_wrote_it() -> None:
    text = textwrap.dedent(
        """\
        defaults: &defaults
          timeout: 5m
          retries: {count: 3}
        one: *defaults
        two:
          nested: *defaults
        """
    )
    source = parse_yaml(text, "d.yaml")
    assert source.locate(("one",)) == (1, 11)  # the anchored mapping itself
    assert source.locate(("one",), key=True) == (4, 1)  # its key where the alias is
    assert source.locate(("one", "timeout")) == (2, 12)
    assert source.locate(("two", "nested", "retries", "count")) == (3, 20)
    assert source.locate(("two", "nested", "retries", "count"), key=True) == (3, 13)
    assert source.locate(("two", "nested", "nope", 3)) == (1, 11)  # the nearest located parent


def test_a_merged_key_is_located_where_it_is_written_and_may_be_overridden() -> None:
    text = textwrap.dedent(
        """\
        base: &base
          timeout: 5m
          with: {count: 3}
        step:
          <<: *base
          timeout: 10m
        """
    )
    source = parse_yaml(text, "d.yaml")  # an override is no duplicate key
    assert source.data == {
        "base": {"timeout": "5m", "with": {"count": 3}},
        "step": {"timeout": "10m", "with": {"count": 3}},
    }
    assert source.locate(("step", "timeout")) == (6, 12)
    assert source.locate(("step", "with")) == (3, 9)
    assert source.locate(("step", "with", "count")) == (3, 17)


def test_a_key_written_twice_in_one_mapping_is_reported_once_where_it_is_written() -> None:
    text = "a: &a {b: 1, b: 2}\nc: *a\nd: *a\n"
    with pytest.raises(RunbookError) as raised:
        parse_yaml(text, "d.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "d.yaml:1:14: a.b: duplicate key: each key may appear once in a mapping"
    ]


def test_a_runbook_error_inside_reused_yaml_points_at_the_text_that_holds_it() -> None:
    anchored = "with: &w {duration: forever, target: catalog-service}"
    text = (
        SIM_SHOP.read_text(encoding="utf-8")
        .replace("with: {duration: 45s, target: catalog-service}", anchored)
        .replace('with: {duration: 90s, target: "${to.vars.search_mig}"}', "with: *w")
    )
    with pytest.raises(RunbookError) as raised:
        parse_runbook(text, "r.yaml")
    (line,) = [i + 1 for i, row in enumerate(text.splitlines()) if anchored in row]
    column = text.splitlines()[line - 1].index("forever") + 1
    located = {p.path: (p.line, p.column) for p in raised.value.problems}
    assert located["services.catalog.steps[0].with.duration"] == (line, column)
    assert located["services.search.steps[0].with.duration"] == (line, column)


def test_loading_leaves_the_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    parse_yaml("a: 1\n", "d.yaml")
    with pytest.raises(RunbookError):
        parse_yaml("a: [\n", "d.yaml")
    with pytest.raises(RunbookError):
        parse_runbook("version: 1\n", "r.yaml")
    assert gc.isenabled()
    with paused_gc():
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # off before, off after
    finally:
        gc.enable()
