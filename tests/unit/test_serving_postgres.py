"""The star schema's pure pieces: Iceberg -> PostgreSQL types, DDL, indexes, sampling and
the value-by-value comparison of the reconciliation check."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pyiceberg import types as it
from pyiceberg.schema import Schema

from lakehouse_assets.serving.postgres import (
    Column,
    columns_of,
    create_index_sql,
    create_table_sql,
    differences,
    index_name,
    postgres_type,
    sample,
    wanted_indexes,
)


@pytest.mark.parametrize(
    ("iceberg", "postgres"),
    [
        (it.StringType(), "text"),
        (it.LongType(), "bigint"),
        (it.IntegerType(), "integer"),
        (it.BooleanType(), "boolean"),
        (it.DoubleType(), "double precision"),
        (it.FloatType(), "real"),
        (it.DecimalType(18, 2), "numeric(18,2)"),
        (it.DateType(), "date"),
        (it.TimestamptzType(), "timestamp with time zone"),
        (it.TimestampType(), "timestamp without time zone"),
        (it.BinaryType(), "bytea"),
        (it.UUIDType(), "uuid"),
        (it.ListType(1, it.StringType()), "jsonb"),
    ],
)
def test_iceberg_types_map_to_postgres_types_as_format_type_spells_them(
    iceberg: it.IcebergType, postgres: str
) -> None:
    assert postgres_type(iceberg) == postgres


def test_columns_keep_gold_order_and_required_fields_become_not_null() -> None:
    schema = Schema(
        it.NestedField(1, "order_id", it.StringType(), required=True),
        it.NestedField(2, "total", it.DecimalType(18, 2), required=False),
    )
    assert columns_of(schema) == [
        Column("order_id", "text", required=True),
        Column("total", "numeric(18,2)", required=False),
    ]


def test_create_table_quotes_identifiers_and_declares_the_primary_key() -> None:
    columns = [Column("sales_date", "date", True), Column("country", "text"), Column("n", "bigint")]
    statement = create_table_sql("gold", "fct_daily_sales", columns, ["sales_date", "country"])
    assert statement.as_string(None) == (
        'create table if not exists "gold"."fct_daily_sales" ("sales_date" date not null, '
        '"country" text, "n" bigint, primary key ("sales_date", "country"))'
    )


def test_the_partition_column_gets_an_index_unless_one_leads_with_it() -> None:
    assert wanted_indexes(["order_id"], "order_date", [["customer_id"]]) == [
        ("order_date",),
        ("customer_id",),
    ]
    # The primary key (sales_date, country) already leads with the partition column.
    assert wanted_indexes(["sales_date", "country"], "sales_date", [["country", "sales_date"]]) == [
        ("country", "sales_date")
    ]
    assert wanted_indexes(["customer_id", "valid_from"], None, []) == []


def test_index_names_fit_postgres_identifiers() -> None:
    assert (
        index_name("fct_orders", ["country", "order_date"]) == "fct_orders__country_order_date_idx"
    )
    assert len(index_name("t" * 40, ["c" * 30])) == 63
    statement = create_index_sql("gold", "fct_orders", ["customer_id"])
    assert statement.as_string(None) == (
        'create index if not exists "fct_orders__customer_id_idx" on "gold"."fct_orders" '
        '("customer_id")'
    )


def test_a_sample_is_spread_over_the_keys_and_deterministic() -> None:
    rows = [{"k": f"{n:03d}"} for n in range(100)]
    picked = sample(list(reversed(rows)), ["k"], 4)
    assert [r["k"] for r in picked] == ["000", "025", "050", "075"]
    assert sample(rows[:3], ["k"], 10) == rows[:3]


def test_differences_name_the_key_and_the_columns_that_differ() -> None:
    columns = [
        Column("id", "text"),
        Column("total", "numeric(18,2)"),
        Column("at", "timestamp with time zone"),
    ]
    at = datetime(2026, 11, 10, 9, tzinfo=UTC)
    rows = [
        {"id": "a", "total": Decimal("1.00"), "at": at},
        {"id": "b", "total": Decimal("2.00"), "at": at},
        {"id": "c", "total": Decimal("3.00"), "at": at},
    ]
    stored = {
        ("a",): {"id": "a", "total": Decimal("1.0"), "at": at},  # equal as numbers
        ("b",): {"id": "b", "total": Decimal("2.50"), "at": at},
    }
    assert differences(rows, stored, columns, ["id"]) == ["id=b: total differ", "id=c: missing"]


def test_nested_values_compare_as_json() -> None:
    columns = [Column("id", "text"), Column("tags", "jsonb")]
    rows = [{"id": "a", "tags": {"since": date(2026, 11, 1), "n": Decimal("1.5")}}]
    stored = {("a",): {"id": "a", "tags": {"since": "2026-11-01", "n": "1.5"}}}
    assert differences(rows, stored, columns, ["id"]) == []
