"""The Spark DataFrame path of :class:`resources.iceberg.io_manager.IcebergIOManager`.

Spark's Iceberg catalog has the same name as the pyiceberg catalog and shares its
catalog database (see :mod:`resources.spark.conf`), so ``<catalog>.<namespace>.<table>``
is one table for both engines. Table creation, partitioning and schema evolution go
through pyiceberg (the same helpers as the Arrow path); the rows are written by Spark:

* ``overwrite``: ``DataFrameWriterV2.overwrite(<window filter>)``, a static overwrite
  by filter. It replaces the run's whole window in one commit, also the days for which
  the input holds no row (``overwritePartitions`` would leave those untouched).
* ``append``: ``DataFrameWriterV2.append()``.
* ``upsert``: ``MERGE INTO`` from the input deduplicated by key (the highest sequence
  wins), restricted to rows newer than what the table holds; the MERGE condition
  re-checks the sequence, so a concurrent commit of a newer version is never replaced.

Snapshot properties travel as ``snapshot-property.<key>`` write options for
``DataFrameWriterV2``; ``MERGE INTO`` has no write options, so it runs with Iceberg's ``CommitMetadata``
thread-local set on the JVM thread that PySpark pins to the caller, which is where
Spark commits (:func:`with_commit_properties`).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
import pyarrow as pa

from resources.iceberg.branches import ensure_branch
from resources.iceberg.tables import begin_write
from resources.iceberg.writes import (
    ASSET_KEY_PROPERTY,
    RUN_ID_PROPERTY,
    IcebergWriteError,
    WriteRequest,
    WriteResult,
    _utc,
    rows_outside_window_error,
)
from resources.private_apis import jvm

if TYPE_CHECKING:
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

    from resources.iceberg.catalog import IcebergCatalogResource


_SEQ = "__lakehouse_existing_sequence"
_RANK = "__lakehouse_rank"
_NEW_SEQ = "__lakehouse_new_sequence"
_DELETE = "__lakehouse_delete"
_SOURCE_VIEW_PREFIX = "__lakehouse_merge_source_"
#: Message of the error that rows outside an overwrite's window raise in the write.
_OUTSIDE_WINDOW = "lakehouse: a row outside the run's partition window"

#: Iceberg exceptions that mean "another writer committed first": retry from scratch.
_CONFLICT_CLASSES = frozenset(
    {
        "org.apache.iceberg.exceptions.CommitFailedException",
        "org.apache.iceberg.exceptions.ValidationException",
        "org.apache.iceberg.exceptions.AlreadyExistsException",
    }
)


def is_spark_dataframe(obj: object) -> bool:
    """True for a ``pyspark.sql.DataFrame`` (without importing pyspark when it is unused)."""
    if "pyspark.sql" not in sys.modules:
        return False
    from pyspark.sql import DataFrame

    return isinstance(obj, DataFrame)


def quote(table_name: str) -> str:
    """``a.b.c`` → ```a`.`b`.`c``` for Spark SQL."""
    return ".".join(f"`{part.replace('`', '``')}`" for part in table_name.split("."))


def arrow_schema(df: DataFrame) -> pa.Schema:
    """The Arrow schema of a DataFrame (Spark ``timestamp`` → ``timestamp[us, UTC]``)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema)


# Partition windows ------------------------------------------------------------------------


def window_condition(column: str, data_type: DataType, window: dg.TimeWindow, table: str) -> str:
    """Spark SQL ``start <= column < end`` for a date, timestamp or timestamp_ntz column."""
    from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

    start, end = _utc(window.start), _utc(window.end)
    if isinstance(data_type, DateType):
        # A date column holds whole days: [start day, first day not covered).
        end_day = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(1)
        bounds = (f"DATE'{start.date().isoformat()}'", f"DATE'{end_day.isoformat()}'")
    elif isinstance(data_type, TimestampType):
        bounds = (f"TIMESTAMP'{start.isoformat()}'", f"TIMESTAMP'{end.isoformat()}'")
    elif isinstance(data_type, TimestampNTZType):
        # Timestamps without zone are read as UTC.
        naive = (start.replace(tzinfo=None), end.replace(tzinfo=None))
        bounds = (
            f"TIMESTAMP_NTZ'{naive[0].isoformat()}'",
            f"TIMESTAMP_NTZ'{naive[1].isoformat()}'",
        )
    else:
        raise IcebergWriteError(
            f"Iceberg table {table}: partition_expr column {column!r} is "
            f"{data_type.simpleString()}; it must be a date or a timestamp"
        )
    name = f"`{column.replace('`', '``')}`"
    return f"{name} >= {bounds[0]} AND {name} < {bounds[1]}"


