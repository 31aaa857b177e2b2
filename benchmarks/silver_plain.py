"""The silver benchmark's baseline: bronze → silver as a hand-written Glue job would do it.

Plain PySpark, no Dagster and nothing of the project's transformation code: read the
bronze Parquet of some days (``s3a://``), parse the Kafka value with ``from_json``
and a typed schema, drop the rows without the fields the job keys on (unparseable
values parse to all nulls), keep the first arrival of each ``event_id``, then

* ``order_events``: every event of the days, replacing those days' partitions;
* ``orders``: the newest version of each order, MERGEd by ``order_id`` when newer
  than the stored one;
* ``order_lines``: the newest version's items, MERGEd by ``(order_id, line_number)``;
  an order whose newer version has fewer items loses its surplus stored lines in the
  same MERGE, so an order's lines are replaced as a group;
* ``customers``: the newest attributes per customer, MERGEd by ``customer_id`` when
  newer (``updated_at``).

That is the work of the silver asset minus the data contract (validation of every
rule, the quarantine table), the partition assignment's late-window bookkeeping and
the reconciliation check. The tables go to a namespace of their own, created with
the same types and partitioning (``event_date``) as the silver tables.

The only thing taken from the project is the Spark session's configuration, so both
benchmark variants run on identically configured sessions::

    python -m benchmarks.silver_plain --namespace NS --first-day D0 --last-day DN \\
        s3a://lakehouse/bronze/<dataset>/date=D0 ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

TABLES = ("order_events", "orders", "order_lines", "customers")


def event_schema() -> StructType:
    """The purchase-order event, typed as the silver tables store it."""
    from pyspark.sql.types import (
        ArrayType,
        DecimalType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    def fields(*pairs: tuple[str, object]) -> StructType:
        return StructType([StructField(name, kind, True) for name, kind in pairs])  # type: ignore[arg-type]

    money = DecimalType(18, 2)
    return fields(
        ("event_id", StringType()),
        ("event_type", StringType()),
        ("event_time", TimestampType()),
        ("order_id", StringType()),
        ("version", LongType()),
        ("status", StringType()),
        ("currency", StringType()),
        (
            "customer",
            fields(
                ("customer_id", StringType()),
                ("name", StringType()),
                ("country", StringType()),
                ("tier", StringType()),
                ("contact_info", fields(("email", StringType()), ("phone", StringType()))),
            ),
        ),
        (
            "items",
            ArrayType(
                fields(
                    ("sku", StringType()),
                    ("quantity", LongType()),
                    ("unit_price", money),
                    ("discount", DecimalType(5, 4)),
                )
            ),
        ),
        (
            "totals",
            fields(("subtotal", money), ("tax", money), ("shipping", money), ("total", money)),
        ),
    )


def silver_frames(
    spark: SparkSession, bronze_paths: Sequence[str], first_day: date, last_day: date
) -> dict[str, DataFrame]:
    """The four tables' rows from the bronze files (lazy)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    bronze = spark.read.parquet(*bronze_paths)
    parsed = bronze.select(
        F.from_json(F.col("value").cast("string"), event_schema()).alias("e"),
        "timestamp",
        "partition",
        "offset",
    )
    keyed = parsed.where(
        F.col("e.event_id").isNotNull()
        & F.col("e.order_id").isNotNull()
        & F.col("e.version").isNotNull()
        & F.col("e.event_time").isNotNull()
    )
    first_arrival = Window.partitionBy("e.event_id").orderBy("timestamp", "partition", "offset")
    events = (
        keyed.withColumn("_n", F.row_number().over(first_arrival))
        .where("_n = 1")
        .select("e.*", F.to_date("e.event_time").alias("event_date"), "partition", "offset")
        .where(F.col("event_date").between(F.lit(first_day), F.lit(last_day)))
    ).persist()

    order_events = events.select(
        "event_id",
        "event_type",
        "event_time",
        "order_id",
        "version",
        "status",
        "currency",
        F.col("customer.customer_id").alias("customer_id"),
        F.col("customer.country").alias("country"),
        F.size("items").cast("long").alias("line_count"),
        "totals.subtotal",
        "totals.tax",
        "totals.shipping",
        "totals.total",
        "event_date",
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
    )
    newest = Window.partitionBy("order_id").orderBy(
        F.desc("version"), F.desc("event_time"), F.desc("event_id")
    )
    latest = events.withColumn("_n", F.row_number().over(newest)).where("_n = 1")
    orders = latest.select(
        "order_id",
        "version",
        "event_id",
        "event_type",
        "event_time",
        "status",
        "currency",
        F.col("customer.customer_id").alias("customer_id"),
        F.col("customer.country").alias("country"),
        "totals.subtotal",
        "totals.tax",
        "totals.shipping",
        "totals.total",
        "event_date",
    )
    order_lines = latest.select(
        "order_id", "version", "event_date", F.posexplode("items").alias("position", "item")
    ).select(
        "order_id",
        (F.col("position") + 1).cast("long").alias("line_number"),
        "version",
        "item.sku",
        "item.quantity",
        "item.unit_price",
        "item.discount",
        "event_date",
    )
    newest_attributes = Window.partitionBy("customer.customer_id").orderBy(
        F.desc("event_time"), F.desc("version"), F.desc("event_id")
    )
    customers = (
        events.withColumn("_n", F.row_number().over(newest_attributes))
        .where("_n = 1")
        .select(
            "customer.customer_id",
            "customer.name",
            "customer.country",
            "customer.tier",
            F.col("customer.contact_info.email").alias("email"),
            F.col("customer.contact_info.phone").alias("phone"),
            F.col("event_time").alias("updated_at"),
            "event_date",
        )
    )
    return {
        "order_events": order_events,
        "orders": orders,
        "order_lines": order_lines,
        "customers": customers,
    }


