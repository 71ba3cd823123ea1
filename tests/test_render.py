"""Renderings for reviewers (Markdown + Mermaid), terminals (text), and tools (DOT, JSON)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from failover.plan import Plan
from failover.planner import make_plan
from failover.render import plan_mermaid, render_graph, render_plan
from failover.runbook import Runbook
from tests.conftest import ROOT


def shop_plan(sim_shop: Runbook) -> Plan:
    return make_plan(sim_shop, from_="east", to="west")


def test_markdown_has_every_step_as_a_sentence_and_a_mermaid_diagram(sim_shop: Runbook) -> None:
    plan = shop_plan(sim_shop)
    md = render_plan(plan, "markdown")
    assert "```mermaid\nflowchart TD" in md
    for step in plan.steps:
        assert f"**`{step.id}`** at {step.site}: {step.description}." in md
    assert "predicted RTO 4m55s (target 15m)" in md
    assert "**PIVOT**" in md
    assert "Once orders-db.promote has succeeded there is no rollback" in md
    assert "Card traffic moves to the standby processor endpoint." in md
    for check in plan.preflight:
        assert f"`{check.id}`" in md


def test_mermaid_marks_pivots_and_approvals_and_draws_every_edge(sim_shop: Runbook) -> None:
    plan = shop_plan(sim_shop)
    mermaid = plan_mermaid(plan)
    edges = re.findall(r"^  (s\d+) --> (s\d+)$", mermaid, flags=re.M)
    assert len(edges) == sum(len(s.after) for s in plan.steps)
    pivot_index = [s.id for s in plan.steps].index("orders-db.promote")
    assert f"s{pivot_index}{{{{" in mermaid  # hexagon shape
    assert f"class s{pivot_index} pivot" in mermaid
    assert "APPROVAL shift-traffic" in mermaid
    assert '"' not in "".join(re.findall(r'\["(.*)"\]', mermaid))


def test_dot_is_a_digraph_with_every_step_and_edge(sim_shop: Runbook) -> None:
    plan = shop_plan(sim_shop)
    dot = render_plan(plan, "dot")
    assert dot.startswith("digraph plan {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == sum(len(s.after) for s in plan.steps)
    assert '"orders-db.promote" [label=' in dot and "shape=hexagon" in dot


def test_text_lists_steps_in_order_with_flags(sim_shop: Runbook) -> None:
    plan = shop_plan(sim_shop)
    text = render_plan(plan, "text", width=200)
    positions = [text.index(s.id) for s in plan.steps]
    assert positions == sorted(positions)
    assert "PIVOT" in text and "approval" in text and "fingerprint " + plan.fingerprint in text


def test_json_render_is_the_plan_file(sim_shop: Runbook) -> None:
    plan = shop_plan(sim_shop)
    assert Plan.from_json(render_plan(plan, "json")) == plan


def test_graph_impact_names_every_transitive_dependent(sim_shop: Runbook) -> None:
    doc = json.loads(render_graph(sim_shop, "json", impact_of="checkout"))
    assert doc["impact"]["affected"] == ["edge-dns", "payments"]
    assert doc["order"].index("orders-db") < doc["order"].index("checkout")
    text = render_graph(sim_shop, "text", impact_of="checkout")
    assert "2 service(s) are affected: edge-dns, payments" in text
    mermaid = render_graph(sim_shop, "mermaid", impact_of="checkout")
    assert mermaid.startswith("flowchart LR") and "class" in mermaid
    assert render_graph(sim_shop, "dot").count(" -> ") == sum(
        len(s.depends_on) for s in sim_shop.services.values()
    )


def test_a_plan_summary_names_the_pivots_and_where_the_whole_plan_went(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from failover.cli import main

    out = tmp_path / "shop-plan.md"
    args = ["plan", str(ROOT / "runbooks" / "shop.yaml"), "--from", "east", "--to", "west"]
    result = CliRunner().invoke(main, [*args, "--format", "markdown", "-o", str(out), "--summary"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) < 12  # not the 110-line table
    assert (
        "pivots (irreversible, each approved by its id): orders-db.switchover, inventory-db.switchover"
        in lines
    )
    assert f"the whole plan: {out}" in lines and out.read_text().startswith("# Failover plan: shop")
    assert CliRunner().invoke(main, [*args, "--summary"]).exit_code == 2  # where would it be?