def _column_type(schema: StructType, column: str, table_name: str, where: str) -> DataType:

    if column not in schema.fieldNames():
        raise IcebergWriteError(
            f"Iceberg table {table_name}: partition_expr column {column!r} is missing "
            f"from the {where} (columns: {', '.join(schema.fieldNames())})"
        )
    return schema[column].dataType


def check_rows_in_window(df: DataFrame, column: str, request: WriteRequest) -> None:
    """Overwrite replaces the run's window only; rows outside it would duplicate on replay."""
    from pyspark.sql import functions as F

    window = cast(dg.TimeWindow, request.time_window)
    data_type = _column_type(df.schema, column, request.table_name, "input")
    inside = F.expr(window_condition(column, data_type, window, request.table_name))
    counts = df.agg(
        F.count(F.lit(1)).alias("total"),
        F.sum(F.when(F.coalesce(inside, F.lit(False)), 0).otherwise(1)).alias("outside"),
    ).first()
    total, outside = (int(counts["total"]), int(counts["outside"] or 0)) if counts else (0, 0)
    if outside:
        raise rows_outside_window_error(request, column, outside, total)


# Preparing the rows -----------------------------------------------------------------------


def rank_latest(df: DataFrame, keys: Sequence[str], sequence: str) -> DataFrame:
    """``df`` plus each row's rank within its key, the highest sequence first (nulls lowest)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    latest_first = Window.partitionBy(*keys).orderBy(F.col(sequence).desc_nulls_last())
    return df.withColumn(_RANK, F.row_number().over(latest_first))


def count_ranked(ranked: DataFrame) -> tuple[int, int]:
    """Rows of a :func:`rank_latest` frame, and how many are the latest of their key."""
    from pyspark.sql import functions as F

    counts = ranked.agg(
        F.count(F.lit(1)).alias("total"),
        F.sum(F.when(F.col(_RANK) == 1, 1).otherwise(0)).alias("latest"),
    ).first()
    return (int(counts["total"]), int(counts["latest"] or 0)) if counts else (0, 0)


def latest_only(ranked: DataFrame) -> DataFrame:
    """The latest row of each key of a :func:`rank_latest` frame, without the rank."""
    from pyspark.sql import functions as F

    return ranked.where(F.col(_RANK) == 1).drop(_RANK)


def align_to_table(df: DataFrame, table_schema: StructType) -> DataFrame:
    """The input's columns in table order; table columns the input lacks become nulls.

    Spark writes by name but refuses a missing column; the Arrow path fills optional
    columns with nulls, so does this one (schema evolution only adds optional columns).
    """
    from pyspark.sql import functions as F

    present = set(df.columns)
    table_columns = [f.name for f in table_schema.fields]
    columns: list[Column] = [
        F.col(f"`{f.name}`") if f.name in present else F.lit(None).cast(f.dataType).alias(f.name)
        for f in table_schema.fields
    ]
    extra = [c for c in df.columns if c not in table_columns]
    if extra:
        # Not reachable after schema evolution; keeps Spark's own error if it happens.
        columns.extend(F.col(f"`{c}`") for c in extra)
    return df.select(*columns)


# Writing ----------------------------------------------------------------------------------


@dataclass
class SparkCommit:
    """What one Spark write committed (the snapshot is looked up through pyiceberg)."""

    rows: int | None
    details: dict[str, int]
    committed: bool = True
    rows_detail: str | None = None
    """The detail that equals ``rows``, filled in once the snapshot says how many."""


def write_options(properties: Mapping[str, str]) -> dict[str, str]:
    """``DataFrameWriterV2`` options that put ``properties`` into the snapshot summary."""
    return {f"snapshot-property.{key}": value for key, value in properties.items()}


def overwrite(df: DataFrame, request: WriteRequest, table_schema: StructType) -> SparkCommit:
    """Replace the run's window (or, unpartitioned, the whole table) in one commit.

    Rows outside the window (or with a null partition value) fail the write itself: the
    partition column is checked as the rows are written, so the check costs no pass of
    its own over the input. Only when it fails are the rows counted, for the message of
    :func:`check_rows_in_window`; nothing is committed.
    """
    from pyspark.sql import functions as F

    options = write_options(request.snapshot_properties)
    if request.time_window is None:
        df.writeTo(quote(request.spark_name)).options(**options).overwrite(F.lit(True))
        return SparkCommit(rows=None, details={})
    column = cast(str, request.partition_expr)
    data_type = _column_type(table_schema, column, request.table_name, "table")
    condition = window_condition(column, data_type, request.time_window, request.table_name)
    marker = f"{_OUTSIDE_WINDOW} {uuid.uuid4().hex}"
    value = F.col(f"`{column.replace('`', '``')}`")
    # coalesce(checked, value): the column keeps its type and nullability.
    checked = F.coalesce(
        F.when(F.coalesce(F.expr(condition), F.lit(False)), value).otherwise(
            F.raise_error(F.lit(marker))
        ),
        value,
    )
    try:
        df.withColumn(column, checked).writeTo(quote(request.spark_name)).options(
            **options
        ).overwrite(F.expr(condition))
    except Exception as exc:
        if marker in str(exc):
            check_rows_in_window(df, column, request)
        raise
    return SparkCommit(rows=None, details={})


def append(df: DataFrame, request: WriteRequest) -> SparkCommit:
    df.writeTo(quote(request.spark_name)).options(
        **write_options(request.snapshot_properties)
    ).append()
    return SparkCommit(rows=None, details={})


def upsert(
    spark: SparkSession, source: DataFrame, request: WriteRequest, table_exists: bool
) -> SparkCommit:
    """MERGE the (deduplicated, aligned) rows that are newer than the table's, in one commit.

    Rows whose key is stored with an equal or higher sequence are skipped (a late, older
    version or a replay): with nothing newer there is no commit at all, as in the Arrow
    path. The MERGE condition compares the sequences again, so a newer version committed
    concurrently is kept; Iceberg's serializable isolation fails the commit if a
    concurrent writer touched the same keys, and the whole attempt is redone.
    """
    from pyspark.sql import functions as F

    keys = list(request.primary_key)
    sequence = cast(str, request.sequence_column)
    target = quote(request.spark_name)
    if not table_exists:
        # A table this attempt created: every row is an insert, the snapshot counts them.
        _merge(spark, source, request, keys=keys, sequence=sequence)
        details = {"rows_updated": 0, "rows_skipped_not_newer": 0}
        return SparkCommit(rows=None, details=details, rows_detail="rows_inserted")
    stored = spark.table(target).groupBy(*keys).agg(F.max(sequence).alias(_SEQ))
    classified = source.join(stored, on=keys, how="left")
    newer = F.col(_SEQ).isNull() | (F.col(sequence) > F.col(_SEQ))
    # Counted, then merged: computed once (the stored keys are read once too).
    classified = classified.persist()
    try:
        counts = classified.agg(
            F.count(F.lit(1)).alias("total"),
            F.sum(F.when(F.col(_SEQ).isNull(), 1).otherwise(0)).alias("inserted"),
            F.sum(F.when(F.col(_SEQ).isNotNull() & newer, 1).otherwise(0)).alias("updated"),
        ).first()
        total, inserted, updated = (
            (int(counts["total"]), int(counts["inserted"] or 0), int(counts["updated"] or 0))
            if counts
            else (0, 0, 0)
        )
        details = {
            "rows_inserted": inserted,
            "rows_updated": updated,
            "rows_skipped_not_newer": total - inserted - updated,
        }
        if inserted + updated == 0:
            return SparkCommit(rows=0, details=details, committed=False)

        changed = classified.where(newer).select(*source.columns)
        _merge(spark, changed, request, keys=keys, sequence=sequence)
        return SparkCommit(rows=inserted + updated, details=details)
    finally:
        classified.unpersist()


def _merge(
    spark: SparkSession,
    changed: DataFrame,
    request: WriteRequest,
    *,
    keys: Sequence[str],
    sequence: str,
) -> None:
    """``MERGE INTO`` the table: new keys inserted, stored keys updated when newer."""
    # One view per MERGE: steps of a multi-threaded run share the session's temp views.
    view = f"{_SOURCE_VIEW_PREFIX}{uuid.uuid4().hex}"
    changed.createOrReplaceTempView(view)
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    seq = f"`{sequence}`"
    statement = (
        f"MERGE INTO {quote(request.spark_name)} AS t USING {view} AS s ON {on} "
        f"WHEN MATCHED AND (t.{seq} IS NULL OR s.{seq} > t.{seq}) THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT *"
    )
    try:
        with_commit_properties(spark, request.snapshot_properties, lambda: spark.sql(statement))
    finally:
        spark.catalog.dropTempView(view)


def upsert_groups(
    spark: SparkSession, source: DataFrame, request: WriteRequest, table_exists: bool
) -> SparkCommit:
    """MERGE whole groups (``group_key``): a group newer than the stored one replaces it.

    Rows of the new version are inserted or updated by primary key; stored rows of the
    group that the new version no longer has are deleted, all in one commit. Groups
    whose stored sequence is equal or higher are skipped (older versions, replays), and
    the MERGE compares sequences again so a concurrent newer commit is kept.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = list(request.primary_key)
    group = list(request.group_key)
    sequence = cast(str, request.sequence_column)
    target = quote(request.spark_name)
    # Only each group's newest version in the input counts.
    newest = Window.partitionBy(*group)
    source = (
        source.withColumn(_SEQ, F.max(sequence).over(newest))
        .where(F.col(sequence) == F.col(_SEQ))
        .drop(_SEQ)
    )
    if not table_exists:
        # A table this attempt created: every group is new, the snapshot counts the rows.
        _merge_groups(
            spark,
            source.withColumn(_DELETE, F.lit(False)),
            request,
            keys=keys,
            sequence=sequence,
            target=target,
        )
        return SparkCommit(rows=None, details={"rows_deleted": 0}, rows_detail="rows_written")
    groups = source.groupBy(*group).agg(F.max(sequence).alias(_NEW_SEQ))
    stored = spark.table(target)
    stored_groups = stored.groupBy(*group).agg(F.max(sequence).alias(_SEQ))
    groups = groups.join(stored_groups, on=group, how="left")
    groups = groups.where(F.col(_SEQ).isNull() | (F.col(_NEW_SEQ) > F.col(_SEQ))).select(
        *group, _NEW_SEQ
    )
    changed = source.join(groups.select(*group), on=group, how="left_semi").withColumn(
        _DELETE, F.lit(False)
    )
    removed = (
        stored.join(groups, on=group, how="inner")
        .join(changed.select(*keys), on=keys, how="left_anti")
        .withColumn(sequence, F.col(_NEW_SEQ).cast(source.schema[sequence].dataType))
        .drop(_NEW_SEQ)
        .withColumn(_DELETE, F.lit(True))
    )
    changed = changed.unionByName(removed.select(*changed.columns))
    # Counted, then merged: computed once.
    changed = changed.persist()
    try:
        counts = changed.agg(
            F.sum(F.when(~F.col(_DELETE), 1).otherwise(0)).alias("written"),
            F.sum(F.when(F.col(_DELETE), 1).otherwise(0)).alias("deleted"),
        ).first()
        written = int(counts["written"] or 0) if counts else 0
        deleted = int(counts["deleted"] or 0) if counts else 0
        details = {"rows_written": written, "rows_deleted": deleted}
        if written + deleted == 0:
            return SparkCommit(rows=0, details=details, committed=False)
        _merge_groups(spark, changed, request, keys=keys, sequence=sequence, target=target)
        return SparkCommit(rows=written, details=details)
    finally:
        changed.unpersist()


