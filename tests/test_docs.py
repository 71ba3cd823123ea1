"""The README and docs say what the code does: their commands run, and the CLI reference is the
real --help. ``make docs`` rewrites docs/cli.md from the commands."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from failover.cli import main
from tests.conftest import ROOT

CLI_DOC = ROOT / "docs" / "cli.md"
INTRO = """\
# CLI reference

Generated from the commands' own `--help` (`make docs`); a test keeps it in step.

Exit codes, for every command:

| code | meaning |
|---|---|
| 0 | success (a run with best-effort failures too, unless `--strict`; they are listed) |
| 1 | a step failed (after rollback or halt); with `--strict`, a best-effort check or step failed |
| 2 | bad input: an invalid runbook or plan file, an unknown site, service or run, a usage error |
| 3 | refused for safety: preflight failed, stale or tampered plan, lock held (by a live run \
too), approval denied, an unsafe rollback, a sandbox drill taken outside its sandbox; or the run \
stopped because its lease was lost or the journal could not be written |
| 4 | `watch --once`: a trigger fired and its action was done ([automatic failover](automatic-failover.md)) |
| 130 | interrupted by SIGINT (Ctrl-C): journaled, with the command that takes the run up again |
| 143 | interrupted by SIGTERM: the same |

A first SIGINT or SIGTERM stops new steps from starting; steps in flight end or reach their
timeouts. A second one stops waiting for them: each is journaled as failed, "in doubt" when its
change was under way (resume verifies it before anything runs again). Ctrl-C at an approval
prompt denies it and interrupts the run.

