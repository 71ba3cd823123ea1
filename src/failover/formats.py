"""The output formats of plans, graphs and reports: names only, so that the command line can
offer them without loading what renders them."""

from __future__ import annotations

from typing import Literal

PlanFormat = Literal["text", "markdown", "json", "dot"]
GraphFormat = Literal["text", "mermaid", "dot", "json"]
ReportFormat = Literal["markdown", "html", "json", "junit"]
PLAN_FORMATS: tuple[PlanFormat, ...] = ("text", "markdown", "json", "dot")
GRAPH_FORMATS: tuple[GraphFormat, ...] = ("text", "mermaid", "dot", "json")
REPORT_FORMATS: tuple[ReportFormat, ...] = ("markdown", "html", "json", "junit")
