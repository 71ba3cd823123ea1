"""A real Prometheus server (Debian's ``prometheus`` package) scraping an exporter the tests
set: gauges served as ``/metrics`` text from the test process, scraped every second."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.servers import HttpServer, Reply

PACKAGE = "prometheus"  # Debian's package; `make test` installs it where it can
JOB = "shop"
START_S = 60.0  # how long the server may take to be ready and to have scraped the exporter once
SEEN_S = 30.0  # how long a value set on the exporter may take to be seen in a query


def binary() -> str | None:
    """The prometheus program, if installed."""
    return shutil.which("prometheus")


class Exporter:
    """Serves ``/metrics`` on 127.0.0.1: every gauge set, in Prometheus's text format."""

    def __init__(self) -> None:
        self._gauges: dict[str, float | str] = {}
        self._lock = threading.Lock()
        self.server = HttpServer()
        self.address = self.server.url.removeprefix("http://")
        self._serve()

    def set(self, series: str, value: float | str) -> None:
        """Serve ``series`` (``shop_error_ratio{site="west"}``) with ``value`` (``NaN``, ``+Inf``)."""
        with self._lock:
            self._gauges[series] = value
            self._serve()

    def _serve(self) -> None:
        text = "".join(f"{series} {value}\n" for series, value in sorted(self._gauges.items()))
        self.server.reply(
            "/metrics", Reply(200, text.encode(), {"Content-Type": "text/plain; version=0.0.4"})
        )

    def close(self) -> None:
        self.server.close()


class ExitedError(RuntimeError):
    """The server exited before it was ready (its port was taken meanwhile, say)."""


def start(program: str, workdir: Path, exporter: Exporter, attempts: int = 3) -> PrometheusServer:
    """A ready server scraping ``exporter``; one that exits before it is ready (the free port it
    was given was taken meanwhile) is tried again on another port, ``attempts`` times in all."""
    attempt = 1
    while True:
        place = workdir / f"attempt-{attempt}"
        place.mkdir()
        try:
            return PrometheusServer(program, place, exporter)
        except ExitedError:
            if attempt == attempts:
                raise
            attempt += 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """``prometheus`` on a free port of 127.0.0.1, with its data in ``workdir``, scraping the
    exporter every second; ready (``/-/ready``) and with a first scrape in when made."""

    def __init__(self, program: str, workdir: Path, exporter: Exporter) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"scrape_configs:\n  - job_name: {JOB}\n"
            f"    static_configs: [{{targets: ['{exporter.address}']}}]\n",
            encoding="utf-8",
        )
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    program,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait("ready", lambda: self._get("/-/ready")[0] == 200, START_S)
            self._wait("the first scrape", lambda: self.values(f'up{{job="{JOB}"}}') == ["1"], START_S)
        except BaseException:
            self.close()
            raise

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def values(self, query: str) -> list[str]:
        """The values of an instant query's samples as the API writes them, right now."""
        status, body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": query}))
        if status != 200:
            return []
        return [item["value"][1] for item in json.loads(body)["data"]["result"]]

    def wait_for(self, query: str, values: list[str]) -> None:
        """Wait, at most SEEN_S, until ``query`` answers ``values``."""
        self._wait(f"{query} to be {values}", lambda: sorted(self.values(query)) == sorted(values), SEEN_S)

    def _wait(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        end = time.monotonic() + timeout
        while not done():
            if self.process.poll() is not None:
                raise ExitedError(f"prometheus exited ({self.process.returncode}): {self.log_tail()}")
            if time.monotonic() > end:
                raise TimeoutError(f"waited {timeout:g}s for {what}: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-2000:]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
