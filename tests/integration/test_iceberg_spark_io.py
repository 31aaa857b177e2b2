"""The Iceberg IO manager's Spark path: DataFrames written and read through Spark's catalog."""

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from py4j.protocol import Py4JJavaError
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from resources.iceberg import spark_writes
from resources.iceberg.io_manager import (
    ASSET_KEY_PROPERTY,
    PARTITION_KEYS_PROPERTY,
    RUN_ID_PROPERTY,
    WRITE_MODE_PROPERTY,
    IcebergCommitError,
    IcebergIOManager,
)
from tests.integration.conftest import failure_message, metadata_value
from tests.integration.test_iceberg_io_manager import (
    DAYS,
    IO_KEY,
    PARTITIONS,
    current_snapshot_id,
    daily_rows,
    load,
    rows_by_day,
    run,
    summary_of,
    versions_by_day,
)

pytestmark = pytest.mark.integration

#: Builds an asset's Spark output for a partition time window.
SparkProducer = Callable[[dg.AssetExecutionContext], DataFrame]


@pytest.fixture
def table_name() -> str:
    return f"s_{uuid.uuid4().hex[:10]}"


def to_spark(spark: SparkSession, table: pa.Table) -> DataFrame:
    """An Arrow table as a Spark DataFrame with the matching Spark types."""
    rows = [tuple(row.values()) for row in table.to_pylist()]
    return spark.createDataFrame(rows, from_arrow_schema(table.schema))


def spark_rows(
    spark: SparkSession, version: str, skip: Sequence[str] = (), **kwargs: Any
) -> SparkProducer:
    """:func:`daily_rows` as a DataFrame, without the rows of the days in ``skip``."""

    def produce(context: dg.AssetExecutionContext) -> DataFrame:
        table = daily_rows(version, **kwargs)(context)
        keep = [d.isoformat() not in skip for d in table.column("event_date").to_pylist()]
        return to_spark(spark, table.filter(pa.array(keep)))

    return produce


def spark_asset(
    name: str, produce: SparkProducer, metadata: dict[str, Any], partitioned: bool = True
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        key_prefix="silver",
        partitions_def=PARTITIONS if partitioned else None,
        metadata=metadata,
        io_manager_key=IO_KEY,
    )
    def _asset(context: dg.AssetExecutionContext) -> DataFrame:
        return produce(context)

    return _asset


DAILY = {"partition_expr": "event_date"}