Errors go to standard error as `error: ...`, naming the file, line and field, or the site,
service, step or check, with what was expected and what was found.
"""


def _help(*args: str) -> str:
    result = CliRunner().invoke(
        main, [*args, "--help"], terminal_width=100, catch_exceptions=False, prog_name="failover"
    )
    assert result.exit_code == 0
    return result.output.rstrip()


def render_cli_reference() -> str:
    parts = [INTRO, f"## failover\n\n```\n{_help()}\n```\n"]
    for name in sorted(main.commands):
        parts.append(f"## failover {name}\n\n```\n{_help(name)}\n```\n")
    return "\n".join(parts)


def test_cli_reference_is_the_real_help() -> None:
    text = render_cli_reference()
    if os.environ.get("FAILOVER_WRITE_DOCS"):
        CLI_DOC.write_text(text, encoding="utf-8")
    assert CLI_DOC.read_text(encoding="utf-8") == text, "docs/cli.md is stale: run `make docs`"


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_readme_first_plan_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = ROOT / "README.md"
    (tmp_path / "my.yaml").write_text(_blocks(readme, "yaml")[0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    commands = [
        line.split("#")[0].strip()
        for block in _blocks(readme, "sh")[1:]
        for line in block.splitlines()
        if line.strip().startswith("failover ")
    ]
    assert len(commands) >= 5
    for command in commands:
        result = CliRunner().invoke(main, shlex.split(command)[1:], catch_exceptions=False)
        assert result.exit_code == 0, f"{command}: {result.output}"
    assert (tmp_path / "plan.md").read_text().startswith("# Failover plan: my-shop, east -> west")
    assert (tmp_path / "plan.json").exists()


def test_readme_python_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    exec(_blocks(ROOT / "README.md", "python")[0], {})
    assert "```mermaid" in capsys.readouterr().out


def test_runbook_reference_documents_every_field() -> None:
    from failover.runbook import (
        AwsPlacement,
        CheckSpec,
        Defaults,
        GcpPlacement,
        Runbook,
        Service,
        Site,
        StepSpec,
    )
    from failover.runbook_triggers import NotifySpec, TriggerSpec
    from failover.sandbox import spec

    doc = (ROOT / "docs" / "runbook-reference.md").read_text(encoding="utf-8")
    sandbox = [m for m in vars(spec).values() if isinstance(m, type) and issubclass(m, spec._Spec)]
    for model in (
        Runbook,
        Site,
        AwsPlacement,
        GcpPlacement,
        Defaults,
        Service,
        StepSpec,
        CheckSpec,
        TriggerSpec,
        NotifySpec,
        *sandbox,
    ):
        for name, field in model.model_fields.items():
            assert f"`{field.alias or name}`" in doc or f"`aws.{name}`" in doc or f"`gcp.{name}`" in doc, (
                f"{model.__name__}.{field.alias or name} is not in docs/runbook-reference.md"
            )


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_action_and_check_of_a_cloud_provider_has_its_section(cloud: str) -> None:
    from failover.providers import default_registry

    doc = (ROOT / "docs" / "providers" / f"{cloud}.md").read_text(encoding="utf-8")
    registry = default_registry()
    names = [
        item.name for item in (*registry.actions(), *registry.checks()) if item.name.startswith(f"{cloud}.")
    ]
    assert names
    for name in names:
        assert f"\n### {name}\n" in doc, f"{name} has no section in docs/providers/{cloud}.md"


def test_every_signal_check_has_its_section_with_every_parameter() -> None:
    from failover.providers.signals import http_probe, prometheus

    doc = (ROOT / "docs" / "providers" / "signals.md").read_text(encoding="utf-8")
    for check in (*prometheus.PROVIDER.checks, *http_probe.PROVIDER.checks):
        assert f"\n### {check.name}\n" in doc, f"{check.name} has no section in docs/providers/signals.md"
        section = doc.split(f"\n### {check.name}\n", 1)[1].split("\n### ", 1)[0]
        for name in check.params_model.model_fields:
            assert f"| `{name}`" in section or f", `{name}`" in section, (
                f"{check.name}'s parameter {name} is not in its table in docs/providers/signals.md"
            )


def test_the_signal_checks_examples_plan() -> None:
    from failover.planner import make_plan
    from failover.runbook import parse_runbook

    runbook_part, verify_part = _blocks(ROOT / "docs" / "providers" / "signals.md", "yaml")
    storefront = textwrap.indent(verify_part, "    ")
    text = f"version: 1\nname: signals\n{runbook_part}  storefront:\n{storefront}"
    plan = make_plan(parse_runbook(text, "signals.md"), from_="east", to="west")
    described = {c.id: c.description for c in plan.preflight} | {s.id: s.description for s in plan.steps}
    assert described["checkout.error-ratio"].startswith(
        'Check at west that every sample of sum(rate(http_requests_total{service="checkout", code=~"5..", '
        'site="west"}[5m])) / sum(rate(http_requests_total{service="checkout", site="west"}[5m])) on '
        "Prometheus at http://prometheus.west:9090 is < 0.01"
    )
    assert described["checkout.pods-up"].endswith("is == 1 (an empty answer fails)")
    assert described["storefront.storefront"] == (
        "Check at west that GET https://west.shop.example.com/healthz answers 200 with a body matching "
        '/"status":\\s*"ok"/ within 5s (redirects not followed)'
    )


DOC_PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "cli.md" and _blocks(p, "sh"))


def _run_sh(lines: list[str], where: str) -> None:
    """Run the lines of ``sh`` blocks as a shell would: ``failover`` commands (and ``cp``), in
    order, each expected to succeed, or to end with the code its comment says (``# exit 4: ...``)."""
    for line in lines:
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        if argv[0] == "cp" and len(argv) == 3:
            shutil.copy(argv[1], argv[2])
            continue
        assert argv[0] == "failover", f"{where}: {line!r}: sh blocks hold runnable failover commands"
        said = re.search(r"#\s*exit (\d+)", line)
        result = CliRunner().invoke(main, argv[1:], catch_exceptions=False)
        assert result.exit_code == (int(said.group(1)) if said else 0), f"{where}: {line}\n{result.output}"


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.relative_to(ROOT / "docs").as_posix())
def test_the_docs_sh_examples_run_as_written(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "runbooks", tmp_path / "runbooks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAILOVER_STATE", str(tmp_path / ".failover"))
    lines = [line for block in _blocks(page, "sh") for line in block.splitlines()]
    assert any(line.startswith("failover ") for line in lines)
    _run_sh(lines, page.name)


def test_make_demo_runs_the_shop_drill_and_writes_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo: .*\n((?:\t.*\n)+)", makefile, flags=re.M)
    assert recipe is not None
    commands = [
        line.strip().replace("$(BIN)/", "").replace("$(DEMO)", "runbooks/shop.yaml")
        for line in recipe.group(1).splitlines()
        if "$(BIN)/failover" in line
    ]
    assert "runbooks/shop.yaml" in makefile and len(commands) == 3
    shutil.copytree(ROOT / "runbooks", tmp_path / "runbooks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAILOVER_STATE", str(tmp_path / ".failover"))
    _run_sh(commands, "Makefile demo")
    report = (tmp_path / "drill-report.md").read_text(encoding="utf-8")
    assert report.startswith("# Drill report: shop, east -> west and back\n")
    assert "## Leg 2: west -> east (graceful)" in report
    assert "- sandbox: end state equals the start state" in report
