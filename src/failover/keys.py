"""Typing at a prompt that the program draws itself, below a live view that redraws: the terminal
neither echoes nor edits what is typed while the prompt is open (``keystrokes``), and a
:class:`LineEditor` does instead what the terminal's line discipline did: printable characters,
backspace, Ctrl-U (the line), Ctrl-W (a word), Enter, Ctrl-D on an empty line (end of input).
Escape sequences (arrow keys) are dropped. Ctrl-C and Ctrl-Z keep their signals.
"""

from __future__ import annotations

import codecs
import contextlib
import termios
from collections.abc import Iterator

_BACKSPACE = ("\x7f", "\x08")
_KILL_LINE = "\x15"
_KILL_WORD = "\x17"
_END = "\x04"
_ESC = "\x1b"


@contextlib.contextmanager
def keystrokes(fd: int) -> Iterator[None]:
    """Terminal ``fd`` hands over each key as typed, not echoed; as it was afterwards."""
    before = termios.tcgetattr(fd)
    keys = termios.tcgetattr(fd)
    keys[3] &= ~(termios.ICANON | termios.ECHO)
    keys[6][termios.VMIN], keys[6][termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSANOW, keys)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, before)


class LineEditor:
    """Keys in (``feed``), lines out: ``lines`` entered so far, ``text`` the line being typed,
    ``ended`` once Ctrl-D was typed on an empty line."""

    def __init__(self) -> None:
        self.text = ""
        self.lines: list[str] = []
        self.ended = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._escape = ""  # an escape sequence under way: dropped when it ends
        self._last = ""

    def feed(self, chunk: bytes) -> None:
        for char in self._decoder.decode(chunk):
            last, self._last = self._last, char
            if self._escape or char == _ESC:
                self._skip(char)
            elif char in ("\r", "\n"):
                if not (char == "\n" and last == "\r"):  # CR LF: one Enter
                    self.lines.append(self.text)
                    self.text = ""
            elif char in _BACKSPACE:
                self.text = self.text[:-1]
            elif char == _KILL_LINE:
                self.text = ""
            elif char == _KILL_WORD:
                kept = self.text.rstrip()
                self.text = kept[: kept.rfind(" ") + 1]
            elif char == _END:
                self.ended = self.ended or not self.text
            elif char.isprintable():
                self.text += char

    def _skip(self, char: str) -> None:
        """ESC [ params final, ESC O final, or ESC and one more character."""
        self._escape += char
        seq = self._escape
        if len(seq) == 1:
            return
        if seq[1] in "[O" and (len(seq) == 2 or not ("\x40" <= char <= "\x7e")):
            return
        self._escape = ""
