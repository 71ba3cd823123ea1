"""A corpus of bad runbooks pins the exact message of each problem a user can make."""

from __future__ import annotations

from pathlib import Path

import pytest

from failover.errors import RunbookError
from failover.runbook import load_runbook

CORPUS = Path(__file__).parent / "bad_runbooks"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", CASES)
def test_each_bad_runbook_fails_with_its_pinned_messages(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    with pytest.raises(RunbookError) as info:
        load_runbook(f"{name}.yaml")
    expected = (CORPUS / f"{name}.expected").read_text(encoding="utf-8").splitlines()
    assert [str(p) for p in info.value.problems] == expected
    for problem in info.value.problems:
        assert problem.file == f"{name}.yaml"
        assert problem.line >= 1
        assert problem.column >= 1


def test_all_problems_are_listed_not_just_the_first(write_runbook) -> None:  # type: ignore[no-untyped-def]
    path = write_runbook(
        """
        services:
          db:
            tier: data
            steps:
              - {id: a, action: sim.stepp, site: "${to}"}
              - {id: a, action: sim.step, site: nowhere}
          app:
            depends_on: [dbx]
            stepz: []
        """
    )
    with pytest.raises(RunbookError) as info:
        load_runbook(path)
    messages = [p.message for p in info.value.problems]
    assert any("unknown action 'sim.stepp'" in m for m in messages)
    assert any("duplicate step id 'a'" in m for m in messages)
    assert any("unknown site 'nowhere'" in m for m in messages)
    assert any("unknown key 'stepz'; did you mean 'steps'?" in m for m in messages)
    # "dbx" is checked once app itself has a valid shape: four problems now, one more after the fix
    assert len(messages) == 4


def test_missing_file_is_a_runbook_error(tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match="cannot read runbook"):
        load_runbook(tmp_path / "absent.yaml")


def test_binary_file_is_a_runbook_error(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RunbookError, match="UTF-8"):
        load_runbook(path)
