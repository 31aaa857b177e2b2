"""Silver transforms in PySpark: bronze rows → validated, deduplicated, typed tables.

Which silver partition accounts for a bronze record
-------------------------------------------------
Silver is partitioned by the UTC day of the event time (the payload column the
contract marks ``partitioned: true``); bronze by the UTC day of the Kafka
timestamp (the arrival). With a late window of ``W`` days, a record that arrived
on bronze day ``b`` with event day ``e`` belongs to

* silver ``e`` when ``b - W <= e <= b + 1`` (late by up to ``W`` days, or up to a
  day ahead of the broker's clock);
* silver ``b`` as a quarantine row otherwise: rule ``late`` (more than ``W`` days
  late) or ``event_time_ahead`` (more than a day in the future);
* silver ``b`` as a quarantine row when it breaks an ``error`` row rule of the
  contract (not JSON, missing field, wrong type, value not allowed, ...).

So silver day ``D`` is a function of bronze days ``D-1 .. D+W`` (the asset's
partition mapping) and every bronze record is accounted for by exactly one
silver partition: accepted, quarantined, or a declared duplicate of an accepted
record (same primary key; the earliest arrival wins). Re-running any range
yields the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import reduce
from typing import TYPE_CHECKING

from lakehouse_assets.contracts.model import Contract
from lakehouse_assets.partitions import AHEAD_TOLERANCE_DAYS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from lakehouse_assets.bronze.typed import TypedBronze
    from resources.s3.offset_files import ReadPlan
    from resources.s3.parquet_store import ParquetStore

#: Quarantine rule ids the partition assignment adds to the contract's own.
LATE_RULE = "late"
AHEAD_RULE = "event_time_ahead"
#: Status of every bronze record read, see :func:`classify`.
ACCEPTED, DUPLICATE, QUARANTINED = "accepted", "duplicate", "quarantined"

#: Column names the transforms add to the bronze rows.
TARGET_DATE = "target_date"
BRONZE_DATE = "bronze_date"
STATUS = "status"


def bronze_spark_schema() -> StructType:
    from pyspark.sql.pandas.types import from_arrow_schema

    from lakehouse_assets.bronze.landing import BRONZE_SCHEMA

    return from_arrow_schema(BRONZE_SCHEMA)


@dataclass(frozen=True)
class BronzeInput:
    """The bronze rows of some days as a lazy DataFrame, and what they were read from."""

    frame: DataFrame
    files: list[str]
    offsets: dict[str, dict[str, list[int]]]
    """Per day, per Kafka partition: the ``[first, last]`` offsets read."""
    plans: list[tuple[str, ReadPlan]]
    """The store's read plan the frame reads: (directory, plan) per file."""


def read_bronze(
    spark: SparkSession,
    store: ParquetStore,
    dataset: str,
    days: Sequence[str],
    typed: TypedBronze | None = None,
) -> BronzeInput:
    """Every landed record of ``days`` exactly once (overlapping files resolved as the store does).

    ``typed``: the dataset's bronze is typed rows of an HTTP source, read as records of
    the Kafka shape (:meth:`~lakehouse_assets.bronze.typed.TypedBronze.as_bronze_records`).
    """
    from pyspark.sql import functions as F

    schema = bronze_spark_schema()
    plans = store.read_plan(dataset, days)
    offsets: dict[str, dict[str, list[int]]] = {}
    for directory, plan in plans:
        day = directory.rsplit("date=", 1)[-1]
        span = offsets.setdefault(day, {}).setdefault(str(plan.range.partition), [])
        first, last = plan.read_from, plan.range.last
        span[:] = [min(span[0], first), max(span[1], last)] if span else [first, last]
    if not plans:
        return BronzeInput(spark.createDataFrame([], schema), [], offsets, plans)
    paths = [f"s3a://{directory}/{plan.range.file_name}" for directory, plan in plans]
    if typed is None:
        frame = spark.read.schema(schema).parquet(*paths)
    else:
        frame = typed.as_bronze_records(spark.read.schema(typed.spark_schema()).parquet(*paths))
    overlapping = [
        (plan.range.file_name, plan.read_from)
        for _, plan in plans
        if plan.read_from > plan.range.first
    ]
    if overlapping:
        # Offsets before read_from of such a file were read from the file that overlaps it.
        source = F.input_file_name()
        skipped = reduce(
            lambda a, b: a | b,
            [
                source.endswith("/" + name) & (F.col("offset") < read_from)
                for name, read_from in overlapping
            ],
        )
        frame = frame.where(~skipped)
    return BronzeInput(frame, paths, offsets, plans)


