"""IO manager for Iceberg tables: Arrow tables through pyiceberg, Spark DataFrames through Spark.

An asset key ``["silver", "orders"]`` is the table ``<catalog>.silver.orders``: the
first key component is a medallion layer mapped to its namespace
(``catalog.namespaces``), the last one is the table name. Assets never build
table names.

Partitioning follows Dagster's: an asset's (or output's) metadata
``partition_expr`` names the column that holds the partition's time (a DATE
column or a timestamp column). The table is created on the first write with the
matching Iceberg partitioning (``identity`` on a date column, ``day()``/``hour()``/
``month()`` on a timestamp column), its namespace too if missing.

Output metadata (definition metadata on the asset, or runtime ``dg.Output``
metadata, which wins):

``write_mode``
    ``overwrite`` (default) replaces exactly the partitions of the run (one key or
    the range of a single-run backfill) in one atomic commit; ``append`` adds
    rows; ``upsert`` merges by ``primary_key`` and keeps, per key, the row with
    the highest ``sequence_column`` (an older version arriving later never
    replaces a newer one).
``primary_key`` / ``sequence_column``
    Key columns and version column for ``upsert``.
``group_key``
    Optional, ``upsert`` of Spark DataFrames only: a proper subset of the primary key
    whose rows change together (an order's lines). A group with a newer sequence
    replaces the stored group as a whole: rows the new version no longer has are
    deleted in the same commit.
``unique_by_key``
    Optional, ``upsert`` of Spark DataFrames only: ``True`` when the asset already
    returns one row per ``primary_key`` (the newest version of each, as a builder that
    ranked its rows does); the write then skips its own ranking pass over the input.
    Repeated keys would reach the table, where the contract's key-uniqueness check
    reports them.
``snapshot_properties``
    Extra properties for the snapshot summary (e.g. source offsets); every
    commit also carries ``dagster.run_id``, ``dagster.partition_keys``,
    ``dagster.asset_key`` and ``dagster.write_mode``.

Schema evolution is additive: new columns are added as optional columns, ``int``
→ ``long``, ``float`` → ``double`` and wider decimal precision widen the table
column; every other change (narrowing, a changed type, a required column missing
from the input) fails with an :class:`IcebergSchemaError` naming the table, the
column and the change. Concurrent commits that conflict are retried from scratch
(re-loading the table) with exponential backoff and jitter.

Engines. An asset returns a ``pyarrow.Table`` (or ``RecordBatchReader``), written by
pyiceberg, or a ``pyspark.sql.DataFrame``, written by Spark's Iceberg catalog of the
same name (:mod:`resources.iceberg.spark_writes`). Both share :class:`WriteRequest`, the table
creation and partitioning, the schema evolution rules, the snapshot properties, the
retries and the materialisation metadata; a table written by one engine is read and
written by the other. Inputs load as a ``pyarrow.Table`` of the requested partitions
(assets that compute with Spark read their tables through Spark's catalog instead).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
import pyarrow as pa
from pydantic import Field

from resources.iceberg import arrow_writes
from resources.iceberg import spark_writes as iceberg_spark
from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.spark_writes import is_spark_dataframe
from resources.iceberg.writes import (
    ASSET_KEY_PROPERTY,
    PARTITION_KEYS_PROPERTY,
    RUN_ID_PROPERTY,
    WRITE_MODE_PROPERTY,
    WRITE_MODES,
    IcebergCommitError,
    IcebergWriteError,
    WriteMode,
    WriteRequest,
    WriteResult,
    _partition_source_column,
    check_rows_in_window,
    dedupe_latest,
    format_partition_keys,
    normalize_arrow,
    window_filter,
)
from resources.table_metadata import column_schema

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyspark.sql import DataFrame


class IcebergIOManager(dg.ConfigurableIOManager):
    """Stores Arrow tables (pyiceberg) and Spark DataFrames (Spark) as Iceberg tables.

    Asset ``["<layer>", ..., "<table>"]`` ↔ table ``<namespace of layer>.<table>``.
    Asset metadata: ``partition_expr`` (partition time column), ``write_mode``
    (overwrite | append | upsert), ``primary_key`` and ``sequence_column`` (upsert),
    ``snapshot_properties`` (extra snapshot summary properties), ``branch`` (write to
    this branch, created from ``main`` if missing, and leave ``main`` as it is: the
    write of write-audit-publish, see :mod:`resources.iceberg.branches`). Loads return a
    ``pyarrow.Table`` with the rows of the requested partitions, or a lazy Spark
    DataFrame for inputs annotated ``pyspark.sql.DataFrame`` or with input metadata
    ``{"engine": "spark"}``.
    """

    catalog: IcebergCatalogResource = Field(
        description="The Iceberg catalog holding the tables (`catalog.*` settings)."
    )
    namespaces: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Namespace of each layer (`catalog.namespaces`): the first asset key component "
            "is looked up here; a component that is not listed is used as the namespace as is."
        ),
    )
    default_namespace: str | None = Field(
        default=None,
        description="Namespace of assets whose key has a single component (none: such keys fail).",
    )
    commit_attempts: int = Field(
        default=6,
        ge=1,
        description="Attempts per write when commits conflict with concurrent writers.",
    )
    retry_base_seconds: float = Field(
        default=0.25, ge=0, description="First backoff between commit attempts (doubles each time)."
    )
    retry_max_seconds: float = Field(
        default=8.0, ge=0, description="Upper bound of one backoff between commit attempts."
    )

    # Naming --------------------------------------------------------------------------------

    def table_identifier(self, asset_key: dg.AssetKey) -> tuple[str, str]:
        """(namespace, table) of an asset: layer → namespace, last key component → table."""
        path = asset_key.path
        if len(path) == 1:
            if not self.default_namespace:
                raise ValueError(
                    f"asset {asset_key.to_user_string()} has no layer prefix: give it a key like "
                    "['silver', '<table>'] or set the IO manager's default_namespace"
                )
            return self.default_namespace, path[0]
        return self.namespaces.get(path[0], path[0]), path[-1]

    def table_name(self, asset_key: dg.AssetKey) -> str:
        """Fully qualified name, e.g. ``lakehouse.silver.orders``."""
        return ".".join((self.catalog.name, *self.table_identifier(asset_key)))

    # Dagster hooks ------------------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if obj is None:
            return
        request = self.write_request(context)
        if isinstance(obj, pa.RecordBatchReader):
            # A retry needs the rows again: a reader can only be consumed once.
            obj = obj.read_all()
        if isinstance(obj, pa.Table):
            result = self.write_arrow(request, obj, log=context.log)
        elif is_spark_dataframe(obj):
            result = self.write_spark(request, cast("DataFrame", obj), log=context.log)
        else:
            raise TypeError(
                f"{type(self).__name__} stores pyarrow Tables and Spark DataFrames; asset "
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}"
            )
        metadata: dict[str, Any] = {
            "dagster/row_count": result.rows,
            "dagster/column_schema": column_schema(result.schema),
            "dagster/table_name": request.table_name,
            "dagster/uri": result.location,
            "snapshot_id": str(result.snapshot_id) if result.snapshot_id is not None else "",
            "write_mode": request.mode,
            "commit_attempts": result.attempts,
        }
        if request.branch:
            metadata["branch"] = request.branch
        if result.schema_changes:
            metadata["schema_changes"] = dg.MetadataValue.json(result.schema_changes)
        metadata.update(result.details)
        context.add_output_metadata(metadata)

    def load_input(self, context: dg.InputContext) -> pa.Table | DataFrame:
        """An Arrow table, or a lazy Spark DataFrame when the input asks for one.

        Spark when the input is annotated ``pyspark.sql.DataFrame`` or its metadata says
        ``{"engine": "spark"}``; either way only the rows of the requested partitions.
        """
        from pyiceberg.exceptions import NoSuchTableError
        from pyiceberg.expressions import AlwaysTrue

        asset_key = context.asset_key
        table_name = self.table_name(asset_key)
        try:
            table = self.catalog.load().load_table(self.table_identifier(asset_key))
        except NoSuchTableError:
            raise dg.Failure(
                f"Iceberg table {table_name} (asset {asset_key.to_user_string()}) does not exist "
                "yet: materialise the asset first"
            ) from None
        partition_expr: str | None = None
        time_window: dg.TimeWindow | None = None
        if context.has_asset_partitions:
            upstream = context.upstream_output
            partition_expr = _metadata_str(context.definition_metadata, "partition_expr") or (
                _metadata_str(upstream.definition_metadata, "partition_expr") if upstream else None
            )
            partition_expr = partition_expr or _partition_source_column(table)
            if partition_expr is None:
                raise dg.Failure(
                    f"Iceberg table {table_name}: the input is partitioned but no partition_expr "
                    "is set on the asset and the table has no time partitioning to infer it from"
                )
            time_window = context.asset_partitions_time_window
        columns = context.definition_metadata.get("columns")
        row_filter: BooleanExpression = AlwaysTrue()
        if partition_expr is not None and time_window is not None:
            row_filter = window_filter(table.schema(), partition_expr, time_window, table_name)
        selected: tuple[str, ...] = ("*",) if not columns else tuple(columns)
        return table.scan(row_filter=row_filter, selected_fields=selected).to_arrow()

    # Resolving the request ----------------------------------------------------------------

    def write_request(self, context: dg.OutputContext) -> WriteRequest:
        """Table, mode, partitions and snapshot properties of one output."""
        asset_key = context.asset_key
        table_name = self.table_name(asset_key)

        def option(key: str) -> Any:
            return _option(context, key)

        mode = option("write_mode") or "overwrite"
        if mode not in WRITE_MODES:
            raise IcebergWriteError(
                f"Iceberg table {table_name}: write_mode {mode!r} is not one of "
                f"{', '.join(WRITE_MODES)}"
            )
        partition_expr = option("partition_expr")
        time_window: dg.TimeWindow | None = None
        keys: list[str] = []
        partitions_def: dg.PartitionsDefinition | None = None
        if context.has_asset_partitions:
            partitions_def = context.asset_partitions_def
            if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
                raise IcebergWriteError(
                    f"Iceberg table {table_name}: only time-window partitions are supported, "
                    f"asset {asset_key.to_user_string()} has {type(partitions_def).__name__}"
                )
            time_window = context.asset_partitions_time_window
            keys = list(context.asset_partition_keys)
        primary_key = list(option("primary_key") or [])
        sequence_column = option("sequence_column")
        if mode == "upsert" and not (primary_key and sequence_column):
            raise IcebergWriteError(
                f"Iceberg table {table_name}: write_mode 'upsert' needs the metadata "
                "primary_key (list of key columns) and sequence_column"
            )
        group_key = list(option("group_key") or [])
        if group_key and (mode != "upsert" or not set(group_key) < set(primary_key)):
            raise IcebergWriteError(
                f"Iceberg table {table_name}: group_key {group_key} needs write_mode 'upsert' "
                f"and must be a proper subset of primary_key {primary_key}"
            )
        properties = {
            str(k): v if isinstance(v, str) else json.dumps(v, default=str, sort_keys=True)
            for k, v in (option("snapshot_properties") or {}).items()
        }
        properties.update(
            {
                RUN_ID_PROPERTY: context.run_id,
                ASSET_KEY_PROPERTY: asset_key.to_user_string(),
                WRITE_MODE_PROPERTY: mode,
            }
        )
        if keys:
            properties[PARTITION_KEYS_PROPERTY] = format_partition_keys(keys)
        return WriteRequest(
            identifier=self.table_identifier(asset_key),
            table_name=table_name,
            mode=cast(WriteMode, mode),
            partition_expr=partition_expr,
            time_window=time_window,
            partition_keys=keys,
            partitions_def=partitions_def,
            primary_key=primary_key,
            sequence_column=sequence_column,
            group_key=group_key,
            unique_by_key=bool(option("unique_by_key")) and mode == "upsert",
            snapshot_properties=properties,
            branch=option("branch") or None,
        )

    # Writing ------------------------------------------------------------------------------

    def write_arrow(
        self, request: WriteRequest, df: pa.Table, log: Any | None = None
    ) -> WriteResult:
        """Write an Arrow table as one commit, retrying from scratch on conflicts."""
        from pyiceberg.exceptions import (
            CommitFailedException,
            TableAlreadyExistsError,
            ValidationException,
        )

        df = normalize_arrow(df)
        if request.time_window is not None and request.partition_expr is None:
            raise IcebergWriteError(
                f"Iceberg table {request.table_name}: the asset is partitioned; set the metadata "
                "partition_expr to the column holding the partition's date or time"
            )
        if request.mode == "upsert":
            missing = [
                c
                for c in (*request.primary_key, request.sequence_column)
                if c not in df.schema.names
            ]
            if missing:
                raise IcebergWriteError(
                    f"Iceberg table {request.table_name}: upsert column(s) "
                    f"{', '.join(map(str, missing))} are missing from the input"
                )
            df, duplicates = dedupe_latest(
                df, list(request.primary_key), cast(str, request.sequence_column)
            )
        else:
            duplicates = 0
        if request.mode == "overwrite" and request.time_window is not None:
            check_rows_in_window(df, cast(str, request.partition_expr), request)

        def is_conflict(exc: Exception) -> bool:
            return isinstance(
                exc, (CommitFailedException, ValidationException, TableAlreadyExistsError)
            )

        result = self._with_retries(
            request, lambda: arrow_writes.write_attempt(self.catalog, request, df), is_conflict, log
        )
        if request.mode == "upsert":
            result.details["input_duplicates_dropped"] = duplicates
        return result

    def _with_retries(
        self,
        request: WriteRequest,
        attempt_write: Callable[[], WriteResult],
        is_conflict: Callable[[Exception], bool],
        log: Any | None,
    ) -> WriteResult:
        """Run ``attempt_write`` until it commits; conflicts are retried with backoff.

        tenacity's full-jitter exponential backoff (a random wait up to ``base x 2^n``,
        at most ``retry_max_seconds``): writers that collided do not collide again in
        step. Any other error is raised at once.
        """
        import tenacity

        self.catalog.load().create_namespace_if_not_exists(request.identifier[0])

        def warn(state: tenacity.RetryCallState) -> None:
            if log is None or state.outcome is None or state.next_action is None:
                return
            exc = state.outcome.exception()
            log.warning(
                f"Iceberg table {request.table_name}: commit conflict on attempt "
                f"{state.attempt_number}/{self.commit_attempts} ({type(exc).__name__}: "
                f"{_first_line(exc)}); retrying in {state.next_action.sleep:.2f}s"
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.commit_attempts),
            wait=tenacity.wait_random_exponential(
                multiplier=self.retry_base_seconds, max=self.retry_max_seconds
            ),
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, Exception) and is_conflict(exc)
            ),
            before_sleep=warn,
            reraise=True,
        )
        try:
            # After a conflict another writer committed first: each attempt starts over
            # from the table's new snapshot.
            result = retrying(attempt_write)
        except Exception as exc:
            if not is_conflict(exc):
                raise
            raise IcebergCommitError(
                f"Iceberg table {request.table_name}: the commit failed {self.commit_attempts} "
                f"times because of concurrent writers ({type(exc).__name__}: "
                f"{_first_line(exc)}); nothing was written. Re-run the step, or raise "
                "commit_attempts."
            ) from exc
        result.attempts = retrying.statistics["attempt_number"]
        return result

    # Writing Spark DataFrames -------------------------------------------------------------

    def write_spark(
        self, request: WriteRequest, df: DataFrame, log: Any | None = None
    ) -> WriteResult:
        """Write a Spark DataFrame through Spark's Iceberg catalog as one commit (retried).

        The table is created or evolved through pyiceberg (same helpers and errors as
        :meth:`write_arrow`), then Spark writes the rows; see :mod:`resources.iceberg.spark_writes`.
        The input is never unpersisted: the asset may have cached it for other outputs.
        """
        from pyiceberg.exceptions import (
            CommitFailedException,
            TableAlreadyExistsError,
            ValidationException,
        )

        if request.time_window is not None and request.partition_expr is None:
            raise IcebergWriteError(
                f"Iceberg table {request.table_name}: the asset is partitioned; set the metadata "
                "partition_expr to the column holding the partition's date or time"
            )
        source = df
        owned: list[DataFrame] = []
        duplicates = 0
        try:
            if request.mode == "upsert":
                missing = [
                    c
                    for c in (*request.primary_key, request.sequence_column)
                    if c not in df.columns
                ]
                if missing:
                    raise IcebergWriteError(
                        f"Iceberg table {request.table_name}: upsert column(s) "
                        f"{', '.join(map(str, missing))} are missing from the input"
                    )
            if request.mode == "upsert" and not request.unique_by_key:
                # Read several times (classification, MERGE, retries): computed once, in
                # the same pass that counts the duplicates dropped.
                ranked = iceberg_spark.rank_latest(
                    df, list(request.primary_key), cast(str, request.sequence_column)
                ).persist()
                owned.append(ranked)
                total, latest = iceberg_spark.count_ranked(ranked)
                duplicates = total - latest
                source = iceberg_spark.latest_only(ranked)
            # Overwrites check the window as they write (iceberg_spark.overwrite).

            def is_conflict(exc: Exception) -> bool:
                if isinstance(
                    exc, (CommitFailedException, ValidationException, TableAlreadyExistsError)
                ):
                    return True
                return iceberg_spark.is_commit_conflict(exc)

            result = self._with_retries(
                request,
                lambda: iceberg_spark.write_attempt(self.catalog, request, source),
                is_conflict,
                log,
            )
        finally:
            for frame in owned:
                frame.unpersist()
        if request.mode == "upsert":
            result.details["input_duplicates_dropped"] = duplicates
        return result


# Helpers ----------------------------------------------------------------------------------


def _option(context: dg.OutputContext, key: str) -> Any:
    """Runtime output metadata wins over definition metadata; MetadataValues unwrapped."""
    for source in (context.output_metadata, context.definition_metadata):
        if source and key in source and source[key] is not None:
            value = source[key]
            return value.value if isinstance(value, dg.MetadataValue) else value
    return None


def _first_line(exc: BaseException | None) -> str:
    """An error's first line; for a Py4J error the Java exception's (not its stack trace)."""
    java_exception = getattr(exc, "java_exception", None)
    text = str(exc).strip()
    if java_exception is not None:
        # The JVM may be gone: then the Python text will do.
        with contextlib.suppress(Exception):
            text = str(java_exception.toString()).strip()
    return text.splitlines()[0] if text else ""


def _metadata_str(metadata: Mapping[str, Any] | None, key: str) -> str | None:
    if not metadata or metadata.get(key) is None:
        return None
    value = metadata[key]
    return str(value.value if isinstance(value, dg.MetadataValue) else value)


# Schema evolution -----------------------------------------------------------------------
