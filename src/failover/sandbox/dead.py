"""Endpoints of a region on its worst day, on 127.0.0.1: one that accepts connections and never
answers (a region that is down), and one that refuses them."""

from __future__ import annotations

import socket
import threading


class HungServer:
    """Accepts TCP connections on 127.0.0.1 and never answers: a cloud endpoint of a region
    that is down. Holds every connection it accepted until closed."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="failover-dead-endpoint", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.listener.close()
        for conn in self.accepted:
            conn.close()


class RefusingPort:
    """A port on 127.0.0.1 that refuses connections: bound, never listening, held until closed
    (so nothing else takes it meanwhile)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()