#: How many times silver plans and reads its bronze days before it gives up on a landing
#: that keeps replacing the files it listed (see :func:`read_bronze_once`).
BRONZE_READ_ATTEMPTS = 3


@dataclass(frozen=True)
class BronzeRead:
    """One complete, consistent read of some bronze days, prepared and computed once.

    ``rows`` is computed: its plan no longer refers to the bronze files, so every
    action on it (and on what derives from it) sees the same rows, whatever a
    landing does to the files afterwards.
    """

    rows: DataFrame
    files: list[str]
    offsets: dict[str, dict[str, list[int]]]
    """Per day, per Kafka partition: the ``[first, last]`` offsets read."""
    rows_in_files: int
    """Records of the files read (each offset once), from their Parquet footers."""
    attempts: int


def read_bronze_once(
    spark: SparkSession,
    store: ParquetStore,
    dataset: str,
    days: Sequence[str],
    prepare: Callable[[DataFrame], DataFrame],
    *,
    attempts: int = BRONZE_READ_ATTEMPTS,
    on_retry: Callable[[str], None] | None = None,
    typed: TypedBronze | None = None,
) -> BronzeRead:
    """``prepare`` applied to every landed record of ``days``, each offset exactly once,
    computed in one Spark job from one listing of the store.

    Spark reads lazily: files listed now are opened by the first action, and again by
    any later one that recomputes them. Meanwhile a landing of the same day may remove
    them (a replace landing writes its files, then removes the old ones; an append
    removes the files a new one covers), and the read fails with
    ``SparkFileNotFoundException``. So the read is made once, up front: the days are
    planned (:func:`read_bronze`), the files' rows counted from their footers, and the
    prepared rows computed into a local checkpoint (kept by the executors' block
    managers, memory then disk); the result's plan is cut from the bronze files, so no
    later action reads them again. When a listed file is gone before that job read
    it, the attempt is dropped whole and the days are planned again: the landing that
    removed it had written the files covering its offsets first, so the new plan reads
    every offset, once. After ``attempts`` such failures,
    :class:`~lakehouse_assets.silver.errors.BronzeFileVanishedError` names the dataset,
    the day and the file. Any other error is raised as it is.

    The checkpoint's blocks are released when the result is garbage collected (Spark
    offers no explicit release for local checkpoints).
    """
    from lakehouse_assets.silver.errors import BronzeFileVanishedError, vanished_bronze_file

    for attempt in range(1, attempts + 1):
        try:
            bronze = read_bronze(spark, store, dataset, days, typed)
            in_files = rows_in_files(store, bronze.plans)
            rows = prepare(bronze.frame).localCheckpoint(eager=True)
        except Exception as exc:
            vanished = vanished_bronze_file(exc, store, dataset)
            if vanished is None:
                raise
            if attempt == attempts:
                raise BronzeFileVanishedError(dataset, vanished, attempts) from exc
            if on_retry is not None:
                on_retry(
                    f"bronze file {vanished.path} of {dataset} {vanished.day} was removed while "
                    f"silver read it (a landing of that day replaced it); planning the days "
                    f"again (attempt {attempt + 1} of {attempts})"
                )
            continue
        return BronzeRead(rows, bronze.files, bronze.offsets, in_files, attempt)
    raise ValueError(f"attempts must be at least 1, got {attempts}")