def test_overwrite_of_one_partition_leaves_the_others(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    for day in DAYS[:3]:
        run([spark_asset(table_name, spark_rows(spark, "a"), DAILY)], io_manager, [day])
    result = run([spark_asset(table_name, spark_rows(spark, "b"), DAILY)], io_manager, [DAYS[1]])

    table = load(io_manager, table_name)
    assert versions_by_day(table) == {DAYS[0]: {"a"}, DAYS[1]: {"b"}, DAYS[2]: {"a"}}
    assert rows_by_day(table) == {DAYS[0]: 3, DAYS[1]: 3, DAYS[2]: 3}
    assert [type(f.transform) for f in table.spec().fields] == [IdentityTransform]
    node = f"silver__{table_name}"
    assert metadata_value(result, node, "dagster/row_count") == 3
    assert metadata_value(result, node, "dagster/table_name") == f"lakehouse.silver.{table_name}"
    assert metadata_value(result, node, "dagster/uri") == table.location()
    columns = metadata_value(result, node, "dagster/column_schema").columns
    assert [c.name for c in columns] == ["id", "event_date", "amount", "version"]
    assert metadata_value(result, node, "snapshot_id") == str(current_snapshot_id(table))
    assert metadata_value(result, node, "write_mode") == "overwrite"
    assert metadata_value(result, node, "commit_attempts") == 1


def test_range_overwrite_replaces_its_window_in_one_commit_and_empties_days_without_rows(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    run([spark_asset(table_name, spark_rows(spark, "a"), DAILY)], io_manager, DAYS[:5])
    commits_before = len(load(io_manager, table_name).metadata.metadata_log)

    # Days 2-4 in one run; the new input has no row for day 3.
    produce = spark_rows(spark, "b", skip=[DAYS[2]], per_day=2)
    result = run([spark_asset(table_name, produce, DAILY)], io_manager, DAYS[1:4])

    table = load(io_manager, table_name)
    assert rows_by_day(table) == {DAYS[0]: 3, DAYS[1]: 2, DAYS[3]: 2, DAYS[4]: 3}
    assert versions_by_day(table) == {
        DAYS[0]: {"a"},
        DAYS[1]: {"b"},
        DAYS[3]: {"b"},
        DAYS[4]: {"a"},
    }
    assert len(table.metadata.metadata_log) == commits_before + 1
    summary = summary_of(table)
    assert summary[PARTITION_KEYS_PROPERTY] == ",".join(DAYS[1:4])
    assert summary[RUN_ID_PROPERTY] == result.run_id
    assert metadata_value(result, f"silver__{table_name}", "dagster/row_count") == 4


def test_append_adds_rows_and_keeps_the_assets_cache(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    cached: list[DataFrame] = []

    def produce(context: dg.AssetExecutionContext) -> DataFrame:
        frame = spark_rows(spark, "a")(context).cache()
        cached.append(frame)
        return frame

    asset = spark_asset(table_name, produce, {**DAILY, "write_mode": "append"})
    run([asset], io_manager, [DAYS[0]])
    result = run([asset], io_manager, [DAYS[0]])

    assert rows_by_day(load(io_manager, table_name)) == {DAYS[0]: 6}
    assert metadata_value(result, f"silver__{table_name}", "dagster/row_count") == 3
    assert summary_of(load(io_manager, table_name))[WRITE_MODE_PROPERTY] == "append"
    # The asset's cache is the asset's business: the IO manager does not drop it.
    assert all(frame.is_cached for frame in cached)
    for frame in cached:
        frame.unpersist()


def _orders(spark: SparkSession, rows: list[tuple[str, int, str, datetime]]) -> DataFrame:
    schema = "order_id string, version bigint, status string, updated_at timestamp"
    return spark.createDataFrame(rows, schema)


def orders_in(io_manager: IcebergIOManager, table_name: str) -> list[tuple[str, int, str]]:
    """The stored orders as sorted ``(order_id, version, status)``."""
    data = load(io_manager, table_name).scan().to_arrow().to_pylist()
    return sorted((r["order_id"], r["version"], r["status"]) for r in data)


def test_upsert_keeps_the_latest_version_and_is_replay_safe(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    at = datetime(2026, 1, 2, 10, tzinfo=UTC)
    batches = iter(
        [
            # Two versions of A in one input: only v2 stays.
            [("A", 1, "created", at), ("A", 2, "paid", at), ("B", 1, "created", at)],
            # A late, older version of A arrives, and a newer B.
            [("A", 1, "created", at), ("B", 3, "shipped", at), ("C", 1, "created", at)],
            # The same input replayed.
            [("A", 1, "created", at), ("B", 3, "shipped", at), ("C", 1, "created", at)],
        ]
    )
    meta = {
        "partition_expr": "updated_at",
        "write_mode": "upsert",
        "primary_key": ["order_id"],
        "sequence_column": "version",
        "snapshot_properties": {"source": "orders-topic"},
    }
    asset = spark_asset(table_name, lambda _: _orders(spark, next(batches)), meta)
    node = f"silver__{table_name}"

    first = run([asset], io_manager, [DAYS[1]])
    table = load(io_manager, table_name)
    assert [type(f.transform) for f in table.spec().fields] == [DayTransform]
    assert orders_in(io_manager, table_name) == [("A", 2, "paid"), ("B", 1, "created")]
    assert metadata_value(first, node, "input_duplicates_dropped") == 1

    second = run([asset], io_manager, [DAYS[1]])
    assert orders_in(io_manager, table_name) == [
        ("A", 2, "paid"),
        ("B", 3, "shipped"),
        ("C", 1, "created"),
    ]
    assert metadata_value(second, node, "rows_skipped_not_newer") == 1
    assert metadata_value(second, node, "rows_updated") == 1
    assert metadata_value(second, node, "rows_inserted") == 1
    assert metadata_value(second, node, "dagster/row_count") == 2
    # The MERGE commit carries the run's snapshot properties.
    summary = summary_of(load(io_manager, table_name))
    assert summary[RUN_ID_PROPERTY] == second.run_id
    assert summary[WRITE_MODE_PROPERTY] == "upsert"
    assert summary[ASSET_KEY_PROPERTY] == f"silver/{table_name}"
    assert summary[PARTITION_KEYS_PROPERTY] == DAYS[1]
    assert summary["source"] == "orders-topic"
    assert metadata_value(second, node, "snapshot_id") == str(
        current_snapshot_id(load(io_manager, table_name))
    )

    before = current_snapshot_id(load(io_manager, table_name))
    third = run([asset], io_manager, [DAYS[1]])
    assert orders_in(io_manager, table_name) == [
        ("A", 2, "paid"),
        ("B", 3, "shipped"),
        ("C", 1, "created"),
    ]
    assert metadata_value(third, node, "rows_skipped_not_newer") == 3
    # Nothing newer: no commit.
    assert current_snapshot_id(load(io_manager, table_name)) == before


def test_upsert_of_rows_unique_by_key_skips_the_ranking_and_counts_from_the_snapshot(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    """``unique_by_key``: the asset vouches for one row per key, so the write does not rank
    (a repeated key is kept, as documented); the first write into a new table counts its
    inserts from the snapshot; later writes still keep only newer versions."""
    at = datetime(2026, 1, 2, 10, tzinfo=UTC)
    batches = iter(
        [
            [("A", 1, "created", at), ("B", 1, "created", at), ("C", 2, "paid", at)],
            [("A", 2, "paid", at), ("B", 1, "created", at), ("D", 1, "created", at)],
            # Not unique, although the asset says so: nothing removes the second A.
            [("E", 1, "created", at), ("E", 2, "paid", at)],
        ]
    )
    meta = {
        "partition_expr": "updated_at",
        "write_mode": "upsert",
        "primary_key": ["order_id"],
        "sequence_column": "version",
        "unique_by_key": True,
    }
    asset = spark_asset(table_name, lambda _: _orders(spark, next(batches)), meta)
    node = f"silver__{table_name}"

    first = run([asset], io_manager, [DAYS[1]])
    assert orders_in(io_manager, table_name) == [
        ("A", 1, "created"),
        ("B", 1, "created"),
        ("C", 2, "paid"),
    ]
    assert metadata_value(first, node, "rows_inserted") == 3
    assert metadata_value(first, node, "rows_updated") == 0
    assert metadata_value(first, node, "dagster/row_count") == 3
    assert metadata_value(first, node, "input_duplicates_dropped") == 0
    assert summary_of(load(io_manager, table_name))[RUN_ID_PROPERTY] == first.run_id

    second = run([asset], io_manager, [DAYS[1]])
    assert orders_in(io_manager, table_name) == [
        ("A", 2, "paid"),
        ("B", 1, "created"),
        ("C", 2, "paid"),
        ("D", 1, "created"),
    ]
    assert metadata_value(second, node, "rows_updated") == 1
    assert metadata_value(second, node, "rows_inserted") == 1
    assert metadata_value(second, node, "rows_skipped_not_newer") == 1

    run([asset], io_manager, [DAYS[1]])
    assert [row for row in orders_in(io_manager, table_name) if row[0] == "E"] == [
        ("E", 1, "created"),
        ("E", 2, "paid"),
    ]


def test_group_upsert_replaces_an_orders_lines_as_a_whole(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    """A newer version of an order replaces all of its lines (removed lines disappear);
    an older version or a replay changes nothing."""
    at = datetime(2026, 1, 2, 10, tzinfo=UTC)
    schema = "order_id string, line_number bigint, version bigint, sku string, updated_at timestamp"
    batches = iter(
        [
            [
                ("A", 1, 1, "x", at),
                ("A", 2, 1, "y", at),
                ("A", 3, 1, "z", at),
                ("B", 1, 1, "x", at),
            ],
            # v2 of A drops lines 2 and 3 and changes line 1; an old v1 of B arrives again.
            [("A", 1, 2, "x2", at), ("B", 1, 1, "x", at)],
            # A late v1 of A: never undoes v2.
            [("A", 1, 1, "x", at), ("A", 2, 1, "y", at), ("A", 3, 1, "z", at)],
        ]
    )
    meta = {
        "partition_expr": "updated_at",
        "write_mode": "upsert",
        "primary_key": ["order_id", "line_number"],
        "sequence_column": "version",
        "group_key": ["order_id"],
    }
    asset = spark_asset(table_name, lambda _: spark.createDataFrame(next(batches), schema), meta)
    node = f"silver__{table_name}"

    def content() -> list[tuple[str, int, int, str]]:
        data = load(io_manager, table_name).scan().to_arrow().to_pylist()
        return sorted((r["order_id"], r["line_number"], r["version"], r["sku"]) for r in data)

    run([asset], io_manager, [DAYS[1]])
    assert content() == [("A", 1, 1, "x"), ("A", 2, 1, "y"), ("A", 3, 1, "z"), ("B", 1, 1, "x")]
    second = run([asset], io_manager, [DAYS[1]])
    assert content() == [("A", 1, 2, "x2"), ("B", 1, 1, "x")]
    assert metadata_value(second, node, "rows_written") == 1
    assert metadata_value(second, node, "rows_deleted") == 2
    assert summary_of(load(io_manager, table_name))[RUN_ID_PROPERTY] == second.run_id
    before = current_snapshot_id(load(io_manager, table_name))
    run([asset], io_manager, [DAYS[1]])
    assert content() == [("A", 1, 2, "x2"), ("B", 1, 1, "x")]
    assert current_snapshot_id(load(io_manager, table_name)) == before


def test_timestamp_partitions_overwrite_and_load_by_day(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    def events(status: str) -> SparkProducer:
        def produce(context: dg.AssetExecutionContext) -> DataFrame:
            window = context.partition_time_window
            days = (window.end - window.start).days
            starts = [window.start + timedelta(days=d) for d in range(days)]
            rows = [
                (f"{start.date()}-{h}", 1, status, start.replace(hour=h))
                for start in starts
                for h in (0, 12, 23)
            ]
            return _orders(spark, rows)

        return produce

    meta = {"partition_expr": "updated_at"}
    run([spark_asset(table_name, events("a"), meta)], io_manager, DAYS[:3])
    run([spark_asset(table_name, events("b"), meta)], io_manager, [DAYS[1]])

    table = load(io_manager, table_name)
    assert [type(f.transform) for f in table.spec().fields] == [DayTransform]
    statuses = {
        (r["updated_at"].date().isoformat(), r["status"])
        for r in table.scan().to_arrow().to_pylist()
    }
    assert statuses == {(DAYS[0], "a"), (DAYS[1], "b"), (DAYS[2], "a")}
    assert table.scan().to_arrow().num_rows == 9

    seen: dict[str, Any] = {}

    @dg.asset(
        key_prefix="gold",
        name=f"{table_name}_hours",
        partitions_def=PARTITIONS,
        ins={"rows": dg.AssetIn(key=dg.AssetKey(["silver", table_name]))},
        io_manager_key="mem",
    )
    def hours(context: dg.AssetExecutionContext, rows: pa.Table) -> int:
        seen[context.run.run_id] = sorted(rows.column("order_id").to_pylist())
        return rows.num_rows

    upstream = spark_asset(table_name, events("a"), meta)
    run_id = _load_range(io_manager, upstream, hours, [DAYS[2]])
    assert seen[run_id] == [f"{DAYS[2]}-{h}" for h in (0, 12, 23)]


def test_overwrite_commit_carries_the_snapshot_properties(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    offsets = {"plain-events": {"0": [10, 42]}}

    @dg.asset(
        name=table_name,
        key_prefix="silver",
        partitions_def=PARTITIONS,
        metadata=DAILY,
        io_manager_key=IO_KEY,
    )
    def with_offsets(context: dg.AssetExecutionContext) -> dg.Output[DataFrame]:
        return dg.Output(
            spark_rows(spark, "a")(context),
            metadata={"snapshot_properties": {"kafka.offsets": json.dumps(offsets)}},
        )

    result = run([with_offsets], io_manager, [DAYS[3]])
    summary = summary_of(load(io_manager, table_name))
    assert summary[RUN_ID_PROPERTY] == result.run_id
    assert summary[PARTITION_KEYS_PROPERTY] == DAYS[3]
    assert summary[ASSET_KEY_PROPERTY] == f"silver/{table_name}"
    assert summary[WRITE_MODE_PROPERTY] == "overwrite"
    assert json.loads(summary["kafka.offsets"]) == offsets


def test_spark_writes_the_tables_it_creates_with_zstd(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    """Tables created through pyiceberg name their codec, so Spark does not fall back to gzip."""
    import pyarrow.parquet as pq

    run([spark_asset(table_name, spark_rows(spark, "a"), DAILY)], io_manager, [DAYS[0]])
    table = load(io_manager, table_name)
    assert table.properties["write.parquet.compression-codec"] == "zstd"
    files = [task.file.file_path for task in table.scan().plan_files()]
    assert files
    for path in files:
        with table.io.new_input(path).open() as stream:
            metadata = pq.ParquetFile(stream).metadata
        codecs = {
            metadata.row_group(g).column(c).compression
            for g in range(metadata.num_row_groups)
            for c in range(metadata.num_columns)
        }
        assert codecs == {"ZSTD"}, (path, codecs)


def test_new_optional_column_evolves_the_schema(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    run([spark_asset(table_name, spark_rows(spark, "a"), DAILY)], io_manager, [DAYS[0]])
    produce = spark_rows(spark, "b", extra={"channel": (pa.string(), "web")})
    result = run([spark_asset(table_name, produce, DAILY)], io_manager, [DAYS[1]])

    table = load(io_manager, table_name)
    assert table.schema().find_field("channel").optional
    by_day = {
        (r["event_date"].isoformat(), r["channel"]) for r in table.scan().to_arrow().to_pylist()
    }
    assert by_day == {(DAYS[0], None), (DAYS[1], "web")}
    node = f"silver__{table_name}"
    assert metadata_value(result, node, "schema_changes") == ["added column channel (string)"]

    # An older producer without the new column still writes (the column is optional).
    run([spark_asset(table_name, spark_rows(spark, "c"), DAILY)], io_manager, [DAYS[2]])
    assert rows_by_day(load(io_manager, table_name))[DAYS[2]] == 3


def test_narrowing_change_fails_naming_table_and_column(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    run([spark_asset(table_name, spark_rows(spark, "a"), DAILY)], io_manager, [DAYS[0]])

    def narrowed(context: dg.AssetExecutionContext) -> DataFrame:
        frame = spark_rows(spark, "b")(context)
        return frame.withColumn("amount", frame["amount"].cast("int"))

    result = run(
        [spark_asset(table_name, narrowed, DAILY)], io_manager, [DAYS[1]], raise_on_error=False
    )
    message = failure_message(result)
    assert f"lakehouse.silver.{table_name}" in message
    assert "'amount'" in message
    assert "narrowing from long to int" in message
    assert rows_by_day(load(io_manager, table_name)) == {DAYS[0]: 3}


def test_rows_outside_the_run_window_are_refused(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    def stray(context: dg.AssetExecutionContext) -> DataFrame:
        frame = spark_rows(spark, "a")(context)
        return frame.withColumn("event_date", frame["event_date"] + 5)

    result = run([spark_asset(table_name, stray, DAILY)], io_manager, [DAYS[0]], False)
    message = failure_message(result)
    assert f"lakehouse.silver.{table_name}" in message
    assert "3 of 3 rows have event_date outside the run's partitions (2026-01-01)" in message


def test_unpartitioned_asset_overwrites_the_whole_table(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    def fixed(version: str, n: int) -> SparkProducer:
        return lambda _: spark.createDataFrame(
            [(i, version) for i in range(n)], "id bigint, version string"
        )

    run([spark_asset(table_name, fixed("a", 5), {}, partitioned=False)], io_manager)
    run([spark_asset(table_name, fixed("b", 2), {}, partitioned=False)], io_manager)
    data = load(io_manager, table_name).scan().to_arrow()
    assert data.num_rows == 2
    assert set(data.column("version").to_pylist()) == {"b"}


def _downstream_days(
    name: str, upstream: dg.AssetsDefinition, seen: dict[str, Any]
) -> dg.AssetsDefinition:
    """A downstream asset that records which days (and as which type) it received."""

    @dg.asset(
        key_prefix="gold",
        name=name,
        partitions_def=PARTITIONS,
        ins={"rows": dg.AssetIn(key=upstream.key)},
        io_manager_key="mem",
    )
    def as_arrow(context: dg.AssetExecutionContext, rows: pa.Table) -> int:
        seen[context.run.run_id] = (
            type(rows),
            sorted({d.isoformat() for d in rows.column("event_date").to_pylist()}),
        )
        return rows.num_rows

    return as_arrow


def _load_range(
    io_manager: IcebergIOManager,
    upstream: dg.AssetsDefinition,
    downstream: dg.AssetsDefinition,
    days: Sequence[str],
) -> str:
    result = dg.materialize(
        [upstream, downstream],
        resources={IO_KEY: io_manager, "mem": dg.InMemoryIOManager()},
        selection=[downstream],
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[-1],
        },
    )
    return result.run_id


def test_arrow_input_loads_a_spark_written_table(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    upstream = spark_asset(table_name, spark_rows(spark, "a"), DAILY)
    run([upstream], io_manager, DAYS[:4])
    seen: dict[str, Any] = {}
    downstream = _downstream_days(f"{table_name}_arrow", upstream, seen)
    run_id = _load_range(io_manager, upstream, downstream, DAYS[1:3])
    frame_type, days = seen[run_id]
    assert frame_type is pa.Table
    assert days == DAYS[1:3]


def test_spark_writes_a_table_written_by_pyiceberg_and_vice_versa(
    spark: SparkSession, io_manager: IcebergIOManager, table_name: str
) -> None:
    from tests.integration.test_iceberg_io_manager import silver_asset

    run([silver_asset(table_name, daily_rows("a"), DAILY)], io_manager, DAYS[:2])
    run([spark_asset(table_name, spark_rows(spark, "b"), DAILY)], io_manager, [DAYS[1]])
    run([silver_asset(table_name, daily_rows("c"), DAILY)], io_manager, [DAYS[2]])
    assert versions_by_day(load(io_manager, table_name)) == {
        DAYS[0]: {"a"},
        DAYS[1]: {"b"},
        DAYS[2]: {"c"},
    }
    # Spark sees pyiceberg's latest commit (no stale catalog cache).
    assert spark.table(f"lakehouse.silver.{table_name}").count() == 9


def _java_conflict(spark: SparkSession) -> Py4JJavaError:
    """A Py4J error around a real Iceberg CommitFailedException, as Spark raises it."""
    context: Any = spark.sparkContext
    no_args = context._gateway.new_array(context._jvm.java.lang.Object, 0)
    java_error = context._jvm.org.apache.iceberg.exceptions.CommitFailedException(
        "Cannot commit: stale metadata", no_args
    )
    return Py4JJavaError("An error occurred while calling o1.overwrite.\n", java_error)


def test_spark_commit_conflicts_are_retried_then_reported(
    spark: SparkSession,
    io_manager: IcebergIOManager,
    table_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asset = spark_asset(table_name, spark_rows(spark, "a"), DAILY)
    real_attempt = spark_writes.write_attempt
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise _java_conflict(spark)
        return real_attempt(*args)

    monkeypatch.setattr(spark_writes, "write_attempt", flaky)
    result = run([asset], io_manager, [DAYS[0]])
    assert metadata_value(result, f"silver__{table_name}", "commit_attempts") == 3
    assert rows_by_day(load(io_manager, table_name)) == {DAYS[0]: 3}

    def always(*args: Any) -> Any:
        raise _java_conflict(spark)

    monkeypatch.setattr(spark_writes, "write_attempt", always)
    failed = run([asset], io_manager, [DAYS[1]], raise_on_error=False)
    message = failure_message(failed)
    assert f"lakehouse.silver.{table_name}" in message
    assert "failed 6 times" in message
    assert "CommitFailedException: Cannot commit: stale metadata" in message
    assert IcebergCommitError.__name__ in message
    assert rows_by_day(load(io_manager, table_name)) == {DAYS[0]: 3}
