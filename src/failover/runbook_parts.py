"""The pieces runbook models are made of, shared by services and triggers: names, modes, the
base model, and checks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from failover.durations import Duration

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=128)]
Mode = Literal["graceful", "ungraceful"]
MODES: tuple[Mode, ...] = ("graceful", "ungraceful")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


OnSourceDown = Literal["skip", "best_effort"]


class CheckSpec(_Model):
    """A read-only check, before anything changes (preflight) or after a service moved (verify)."""

    id: Name | None = Field(None, description="Id for --skip-check; default SERVICE.CHECK.")
    check: str = Field(description="Registered check name, e.g. sim.check.")
    site: str = Field(description="${to}, ${from} or a site name.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    description: str | None = None
    ungraceful: OnSourceDown = Field(
        "skip", description="On the source site in ungraceful mode: skip or best_effort."
    )
    timeout: Duration | None = Field(
        None, description="How long it may take (preflight) or poll (verify); default from defaults."
    )
    interval: Duration | None = Field(None, description="Verify checks: how often to ask again.")
    modes: list[Mode] = Field(default_factory=lambda: list(MODES), description="Modes this check runs in.")
