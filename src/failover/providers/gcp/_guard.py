"""Every HTTP request of a GCP client asks the active context first, and waits within its budget.

google-cloud-compute's REST transports send through a google-auth ``AuthorizedSession`` (a
``requests.Session``), which refreshes credentials through a second session of its own. Each
transport adapter of both is wrapped: before a request is sent, the context of the provider call
running in this thread (:func:`failover.providers.base.active_context`), if any, is asked
(``check_call``: DeadlineError after the deadline, LeaseLostError once the lease is lost), and
the request's timeout is cut to what that context may still wait (``Context.budget``).

That covers what the provider's own calls do not see one by one: a pager's further pages, an
operation's wait calls, and the requests of a credentials refresh (the token endpoint, which
google-auth retries on 5xx; the metadata server, which it asks with its own 3 s timeout, up to 5
times). Imported with the clients (it needs ``requests``), not when the provider is registered.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import BaseAdapter

from failover.providers.base import Context, active_context

DEFAULT_TIMEOUT_S = 60.0  # for a request sent with no timeout at all, when a deadline is near


def bounded(ctx: Context, timeout: Any) -> Any:
    """``timeout`` (seconds, a (connect, read) pair, or None) cut to ``ctx``'s budget."""
    if ctx.remaining() is None:
        return timeout

    def one(value: float | None) -> float:
        cap = DEFAULT_TIMEOUT_S if value is None else float(value)
        return min(cap, ctx.budget(cap))

    if timeout is None or isinstance(timeout, int | float):
        return one(timeout)
    if isinstance(timeout, tuple) and len(timeout) == 2:
        return (one(timeout[0]), one(timeout[1]))
    return timeout  # a urllib3 Timeout: as given


class GuardedAdapter(BaseAdapter):
    """A transport adapter that asks the active context before its ``inner`` adapter sends."""

    def __init__(self, inner: BaseAdapter) -> None:
        super().__init__()
        self.inner = inner

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        ctx = active_context()
        if ctx is not None:
            ctx.check_call()
            timeout = bounded(ctx, timeout)
        return self.inner.send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )

    def close(self) -> None:
        self.inner.close()


def guard_session(session: requests.Session) -> None:
    """Wrap every adapter mounted on ``session`` (once)."""
    for prefix, adapter in list(session.adapters.items()):
        if not isinstance(adapter, GuardedAdapter):
            session.mount(prefix, GuardedAdapter(adapter))


def guarded_request() -> Any:
    """A google-auth transport Request whose session is guarded: for what google-auth asks on
    its own (whether this is a Compute Engine VM, when looking for default credentials)."""
    from google.auth.transport.requests import Request

    session = requests.Session()
    guard_session(session)
    return Request(session=session)


def guard_client(client: Any) -> Any:
    """``client`` with the adapters of its REST transport's session, and of the session that
    session refreshes credentials with, wrapped. A client whose transport has no such session
    (gRPC) is returned as it is: the provider makes REST clients only."""
    session = getattr(client.transport, "_session", None)  # the transport's AuthorizedSession
    if isinstance(session, requests.Session):
        guard_session(session)
        refresher = getattr(getattr(session, "_auth_request", None), "session", None)
        if isinstance(refresher, requests.Session):
            guard_session(refresher)
    return client