def _merge_groups(
    spark: SparkSession,
    changed: DataFrame,
    request: WriteRequest,
    *,
    keys: Sequence[str],
    sequence: str,
    target: str,
) -> None:
    """``MERGE INTO`` the table by key: rows marked ``_DELETE`` delete, the others write."""
    view = f"{_SOURCE_VIEW_PREFIX}{uuid.uuid4().hex}"
    changed.createOrReplaceTempView(view)
    columns = [c for c in changed.columns if c != _DELETE]
    on = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    seq = f"`{sequence}`"
    newer = f"(t.{seq} IS NULL OR s.{seq} > t.{seq})"
    assignments = ", ".join(f"t.`{c}` = s.`{c}`" for c in columns)
    names = ", ".join(f"`{c}`" for c in columns)
    values = ", ".join(f"s.`{c}`" for c in columns)
    statement = (
        f"MERGE INTO {target} AS t USING {view} AS s ON {on} "
        f"WHEN MATCHED AND s.`{_DELETE}` AND {newer} THEN DELETE "
        f"WHEN MATCHED AND NOT s.`{_DELETE}` AND {newer} THEN UPDATE SET {assignments} "
        f"WHEN NOT MATCHED AND NOT s.`{_DELETE}` THEN INSERT ({names}) VALUES ({values})"
    )
    try:
        with_commit_properties(spark, request.snapshot_properties, lambda: spark.sql(statement))
    finally:
        spark.catalog.dropTempView(view)


