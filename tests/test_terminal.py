"""The terminal approver, driven through a real pseudo-terminal: what it shows, what an answer does."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import termios
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from failover.engine.approvals import Approval
from failover.keys import LineEditor
from failover.plan import PlannedStep
from failover.terminal import TerminalApprover

WHO = "alice@host"
PROMPT = re.compile(r"approval needed: (?:PIVOT \(irreversible\) )?(\S+) at site")


class Tty:
    """A pseudo-terminal: the approver reads and writes the slave; the test types and reads the master."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.output = os.fdopen(os.dup(self.slave), "w")
        self.raw = b""
        self.seen = 0

    @property
    def screen(self) -> str:
        """Everything shown so far, typed echoes included."""
        return self.raw.decode(errors="replace").replace("\r\n", "\n")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def expect(self, pattern: str | re.Pattern[str], within_s: float = 3.0) -> re.Match[str]:
        """Wait until ``pattern`` is shown after what was expected before; return its match."""
        deadline = time.monotonic() + within_s
        while (found := re.compile(pattern).search(self.screen, self.seen)) is None:
            assert time.monotonic() < deadline, f"{pattern!r} not shown; the terminal shows {self.screen!r}"
            self._read(0.02)
        self.seen = found.end()
        return found

    def rest(self, for_s: float = 0.3) -> str:
        """What is shown, after what was expected, within ``for_s`` from now."""
        deadline = time.monotonic() + for_s
        while (left := deadline - time.monotonic()) > 0:
            self._read(left)
        return self.screen[self.seen :]

    def _read(self, wait_s: float) -> None:
        if select.select([self.master], [], [], wait_s)[0]:
            with contextlib.suppress(BlockingIOError):
                self.raw += os.read(self.master, 4096)

    def close(self) -> None:
        self.output.close()
        os.close(self.master)
        os.close(self.slave)


Ask = Callable[[PlannedStep, float], "Future[Approval]"]


@pytest.fixture
def tty() -> Iterator[Tty]:
    terminal = Tty()
    yield terminal
    terminal.close()


@pytest.fixture
def approver(tty: Tty) -> TerminalApprover:
    return TerminalApprover(WHO, input_fd=tty.slave, output=tty.output)


@pytest.fixture
def ask(approver: TerminalApprover) -> Iterator[Ask]:
    """Ask the approver from a thread of its own, as the engine's workers do."""
    pool = ThreadPoolExecutor(max_workers=4)
    yield lambda step, timeout_s: pool.submit(approver, step, timeout_s)
    approver.cancel("test over")
    pool.shutdown(wait=True)


def step(step_id: str, *, pivot: bool = False, site: str = "west", description: str = "") -> PlannedStep:
    return PlannedStep(
        id=step_id,
        service=step_id.split(".")[0],
        action="sim.step",
        site=site,
        params={},
        description=description or f"do {step_id}",
        timeout_s=60,
        retries=0,
        approval_timeout_s=30,
        estimate_s=1,
        pivot=pivot,
        approval=not pivot,
    )


LB = step("payments-lb.open", site="east", description="Open the payments load balancer\nto traffic")
DB = step("inventory-db.switchover", pivot=True, description="Promote the west replica to primary")
CACHE = step("cache.warm", description="Warm the cache")


def test_a_request_waits_while_another_prompt_is_on_screen_and_each_answer_goes_to_its_own_step(
    tty: Tty, approver: TerminalApprover, ask: Ask
) -> None:
    lb = ask(LB, 30)
    shown = tty.expect(r"approval needed: .*\n.*\n.*left\): ")
    assert shown.group(0) == (
        "approval needed: payments-lb.open at site east\n"
        "  Open the payments load balancer to traffic\n"
        "  approve? [y/n] (30s left): "
    )
    db, cache = ask(DB, 30), ask(CACHE, 30)
    while approver.waiting() != [DB.id, CACHE.id]:
        time.sleep(0.01)
    assert "approval needed" not in tty.rest()

    tty.type(b"yes\n")
    assert lb.result(timeout=3) == Approval(True, WHO, "answered at the terminal")
    shown = tty.expect(r"approval needed: .*\n.*\n.*left.*\): ")
    assert shown.group(0) == (
        "approval needed: PIVOT (irreversible) inventory-db.switchover at site west\n"
        "  Promote the west replica to primary\n"
        "  type inventory-db.switchover to approve, n to deny (30s left; 1 more waiting after this one): "
    )
    assert approver.waiting() == [CACHE.id]

    tty.type(b"y\n")
    tty.expect(r"type inventory-db.switchover exactly to approve, or n to deny \(\d+s left\): ")
    assert not db.done()
    tty.type(b"inventory-db.switchover\n")
    assert db.result(timeout=3) == Approval(True, WHO, "answered at the terminal")

    assert tty.expect(PROMPT).group(1) == CACHE.id
    assert approver.waiting() == []
    tty.type(b"no\n")
    assert cache.result(timeout=3) == Approval(False, WHO, "denied at the terminal")


