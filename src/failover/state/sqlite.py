"""A SQLite file used from many threads and processes: one writing connection per process with
group commit, pooled readers, WAL, and the durability the caller asks for.

Writes are functions of a connection, run by :meth:`Store.run`. The writes waiting when a
transaction starts go into it together and share one commit (a failing write does not undo the
others): with ``synchronous=FULL`` each write still waits for a
durable commit, but parallel writers share fsyncs instead of queueing for one each. Writes of
one kind (rows for the same table, say) can also share their statements: :meth:`Store.add`
hands every waiting item of a kind to one function call.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
Item = TypeVar("Item")
Group = Callable[[sqlite3.Connection, list[Item]], list[T]]
"""Writes a list of items in one go and returns one result per item (or raises for all)."""
Key = tuple[str, int, str]

MAX_OPEN = 32
MAX_IDLE_READERS = 256
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's files beside the database, of the same mode


def make_private_dirs(path: str | os.PathLike[str]) -> None:
    """Create the directory ``path`` and its missing parents, each for its owner only (0700).
    Directories that exist keep their modes: neither loosened nor taken from who shares them."""
    missing: list[str] = []
    here = os.path.abspath(path)
    while not os.path.isdir(here):
        missing.append(here)
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR)  # the umask can only take more away
        except FileExistsError:
            if not os.path.isdir(directory):
                raise  # a file where the directory should be: say so
            # another process made it at the same moment


def tighten(path: str | os.PathLike[str]) -> None:
    """Take the group's and others' permissions away from a file failover writes (0644 -> 0600);
    a missing file, one of another user or one on a read-only file system is left as it is."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except OSError:
        pass


