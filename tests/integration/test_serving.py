"""Gold exported to DynamoDB: the stack's real AWS API server over loopback, a real
Iceberg gold table in the test catalog.

The gold table is written here (in a namespace of the test's own) with fct_orders'
key and partition columns, so the export is exercised on changes that a dbt run would
make: a changed order, an order gone, an order that moved to another day.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.serving.assets import DYNAMODB_CHECK, build_dynamodb_export, dynamodb_key
from lakehouse_assets.serving.dynamodb import deserialise
from lakehouse_dev.stack import LocalStack
from resources.environments import build_resources
from resources.settings import LakehouseSettings, load_settings

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 10)
NEXT = DAY + timedelta(days=1)
SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.string(), nullable=False),
        pa.field("order_date", pa.date32(), nullable=False),
        pa.field("country", pa.string()),
        pa.field("total", pa.decimal128(18, 2)),
        pa.field("ordered_at", pa.timestamp("us", tz="UTC")),
        pa.field("cancelled_at", pa.timestamp("us", tz="UTC")),
    ]
)


def order(number: int, day: date, total: str = "10.00", **changes: Any) -> dict[str, Any]:
    row = {
        "order_id": f"PO-{number}",
        "order_date": day,
        "country": "DE",
        "total": Decimal(total),
        "ordered_at": datetime(day.year, day.month, day.day, 9, number, tzinfo=UTC),
        "cancelled_at": None,
    }
    row.update(changes)
    return row


class Serving:
    """A gold namespace and a DynamoDB table prefix of the test's own."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.settings: LakehouseSettings = load_settings("local", environ=environ)
        self.resources = build_resources(self.settings)
        export = self.settings.serving.dynamodb.exports["fct_orders"]
        self.definitions = build_dynamodb_export(self.settings, "fct_orders", export)
        self.table_name = f"{self.settings.serving.dynamodb.table_prefix}fct_orders"
        self.identifier = (self.settings.namespace("gold"), "fct_orders")
        catalog = self.resources["iceberg"].load()
        catalog.create_namespace_if_not_exists(self.identifier[0])
        self.gold = catalog.create_table(self.identifier, schema=SCHEMA)

    def write_gold(self, rows: list[dict[str, Any]]) -> None:
        self.gold.overwrite(pa.Table.from_pylist(rows, schema=SCHEMA))

    def run(self, day: date, *, check_only: bool = False, rewrite_all: bool = False) -> Any:
        """An export of ``day`` with its check, or the check alone (as its job runs it)."""
        if check_only:
            job = dg.define_asset_job(
                "check_only",
                selection=dg.AssetSelection.checks(self.definitions[1]),
                partitions_def=self.definitions[0].partitions_def,
            )
            definitions = dg.Definitions(
                assets=[self.definitions[0]],
                asset_checks=[self.definitions[1]],
                jobs=[job],
                resources=self.resources,
            )
            # The day as a partitioned run carries it (a job of checks alone has no
            # partitions of its own to validate a partition key against).
            return definitions.resolve_job_def("check_only").execute_in_process(
                tags={"dagster/partition": day.isoformat()}
            )
        node = dynamodb_key("fct_orders").to_python_identifier()
        return dg.materialize(
            self.definitions,
            resources=self.resources,
            partition_key=day.isoformat(),
            run_config={"ops": {node: {"config": {"rewrite_all": rewrite_all}}}},
        )

    def items(self) -> dict[str, dict[str, Any]]:
        client = self.resources["dynamodb"].client()
        pages = client.get_paginator("scan").paginate(TableName=self.table_name)
        return {
            item["order_id"]: item
            for page in pages
            for item in (deserialise(raw) for raw in page["Items"])
        }


@pytest.fixture
def serving(stack: LocalStack) -> Serving:
    import os

    suffix = uuid.uuid4().hex[:8]
    environ = {
        **os.environ,
        "LAKEHOUSE__CATALOG__NAMESPACES__GOLD": f"gold_{suffix}",
        "LAKEHOUSE__SERVING__DYNAMODB__TABLE_PREFIX": f"t{suffix}_",
    }
    return Serving(environ)


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node(
        dynamodb_key("fct_orders").to_python_identifier()
    )
    return {k: v.value for k, v in materialization.metadata.items()}


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == DYNAMODB_CHECK
    return evaluation


def test_a_day_is_exported_once_changes_only_and_reconciled(serving: Serving) -> None:
    serving.write_gold([*(order(n, DAY) for n in range(1, 6)), order(9, NEXT)])

    first = serving.run(DAY)
    assert first.success
    assert _metadata(first) | {"endpoint": None} == {
        "dagster/partition_row_count": 5,
        "dynamodb_table": serving.table_name,
        "endpoint": None,
        "items_put": 5,
        "items_deleted": 0,
        "items_unchanged": 0,
    }
    assert _check(first).passed
    items = serving.items()
    assert sorted(items) == [f"PO-{n}" for n in range(1, 6)]  # the next day is not exported
    assert items["PO-3"]["total"] == Decimal("10.00")
    assert items["PO-3"]["ordered_at"] == "2026-11-10T09:03:00+00:00"
    assert items["PO-3"]["_partition"] == DAY.isoformat()
    assert "cancelled_at" not in items["PO-3"]

    again = serving.run(DAY)
    assert (_metadata(again)["items_put"], _metadata(again)["items_unchanged"]) == (0, 5)

    # dbt's next run: PO-2 changed, PO-5 gone, PO-4 moved to the next day.
    serving.write_gold(
        [
            order(1, DAY),
            order(2, DAY, "12.50", cancelled_at=datetime(2026, 11, 10, 18, tzinfo=UTC)),
            order(3, DAY),
            order(4, NEXT),
            order(9, NEXT),
        ]
    )
    moved = serving.run(NEXT)
    assert (_metadata(moved)["items_put"], _metadata(moved)["items_deleted"]) == (2, 0)
    changed = serving.run(DAY)
    metadata = _metadata(changed)
    assert (metadata["items_put"], metadata["items_deleted"], metadata["items_unchanged"]) == (
        1,
        1,
        2,
    )
    assert _check(changed).passed
    items = serving.items()
    assert sorted(items) == ["PO-1", "PO-2", "PO-3", "PO-4", "PO-9"]
    assert items["PO-2"]["total"] == Decimal("12.50")
    assert items["PO-4"]["_partition"] == NEXT.isoformat()  # not deleted by DAY's export


def test_the_check_finds_an_item_changed_behind_the_exports_back(serving: Serving) -> None:
    serving.write_gold([order(n, DAY) for n in range(1, 4)])
    assert serving.run(DAY).success
    client = serving.resources["dynamodb"].client()
    client.update_item(
        TableName=serving.table_name,
        Key={"order_id": {"S": "PO-2"}},
        UpdateExpression="SET country = :c",
        ExpressionAttributeValues={":c": {"S": "FR"}},
    )
    client.delete_item(TableName=serving.table_name, Key={"order_id": {"S": "PO-3"}})

    checked = _check(serving.run(DAY, check_only=True))
    assert not checked.passed
    assert checked.severity == dg.AssetCheckSeverity.ERROR
    assert checked.description == (
        "2 items for 3 gold rows; order_id=PO-2: country differ; order_id=PO-3: missing"
    )

    # The hashes say PO-2 is unchanged: only a full rewrite repairs it.
    repaired = serving.run(DAY, rewrite_all=True)
    assert _metadata(repaired)["items_put"] == 3
    assert _check(repaired).passed
    assert serving.items()["PO-2"]["country"] == "DE"
