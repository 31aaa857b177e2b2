"""Gold exported to PostgreSQL: the stack's real server (started once per test session),
real Iceberg gold tables in the test catalog.

Each test writes its gold tables in a namespace of its own and exports them to a schema
of its own, with the export settings of config/lakehouse.yaml (primary keys, partition
columns, indexes). The gold rows change as dbt's runs change them: a changed order, an
order gone, an order that moved to another day, a dimension rebuilt.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.serving.assets import POSTGRES_CHECK, build_postgres_export, postgres_key
from lakehouse_dev.stack import LocalStack
from resources.environments import build_resources
from resources.settings import LakehouseSettings, load_settings

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 10)
NEXT = DAY + timedelta(days=1)
ORDERS = pa.schema(
    [
        pa.field("order_id", pa.string(), nullable=False),
        pa.field("order_date", pa.date32(), nullable=False),
        pa.field("customer_id", pa.string()),
        pa.field("country", pa.string()),
        pa.field("total", pa.decimal128(18, 2)),
        pa.field("ordered_at", pa.timestamp("us", tz="UTC")),
        pa.field("cancelled_at", pa.timestamp("us", tz="UTC")),
    ]
)
CUSTOMERS = pa.schema(
    [
        pa.field("customer_id", pa.string()),
        pa.field("tier", pa.string()),
        pa.field("valid_from", pa.timestamp("us", tz="UTC")),
        pa.field("valid_to", pa.timestamp("us", tz="UTC")),
        pa.field("is_current", pa.bool_()),
    ]
)


def order(number: int, day: date, total: str = "10.00", **changes: Any) -> dict[str, Any]:
    row = {
        "order_id": f"PO-{number}",
        "order_date": day,
        "customer_id": f"C-{number % 3}",
        "country": "DE",
        "total": Decimal(total),
        "ordered_at": datetime(day.year, day.month, day.day, 9, number, tzinfo=UTC),
        "cancelled_at": None,
    }
    row.update(changes)
    return row


def customer(number: int, tier: str, since: int, until: int | None = None) -> dict[str, Any]:
    return {
        "customer_id": f"C-{number}",
        "tier": tier,
        "valid_from": datetime(2026, 11, since, tzinfo=UTC),
        "valid_to": datetime(2026, 11, until, tzinfo=UTC) if until else None,
        "is_current": until is None,
    }


class StarSchema:
    """Gold tables in a namespace, exported to a PostgreSQL schema, both the test's own."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.settings: LakehouseSettings = load_settings("local", environ=environ)
        self.resources = build_resources(self.settings)
        self.schema_name = self.settings.serving.postgres.schema_name
        self.namespace = self.settings.namespace("gold")
        self.catalog = self.resources["iceberg"].load()
        self.catalog.create_namespace_if_not_exists(self.namespace)
        self.tables: dict[str, Any] = {}

    def write_gold(self, model: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
        if model not in self.tables:
            self.tables[model] = self.catalog.create_table((self.namespace, model), schema=schema)
        self.tables[model].overwrite(pa.Table.from_pylist(rows, schema=schema))

    def definitions(self, model: str) -> list[Any]:
        export = self.settings.serving.postgres.exports[model]
        return build_postgres_export(self.settings, model, export)

    def run(self, model: str, day: date | None = None, *, check_only: bool = False) -> Any:
        """An export of ``model`` (of ``day``) with its check, or the check alone."""
        asset, check = self.definitions(model)
        if not check_only:
            return dg.materialize(
                [asset, check],
                resources=self.resources,
                partition_key=day.isoformat() if day else None,
            )
        job = dg.define_asset_job("check_only", selection=dg.AssetSelection.checks(check))
        definitions = dg.Definitions(
            assets=[asset], asset_checks=[check], jobs=[job], resources=self.resources
        )
        tags = {"dagster/partition": day.isoformat()} if day else {}
        return definitions.resolve_job_def("check_only").execute_in_process(tags=tags)

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.resources["postgres"].connect(autocommit=True) as conn:
            return conn.execute(statement.format(s=self.schema_name), params).fetchall()

    def orders(self) -> dict[str, tuple[Any, ...]]:
        rows = self.query("select order_id, order_date, total from {s}.fct_orders")
        return {r[0]: r[1:] for r in rows}


@pytest.fixture
def star(stack: LocalStack) -> StarSchema:
    suffix = uuid.uuid4().hex[:8]
    return StarSchema(
        {
            **os.environ,
            "LAKEHOUSE__CATALOG__NAMESPACES__GOLD": f"gold_{suffix}",
            "LAKEHOUSE__SERVING__POSTGRES__SCHEMA_NAME": f"star_{suffix}",
        }
    )


def _metadata(result: dg.ExecuteInProcessResult, model: str) -> dict[str, Any]:
    (materialization,) = result.asset_materializations_for_node(
        postgres_key(model).to_python_identifier()
    )
    return {k: v.value for k, v in materialization.metadata.items()}


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == POSTGRES_CHECK
    return evaluation


def test_a_day_is_exported_with_keys_and_indexes_and_a_rerun_duplicates_nothing(
    star: StarSchema,
) -> None:
    star.write_gold("fct_orders", ORDERS, [*(order(n, DAY) for n in range(1, 6)), order(9, NEXT)])

    first = star.run("fct_orders", DAY)
    metadata = _metadata(first, "fct_orders")
    assert metadata["dagster/partition_row_count"] == 5
    assert (metadata["rows_deleted"], metadata["rows_moved_in"]) == (0, 0)
    assert _check(first).passed
    assert sorted(star.orders()) == [f"PO-{n}" for n in range(1, 6)]  # NEXT is not exported
    (stored,) = star.query(
        "select total, ordered_at, cancelled_at from {s}.fct_orders where order_id = 'PO-3'"
    )
    assert stored == (Decimal("10.00"), datetime(2026, 11, 10, 9, 3, tzinfo=UTC), None)

    again = star.run("fct_orders", DAY)
    assert _metadata(again, "fct_orders")["rows_deleted"] == 5
    assert _check(again).passed
    assert star.query("select count(*), count(distinct order_id) from {s}.fct_orders") == [(5, 5)]

    (primary_key,) = star.query(
        "select pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = '{s}.fct_orders'::regclass and contype = 'p'"
    )
    assert primary_key == ("PRIMARY KEY (order_id)",)
    indexes = {
        r[0]
        for r in star.query(
            "select indexname from pg_indexes where schemaname = %s", star.schema_name
        )
    }
    assert {"fct_orders__order_date_idx", "fct_orders__customer_id_idx"} <= indexes
    assert "fct_orders__country_order_date_idx" in indexes
    types = dict(
        star.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = 'fct_orders'",
            star.schema_name,
        )
    )
    assert types["total"] == "numeric"
    assert types["ordered_at"] == "timestamp with time zone"
    assert star.query("select table_name, partition_key, row_count from {s}.serving_exports") == [
        ("fct_orders", "2026-11-10", 5)
    ]


