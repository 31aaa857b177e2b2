"""Gold exported to DynamoDB for lookups by key: one asset per exported model and day.

``serving/dynamodb/<model>`` (daily, like gold) writes the gold model's rows of a day
(its ``partition_column``) to the DynamoDB table ``<table_prefix><model>``, keyed by
the model's ``key`` column. Every item carries the row's columns plus ``_partition``
(the day) and ``_row_hash`` (SHA-256 of the row's canonical JSON); the global
secondary index ``by_partition`` (``_partition``, key; projecting ``_row_hash``) lists a
day's items in one query. An export therefore writes only what changed:

1. read the day's rows from the gold table (``main``, what readers see);
2. query the index for the day's items and their hashes;
3. put the rows that are new or whose hash differs, in batches of 25 (boto3's batch
   writer resends unprocessed items), and delete the day's items whose key left
   gold, each only if it still belongs to the day (an order that moved to another
   day is not deleted behind that day's export).

Reruns and backfills are idempotent: an unchanged day writes nothing. The check
``dynamodb_reconciliation`` compares the day's item count with gold's row count and a
sample of items, value by value, with gold's rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

INDEX = "by_partition"
PARTITION_ATTRIBUTE = "_partition"
HASH_ATTRIBUTE = "_row_hash"
#: DynamoDB's limit of items per BatchGetItem.
BATCH_GET = 100


def _plain(value: Any) -> Any:
    """A row value as DynamoDB stores it: times as ISO strings, floats as decimals."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def row_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 of the row's canonical JSON (sorted keys, values as stored)."""
    canonical = json.dumps({k: _plain(v) for k, v in row.items()}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def to_item(row: Mapping[str, Any], day: date) -> dict[str, Any]:
    """The DynamoDB item (plain Python values) of a gold row of ``day``; nulls are left
    out, as DynamoDB has no typed null for a missing value."""
    item = {k: _plain(v) for k, v in row.items() if v is not None}
    item[PARTITION_ATTRIBUTE] = day.isoformat()
    item[HASH_ATTRIBUTE] = row_hash(row)
    return item


@dataclass(frozen=True)
class ExportPlan:
    """What an export of one day writes."""

    puts: list[dict[str, Any]]
    deletes: list[str]
    unchanged: int


def plan_export(
    items: Sequence[Mapping[str, Any]], stored: Mapping[str, str], key: str
) -> ExportPlan:
    """Puts for the items that are new or changed (their hash differs from ``stored``,
    key -> hash of the day's items in DynamoDB), deletes for the stored keys gone."""
    wanted = {str(item[key]): item for item in items}
    puts = [dict(item) for k, item in wanted.items() if stored.get(k) != item[HASH_ATTRIBUTE]]
    deletes = sorted(set(stored) - set(wanted))
    return ExportPlan(puts, deletes, len(wanted) - len(puts))


def serialise(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in item.items()}


def deserialise(item: Mapping[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def ensure_table(client: Any, table: str, key: str, key_type: str) -> None:
    """Create the table (on demand capacity, with the ``by_partition`` index) if missing."""
    try:
        client.describe_table(TableName=table)
        return
    except client.exceptions.ResourceNotFoundException:
        pass
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        # ResourceInUse: created meanwhile by another export.
        client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": key, "AttributeType": key_type},
                {"AttributeName": PARTITION_ATTRIBUTE, "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": INDEX,
                    "KeySchema": [
                        {"AttributeName": PARTITION_ATTRIBUTE, "KeyType": "HASH"},
                        {"AttributeName": key, "KeyType": "RANGE"},
                    ],
                    "Projection": {
                        "ProjectionType": "INCLUDE",
                        "NonKeyAttributes": [HASH_ATTRIBUTE],
                    },
                }
            ],
        )
    client.get_waiter("table_exists").wait(TableName=table)


def stored_hashes(client: Any, table: str, key: str, day: date) -> dict[str, str]:
    """Key -> ``_row_hash`` of every item of ``day`` (one paginated index query)."""
    stored: dict[str, str] = {}
    paginator = client.get_paginator("query")
    for page in paginator.paginate(
        TableName=table,
        IndexName=INDEX,
        KeyConditionExpression="#p = :day",
        ExpressionAttributeNames={"#p": PARTITION_ATTRIBUTE},
        ExpressionAttributeValues={":day": {"S": day.isoformat()}},
    ):
        for raw in page["Items"]:
            item = deserialise(raw)
            stored[str(item[key])] = str(item.get(HASH_ATTRIBUTE, ""))
    return stored


def write(client: Any, writer: Any, key: str, day: date, plan: ExportPlan) -> int:
    """Apply ``plan``: puts through ``writer`` (the boto3 ``Table``, whose batch writer
    sends 25 items a request and resends unprocessed ones), then conditional deletes.
    Returns the items deleted."""
    table = writer.name
    with writer.batch_writer() as batch:
        for item in plan.puts:
            batch.put_item(Item=item)
    deleted = 0
    for gone in plan.deletes:
        try:
            client.delete_item(
                TableName=table,
                Key={key: serialise({key: gone})[key]},
                ConditionExpression="#p = :day",
                ExpressionAttributeNames={"#p": PARTITION_ATTRIBUTE},
                ExpressionAttributeValues={":day": {"S": day.isoformat()}},
            )
            deleted += 1
        except client.exceptions.ConditionalCheckFailedException:
            pass  # the key belongs to another day now
    return deleted


def sample(rows: Sequence[Mapping[str, Any]], key: str, size: int) -> list[Mapping[str, Any]]:
    """Up to ``size`` rows spread evenly over the rows sorted by key (deterministic)."""
    ordered = sorted(rows, key=lambda r: str(r[key]))
    if len(ordered) <= size:
        return ordered
    step = len(ordered) / size
    return [ordered[int(i * step)] for i in range(size)]


def fetch_items(
    client: Any, table: str, key: str, keys: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The items of ``keys`` (BatchGetItem, 100 at a time, unprocessed keys retried)."""
    found: dict[str, dict[str, Any]] = {}
    pending = [serialise({key: k}) for k in keys]
    while pending:
        batch, pending = pending[:BATCH_GET], pending[BATCH_GET:]
        request: dict[str, Any] = {table: {"Keys": batch, "ConsistentRead": True}}
        while request:
            answer = client.batch_get_item(RequestItems=request)
            for raw in answer["Responses"].get(table, []):
                item = deserialise(raw)
                found[str(item[key])] = item
            request = answer.get("UnprocessedKeys") or {}
    return found


def differences(
    rows: Sequence[Mapping[str, Any]], items: Mapping[str, Mapping[str, Any]], key: str, day: date
) -> list[str]:
    """Where the sampled gold ``rows`` and their DynamoDB ``items`` disagree."""
    problems = []
    for row in rows:
        k = str(row[key])
        item = items.get(k)
        if item is None:
            problems.append(f"{key}={k}: missing")
            continue
        expected = to_item(row, day)
        changed = sorted(c for c in set(expected) | set(item) if expected.get(c) != item.get(c))
        if changed:
            problems.append(f"{key}={k}: {', '.join(changed)} differ")
    return problems
