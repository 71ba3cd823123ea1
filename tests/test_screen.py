"""What an operator's terminal shows during a run: the command on a pseudo-terminal, its output
read off an emulated VT100 screen (``pyte``), checked against the run's journal; and the same run
with its output going to pipes, as in a CI job."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest

from failover.durations import format_duration
from failover.providers.sim import SimWorld
from failover.state.events import Event, RunState
from failover.state.local import DirectoryStore
from tests.executor_helpers import plan_from, tiny_plan

COLUMNS, LINES = 120, 30
SECRET = "canary-7d41e9b2c5"
RUNBOOK = f"""
services:
  db:
    preflight:
      - {{id: lag, check: sim.check, site: "${{to}}", with: {{ok: true, observed: "lag 2s"}}}}
      - {{id: login, check: sim.check, site: "${{to}}", with: {{ok: true, observed: {{password: {SECRET}}}}}}}
      - {{id: spare, check: sim.check, site: "${{to}}", with: {{ok: false}}}}
    steps:
      - {{id: fence, action: sim.step, site: "${{from}}", with: {{duration: 200ms, target: writes}}}}
  cache:
    steps:
      - {{id: warm, action: sim.step, site: "${{to}}", with: {{duration: 1500ms, target: cache}}}}
  lb:
    depends_on: [db]
    steps:
      - {{id: open, action: sim.step, site: "${{to}}", approval: true, with: {{target: lb}}}}