def test_a_backfill_replaces_a_changed_day_and_a_moved_order_follows_its_day(
    star: StarSchema,
) -> None:
    star.write_gold("fct_orders", ORDERS, [*(order(n, DAY) for n in range(1, 6)), order(9, NEXT)])
    assert star.run("fct_orders", DAY).success
    assert star.run("fct_orders", NEXT).success

    # dbt's next run: PO-2 changed, PO-5 gone, PO-4 moved to the next day.
    star.write_gold(
        "fct_orders",
        ORDERS,
        [order(1, DAY), order(2, DAY, "12.50"), order(3, DAY), order(4, NEXT), order(9, NEXT)],
    )
    # The later day first: the moved order leaves its old day in the same transaction.
    moved = star.run("fct_orders", NEXT)
    assert _metadata(moved, "fct_orders")["rows_moved_in"] == 1
    assert _check(moved).passed
    assert star.orders()["PO-4"][0] == NEXT

    backfill = star.run("fct_orders", DAY)
    metadata = _metadata(backfill, "fct_orders")
    assert (metadata["dagster/partition_row_count"], metadata["rows_deleted"]) == (3, 4)
    assert _check(backfill).passed
    assert star.orders() == {
        "PO-1": (DAY, Decimal("10.00")),
        "PO-2": (DAY, Decimal("12.50")),
        "PO-3": (DAY, Decimal("10.00")),
        "PO-4": (NEXT, Decimal("10.00")),
        "PO-9": (NEXT, Decimal("10.00")),
    }


def test_the_check_catches_a_row_changed_behind_the_exports_back(star: StarSchema) -> None:
    star.write_gold("fct_orders", ORDERS, [order(n, DAY) for n in range(1, 4)])
    assert star.run("fct_orders", DAY).success
    star.query("update {s}.fct_orders set total = 99.99 where order_id = 'PO-2' returning 1")
    star.query("delete from {s}.fct_orders where order_id = 'PO-3' returning 1")

    checked = _check(star.run("fct_orders", DAY, check_only=True))
    assert not checked.passed
    assert checked.severity == dg.AssetCheckSeverity.ERROR
    assert checked.description == (
        "2 rows for 3 gold rows; order_id=PO-2: total differ; order_id=PO-3: missing"
    )

    repaired = star.run("fct_orders", DAY)  # an export rewrites the whole day
    assert _check(repaired).passed
    assert star.orders()["PO-2"] == (DAY, Decimal("10.00"))


def test_a_dimension_is_replaced_whole_with_its_composite_key(star: StarSchema) -> None:
    star.write_gold(
        "dim_customers",
        CUSTOMERS,
        [customer(1, "silver", 1, 5), customer(1, "gold", 5), customer(2, "bronze", 2)],
    )
    first = star.run("dim_customers")
    assert _metadata(first, "dim_customers")["dagster/row_count"] == 3
    assert _check(first).passed

    # The snapshot's next run: customer 2 changed tier, customer 3 is new.
    star.write_gold(
        "dim_customers",
        CUSTOMERS,
        [
            customer(1, "silver", 1, 5),
            customer(1, "gold", 5),
            customer(2, "bronze", 2, 8),
            customer(2, "silver", 8),
            customer(3, "gold", 9),
        ],
    )
    second = star.run("dim_customers")
    assert (_metadata(second, "dim_customers")["rows_deleted"], _check(second).passed) == (3, True)
    current = star.query(
        "select customer_id, tier from {s}.dim_customers where is_current order by customer_id"
    )
    assert current == [("C-1", "gold"), ("C-2", "silver"), ("C-3", "gold")]
    (primary_key,) = star.query(
        "select pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = '{s}.dim_customers'::regclass and contype = 'p'"
    )
    assert primary_key == ("PRIMARY KEY (customer_id, valid_from)",)
    assert star.query(
        "select partition_key, row_count from {s}.serving_exports where table_name = 'dim_customers'"
    ) == [("", 5)]
