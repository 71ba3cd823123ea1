"""Run reports: what happened and when, the measured RTO per service against target and
prediction, the achieved RPO, approvals and their waits.

Built from the plan and the journal's events only, so a report can be made at any time after (or
during) a run: Markdown with a Mermaid Gantt chart, a self-contained HTML page with an SVG Gantt
chart, JSON, and JUnit XML for CI systems. A drill's legs (the failover and the way back) make
one report with a summary of both. Every string in a report is redacted: registered secrets, the
values under secret-looking keys of the plan's parameters (where a description or an error quotes
them), and whatever looks like a credential.
"""

from __future__ import annotations

import json
from typing import Any

from failover.formats import REPORT_FORMATS as REPORT_FORMATS
from failover.formats import ReportFormat
from failover.redact import redact
from failover.report.data import REPORT_VERSION as REPORT_VERSION
from failover.report.data import RTO_DEFINITION as RTO_DEFINITION
from failover.report.data import report_data as report_data
from failover.report.drill import drill_data as drill_data


def lag_checks() -> frozenset[str]:
    """The registered checks whose observation is a replica's lag (a report's achieved RPO)."""
    from failover.providers import default_registry

    return frozenset(c.name for c in default_registry().checks() if c.measures_lag)


def render_report(data: dict[str, Any], fmt: ReportFormat) -> str:
    """A run's report (:func:`report_data`) or a drill's (:func:`drill_data`) in one of
    :data:`REPORT_FORMATS`, every string redacted."""
    data = redact(data)
    legs = data["legs"] if data.get("kind") == "drill" else [data]
    if fmt == "json":
        return json.dumps(data, indent=2, default=str) + "\n"
    if fmt == "junit":
        from failover.report.junit import junit

        return junit(legs)
    if fmt == "html":
        from failover.report.html import html

        return html(data)
    from failover.report.markdown import drill_markdown, leg_markdown

    return drill_markdown(data) if data.get("kind") == "drill" else leg_markdown(data)
