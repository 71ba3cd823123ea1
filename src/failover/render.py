"""Plans and service graphs for people and tools: text (rich), Markdown with Mermaid, DOT, JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from failover.durations import format_duration
from failover.endpoints import custom as custom_endpoints
from failover.formats import GRAPH_FORMATS as GRAPH_FORMATS
from failover.formats import PLAN_FORMATS as PLAN_FORMATS
from failover.formats import GraphFormat, PlanFormat
from failover.graph import dependencies, impact, service_graph, stable_order
from failover.plan import Plan, PlannedCheck, PlannedStep
from failover.redact import redact, secret_values_in
from failover.runbook import Runbook

if TYPE_CHECKING:
    import networkx as nx


def render_plan(plan: Plan, fmt: PlanFormat = "text", *, width: int = 120) -> str:
    """The plan in one of :data:`PLAN_FORMATS`, its secrets redacted (see :func:`shown`)."""
    if fmt == "json":
        return plan_json(plan)
    if fmt == "markdown":
        return plan_markdown(plan)
    if fmt == "dot":
        return plan_dot(plan)
    return to_plain_text(plan_rich(plan), width=width)


# --- what a rendering may show ---------------------------------------------------------------------


def plan_secrets(plan: Plan) -> list[str]:
    """The values under secret-looking keys of the plan's parameters: redacted wherever they
    appear in what is shown of the plan (a description that quotes one, another step's note)."""
    return secret_values_in([c.params for c in plan.preflight] + [s.params for s in plan.steps])


def shown(plan: Plan) -> Plan:
    """The plan as renderings show it: parameters, descriptions, notes, reasons, warnings and
    sites redacted (values under secret-looking keys, registered secrets and whatever looks like
    a credential), references to secrets (``${secret:...}``, ``${env:...}``) as written. It keeps
    the fingerprint of the plan it shows (it is not a plan to run: its content no longer hashes
    to it)."""
    known = plan_secrets(plan)

    def item(it: Any) -> Any:
        safe = {
            "params": redact(it.params, known=known),
            "description": redact(it.description, known=known),
            "skip_reason": redact(it.skip_reason, known=known),
        }
        if isinstance(it, PlannedStep):
            safe["note"] = redact(it.note, known=known)
        changed = {k: v for k, v in safe.items() if v != getattr(it, k)}
        return it._replace(**changed) if changed else it

    preflight: tuple[PlannedCheck, ...] = tuple(item(c) for c in plan.preflight)
    steps: tuple[PlannedStep, ...] = tuple(item(s) for s in plan.steps)
    sites = tuple(
        site._replace(aws=redact(site.aws, known=known), gcp=redact(site.gcp, known=known))
        for site in plan.sites
    )
    warnings = tuple(redact(w, known=known) for w in plan.warnings)
    safe = replace(plan, preflight=preflight, steps=steps, sites=sites, warnings=warnings)
    object.__setattr__(safe, "fingerprint", plan.fingerprint)  # the plan it shows
    return safe


def plan_json(plan: Plan) -> str:
    """The plan as JSON for reviewers and tools: the plan file's layout and fields, its secrets
    redacted. A plan with nothing to redact is shown exactly as its plan file; one with
    something redacted is not a plan file (its content no longer hashes to its fingerprint, so
    ``apply`` refuses it)."""
    content = plan.content()
    safe = redact(content, known=plan_secrets(plan))
    if json.dumps(safe, sort_keys=True) == json.dumps(content, sort_keys=True):
        return plan.to_json()
    doc = {"version": plan.version, "fingerprint": plan.fingerprint, **safe}
    lines = []
    for key, value in doc.items():  # one step or check per line, as in the plan file
        head = f"  {json.dumps(key)}: "
        if isinstance(value, list | tuple) and value:
            items = ",\n".join("    " + json.dumps(v, ensure_ascii=False) for v in value)
            lines.append(f"{head}[\n{items}\n  ]")
        else:
            lines.append(head + json.dumps(value, ensure_ascii=False))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def to_plain_text(renderable: object, *, width: int = 120) -> str:
    """Render a rich renderable without colour, for files and pipes."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, no_color=True).print(renderable)
    return buffer.getvalue()


def _flags(step: PlannedStep) -> str:
    marks = []
    if step.pivot:
        marks.append("PIVOT")
    elif step.approval:
        marks.append("approval")
    if step.kind == "verify":
        marks.append("verify")
    if step.skipped:
        marks.append("skipped")
    if step.best_effort:
        marks.append("best-effort")
    if step.kind == "action" and not step.reversible and not step.pivot:
        marks.append("no rollback")
    return ", ".join(marks)


def _headline(plan: Plan) -> list[str]:
    s = plan.scenario
    scope = ", ".join(s.scope) if s.scope else "all services"
    target = f" (target {format_duration(plan.rto_target_s)})" if plan.rto_target_s is not None else ""
    return [
        f"Failover of {plan.runbook.name}: {s.from_} -> {s.to}, {s.mode} mode, {scope}",
        f"{len(plan.steps)} steps, {len(plan.preflight)} preflight checks, "
        f"predicted RTO {format_duration(plan.predicted_rto_s)}{target}"
        + _done(plan.predicted_done_s, plan.predicted_rto_s),
        f"fingerprint {plan.fingerprint}",
    ]


def _done(done: float, cutover: float) -> str:
    """When the last step is done, if later than the last cutover (the drains after it)."""
    return f", all done at {format_duration(done)}" if done > cutover else ""


def plan_summary(plan: Plan, written: str | None = None) -> str:
    """A few lines for a terminal: what moves, how many steps, the pivots and approvals, the
    predicted RTO, warnings, and where the whole plan was written."""
    safe = shown(plan)
    pivots = [s.id for s in safe.steps if s.pivot and not s.skipped]
    asks = [s.id for s in safe.steps if s.approval and not s.pivot and not s.skipped]
    lines = [*endpoint_banner(plan), *_headline(safe)[:2]]
    lines.append(f"pivots (irreversible, each approved by its id): {', '.join(pivots) or 'none'}")
    lines.append(f"approval steps: {', '.join(asks) or 'none'}")
    lines += [f"! {w}" for w in safe.warnings]
    if written:
        lines.append(f"the whole plan: {written}")
    return "\n".join(lines) + "\n"


def endpoint_banner(plan: Plan) -> list[str]:
    """What a reviewer must read first about a plan that names endpoints other than the clouds'
    own: where credentials would go, and that a run refuses them unless allowed."""
    found = custom_endpoints(plan)
    if not found:
        return []
    return [
        "CUSTOM ENDPOINTS: this plan sends the run's cloud credentials to "
        + "; ".join(f"{e.where} = {redact(e.url)}" for e in found)
        + ". A run refuses them unless they are loopback or allowed with --allow-endpoint HOST."
    ]


def plan_rich(plan: Plan) -> Group:
    """The plan as rich renderables for a terminal, its secrets redacted."""
    banner = endpoint_banner(plan)
    plan = shown(plan)
    # every text as Text: rich would read "[redacted]" as markup and ":secret:" (in an ARN) as an emoji
    parts: list[object] = [Text(line, style="bold red") for line in banner]
    parts.append(Panel(Text("\n".join(_headline(plan))), title="failover plan", expand=False))
    if plan.warnings:
        parts.append(Text("\n".join(f"! {w}" for w in plan.warnings), style="bold yellow"))
    checks = Table(title="Preflight checks (all run before any change)", title_justify="left")
    for column in ("id", "site", "check"):
        checks.add_column(column)
    for check in plan.preflight:
        note = f" [skipped: {check.skip_reason}]" if check.skipped else ""
        checks.add_row(Text(check.id), Text(check.site), Text(check.description + note))
    if plan.preflight:
        parts.append(checks)
    steps = Table(title="Steps, in order", title_justify="left")
    for column in ("#", "step", "site", "what", "after", "est.", "flags"):
        steps.add_column(column, overflow="fold")
    critical = set(plan.critical_path)
    for n, step in enumerate(plan.steps, 1):
        what = step.description + (f" [{step.skip_reason}]" if step.skip_reason else "")
        if step.note:
            what += f"\n{step.note}"
        style = "bold red" if step.pivot else ("dim" if step.skipped else None)
        mark = "*" if step.id in critical else ""
        steps.add_row(
            f"{n}{mark}",
            Text(step.id),
            Text(step.site),
            Text(what),
            Text(", ".join(step.after)),
            format_duration(step.estimate_s),
            ", ".join(f for f in (_flags(step), "cutover" if step.cutover else "") if f),
            style=style,
        )
    parts.append(steps)
    parts.append(Text("* on the critical path", style="dim"))
    parts.append(Text(_rollback_sentence(plan)))
    return Group(*parts)  # type: ignore[arg-type]


def _rollback_sentence(plan: Plan) -> str:
    pivots = [s.id for s in plan.steps if s.pivot and not s.skipped]
    order = " -> ".join(plan.rollback) if plan.rollback else "nothing to roll back"
    text = f"Rollback order if a step fails before any pivot: {order}."
    if pivots:
        text += (
            f" Once {', '.join(pivots)} has succeeded there is no rollback: "
            "failures retry forward, then halt for a person."
        )
    return text


# --- Markdown + Mermaid ------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _mermaid_label(text: str) -> str:
    for raw, code in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return text


def plan_mermaid(plan: Plan) -> str:
    """A Mermaid flowchart of the step DAG, grouped by service; pivots and approvals marked;
    its secrets redacted."""
    return _mermaid(shown(plan))


def _mermaid(plan: Plan) -> str:
    ids = {step.id: f"s{i}" for i, step in enumerate(plan.steps)}
    lines = ["flowchart TD"]
    by_service: dict[str, list[PlannedStep]] = {}
    for step in plan.steps:
        by_service.setdefault(step.service, []).append(step)
    for i, (service, steps) in enumerate(by_service.items()):
        lines.append(f'  subgraph g{i} ["{_mermaid_label(service)}"]')
        for step in steps:
            local = step.id.removeprefix(f"{service}.")
            label = _mermaid_label(f"{local}: {step.description}")
            if step.pivot:
                label = "PIVOT " + label
            elif step.approval:
                label = "APPROVAL " + label
            if step.skipped:
                label += " (skipped)"
            shape = "{{%s}}" if step.pivot else ("([%s])" if step.kind == "verify" else "[%s]")
            lines.append(f"    {ids[step.id]}" + shape % f'"{label}"')
        lines.append("  end")
    for step in plan.steps:
        lines += [f"  {ids[dep]} --> {ids[step.id]}" for dep in step.after]
    lines.append("  classDef pivot fill:#fde2e2,stroke:#c00,stroke-width:2px")
    lines.append("  classDef approval fill:#fff4cc,stroke:#b80")
    lines.append("  classDef skipped stroke-dasharray:4 4,color:#888")
    for cls, members in (
        ("pivot", [s for s in plan.steps if s.pivot]),
        ("approval", [s for s in plan.steps if s.approval and not s.pivot]),
        ("skipped", [s for s in plan.steps if s.skipped]),
    ):
        if members:
            lines.append(f"  class {','.join(ids[s.id] for s in members)} {cls}")
    return "\n".join(lines) + "\n"


def plan_markdown(plan: Plan) -> str:
    """The plan for a pull request: summary, diagram, every step as a sentence, rollback; its
    secrets redacted."""
    banner = endpoint_banner(plan)
    plan = shown(plan)
    s = plan.scenario
    out = ["> [!CAUTION]", *(f"> {line}" for line in banner), ""] if banner else []
    out += [f"# Failover plan: {plan.runbook.name}, {s.from_} -> {s.to} ({s.mode})", ""]
    out += [f"- {line}" for line in _headline(plan)[1:]]
    out += [f"- runbook sha256 `{plan.runbook.sha256}`", ""]
    if plan.warnings:
        out += ["> [!WARNING]", *(f"> {w}  " for w in plan.warnings), ""]
    out += ["## Step graph", "", "```mermaid", _mermaid(plan).rstrip(), "```", ""]
    out += ["## Preflight checks", ""]
    if plan.preflight:
        out += [
            "All of these run, read-only, before the first change. If any fails, nothing changes.",
            "",
        ]
        out += ["| id | site | check |", "|---|---|---|"]
        for c in plan.preflight:
            note = f" *(skipped: {c.skip_reason})*" if c.skipped else ""
            out.append(f"| `{c.id}` | {c.site} | {_md_cell(c.description)}{note} |")
    else:
        out.append("None.")
    out += ["", "## Steps", ""]
    critical = set(plan.critical_path)
    for n, step in enumerate(plan.steps, 1):
        flags = _flags(step)
        after = f" after {', '.join(f'`{a}`' for a in step.after)}" if step.after else ""
        crit = " (critical path)" if step.id in critical else ""
        out.append(
            f"{n}. **`{step.id}`** at {step.site}: {step.description}."
            f" Estimate {format_duration(step.estimate_s)}{after}{crit}."
            + (f" **{flags}**" if flags else "")
            + (" Cutover: the service's RTO ends here." if step.cutover else "")
            + (f" *{step.skip_reason}.*" if step.skip_reason else "")
        )
        if step.note:
            out.append(f"   > {step.note}")
    out += [
        "",
        "## Services",
        "",
        "The RTO of a service ends at its cutover: the steps marked `cutover`, else its last actions "
        "on the target site.",
        "",
        "| service | tier | cutover (predicted) | done at | RTO target | RPO target |",
    ]
    out.append("|---|---|---|---|---|---|")
    for svc in plan.services:
        rto = format_duration(svc.rto_target_s) if svc.rto_target_s is not None else "-"
        rpo = format_duration(svc.rpo_target_s) if svc.rpo_target_s is not None else "-"
        late = " (late)" if svc.rto_target_s is not None and svc.predicted_s > svc.rto_target_s else ""
        out.append(
            f"| {svc.name} | {svc.tier or '-'} | {format_duration(svc.predicted_s)}{late} "
            f"| {format_duration(svc.predicted_done_s)} | {rto} | {rpo} |"
        )
    out += ["", "## Rollback", "", _rollback_sentence(plan), ""]
    irreversible = [st for st in plan.steps if st.kind == "action" and not st.reversible]
    if irreversible:
        out += ["Irreversible steps:", ""]
        out += [f"- `{st.id}`" + (" (pivot)" if st.pivot else "") for st in irreversible]
        out.append("")
    out += [f"Critical path: {' -> '.join(f'`{c}`' for c in plan.critical_path)}.", ""]
    return "\n".join(out)


# --- DOT ---------------------------------------------------------------------------------------


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def plan_dot(plan: Plan) -> str:
    """The step DAG for Graphviz, one cluster per service, its secrets redacted."""
    plan = shown(plan)
    lines = ["digraph plan {", "  rankdir=TB;", "  node [shape=box, fontsize=10];"]
    by_service: dict[str, list[PlannedStep]] = {}
    for step in plan.steps:
        by_service.setdefault(step.service, []).append(step)
    for i, (service, steps) in enumerate(by_service.items()):
        lines.append(f"  subgraph cluster_{i} {{ label={_dot_quote(service)};")
        for step in steps:
            attrs = [f"label={_dot_quote(step.id + chr(10) + step.description)}"]
            if step.pivot:
                attrs += ["shape=hexagon", "color=red", "penwidth=2"]
            elif step.approval:
                attrs.append("color=orange")
            if step.kind == "verify":
                attrs.append("shape=ellipse")
            if step.skipped:
                attrs.append("style=dashed")
            lines.append(f"    {_dot_quote(step.id)} [{', '.join(attrs)}];")
        lines.append("  }")
    for step in plan.steps:
        lines += [f"  {_dot_quote(dep)} -> {_dot_quote(step.id)};" for dep in step.after]
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- service graph -----------------------------------------------------------------------------


def render_graph(runbook: Runbook, fmt: GraphFormat = "text", *, impact_of: str | None = None) -> str:
    """The service dependency graph; with ``impact_of``, what depends on that service."""
    graph = service_graph(runbook)
    affected = impact(graph, impact_of) if impact_of else set()
    order = stable_order(dependencies(runbook))
    if fmt == "json":
        doc: dict[str, object] = {
            "runbook": runbook.name,
            "services": [
                {
                    "name": n,
                    "tier": runbook.services[n].tier,
                    "depends_on": list(runbook.services[n].depends_on),
                    "dependents": sorted(graph.successors(n)),
                }
                for n in order
            ],
            "order": order,
        }
        if impact_of:
            doc["impact"] = {"service": impact_of, "affected": sorted(affected)}
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "mermaid":
        return _graph_mermaid(graph, order, impact_of, affected)
    if fmt == "dot":
        return _graph_dot(graph, order, impact_of, affected)
    return _graph_text(runbook, graph, order, impact_of, affected)


def _graph_text(
    runbook: Runbook,
    graph: nx.DiGraph,
    order: Sequence[str],
    impact_of: str | None,
    affected: set[str],
) -> str:
    lines = [f"Services of {runbook.name}, in failover order (dependencies first):"]
    for name in order:
        deps = sorted(graph.predecessors(name))
        tier = runbook.services[name].tier
        mark = " <- affected" if name in affected else (" <- impact of" if name == impact_of else "")
        lines.append(
            f"  {name}"
            + (f" [{tier}]" if tier else "")
            + (f"  needs: {', '.join(deps)}" if deps else "")
            + mark
        )
    if impact_of:
        lines.append("")
        lines.append(_impact_sentence(impact_of, affected))
    return "\n".join(lines) + "\n"


def _impact_sentence(service: str, affected: Iterable[str]) -> str:
    names = sorted(affected)
    if not names:
        return f"Nothing depends on {service}."
    return f"If {service} fails or fails over, {len(names)} service(s) are affected: {', '.join(names)}."


def _graph_mermaid(graph: nx.DiGraph, order: Sequence[str], impact_of: str | None, affected: set[str]) -> str:
    ids = {name: f"n{i}" for i, name in enumerate(order)}
    lines = ["flowchart LR"]
    for name in order:
        tier = graph.nodes[name].get("tier")
        label = _mermaid_label(name + (f" ({tier})" if tier else ""))
        lines.append(f'  {ids[name]}["{label}"]')
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in graph.edges]
    if impact_of:
        lines.append("  classDef source fill:#fde2e2,stroke:#c00")
        lines.append("  classDef affected fill:#fff4cc,stroke:#b80")
        lines.append(f"  class {ids[impact_of]} source")
        if affected:
            lines.append(f"  class {','.join(ids[a] for a in sorted(affected))} affected")
    return "\n".join(lines) + "\n"


def _graph_dot(graph: nx.DiGraph, order: Sequence[str], impact_of: str | None, affected: set[str]) -> str:
    lines = ["digraph services {", "  rankdir=LR;", "  node [shape=box];"]
    for name in order:
        tier = graph.nodes[name].get("tier")
        attrs = [f"label={_dot_quote(name + (chr(10) + tier if tier else ''))}"]
        if name == impact_of:
            attrs += ["color=red", "penwidth=2"]
        elif name in affected:
            attrs.append("color=orange")
        lines.append(f"  {_dot_quote(name)} [{', '.join(attrs)}];")
    lines += [f"  {_dot_quote(a)} -> {_dot_quote(b)};" for a, b in graph.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"
