"""Telling people a trigger fired: a Slack-compatible webhook (``{"text": ...}``, which Slack,
Mattermost, Rocket.Chat and most chat tools take), and PagerDuty's Events API v2."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Firing:
    """What a notification says: which trigger fired, on what, and what happened next."""

    runbook: str
    trigger: str
    from_: str
    to: str
    action: str
    fired_at: str  # UTC, ISO 8601
    signals: Sequence[Mapping[str, Any]]  # each: id, site, ok, observed, message
    run_id: str | None = None
    next_step: str = ""  # what a person does now (the command)

    def summary(self) -> str:
        bad = [s for s in self.signals if not s["ok"]]
        what = f"failover {self.runbook}: trigger {self.trigger} fired ({self.from_} -> {self.to})"
        return f"{what}: {len(bad)} of {len(self.signals)} signals bad"

    def text(self) -> str:
        lines = [self.summary() + f" at {self.fired_at}"]
        lines += [
            f"- {'ok ' if s['ok'] else 'BAD'} {s['id']} at {s['site']}: {s['message']}" for s in self.signals
        ]
        if self.run_id:
            lines.append(f"run {self.run_id} started ({self.action})")
        if self.next_step:
            lines.append(f"next: {self.next_step}")
        return "\n".join(lines)

    def details(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "trigger": self.trigger,
            "from": self.from_,
            "to": self.to,
            "action": self.action,
            "fired_at": self.fired_at,
            "run_id": self.run_id,
            "next": self.next_step,
            "signals": [dict(s) for s in self.signals],
        }


def webhook_body(firing: Firing) -> dict[str, Any]:
    """A chat webhook's JSON: the text, and every detail under ``failover`` for automation."""
    return {"text": firing.text(), "failover": firing.details()}


def pagerduty_body(firing: Firing, routing_key: str) -> dict[str, Any]:
    """An Events API v2 ``trigger`` event; one incident per firing (its dedup key)."""
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": f"failover:{firing.runbook}:{firing.trigger}:{firing.fired_at}",
        "payload": {
            "summary": firing.summary()[:1024],
            "source": f"failover watch ({firing.runbook})",
            "severity": "critical",
            "component": firing.from_,
            "custom_details": firing.details(),
        },
    }


def send(url: str, body: Mapping[str, Any]) -> str | None:
    """POST ``body`` as JSON; None when it was taken (2xx), else why not."""
    import urllib3

    try:
        answer = urllib3.request(
            "POST",
            url,
            body=json.dumps(body, default=str).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            timeout=urllib3.Timeout(TIMEOUT_S),
            retries=urllib3.Retry(total=2, backoff_factor=0.5, allowed_methods=None, raise_on_status=False),
            redirect=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        return f"{url}: {type(exc).__name__}: {exc}"
    if 200 <= answer.status < 300:
        return None
    return f"{url}: HTTP {answer.status}: {answer.data[:200].decode('utf-8', 'replace')}"