def with_commit_properties(
    spark: SparkSession, properties: Mapping[str, str], statement: Callable[[], object]
) -> None:
    """Run ``statement`` so that Spark's Iceberg commits in it carry ``properties``.

    ``SparkWrite`` and ``SparkPositionDeltaWrite`` add the map in Iceberg's
    ``CommitMetadata`` thread-local to the snapshot summary; that is the supported way
    for SQL statements, which take no write options. Its public setter,
    ``withCommitProperties(Map, Callable, Class)``, needs a Python callback, and a
    Py4J callback server is one per JVM: with a driver shared by several processes
    (:mod:`resources.spark.driver`) each would redirect the others' callbacks. So the
    thread-local is set directly, on the JVM thread that PySpark pins to the calling
    Python thread, which is the thread that runs the statement and commits; it is
    cleared afterwards as ``withCommitProperties`` does.
    """
    java = jvm(spark)
    # Py4J resolves the class through Spark's loader of the --packages jars.
    metadata = java.org.apache.iceberg.spark.CommitMetadata._java_lang_class
    field = metadata.getDeclaredField("COMMIT_PROPERTIES")
    field.setAccessible(True)
    thread_local = field.get(None)
    java_properties = java.java.util.HashMap()
    for key, value in properties.items():
        java_properties.put(key, value)
    thread_local.set(java_properties)
    try:
        statement()
    finally:
        thread_local.set(java.java.util.HashMap())