"""
SKIP = ("--skip-check", "db.spare", "--reason", "checked by hand")
HEADER = re.compile(r"^step\s+┃\s+state\s+┃\s+elapsed\s+┃\s+estimate$")
ROW = re.compile(r"^(\S+)\s+│ (\S[^│]*?)\s+│ (\S+)\s+│ \S+$")
PROMPT = "approval needed: lb.open at site west"


def write_plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(plan_from(RUNBOOK).to_json())
    return path


def journal(state: Path) -> RunState:
    store = DirectoryStore(state, read_only=True)
    run_id = store.runs()[0][0]
    return RunState.replay(run_id, store.events(run_id))


class Terminal:
    """A command line on a pseudo-terminal of COLUMNS x LINES, and what a VT100 terminal shows
    of what it wrote: the screen and the lines scrolled off the top of it."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        env = {**os.environ, "TERM": "xterm", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "failover.cli", *args],
            cwd=cwd,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,  # a process group of its own, for the Ctrl-C below
        )
        os.close(slave)
        self.screen = pyte.HistoryScreen(COLUMNS, LINES, history=10_000)
        self.stream = pyte.ByteStream(self.screen)
        self.ended = False

    def lines(self) -> list[str]:
        """Every line shown so far, scrolled off or on the screen, as the terminal shows it."""
        above = ["".join(line[x].data for x in range(COLUMNS)).rstrip() for line in self.screen.history.top]
        shown = [line.rstrip() for line in self.screen.display]
        while shown and not shown[-1]:
            shown.pop()
        return above + shown

    def text(self) -> str:
        return "\n".join(self.lines())

    def until(self, shown: Callable[[str], bool], within_s: float = 60) -> str:
        """Read what the command writes until ``shown(text on the terminal)``; that text."""
        deadline = time.monotonic() + within_s
        while not shown(text := self.text()):
            assert not self.ended, f"the command ended; the terminal shows:\n{text}"
            assert time.monotonic() < deadline, f"not shown within {within_s}s:\n{text}"
            self._read(deadline - time.monotonic())
        return text

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal sends it: SIGINT to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, within_s: float = 60) -> int:
        """Read everything until the command ends; its exit code."""
        deadline = time.monotonic() + within_s
        while not self.ended:
            assert time.monotonic() < deadline, f"still running after {within_s}s:\n{self.text()}"
            self._read(deadline - time.monotonic())
        return self.proc.wait(timeout=within_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        os.close(self.master)

    def _read(self, wait_s: float) -> None:
        if select.select([self.master], [], [], max(0.0, min(wait_s, 1.0)))[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                data = b""
            self.ended = not data
            self.stream.feed(data)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """Start the command line on a terminal (in ``tmp_path``); whatever is left is ended after."""
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        started.append(Terminal(tmp_path, *args))
        return started[-1]

    yield start
    for term in started:
        term.close()


def shown_elapsed(lines: list[str]) -> dict[str, str]:
    """The steps' table as shown: the elapsed column by step."""
    rows = (ROW.match(line) for line in lines)
    return {m.group(1): m.group(3) for m in rows if m is not None}


def test_a_run_on_a_terminal_shows_its_checks_keeps_its_view_alive_at_a_prompt_and_its_journaled_times(
    tmp_path: Path, terminal: Callable[..., Terminal]
) -> None:
    state = tmp_path / "state"
    term = terminal("apply", str(write_plan(tmp_path)), "--state", str(state), *SKIP)
    term.until(lambda text: PROMPT in text and "(15m left):" in text)
    # the prompt is open while cache.warm runs: the view goes on above it, redrawn in place
    at_prompt = term.until(lambda text: re.search(r"cache\.warm\s+│ succeeded", text) is not None)
    assert at_prompt.endswith("approve? [y/n] (15m left):")  # still asking, at the foot
    assert sum(bool(HEADER.match(line)) for line in term.lines()) == 1
    term.type(b"yes\r")
    code = term.finish()
    lines = term.lines()
    text = "\n".join(lines)

    assert code == 0, text
    run = journal(state)
    assert (run.status, run.exit_code) == ("succeeded", 0)
    assert SimWorld(state).values() == {"writes": "east", "cache": "west", "lb": "west"}
    assert 'preflight db.lag at west: ok: simulated check passed (observed "lag 2s")' in lines
    redacted = '(observed {"password": "[redacted]"})'
    assert f"preflight db.login at west: ok: simulated check passed {redacted}" in lines
    assert "preflight db.spare at west: skipped: checked by hand" in lines
    assert SECRET not in text
    record = lines.index(PROMPT)
    assert lines[record + 2 : record + 4] == ["  approve? [y/n] (15m left): yes", "  approved"]
    assert text.count("approval needed") == 1
    assert sum(bool(HEADER.match(line)) for line in lines) == 1  # the final table, once
    assert lines[-1].startswith(f"run {run.run_id}: succeeded")
    shown = shown_elapsed(lines)
    assert set(shown) == {"db.fence", "cache.warm", "lb.open"}
    for step, rec in run.steps.items():
        assert rec.started_at is not None and rec.finished_at is not None
        assert shown[step] == format_duration(rec.finished_at - rec.started_at), step


def test_ctrl_c_at_a_prompt_on_a_terminal_ends_the_prompt_and_the_run_in_view(
    tmp_path: Path, terminal: Callable[..., Terminal]
) -> None:
    state = tmp_path / "state"
    term = terminal("apply", str(write_plan(tmp_path)), "--state", str(state), *SKIP)
    term.until(lambda text: PROMPT in text and "(15m left):" in text)
    term.interrupt()
    code = term.finish()
    lines = term.lines()
    text = "\n".join(lines)

    assert code == 130, text
    run = journal(state)
    assert (run.status, run.exit_code, run.interrupted) == ("interrupted", 130, "SIGINT")
    assert [a["reason"] for a in run.approvals] == ["interrupted by SIGINT"]
    record = lines.index(PROMPT)
    assert lines[record + 2 : record + 4] == [
        "  approve? [y/n] (15m left):",
        "  interrupted by SIGINT: lb.open denied",
    ]
    assert "SIGINT: stopping: no new step starts" in text
    assert sum(bool(HEADER.match(line)) for line in lines) == 1
    assert shown_elapsed(lines)["lb.open"] == "-"  # it never started


def test_a_run_whose_output_is_not_a_terminal_logs_one_json_line_per_event(tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ["apply", str(write_plan(tmp_path)), "--state", str(state), "--approve", "lb.open", *SKIP]
    done = subprocess.run(
        [sys.executable, "-m", "failover.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr + done.stdout
    logged = [json.loads(line) for line in done.stderr.splitlines()]
    checks = {e["check"]: e for e in logged if e["event"].startswith("check_")}
    assert {c: (e["event"], e["site"]) for c, e in checks.items()} == {
        "db.lag": ("check_passed", "west"),
        "db.login": ("check_passed", "west"),
        "db.spare": ("check_skipped", "west"),
    }
    assert checks["db.lag"]["observed"] == "lag 2s"
    assert checks["db.login"]["observed"] == {"password": "[redacted]"}
    assert checks["db.spare"]["reason"] == "checked by hand"
    assert SECRET not in done.stderr
    run = journal(state)
    store = DirectoryStore(state, read_only=True)
    told = [e.kind for e in store.events(run.run_id) if e.kind != "apply_started"]  # debug level
    assert [e["event"] for e in logged] == told


def event(seq: int, kind: str, step: str | None, at: float, **data: object) -> Event:
    return Event(seq, "r", at, kind, step, data)


def test_the_view_times_steps_by_the_journal_whenever_their_events_reach_it() -> None:
    from failover.runview import RunView

    plan = tiny_plan()
    view = RunView(plan)
    step = plan.steps[0].id
    view.apply(event(1, "run_started", None, 100.0))
    view.apply(event(3, "step_succeeded", step, 100.006))  # committed with a later batch, first
    view.apply(event(2, "step_started", step, 100.0))
    rows, left = view.rows(now=108.0)  # eight seconds later, on the screen's clock
    assert (rows[0].state, rows[0].elapsed, left) == ("succeeded", pytest.approx(0.006), 0)
    assert view.elapsed(now=108.0) == 8.0
    view.apply(event(4, "run_finished", None, 100.01, status="succeeded"))
    assert view.elapsed(now=200.0) == pytest.approx(0.01)
