"""The HTML report as a browser draws it: Debian's Chromium, headless, lays the page out and a
script measures what it drew (bars, ticks, marks) against the same run's JSON report."""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from failover.cli import main
from failover.durations import format_duration
from tests.conftest import SIM_SHOP

PACKAGE = "chromium"  # Debian's package; `make test` installs it where it can
MEASURE = """
<script>
const all = (s, r = document) => Array.from(r.querySelectorAll(s));
const box = e => { const b = e.getBoundingClientRect(); return {x: b.x, y: b.y, w: b.width, h: b.height}; };
const charts = all('svg.gantt').map(svg => ({
  box: box(svg),
  bars: all('rect.bar', svg).map(r => ({step: r.dataset.step, start: +r.dataset.startS, ...box(r)})),
  ticks: all('text.tick', svg).map(t => ({text: t.textContent, ...box(t)})),
  labels: all('text.label', svg).map(t => ({text: t.textContent, ...box(t)})),
  pivots: all('.pivot-mark', svg).map(p => p.dataset.step),
  approvals: all('rect.approval', svg).map(p => p.dataset.step),
  rto: all('text.rto-label', svg).map(t => t.textContent),
}));
const found = {
  h1: all('h1').map(e => e.textContent),
  legs: all('section.leg h2').map(e => e.textContent),
  runs: all('table.summary tbody tr td:nth-child(2) code').map(e => e.textContent),
  outside: all('script, link, img, iframe, object, embed').length - 1,
  charts,
};
const pre = document.createElement('pre');
pre.id = 'measured';
pre.textContent = JSON.stringify(found);
document.body.appendChild(pre);
</script>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        why = f"needs a headless browser: Debian's {PACKAGE} package (apt-get install {PACKAGE})"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return found


def drawn(chromium: str, page: Path, profile: Path) -> dict[str, Any]:
    """What Chromium drew of ``page``, measured by a script run in a copy of it."""
    measured = page.with_name("measured-" + page.name)
    measured.write_text(
        page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8"
    )
    done = subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--window-size=1280,900", "--dump-dom", measured.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, flags=re.S)
    assert found is not None, f"chromium drew nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    return dict(json.loads(html.unescape(found.group(1))))


def test_a_drills_html_report_draws_each_legs_timeline(chromium: str, tmp_path: Path) -> None:
    state, page = tmp_path / "state", tmp_path / "drill.html"
    args = ["drill", str(SIM_SHOP), "--from", "east", "--to", "west", "--failback", "--auto-approve"]
    ran = CliRunner().invoke(
        main, [*args, "--sim-speed", "100", "--state", str(state), "--report", str(page)]
    )
    assert ran.exit_code == 0, ran.output
    seen = drawn(chromium, page, tmp_path / "profile")

    assert seen["h1"] == ["Drill report: sim-shop, east -> west and back"]
    assert seen["legs"] == ["Leg 1: east -> west", "Leg 2: west -> east"]
    assert seen["outside"] == 0  # self-contained: nothing fetched, nothing run
    assert len(seen["runs"]) == len(seen["charts"]) == 2
    for run_id, chart in zip(seen["runs"], seen["charts"], strict=True):
        out = CliRunner().invoke(main, ["report", run_id, "--state", str(state), "--format", "json"])
        leg = json.loads(out.output)
        timed = [s for s in leg["steps"] if s["started_s"] is not None and s["finished_s"] is not None]
        bars, svg = chart["bars"], chart["box"]
        assert [b["step"] for b in bars] == [s["id"] for s in timed]
        left = min(label["x"] for label in chart["labels"])
        for bar in bars:  # each bar is drawn, inside the chart, right of the labels
            assert bar["w"] >= 2 and bar["h"] > 0
            assert svg["x"] <= bar["x"] and bar["x"] + bar["w"] <= svg["x"] + svg["w"] + 0.5
            assert all(label["x"] + label["w"] <= bar["x"] + 0.5 for label in chart["labels"])
        assert left >= svg["x"]
        by_start = sorted(bars, key=lambda b: b["start"])
        assert all(a["x"] <= b["x"] + 0.01 for a, b in itertools.pairwise(by_start))
        ticks = chart["ticks"]
        assert len(ticks) >= 3
        assert all(re.fullmatch(r"\d\d:\d\d:\d\d(\.\d)?", t["text"]) for t in ticks)
        assert ticks[0]["text"] == leg["started_at"][11 : 11 + len(ticks[0]["text"])]  # UTC clock time
        assert all(a["x"] + a["w"] < b["x"] for a, b in itertools.pairwise(ticks))  # readable
        ran_pivots = [s["id"] for s in timed if s["pivot"]]
        assert chart["pivots"] == ran_pivots and ran_pivots
        assert sorted(chart["approvals"]) == sorted(a["step"] for a in leg["approvals"])
        assert chart["rto"] == [f"RTO {format_duration(leg['rto']['measured_s'])}"]
