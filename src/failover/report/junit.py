"""The report as JUnit XML, for CI systems: each preflight check and step a test case."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET


def _suite(d: dict[str, Any]) -> ET.Element:
    cases = []
    for c in d["preflight"]:
        case = ET.Element("testcase", classname=f"{d['runbook']}.preflight", name=c["id"], time="0")
        if c["skipped"] or c["ok"] is None:
            ET.SubElement(case, "skipped", message=c["reason"] or "not run")
        elif not c["ok"]:
            what = f"{c['message']} (observed {c['observed']!r})"
            ET.SubElement(case, "failure", message=("best-effort: " if c["best_effort"] else "") + what)
        cases.append(case)
    for s in d["steps"]:
        case = ET.Element(
            "testcase",
            classname=f"{d['runbook']}.{s['service']}",
            name=s["id"],
            time=str(s["duration_s"] or 0),
        )
        if s["state"] == "failed":
            what = s["error"] or "failed"
            ET.SubElement(case, "failure", message=("best-effort: " if s["best_effort"] else "") + what)
        elif s["state"] in ("pending", "skipped"):
            ET.SubElement(case, "skipped", message="skipped" if s["state"] == "skipped" else "not run")
        cases.append(case)
    suite = ET.Element(
        "testsuite",
        name=f"failover {d['runbook']} {d['scenario']['from']}->{d['scenario']['to']}",
        tests=str(len(cases)),
        failures=str(sum(1 for c in cases if c.find("failure") is not None)),
        skipped=str(sum(1 for c in cases if c.find("skipped") is not None)),
        time=str(d["rto"]["measured_s"] or 0),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", d["run_id"]),
        ("plan_fingerprint", d["fingerprint"]),
        ("journal_events", str(d["journal"]["events"])),
        ("journal_head", d["journal"]["head"]),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    suite.extend(cases)
    return suite


def junit(legs: list[dict[str, Any]]) -> str:
    """A test suite per run (a drill that fails back has two)."""
    root = ET.Element("testsuites")
    root.extend(_suite(d) for d in legs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
