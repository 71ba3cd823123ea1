"""One DynamoDB table that keeps failover's state (``state/dynamo.py``), as plain Python values.

Items go in and come out as dicts of str, int, float, bool, None, bytes, lists and dicts; numbers
come back as int when whole, else float. Expressions name attributes as ``#name`` (each is mapped
to ``name``) and values as ``:value``. Every read is strongly consistent.

boto3's standard configuration applies: the default credential chain or ``profile``, and the
endpoint from ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL``. The region is the one given,
else ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the profile's. Each attempt is bounded (connect 5 s,
read 10 s) and botocore's standard retry mode makes up to 3. :attr:`StateTable.requests` counts
the requests actually sent, retries included.

Errors leave as failover's: :class:`ConditionFailedError` (a condition did not hold), ``JournalError``
(a read failed: no such table, access denied), ``JournalWriteError`` (a write failed) and its
:class:`UnknownOutcomeError` (a write that may or may not have been applied: a timeout, a dropped
connection, throttling or a server error after the retries, any of which may follow an attempt
that was applied). Each message names the table, its region and the AWS error code.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from failover.errors import FailoverError, JournalError, JournalWriteError

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
ATTEMPTS = 3
BATCH_GET_KEYS = 100  # BatchGetItem's limit per request

Item = dict[str, Any]

_NAME = re.compile(r"#([A-Za-z_][A-Za-z0-9_]*)")
_UNKNOWN_CODES = frozenset(
    {
        "InternalServerError",
        "ServiceUnavailable",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class ConditionFailedError(FailoverError):
    """A conditional write was refused: its condition did not hold (nothing was written by it)."""


class UnknownOutcomeError(JournalWriteError):
    """A write may or may not have been applied; read the item to know."""


def _plain(value: Any) -> Any:
    """A deserialized DynamoDB value as plain Python."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _dynamo(value: Any) -> Any:
    """A plain Python value as TypeSerializer takes it (floats as exact decimals)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list | tuple):
        return [_dynamo(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _dynamo(v) for k, v in value.items()}
    return value


def _names(*expressions: str | None) -> dict[str, str]:
    return {f"#{n}": n for e in expressions if e for n in _NAME.findall(e)}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


class StateTable:
    """One table, keys ``pk`` (S, hash) and ``sk`` (S, range)."""

    def __init__(self, table: str, *, region: str | None = None, profile: str | None = None) -> None:
        self.table = table
        try:
            self._session = boto3.Session(profile_name=profile)
        except BotoCoreError as exc:
            raise JournalError(f"DynamoDB table {table}: cannot open AWS profile {profile!r}: {exc}") from exc
        found = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or self._session.region_name
        )
        if not found:
            raise JournalError(
                f"DynamoDB table {table}: no AWS region: give one as dynamodb://{table}?region=REGION "
                "or set AWS_REGION"
            )
        self.region: str = found
        self.requests = 0  # DynamoDB requests sent, retries included
        self.by_operation: Counter[str] = Counter()  # the same, per operation (UpdateItem, ...)
        self._count_lock = threading.Lock()
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
        )
        try:
            self.client: Any = self._session.client("dynamodb", region_name=self.region, config=config)
        except BotoCoreError as exc:
            raise JournalError(f"DynamoDB table {table} in {self.region}: no client: {exc}") from exc
        # first: a handler that answers the request itself (a stub) would stop later ones
        self.client.meta.events.register_first("before-send.dynamodb", self._sent)

    def _sent(self, event_name: str = "", **_: Any) -> None:
        with self._count_lock:
            self.requests += 1
            self.by_operation[event_name.rpartition(".")[2]] += 1

    # --- conversions ----------------------------------------------------------------------

    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _encode(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._serializer.serialize(_dynamo(v)) for k, v in values.items()}

    def _decode(self, item: Mapping[str, Any]) -> Item:
        return {k: _plain(self._deserializer.deserialize(v)) for k, v in item.items()}

    def _expression(
        self,
        args: dict[str, Any],
        *,
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
        update: str | None = None,
        projection: str | None = None,
    ) -> dict[str, Any]:
        if update:
            args["UpdateExpression"] = update
        if condition:
            args["ConditionExpression"] = condition
        if projection:
            args["ProjectionExpression"] = projection
        names = _names(update, condition, projection)
        if names:
            args["ExpressionAttributeNames"] = names
        if values:
            args["ExpressionAttributeValues"] = self._encode(values)
        return args

    # --- errors ---------------------------------------------------------------------------

    def _where(self) -> str:
        return f"DynamoDB table {self.table} in {self.region}"

    def _missing(self) -> str:
        return (
            f"DynamoDB table {self.table} does not exist in {self.region}: create it with "
            f"`failover state init dynamodb://{self.table}?region={self.region}`"
        )

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                raise JournalError(self._missing()) from exc
            message = exc.response.get("Error", {}).get("Message", "") or str(exc)
            raise JournalError(f"{self._where()}: could not read {what}: AWS {code}: {message}") from exc
        except BotoCoreError as exc:
            raise JournalError(f"{self._where()}: could not read {what}: {exc}") from exc

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = error_code(exc)
            message = exc.response.get("Error", {}).get("Message", "") or str(exc)
            text = f"{self._where()}: could not write {what}: AWS {code}: {message}"
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "ConditionalCheckFailedException":
                raise ConditionFailedError(text) from exc
            if code == "ResourceNotFoundException":
                raise JournalWriteError(self._missing()) from exc
            if code in _UNKNOWN_CODES or status >= 500:
                raise UnknownOutcomeError(text + " (it may or may not have been written)") from exc
            raise JournalWriteError(text) from exc
        except BotoCoreError as exc:
            raise UnknownOutcomeError(
                f"{self._where()}: could not write {what}: {exc} (it may or may not have been written)"
            ) from exc

    # --- items ----------------------------------------------------------------------------

    def get(self, pk: str, sk: str, *, projection: str | None = None) -> Item | None:
        """The item at (pk, sk), or None; ``projection``: only those ``#attributes``."""
        args = self._expression(
            {"TableName": self.table, "Key": self._key(pk, sk), "ConsistentRead": True},
            projection=projection,
        )
        with self._reading(f"item {pk}/{sk}"):
            found = self.client.get_item(**args).get("Item")
        return None if found is None else self._decode(found)

    def get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """The items of ``keys`` that exist, by key (BatchGetItem, 100 keys a request, until no
        key is left unprocessed)."""
        found: dict[tuple[str, str], Item] = {}
        wanted = list(dict.fromkeys(keys))
        for first in range(0, len(wanted), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [self._key(pk, sk) for pk, sk in wanted[first : first + BATCH_GET_KEYS]],
                    "ConsistentRead": True,
                }
            }
            pause = 0.05
            while request:
                with self._reading(f"{len(request[self.table]['Keys'])} items"):
                    answer = self.client.batch_get_item(RequestItems=request)
                for raw in answer.get("Responses", {}).get(self.table, []):
                    item = self._decode(raw)
                    found[(item["pk"], item["sk"])] = item
                request = answer.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(pause)
                    pause = min(1.0, pause * 2)
        return found

    def query(self, pk: str) -> list[Item]:
        """Every item of partition ``pk``, by ascending sort key."""
        items: list[Item] = []
        args: dict[str, Any] = self._expression(
            {"TableName": self.table, "ConsistentRead": True, "KeyConditionExpression": "#pk = :pk"},
            values={":pk": pk},
        )
        args["ExpressionAttributeNames"] = {"#pk": "pk"}
        while True:
            with self._reading(f"partition {pk}"):
                page = self.client.query(**args)
            items += [self._decode(raw) for raw in page.get("Items", [])]
            if not page.get("LastEvaluatedKey"):
                return items
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        args = self._expression(
            {"TableName": self.table, "Item": self._encode(item)}, condition=condition, values=values
        )
        with self._writing(f"item {item['pk']}/{item['sk']}"):
            self.client.put_item(**args)

    def update(
        self,
        pk: str,
        sk: str,
        update: str,
        *,
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
        updated: bool = False,
    ) -> Item:
        """Update an item; with ``updated``, return the attributes the update set (UPDATED_NEW)."""
        args = self._expression(
            {"TableName": self.table, "Key": self._key(pk, sk)},
            update=update,
            condition=condition,
            values=values,
        )
        if updated:
            args["ReturnValues"] = "UPDATED_NEW"
        with self._writing(f"item {pk}/{sk}"):
            answer = self.client.update_item(**args)
        return self._decode(answer.get("Attributes", {}))

    def delete(
        self, pk: str, sk: str, *, condition: str | None = None, values: Mapping[str, Any] | None = None
    ) -> None:
        args = self._expression(
            {"TableName": self.table, "Key": self._key(pk, sk)}, condition=condition, values=values
        )
        with self._writing(f"the deletion of item {pk}/{sk}"):
            self.client.delete_item(**args)

    # --- the table ------------------------------------------------------------------------

    def create_table(self) -> list[str]:
        """Create the table (on-demand, keys pk/sk) and turn on point-in-time recovery, unless
        done already; what was done or found, line by line."""
        lines: list[str] = []
        where = f"{self.table} in {self.region}"
        table = self._describe()
        if table is None:
            with self._writing("the table"):
                try:
                    self.client.create_table(
                        TableName=self.table,
                        BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[
                            {"AttributeName": "pk", "AttributeType": "S"},
                            {"AttributeName": "sk", "AttributeType": "S"},
                        ],
                        KeySchema=[
                            {"AttributeName": "pk", "KeyType": "HASH"},
                            {"AttributeName": "sk", "KeyType": "RANGE"},
                        ],
                    )
                    lines.append(f"created table {where} (on-demand capacity, keys pk and sk)")
                except ClientError as exc:
                    if error_code(exc) != "ResourceInUseException":
                        raise
                    lines.append(f"table {where} is being created already")
        else:
            keys = sorted((k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", []))
            if keys != [("pk", "HASH"), ("sk", "RANGE")]:
                found = ", ".join(f"{name} ({kind})" for name, kind in keys)
                raise JournalError(f"table {where} has the keys {found}, not pk (HASH) and sk (RANGE)")
            lines.append(f"table {where} exists")
        with self._reading("the table's status"):
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 2, "MaxAttempts": 90}
            )
        with self._reading("the table's continuous backups"):
            backups = self.client.describe_continuous_backups(TableName=self.table)
        recovery = backups.get("ContinuousBackupsDescription", {}).get("PointInTimeRecoveryDescription", {})
        if recovery.get("PointInTimeRecoveryStatus") == "ENABLED":
            lines.append("point-in-time recovery is on")
        else:
            with self._writing("the table's point-in-time recovery"):
                self.client.update_continuous_backups(
                    TableName=self.table,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
            lines.append("turned on point-in-time recovery")
        return lines

    def _describe(self) -> dict[str, Any] | None:
        """The table's description, or None if there is no such table."""
        try:
            with self._reading("the table's description"):
                return dict(self.client.describe_table(TableName=self.table)["Table"])
        except JournalError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) == "ResourceNotFoundException":
                return None
            raise

    def caller_identity(self) -> str | None:
        """The ARN this process acts as (STS GetCallerIdentity), or None if it cannot be known
        within a few seconds."""
        config = Config(
            connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 1}
        )
        try:
            sts = self._session.client("sts", region_name=self.region, config=config)
            return str(sts.get_caller_identity()["Arn"])
        except Exception:
            return None