def rows_in_files(store: ParquetStore, plans: Sequence[tuple[str, ReadPlan]]) -> int:
    """Records in the planned files, each offset once: the footers' row counts (and the
    offset column of a file read only from ``read_from``)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    fs = store.filesystem()
    total = 0
    for directory, plan in plans:
        with fs.open(f"{directory}/{plan.range.file_name}", "rb") as source:
            parquet = pq.ParquetFile(source)
            if plan.read_from == plan.range.first:
                total += parquet.metadata.num_rows
                continue
            for batch in parquet.iter_batches(columns=["offset"]):
                kept = pc.greater_equal(batch.column("offset"), plan.read_from)
                total += pc.sum(kept).as_py() or 0
    return total


def classify(parsed: DataFrame, contract: Contract, late_window_days: int) -> DataFrame:
    """Parsed bronze rows, compacted (:func:`compact`), with ``bronze_date``,
    ``target_date`` and ``status``.

    ``parsed`` holds the bronze columns plus ``payload`` (typed, null when invalid)
    and ``violation`` (``struct<rule_id, reason>``, null when valid), as
    :func:`lakehouse_assets.silver.validation.parse_payload` makes them. Late and
    ahead records get their violation here; duplicates (same primary key among the
    valid records of one silver day) rank by arrival: Kafka timestamp, partition,
    offset.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    payload_object = _payload(contract)
    event_time = contract.partition_column(payload_object)
    if event_time is None:
        raise ValueError(
            f"{contract.path}: the payload object {payload_object!r} marks no event-time "
            "property `partitioned: true`; silver cannot tell which day a record belongs to"
        )
    keys = contract.keys(payload_object).primary_key
    if not keys:
        raise ValueError(
            f"{contract.path}: the payload object {payload_object!r} has no primaryKey, "
            "so duplicates cannot be told apart"
        )
    stamp = F.col("payload").getField(event_time)
    bronze_date = F.to_date(F.col("timestamp"))
    event_date = F.to_date(stamp)
    lag = F.datediff(F.col(BRONZE_DATE), event_date)
    stamp_text = F.date_format(stamp, "yyyy-MM-dd'T'HH:mm:ss'Z'")
    late = F.struct(
        F.lit(LATE_RULE).alias("rule_id"),
        F.concat(
            F.lit(f"{event_time} "),
            stamp_text,
            F.lit(" arrived on "),
            F.col(BRONZE_DATE).cast("string"),
            F.lit(", "),
            lag.cast("string"),
            F.lit(f" days late; the late window is {late_window_days} days"),
        ).alias("reason"),
    )
    ahead = F.struct(
        F.lit(AHEAD_RULE).alias("rule_id"),
        F.concat(
            F.lit(f"{event_time} "),
            stamp_text,
            F.lit(" is more than a day ahead of its Kafka timestamp ("),
            F.col(BRONZE_DATE).cast("string"),
            F.lit(")"),
        ).alias("reason"),
    )
    dated = parsed.withColumn(BRONZE_DATE, bronze_date).withColumn(
        "violation",
        F.when(F.col("violation").isNotNull(), F.col("violation"))
        .when(lag > late_window_days, late)
        .when(lag < -AHEAD_TOLERANCE_DAYS, ahead),
    )
    valid = F.col("violation").isNull()
    dated = dated.withColumn(TARGET_DATE, F.when(valid, event_date).otherwise(F.col(BRONZE_DATE)))
    # Duplicates are decided within one silver day, so a day's rows never depend on
    # which other days a run happens to read. The rows are compacted first: ranking
    # them shuffles every row, and the raw bytes of valid records are not needed.
    arrival = Window.partitionBy(
        valid, F.col(TARGET_DATE), *[F.col("payload").getField(k) for k in keys]
    ).orderBy("timestamp", "partition", "offset")
    return compact(dated).withColumn(
        STATUS,
        F.when(~valid, F.lit(QUARANTINED))
        .when(F.row_number().over(arrival) == 1, F.lit(ACCEPTED))
        .otherwise(F.lit(DUPLICATE)),
    )