def test_requests_made_at_the_same_moment_get_one_prompt_at_a_time(
    tty: Tty, approver: TerminalApprover
) -> None:
    steps = [step(f"svc{n}.open") for n in range(3)]
    start = threading.Barrier(len(steps))
    results: dict[str, Approval] = {}

    def request(asked: PlannedStep) -> None:
        start.wait()
        results[asked.id] = approver(asked, 10)

    threads = [threading.Thread(target=request, args=(s,)) for s in steps]
    for thread in threads:
        thread.start()
    answered: dict[str, bool] = {}
    for n in range(len(steps)):
        prompted = tty.expect(PROMPT).group(1)
        tty.expect(r"left[^)]*\): ")
        assert "approval needed" not in tty.rest(0.2)
        answered[prompted] = n % 2 == 0
        tty.type(b"y\n" if answered[prompted] else b"n\n")
    for thread in threads:
        thread.join(3)

    assert sorted(answered) == sorted(s.id for s in steps)
    assert {step_id: a.granted for step_id, a in results.items()} == answered


def test_what_was_typed_before_a_prompt_appeared_does_not_answer_it(tty: Tty, ask: Ask) -> None:
    tty.type(b"yes\n")
    while not select.select([tty.slave], [], [], 3)[0]:
        pass
    first = ask(LB, 30)
    tty.expect(PROMPT)
    second = ask(CACHE, 30)
    tty.type(b"yes\nyes\n")
    assert first.result(timeout=3).granted

    assert tty.expect(PROMPT).group(1) == CACHE.id
    tty.type(b"no\n")
    assert second.result(timeout=3) == Approval(False, WHO, "denied at the terminal")


def test_a_line_read_with_an_earlier_answer_does_not_answer_the_next_prompt(tty: Tty) -> None:
    read, write = os.pipe()
    approver = TerminalApprover(WHO, input_fd=read, output=tty.output)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(approver, LB, 30)
            tty.expect(PROMPT)
            second = pool.submit(approver, CACHE, 30)
            while approver.waiting() != [CACHE.id]:
                time.sleep(0.01)
            os.write(write, b"yes\nyes\n")
            assert first.result(timeout=3).granted
            assert tty.expect(PROMPT).group(1) == CACHE.id
            os.write(write, b"no\n")
            assert second.result(timeout=3) == Approval(False, WHO, "denied at the terminal")
    finally:
        os.close(read)
        os.close(write)


def test_no_answer_in_time_denies_as_timeout(tty: Tty, ask: Ask) -> None:
    asked = ask(LB, 0.3)
    tty.expect(r"\(1s left\): ")
    assert asked.result(timeout=3) == Approval(False, "timeout", "no answer within 0.3s")
    assert tty.expect(r"\n(.*)\n").group(1) == "no answer within 0.3s: payments-lb.open denied"


def test_a_queued_request_whose_time_runs_out_is_denied_without_being_shown(tty: Tty, ask: Ask) -> None:
    shown = ask(LB, 30)
    tty.expect(PROMPT)
    queued = ask(DB, 0.3)
    assert queued.result(timeout=3) == Approval(False, "timeout", "no answer within 0.3s")
    assert not shown.done()
    tty.type(b"y\n")
    assert shown.result(timeout=3).granted
    assert DB.id not in tty.rest(0.3)


def test_cancel_denies_the_prompt_on_screen_and_every_queued_and_later_request(
    tty: Tty, approver: TerminalApprover, ask: Ask
) -> None:
    shown, queued = ask(DB, 30), ask(LB, 30)
    tty.expect(r"left[^)]*\): ")
    interrupted = Approval(False, WHO, "interrupted by SIGINT")
    previous = signal.signal(signal.SIGINT, lambda *_: approver.cancel("interrupted by SIGINT"))
    try:
        signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)

    assert shown.result(timeout=0.5) == interrupted
    assert queued.result(timeout=0.5) == interrupted
    assert tty.rest(0.2) == "\n"
    began = time.monotonic()
    assert approver(CACHE, 30) == interrupted
    assert time.monotonic() - began < 0.05
    assert "approval needed" not in tty.rest(0.2)


def test_end_of_input_denies(tty: Tty, ask: Ask) -> None:
    asked = ask(DB, 30)
    tty.expect(PROMPT)
    tty.type(b"\x04")
    assert asked.result(timeout=3) == Approval(False, WHO, "end of input at the terminal")