def _create_if_missing(spark: SparkSession, table: str, frame: DataFrame) -> None:
    columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in frame.schema.fields)
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {table} ({columns}) USING iceberg PARTITIONED BY (event_date)"
    )


def _merge(
    spark: SparkSession,
    table: str,
    source: DataFrame,
    keys: Sequence[str],
    *,
    newer: str,
    delete_when: str | None = None,
) -> None:
    """``MERGE INTO table``: insert new keys, update keys when ``newer`` holds."""
    view = f"source_{table.rsplit('.', 1)[-1]}"
    source.createOrReplaceTempView(view)
    columns = [c for c in source.columns if not c.startswith("_")]
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    assignments = ", ".join(f"{c} = s.{c}" for c in columns)
    inserted = ", ".join(columns)
    values = ", ".join(f"s.{c}" for c in columns)
    delete = f"WHEN MATCHED AND {delete_when} THEN DELETE " if delete_when else ""
    not_deleted = f" AND NOT ({delete_when})" if delete_when else ""
    spark.sql(
        f"MERGE INTO {table} t USING {view} s ON {on} {delete}"
        f"WHEN MATCHED AND {newer} THEN UPDATE SET {assignments} "
        f"WHEN NOT MATCHED{not_deleted} THEN INSERT ({inserted}) VALUES ({values})"
    )
    spark.catalog.dropTempView(view)


def run(
    spark: SparkSession,
    bronze_paths: Sequence[str],
    first_day: date,
    last_day: date,
    namespace: str,
) -> dict[str, float]:
    """The job: bronze days → the four silver tables in ``namespace`` (created if missing).

    Returns the seconds of each step (table creation and each table's write).
    """
    from pyspark.sql import functions as F

    steps: dict[str, float] = {}
    clock = time.perf_counter()

    def step(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        steps[name] = now - clock
        clock = now

    frames = silver_frames(spark, bronze_paths, first_day, last_day)
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {namespace}")
    names = {table: f"{namespace}.{table}" for table in TABLES}
    for table, frame in frames.items():
        _create_if_missing(spark, names[table], frame)
    step("create_tables")

    frames["order_events"].writeTo(names["order_events"]).overwritePartitions()
    step("order_events")
    _merge(spark, names["orders"], frames["orders"], ["order_id"], newer="s.version > t.version")
    step("orders")

    # Stored lines of orders that get a newer version with fewer items: deleted.
    lines = frames["order_lines"]
    changed = frames["orders"].select("order_id", F.col("version").alias("_new_version"))
    stored = spark.table(names["order_lines"]).select("order_id", "line_number", "version")
    surplus = (
        stored.join(changed, "order_id")
        .where(F.col("_new_version") > F.col("version"))
        .join(lines.select("order_id", "line_number"), ["order_id", "line_number"], "left_anti")
        .select("order_id", "line_number", F.lit(True).alias("_delete"))
    )
    lines_source = lines.withColumn("_delete", F.lit(False)).unionByName(
        surplus, allowMissingColumns=True
    )
    _merge(
        spark,
        names["order_lines"],
        lines_source,
        ["order_id", "line_number"],
        newer="s.version > t.version",
        delete_when="s._delete",
    )
    step("order_lines")
    _merge(
        spark,
        names["customers"],
        frames["customers"],
        ["customer_id"],
        newer="s.updated_at > t.updated_at",
    )
    step("customers")
    spark.catalog.clearCache()
    return steps


def table_counts(spark: SparkSession, namespace: str) -> dict[str, int]:
    """Rows of each table the job writes."""
    return {table: spark.table(f"{namespace}.{table}").count() for table in TABLES}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.silver_plain", description=__doc__)
    parser.add_argument("bronze_paths", nargs="+", help="s3a:// directories or files of bronze")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--first-day", type=date.fromisoformat, required=True)
    parser.add_argument("--last-day", type=date.fromisoformat, required=True)
    args = parser.parse_args(argv)

    # The project's settings give the session its configuration, nothing else.
    from resources.environments import build_resources

    spark = build_resources()["spark"].spark_session
    started = time.perf_counter()
    steps = run(spark, args.bronze_paths, args.first_day, args.last_day, args.namespace)
    seconds = time.perf_counter() - started
    rows = table_counts(spark, args.namespace)
    print(json.dumps({"seconds": seconds, "steps": steps, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
