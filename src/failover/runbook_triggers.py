"""A runbook's triggers (``triggers:``) and stop conditions (``stop_when:``), as written: the
signals ``failover watch`` evaluates, what makes a trigger fire, and what it does then."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from failover.durations import Duration
from failover.runbook_parts import CheckSpec, _Model


class NotifySpec(_Model):
    """Where a firing is told: a Slack-compatible webhook, or PagerDuty's Events API v2."""

    webhook: str | None = Field(None, description="URL that takes a JSON POST of {text: ...}.")
    pagerduty: str | None = Field(
        None, description="PagerDuty Events API v2 routing key (a secret reference: ${secret:...})."
    )
    pagerduty_url: str = Field(
        "https://events.pagerduty.com/v2/enqueue", description="Events API endpoint (EU: events.eu...)."
    )

    @model_validator(mode="after")
    def _one(self) -> NotifySpec:
        if (self.webhook is None) == (self.pagerduty is None):
            raise ValueError("give exactly one of webhook or pagerduty")
        return self


class TriggerSpec(_Model):
    """Signals that, when bad long enough, notify people or start a failover made in advance."""

    from_: str = Field(alias="from", description="The site it fails away from.")
    to: str = Field(description="The site it fails over to.")
    every: Duration = Field(10.0, gt=0, description="How often the signals are evaluated.")
    for_: Duration = Field(60.0, ge=0, alias="for", description="How long the condition must hold.")
    when: str = Field("any", description='any, all, or "N of M" signals bad (e.g. "2 of 3").')
    signals: list[CheckSpec] = Field(min_length=1, description="Checks; a failing check is a bad signal.")
    guard: list[CheckSpec] = Field(
        default_factory=list, description="Checks that must pass, or nothing fires: the target is healthy."
    )
    clear_for: Duration = Field(300.0, ge=0, description="Signals good this long re-arm it after a firing.")
    cooldown: Duration = Field(3600.0, ge=0, description="No second firing within this of the last.")
    action: Literal["notify", "failover"] = Field("notify", description="notify, or run the plan.")
    notify: list[NotifySpec] = Field(default_factory=list)
    plan: str | None = Field(
        None,
        description="action failover: the plan file, made and reviewed in advance (relative to the runbook).",
    )