def test_an_unknown_answer_re_asks_within_the_same_time_limit(tty: Tty, ask: Ask) -> None:
    asked = ask(LB, 30)
    tty.expect(r"\(30s left\): ")
    tty.type(b"maybe\n")
    tty.expect(r"maybe\n  answer y or n \(\d+s left\): ")
    tty.type(b"\n")
    tty.expect(r"\n  answer y or n \(\d+s left\): ")
    assert not asked.done()
    tty.type(b"Y\n")
    assert asked.result(timeout=3) == Approval(True, WHO, "answered at the terminal")


class Area:
    """A prompt area, as a live view keeps one at its foot: what it shows, what stayed above it."""

    def __init__(self) -> None:
        self.shown: tuple[str, str] | None = None
        self.records: list[str] = []
        self.changed = threading.Condition()

    def show_prompt(self, text: str, typed: str) -> None:
        with self.changed:
            self.shown = (text, typed)
            self.changed.notify_all()

    def end_prompt(self, record: str) -> None:
        with self.changed:
            self.shown = None
            self.records.append(record)
            self.changed.notify_all()

    def until(self, shown: Callable[[tuple[str, str] | None], bool]) -> tuple[str, str] | None:
        with self.changed:
            assert self.changed.wait_for(lambda: shown(self.shown), timeout=3), self.shown
            return self.shown


def test_below_a_live_view_the_prompt_is_drawn_by_the_view_which_shows_what_is_typed(tty: Tty) -> None:
    area = Area()
    approver = TerminalApprover(WHO, input_fd=tty.slave, output=tty.output, area=area)
    with ThreadPoolExecutor(max_workers=1) as pool:
        asked = pool.submit(approver, DB, 30)
        question = (
            "approval needed: PIVOT (irreversible) inventory-db.switchover at site west\n"
            "  Promote the west replica to primary\n"
            "  type inventory-db.switchover to approve, n to deny (30s left): "
        )
        area.until(lambda shown: shown == (question, ""))
        assert not termios.tcgetattr(tty.slave)[3] & termios.ECHO  # the view shows what is typed
        tty.type(b"inventory-db.swx")
        area.until(lambda shown: shown == (question, "inventory-db.swx"))
        tty.type(b"\x7f\x1b[Ditchover\r")  # backspace; an arrow key is dropped
        assert asked.result(timeout=3) == Approval(True, WHO, "answered at the terminal")
    assert area.records == [question + "inventory-db.switchover\n  approved"]
    assert area.shown is None
    assert termios.tcgetattr(tty.slave)[3] & termios.ECHO  # the terminal is as it was
    assert tty.rest(0.2) == ""  # nothing was written around the view


def test_below_a_live_view_an_unknown_answer_re_asks_and_ctrl_u_clears_the_line(tty: Tty) -> None:
    area = Area()
    approver = TerminalApprover(WHO, input_fd=tty.slave, output=tty.output, area=area)
    with ThreadPoolExecutor(max_workers=1) as pool:
        asked = pool.submit(approver, LB, 30)
        area.until(lambda shown: shown is not None)
        tty.type(b"maybe\r")
        again = "maybe\n  answer y or n (30s left): "
        area.until(lambda shown: shown is not None and shown[0].endswith(again))
        tty.type(b"yes, but\x15n\r")
        assert asked.result(timeout=3) == Approval(False, WHO, "denied at the terminal")
    assert area.records[0].endswith("(30s left): maybe\n  answer y or n (30s left): n\n  denied")


def test_a_prompt_the_run_no_longer_waits_for_leaves_the_screen(
    tty: Tty, approver: TerminalApprover, ask: Ask
) -> None:
    shown, queued = ask(LB, 30), ask(CACHE, 30)
    tty.expect(r"left[^)]*\): ")
    approver.withdraw(LB, "called off: the run is stopping")
    assert shown.result(timeout=3) == Approval(False, WHO, "called off: the run is stopping")
    said = tty.expect(r"\n(.*)\n").group(1)
    assert said == "payments-lb.open not approved: called off: the run is stopping"
    assert tty.expect(PROMPT).group(1) == CACHE.id  # the next one comes up
    approver.withdraw(CACHE, "interrupted by SIGTERM")
    assert queued.result(timeout=3) == Approval(False, WHO, "interrupted by SIGTERM")


def test_keys_typed_at_a_prompt_drawn_by_the_view_are_edited_as_a_terminal_would() -> None:
    editor = LineEditor()
    editor.feed(b"ab\r\ncd\rxy\x7fz\x1b[1;5Aq\x15ok one two\x17")
    assert (editor.lines, editor.text) == (["ab", "cd"], "ok one ")
    editor.feed("é".encode()[:1])
    editor.feed("é".encode()[1:] + b"\n\x04")
    assert (editor.lines[-1], editor.ended) == ("ok one é", True)
