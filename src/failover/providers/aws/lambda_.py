"""Lambda: a custom hook in the plan (flush a cache, pause a batch job, page a team)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, JsonValue

from failover.durations import Duration
from failover.errors import ProviderError
from failover.providers.aws._client import aws_errors, client
from failover.providers.base import Action, Context, Params, Permission, Placement


def invoker(ctx: Context, params: InvokeParams) -> Any:
    """The Lambda client for a hook: it waits as long as the function may run (never past the
    step's deadline), and botocore never repeats an invocation (the executor retries, with the
    same token)."""
    return client(ctx, "lambda", read_timeout=params.timeout + 10, attempts=1)


class InvokeParams(Params):
    function: str = Field(description="Function name or ARN (optionally with :alias).")
    payload: JsonValue = Field(None, description="JSON event passed to the function.")
    undo_payload: JsonValue = Field(
        None, description="Event that undoes the hook on rollback; without it the step is irreversible."
    )
    timeout: Duration = Field(60.0, description="How long the function may run (at most 900 s).", le=900)


class Invoke(Action[InvokeParams]):
    """Invoke a Lambda function synchronously as a custom step; an error of the function fails the step."""

    name = "aws.lambda.invoke"
    cloud = "aws"
    params_model = InvokeParams
    default_estimate_s = 30.0
    permission_names = ("lambda:InvokeFunction",)
    verifiable = False  # a function's success is the answer; nothing to ask it afterwards

    def describe(self, params: InvokeParams, where: Placement) -> str:
        undo = "" if params.undo_payload is not None else " (irreversible)"
        return f"Invoke Lambda function {params.function} {where.phrase()}{undo}"

    def estimate(self, params: InvokeParams) -> float:
        return min(params.timeout, self.default_estimate_s)

    def is_reversible(self, params: InvokeParams) -> bool:
        return params.undo_payload is not None

    def permissions(self, params: InvokeParams, where: Placement) -> list[Permission]:
        arn = (
            params.function
            if params.function.startswith("arn:")
            else (f"arn:aws:lambda:{where.region or '*'}:*:function:{params.function}")
        )
        return [Permission("aws", "lambda:InvokeFunction", arn)]

    def _invoke(self, ctx: Context, params: InvokeParams, payload: JsonValue, token: str) -> JsonValue:
        event = {"failover": {"run_id": ctx.run_id, "step_id": ctx.step_id, "token": token}}
        body = {**payload, **event} if isinstance(payload, dict) else {"payload": payload, **event}
        lam = invoker(ctx, params)
        with aws_errors(ctx, f"Lambda function {params.function}"):
            answer = lam.invoke(
                FunctionName=params.function,
                InvocationType="RequestResponse",
                Payload=json.dumps(body).encode(),
            )
            raw = answer["Payload"].read()
        text = raw.decode("utf-8", "replace") if raw else ""
        try:
            result: JsonValue = json.loads(text) if text else None
        except ValueError:
            result = text
        if answer.get("FunctionError"):
            raise ProviderError(
                f"Lambda function {params.function} at {ctx.placement.site} failed "
                f"({answer['FunctionError']}): {text[:500]}"
            )
        return result

    def read(self, ctx: Context, params: InvokeParams) -> JsonValue:
        return None  # a hook has no state of its own to snapshot

    def apply(self, ctx: Context, params: InvokeParams) -> JsonValue:
        """The function receives the idempotency token: a hook that may run twice must use it."""
        return self._invoke(ctx, params, params.payload, ctx.idempotency_token)

    def verify(self, ctx: Context, params: InvokeParams) -> bool:
        return False  # not verifiable: a hook in flight when a run died runs again, with the same token

    def compensate(self, ctx: Context, params: InvokeParams, before: JsonValue) -> None:
        if params.undo_payload is None:
            super().compensate(ctx, params, before)
        self._invoke(ctx, params, params.undo_payload, ctx.idempotency_token + ":undo")  # not a replay