def compact(dated: DataFrame) -> DataFrame:
    """The dated rows (see :func:`classify`) without what no output needs.

    The raw ``value`` and ``key`` are kept for quarantined rows only (those with a
    violation; the others are parsed into ``payload``), and headers and bronze load
    metadata are dropped: what is shuffled and cached holds the typed payloads instead
    of every record twice.
    """
    from pyspark.sql import functions as F

    quarantined = F.col("violation").isNotNull()
    return dated.select(
        "topic",
        "partition",
        "offset",
        "timestamp",
        F.when(quarantined, F.col("key")).alias("key"),
        F.when(quarantined, F.col("value")).alias("value"),
        "payload",
        "violation",
        BRONZE_DATE,
        TARGET_DATE,
    )


def in_window(first: date, last: date) -> Column:
    """Rows that silver days ``first..last`` account for."""
    from pyspark.sql import functions as F

    return F.col(TARGET_DATE).between(F.lit(first), F.lit(last))


def quarantine_rows(classified: DataFrame, contract: Contract) -> DataFrame:
    """The quarantine table's rows: rule, reason, raw record and its Kafka coordinates."""
    from pyspark.sql import functions as F

    event_time = contract.partition_column(_payload(contract)) or "event_time"
    return classified.where(F.col(STATUS) == QUARANTINED).select(
        F.col("violation.rule_id").alias("rule_id"),
        F.col("violation.reason").alias("reason"),
        F.col("value").alias("raw_value"),
        F.col("key").alias("raw_key"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("payload").getField(event_time).alias("event_time"),
        F.col(BRONZE_DATE),
        F.col(TARGET_DATE).alias("partition_date"),
    )


# Silver tables per dataset ----------------------------------------------------------------

TableBuilder = Callable[["DataFrame", Contract], "dict[str, DataFrame]"]


def _payload(contract: Contract) -> str:
    payload = contract.payload
    if payload is None:
        raise ValueError(
            f"{contract.path}: no schema object with physicalType: topic describes the payload"
        )
    return payload


def _lineage() -> list[Column]:
    from pyspark.sql import functions as F

    return [F.col("partition").alias("kafka_partition"), F.col("offset").alias("kafka_offset")]


def flat_tables(accepted: DataFrame, contract: Contract) -> dict[str, DataFrame]:
    """Default builder: each contract table selects its columns from the payload by name.

    The partition column (``event_date``) is the record's silver day; Kafka
    coordinates are kept as ``kafka_partition`` / ``kafka_offset``.
    """
    from pyspark.sql import functions as F

    payload_fields = {column.split(".")[0] for column in contract.columns(_payload(contract))}
    tables = {}
    for table in contract.tables:
        partition_column = contract.partition_column(table)
        columns = []
        for name in contract.arrow_schema(table).names:
            if name == partition_column:
                columns.append(F.col(TARGET_DATE).alias(name))
            elif name in payload_fields:
                columns.append(F.col("payload").getField(name).alias(name))
            else:
                raise ValueError(
                    f"{contract.path}: table {table!r} column {name!r} is not a payload field; "
                    "this dataset needs its own table builder (lakehouse_assets/silver/transforms.py)"
                )
        tables[table] = accepted.select(*columns, *_lineage())
    return tables


def purchase_order_tables(accepted: DataFrame, contract: Contract) -> dict[str, DataFrame]:
    """``order_events`` (every accepted event), and from the newest version per order in
    the window: ``orders``, ``order_lines`` (one row per item), ``customers`` (the newest
    attributes per customer). Upserts by version then keep the newest across windows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    def p(path: str) -> Column:
        return F.col(f"payload.{path}")

    events = accepted.select(
        p("event_id").alias("event_id"),
        p("event_type").alias("event_type"),
        p("event_time").alias("event_time"),
        p("order_id").alias("order_id"),
        p("version").alias("version"),
        p("status").alias("status"),
        p("currency").alias("currency"),
        p("customer.customer_id").alias("customer_id"),
        p("customer.country").alias("country"),
        F.size(p("items")).cast("long").alias("line_count"),
        p("totals.subtotal").alias("subtotal"),
        p("totals.tax").alias("tax"),
        p("totals.shipping").alias("shipping"),
        p("totals.total").alias("total"),
        F.col(TARGET_DATE).alias("event_date"),
        *_lineage(),
    )
    newest_version = Window.partitionBy(p("order_id")).orderBy(
        p("version").desc(), p("event_time").desc(), p("event_id").desc()
    )
    latest = accepted.withColumn("_rank", F.row_number().over(newest_version)).where("_rank = 1")
    orders = latest.select(
        p("order_id").alias("order_id"),
        p("version").alias("version"),
        p("event_id").alias("event_id"),
        p("event_type").alias("event_type"),
        p("event_time").alias("event_time"),
        p("status").alias("status"),
        p("currency").alias("currency"),
        p("customer.customer_id").alias("customer_id"),
        p("customer.country").alias("country"),
        p("totals.subtotal").alias("subtotal"),
        p("totals.tax").alias("tax"),
        p("totals.shipping").alias("shipping"),
        p("totals.total").alias("total"),
        F.col(TARGET_DATE).alias("event_date"),
    )
    order_lines = latest.select(
        p("order_id").alias("order_id"),
        p("version").alias("version"),
        F.col(TARGET_DATE).alias("event_date"),
        F.posexplode(p("items")).alias("position", "item"),
    ).select(
        "order_id",
        (F.col("position") + 1).cast("long").alias("line_number"),
        "version",
        F.col("item.sku").alias("sku"),
        F.col("item.quantity").alias("quantity"),
        F.col("item.unit_price").alias("unit_price"),
        F.col("item.discount").alias("discount"),
        "event_date",
    )
    newest_attributes = Window.partitionBy(p("customer.customer_id")).orderBy(
        p("event_time").desc(), p("version").desc(), p("event_id").desc()
    )
    customers = (
        accepted.withColumn("_rank", F.row_number().over(newest_attributes))
        .where("_rank = 1")
        .select(
            p("customer.customer_id").alias("customer_id"),
            p("customer.name").alias("name"),
            p("customer.country").alias("country"),
            p("customer.tier").alias("tier"),
            p("customer.contact_info.email").alias("email"),
            p("customer.contact_info.phone").alias("phone"),
            p("event_time").alias("updated_at"),
            F.col(TARGET_DATE).alias("event_date"),
        )
    )
    return {
        "order_events": events,
        "orders": orders,
        "order_lines": order_lines,
        "customers": customers,
    }


#: Contracts whose tables are not plain projections of the payload.
TABLE_BUILDERS: dict[str, TableBuilder] = {"purchase_orders": purchase_order_tables}


def table_builder(contract_name: str) -> TableBuilder:
    """The builder of a contract's tables (keyed by the contract's ``name``)."""
    return TABLE_BUILDERS.get(contract_name, flat_tables)


#: Extra IO manager metadata per (contract, table): a newer version of an order
#: replaces all of its lines (``group_key``), so lines a customer removed disappear;
#: :func:`purchase_order_tables` keeps one row per key (``unique_by_key``), so the
#: upserts need no ranking of their own.
WRITE_OPTIONS: dict[tuple[str, str], dict[str, object]] = {
    ("purchase_orders", "orders"): {"unique_by_key": True},
    ("purchase_orders", "order_lines"): {"group_key": ["order_id"], "unique_by_key": True},
    ("purchase_orders", "customers"): {"unique_by_key": True},
}


def write_options(contract_name: str, table: str) -> dict[str, object]:
    return dict(WRITE_OPTIONS.get((contract_name, table), {}))