def _create_private(path: str) -> None:
    """The database file, created empty for its owner only (0600) if it is not there, so that
    SQLite's files beside it, which take its mode, are private too; an existing one is tightened."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        tighten(path)


@dataclass
class _Write(Generic[T]):
    fn: Callable[[sqlite3.Connection], T] | None
    then: Callable[[T | None, BaseException | None], None] | None = None  # set for posted writes
    wake: threading.Event | None = None  # set for writes that wait
    lead: bool = False  # woken to commit the next batch, not because it was committed
    group: Group[Any, T] | None = None  # with ``item``: a write that shares a call with its kind
    item: Any = None
    done: bool = False
    result: T | None = None
    error: BaseException | None = None


def _opened(path: str, synchronous: str, schema: str) -> sqlite3.Connection:
    """The writing connection, in WAL mode with the schema. Processes that create the same new
    database at once can find it locked while one of them switches it to WAL, which SQLite
    answers at once rather than through the busy timeout: that is waited out here (10 s)."""
    until = time.monotonic() + 10.0
    while True:
        conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.executescript(f"BEGIN IMMEDIATE;\n{schema}\nCOMMIT;")  # all the tables, or none yet
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" not in str(exc) or time.monotonic() > until:
                raise
            time.sleep(0.05)


@dataclass
class _Writer:
    """The writing connection of one file in this process, and the writes waiting for it."""

    conn: sqlite3.Connection
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: list[_Write[Any]] = field(default_factory=list)
    writing: bool = False
    closed: bool = False
    readers: list[sqlite3.Connection] = field(default_factory=list)


_WRITERS: dict[Key, _Writer] = {}
_GUARD = threading.Lock()


def _evict_idle() -> None:
    """Close the oldest idle files beyond MAX_OPEN (a process may touch many state dirs)."""
    for key in list(_WRITERS)[: max(0, len(_WRITERS) - MAX_OPEN + 1)]:
        writer = _WRITERS[key]
        with writer.lock:
            if writer.writing or writer.pending:
                continue
            writer.closed = True
            del _WRITERS[key]
        for conn in (writer.conn, *writer.readers):
            conn.close()


class Store:
    """Reads and group-committed writes on one SQLite file; the schema is created on first use.

    The directories it creates are its owner's only (0700), and so are the database and SQLite's
    files beside it (0600): a store opened for writing tightens those files if they are looser.

    A read-only store (``read_only=True``) never writes, creates or migrates anything: it reads a
    file that must exist, on a read-only file system too (an auditor's copy).
    """

    def __init__(
        self,
        path: Path | str,
        schema: str,
        synchronous: Literal["FULL", "NORMAL"],
        *,
        read_only: bool = False,
    ) -> None:
        self.path = os.path.abspath(path)
        self.schema = schema
        self.synchronous = synchronous
        self.read_only = read_only
        self._readers: list[sqlite3.Connection] = []

    def _writer(self) -> _Writer:
        key = (self.path, os.getpid(), self.synchronous)  # a forked child gets its own
        writer = _WRITERS.get(key)
        if writer is not None:
            return writer
        with _GUARD:
            writer = _WRITERS.get(key)
            if writer is None:
                make_private_dirs(os.path.dirname(self.path))
                _create_private(self.path)
                conn = _opened(self.path, self.synchronous, self.schema)
                for suffix in SIDE_FILES:  # left by an earlier process with looser modes
                    tighten(self.path + suffix)
                _evict_idle()
                writer = _WRITERS[key] = _Writer(conn)
            return writer

    def read(self, query: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only query on a pooled reader connection: WAL readers never wait for
        writers, so reads do not queue behind the writing connection."""
        if self.read_only:
            conn = self._readers.pop() if self._readers else _open_read_only(self.path)
            try:
                return conn.execute(query, args).fetchall()
            finally:
                self._readers.append(conn)
        writer = self._writer()
        readers = writer.readers
        try:
            conn = readers.pop()  # list.pop and append are atomic: no lock needed
        except IndexError:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            return conn.execute(query, args).fetchall()
        finally:
            if len(readers) < MAX_IDLE_READERS and not writer.closed:
                readers.append(conn)
            else:
                conn.close()

    def post(
        self, fn: Callable[[sqlite3.Connection], T], then: Callable[[T | None, BaseException | None], None]
    ) -> None:
        """Queue ``fn`` without waiting: it is committed with the next write that waits (in
        order: a write that waits is committed together with, or after, everything posted before
        it), and then ``then(result, error)`` is called by the committing thread."""
        self._queue(_Write(fn, then))

    def post_item(
        self, group: Group[Item, T], item: Item, then: Callable[[T | None, BaseException | None], None]
    ) -> None:
        """Like :meth:`post`, for an item that ``group`` writes with the others of its kind."""
        self._queue(_Write(None, then, group=group, item=item))

    def add(self, group: Group[Item, T], item: Item) -> T:
        """Like :meth:`run`: ``item`` is written by one call of ``group`` with every other item of
        that group waiting next to it in the transaction (one statement for many rows)."""
        return self._wait(_Write(None, wake=threading.Event(), group=group, item=item))

    def _queue(self, write: _Write[Any]) -> None:
        while True:
            writer = self._writer()
            with writer.lock:
                if not writer.closed:
                    writer.pending.append(write)
                    return

    def queued(self) -> bool:
        """Whether writes were posted and not yet committed."""
        writer = _WRITERS.get((self.path, os.getpid(), self.synchronous))
        return writer is not None and bool(writer.pending)

    def flush(self) -> None:
        """Commit whatever was posted."""
        self.run(lambda _db: None)

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a write transaction (shared with concurrent writes) and return its result
        once committed; an exception from ``fn`` undoes only ``fn``'s own changes and is raised."""
        return self._wait(_Write(fn, wake=threading.Event()))

    def _wait(self, write: _Write[T]) -> T:
        while True:
            writer = self._writer()
            with writer.lock:
                if writer.closed:
                    continue  # evicted just now: open it again
                writer.pending.append(write)
                lead = not writer.writing
                writer.writing = True
                break
        if not lead:
            assert write.wake is not None
            write.wake.wait()  # until committed, or handed the lead
        if not write.done:
            with writer.lock:
                batch, writer.pending = writer.pending, []
            _commit(writer.conn, batch)
            with writer.lock:  # hand over to a write that waits: the next commit is not our wait
                following = next((w for w in writer.pending if w.then is None), None)
                writer.writing = following is not None
            if following is not None and following.wake is not None:
                following.lead = True
                following.wake.set()
            for other in batch:
                if other.then is not None:
                    other.then(other.result, other.error)
                elif other is not write and other.wake is not None:
                    other.wake.set()
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[return-value]


def _open_read_only(path: str) -> sqlite3.Connection:
    """A connection that cannot write. A WAL file with no shared-memory file beside it cannot be
    read where nothing may be created; a file with no WAL at all is read as immutable."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return conn
    except sqlite3.OperationalError:
        if os.path.exists(path + "-wal"):
            raise
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True, check_same_thread=False)
    conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
    return conn


def _commit(conn: sqlite3.Connection, batch: list[_Write[Any]]) -> None:
    """Commit the batch in one transaction. If a write raises, the batch is undone and each
    write is run again in its own transaction, so one failure never undoes another write, and a
    write that raises leaves nothing behind."""
    try:
        if not _transaction(conn, batch) and len(batch) > 1:
            for write in batch:
                write.error = None
                _transaction(conn, [write])
    finally:
        for write in batch:
            write.done = True


def _transaction(conn: sqlite3.Connection, batch: list[_Write[Any]]) -> bool:
    """Run the writes in one transaction; False if one raised (and then nothing was kept)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for writes in _runs(batch):
                try:
                    if writes[0].fn is not None:
                        writes[0].result = writes[0].fn(conn)
                    else:
                        assert writes[0].group is not None
                        for write, result in zip(
                            writes, writes[0].group(conn, [w.item for w in writes]), strict=True
                        ):
                            write.result = result
                except Exception as exc:
                    for write in writes:
                        write.error = exc
                    conn.execute("ROLLBACK")
                    return False
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except Exception as exc:  # the transaction itself failed: so did every write in it
        for write in batch:
            write.error = write.error or exc
    return all(write.error is None for write in batch)


def _runs(batch: list[_Write[Any]]) -> list[list[_Write[Any]]]:
    """The batch in order, as single writes and runs of items of the same group."""
    runs: list[list[_Write[Any]]] = []
    for write in batch:
        if write.group is not None and runs and runs[-1][0].group == write.group:
            runs[-1].append(write)
        else:
            runs.append([write])
    return runs
