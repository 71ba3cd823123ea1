"""What a run leaves in its state directory is its owner's only: the directories the store creates
0700, the journal (with SQLite's -wal and -shm files), the simulated world and the plan copies
0600, whatever the umask; an existing store opened for writing has those files tightened, and an
existing directory keeps its mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from failover.cli import main
from failover.state.sqlite import make_private_dirs
from tests.conftest import SITES

RUNBOOK = (
    SITES
    + """
services:
  db:
    steps:
      - {id: promote, action: sim.step, site: "${to}", pivot: true, with: {target: writer}}
  app:
    depends_on: [db]
    steps: [{id: scale, action: sim.step, site: "${to}", with: {target: app}}]
"""
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most machines have (group and others may read), which the store must not follow."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


@pytest.fixture
def runbook(tmp_path: Path) -> Path:
    path = tmp_path / "modes.yaml"
    path.write_text(RUNBOOK, encoding="utf-8")
    return path


def plan(runbook: Path, out: Path, from_: str = "east", to: str = "west") -> Path:
    result = CliRunner().invoke(
        main, ["plan", str(runbook), "--from", from_, "--to", to, "--format", "json", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def apply_in_a_new_process(plan_file: Path, state: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "failover.cli",
            "apply",
            str(plan_file),
            "--auto-approve",
            "--state",
            str(state),
        ],
        capture_output=True,
        text=True,
        check=False,
        umask=0o022,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_new_state_directory_and_everything_the_run_writes_there_are_the_owners_only(
    runbook: Path, tmp_path: Path
) -> None:
    state = tmp_path / "nested" / "state"
    before = mode(tmp_path)
    result = CliRunner().invoke(
        main, ["apply", str(plan(runbook, tmp_path / "plan.json")), "--auto-approve", "--state", str(state)]
    )
    assert result.exit_code == 0, result.output
    assert mode(tmp_path) == before  # there before: left as it was
    for directory in (tmp_path / "nested", state, state / "plans"):
        assert mode(directory) == 0o700, directory
    # this process still has the journal open, so SQLite's files beside it are there too
    files = ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "sim.sqlite"]
    assert {name: mode(state / name) for name in files} == dict.fromkeys(files, 0o600)
    copies = list((state / "plans").iterdir())
    assert len(copies) == 1
    assert copies[0].suffix == ".json"
    assert mode(copies[0]) == 0o600


def test_an_existing_store_has_its_files_tightened_and_its_directory_kept(
    runbook: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    apply_in_a_new_process(plan(runbook, tmp_path / "out.json"), state)
    assert mode(state) == 0o750  # neither loosened nor taken from the group that shares it
    journal, world = state / "journal.sqlite", state / "sim.sqlite"
    assert (mode(journal), mode(world)) == (0o600, 0o600)
    for path in (journal, world, *(state / "plans").iterdir()):
        path.chmod(0o644)  # as an earlier version, or a copy with the wrong umask, left them
    apply_in_a_new_process(plan(runbook, tmp_path / "back.json", "west", "east"), state)
    assert mode(state) == 0o750
    assert (mode(journal), mode(world)) == (0o600, 0o600)
    result = CliRunner().invoke(main, ["status", "--state", str(state)])
    assert result.exit_code == 0, result.output


def test_private_directories_are_made_0700_down_from_the_first_missing_one(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o775)
    shared.chmod(0o775)
    make_private_dirs(shared / "a" / "b")
    make_private_dirs(shared / "a" / "b")  # again: nothing to do
    assert mode(shared) == 0o775
    assert (mode(shared / "a"), mode(shared / "a" / "b")) == (0o700, 0o700)
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):  # a file where a directory should be
        make_private_dirs(tmp_path / "file" / "sub")
