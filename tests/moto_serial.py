"""A moto server on 127.0.0.1 that handles one request at a time, for tests that share DynamoDB
state between processes.

moto's threaded server runs requests side by side, and its DynamoDB backend does not make a
conditional write atomic against another thread's; DynamoDB does. Serializing the requests makes
the stand-in at least as strict as the table: each conditional write sees every write before it.
Prints its port, then serves until killed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with lock:
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", 0, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
