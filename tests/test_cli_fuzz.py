"""Every command with any of its own options and arguments, whatever their values: it ends with a
documented exit code and a message, never a traceback, and writes nothing into the repository."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from failover.cli import main
from tests.conftest import ROOT, SITES

RUNBOOK = (
    SITES
    + """
services:
  db:
    preflight: [{id: lag, check: sim.check, site: "${to}", with: {observed: 1}}]
    steps: [{id: promote, action: sim.step, site: "${to}", with: {target: db}}]
  app:
    depends_on: [db]
    steps: [{id: scale, action: sim.step, site: "${to}", with: {target: app}}]
"""
)
DOCUMENTED = {0, 1, 2, 3}
UNFUZZED = {"state", "sign"}  # sign needs a key pair: its bad inputs are in test_signed_plans
NOT_HERE = {"--wait-for-approvals", "--sandbox"}  # waits for a person / starts servers: tested apart
VALUES = st.one_of(
    # argv as the kernel gives it: no NUL; bytes that are not UTF-8 arrive as surrogates, which a
    # real process prints with backslashes (tests/test_hostile_inputs.py); CliRunner's streams are
    # stricter than a terminal's, so they are left to that test
    st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(
        ["", "-", "0", "-1", "1e309", "nan", "east", "west", "db", "db.promote", "..", "s", "x.html",
         "nodir/x.md", "runbook.yaml", "plan.json", "--help"]
    ),
    st.integers(-5, 10**7).map(str),
)  # fmt: skip
COMMANDS = sorted(set(main.commands) - UNFUZZED)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A folder with a runbook, its plan and a run of it (in state ``s``)."""
    folder = tmp_path_factory.mktemp("made")
    (folder / "runbook.yaml").write_text(RUNBOOK)
    runner = CliRunner()
    planned = runner.invoke(main, ["plan", str(folder / "runbook.yaml"), "--from", "east", "--to", "west",
                                   "--format", "json", "-o", str(folder / "plan.json")])  # fmt: skip
    assert planned.exit_code == 0, planned.output
    state = str(folder / "s")
    ran = runner.invoke(main, ["apply", str(folder / "plan.json"), "--auto-approve", "--state", state])
    assert ran.exit_code == 0, ran.output
    status = runner.invoke(main, ["status", "--state", state, "--format", "json"])
    return folder, str(json.loads(status.output)["run_id"])


def _arguments(command: click.Command, run_id: str) -> list[st.SearchStrategy[str]]:
    real = {"runbook": "runbook.yaml", "plan_file": "plan.json", "run_id": run_id, "step": "db.promote"}
    return [
        st.one_of(st.just(real.get(p.name or "", "x")), VALUES)
        for p in command.params
        if isinstance(p, click.Argument)
    ]


def _options(command: click.Command) -> st.SearchStrategy[list[list[str]]]:
    choices = []
    for p in command.params:
        if not isinstance(p, click.Option) or p.opts[0] in NOT_HERE:
            continue
        name = p.opts[0]
        if p.is_flag:
            choices.append(st.just([name]))
        elif isinstance(p.type, click.Choice):
            choices.append(st.tuples(st.just(name), st.sampled_from(list(p.type.choices)) | VALUES).map(list))
        else:
            choices.append(st.tuples(st.just(name), VALUES).map(list))
    return st.lists(st.one_of(choices), max_size=4) if choices else st.just([])


@pytest.mark.parametrize("name", COMMANDS)
def test_any_options_of_any_command_end_in_a_documented_exit_code(
    name: str, made: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    source, run_id = made
    command = main.commands[name]

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.tuples(*_arguments(command, run_id)), _options(command))
    def one(arguments: tuple[str, ...], options: list[list[str]]) -> None:
        folder = tmp_path_factory.mktemp("fuzz")
        for item in ("runbook.yaml", "plan.json", "s"):
            copy = shutil.copytree if (source / item).is_dir() else shutil.copy
            copy(source / item, folder / item)
        args = [name, *arguments, *(part for option in options for part in option)]
        if name in ("apply", "drill", "resume"):
            args += ["--sim-speed", "1000"]
        with contextlib.chdir(folder):  # whatever a value names, it is in the test's own folder
            result = CliRunner().invoke(main, args, env={"FAILOVER_STATE": str(folder / "s")})
        assert result.exit_code in DOCUMENTED, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            args,
            repr(result.exception),
        )
        assert "Traceback" not in result.output, (args, result.output)

    before = sorted(ROOT.iterdir())
    one()
    assert sorted(ROOT.iterdir()) == before  # nothing written where the tests were started