# Conflicts --------------------------------------------------------------------------------


def _java_causes(exc: BaseException) -> Iterator[Any]:
    """The JVM throwable behind a Py4J or PySpark error, and its causes."""
    throwable = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if throwable is not None and hasattr(throwable, "java_exception"):
        throwable = throwable.java_exception
    seen = 0
    while throwable is not None and seen < 20:
        yield throwable
        throwable = throwable.getCause()
        seen += 1


def is_commit_conflict(exc: BaseException) -> bool:
    """True when a Spark error comes from an Iceberg commit conflict (worth a retry)."""
    try:
        for throwable in _java_causes(exc):
            if throwable.getClass().getName() in _CONFLICT_CLASSES:
                return True
    except Exception:
        pass
    text = str(exc)
    return any(name in text for name in _CONFLICT_CLASSES)


def head_snapshot(table: Table, branch: str | None = None) -> Snapshot | None:
    """The snapshot ``branch`` (``main`` when None) points at."""
    if branch is None:
        return table.current_snapshot()
    return table.snapshot_by_name(branch)


def committed_snapshot(
    table: Table, run_properties: Mapping[str, str], branch: str | None = None
) -> int | None:
    """The newest snapshot of ``branch`` (``main`` when None) carrying this write's
    properties (another writer may be newer)."""

    snapshot = head_snapshot(table, branch)
    probe = {
        k: run_properties[k] for k in (RUN_ID_PROPERTY, ASSET_KEY_PROPERTY) if k in run_properties
    }
    while snapshot is not None:
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        if all(summary.get(k) == v for k, v in probe.items()):
            return snapshot.snapshot_id
        if snapshot.parent_snapshot_id is None:
            break
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id)
    current = head_snapshot(table, branch)
    return current.snapshot_id if current else None


def added_records(table: Table, snapshot_id: int | None) -> int:
    if snapshot_id is None:
        return 0
    snapshot = table.snapshot_by_id(snapshot_id)
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.additional_properties.get("added-records", 0))


def write_attempt(
    catalog: IcebergCatalogResource, request: WriteRequest, df: DataFrame
) -> WriteResult:
    """One attempt: create or evolve the table (pyiceberg), then one Spark commit."""
    table, tx, plan = begin_write(catalog, request, arrow_schema(df))
    if table is None or plan:
        tx.commit_transaction()
    if request.branch:
        ensure_branch(catalog.load().load_table(request.identifier), request.branch)
    spark = df.sparkSession
    # The Spark catalog caches nothing (cache-enabled=false): this is the new schema.
    table_schema = spark.table(quote(request.table_name)).schema
    aligned = align_to_table(df, table_schema)
    if request.mode == "overwrite":
        commit = overwrite(aligned, request, table_schema)
    elif request.mode == "append":
        commit = append(aligned, request)
    elif request.group_key:
        commit = upsert_groups(spark, aligned, request, table_exists=table is not None)
    else:
        commit = upsert(spark, aligned, request, table_exists=table is not None)

    committed = catalog.load().load_table(request.identifier)
    if commit.committed:
        snapshot_id = committed_snapshot(committed, request.snapshot_properties, request.branch)
    else:
        current = head_snapshot(committed, request.branch)
        snapshot_id = current.snapshot_id if current else None
    rows = commit.rows
    if rows is None:
        rows = added_records(committed, snapshot_id)
    details = dict(commit.details)
    if commit.rows_detail is not None:
        details[commit.rows_detail] = rows
    return WriteResult(
        snapshot_id=snapshot_id,
        rows=rows,
        schema=committed.schema().as_arrow(),
        location=committed.location(),
        attempts=1,
        schema_changes=plan.changes,
        details=details,
    )
