"""What every Iceberg write shares, whichever engine commits it.

The request (:class:`WriteRequest`: table, mode, partitions, keys, snapshot
properties), the result, the errors, the snapshot properties every commit carries,
and the rules both writers apply: the partition window a run may write, the table's
partitioning, nullability and deduplication by key. :mod:`resources.iceberg.io_manager`
resolves requests from Dagster's context and writes Arrow tables with pyiceberg;
:mod:`resources.iceberg.spark_writes` writes Spark DataFrames with Spark's catalog.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.transforms import Transform
    from pyiceberg.types import IcebergType


WriteMode = Literal["overwrite", "append", "upsert"]

WRITE_MODES: tuple[str, ...] = get_args(WriteMode)

#: Snapshot properties every commit carries.
RUN_ID_PROPERTY = "dagster.run_id"

PARTITION_KEYS_PROPERTY = "dagster.partition_keys"

ASSET_KEY_PROPERTY = "dagster.asset_key"

WRITE_MODE_PROPERTY = "dagster.write_mode"

#: Up to this many partition keys are listed one by one; longer runs as ``first...last``.
_MAX_LISTED_KEYS = 31

#: Properties of every table the IO manager creates. Iceberg's Java library (1.4 and
#: later) writes zstd into the tables it creates; pyiceberg leaves the codec unset, and
#: Spark's writer then falls back to Iceberg's old default, gzip: in the silver benchmark
#: the write of order_events took 12.0 s of CPU against the plain job's 7.8 s.
TABLE_PROPERTIES = {"write.parquet.compression-codec": "zstd"}


class IcebergSchemaError(ValueError):
    """The input cannot be written without an incompatible schema change."""


class IcebergCommitError(RuntimeError):
    """Commits kept conflicting with concurrent writers until the attempts ran out."""


class IcebergWriteError(ValueError):
    """The input does not fit the write (rows outside the run's partitions, bad options)."""


@dataclass(frozen=True)
class WriteRequest:
    """Everything a write needs, resolved from the Dagster context (engine-independent)."""

    identifier: tuple[str, str]
    table_name: str
    mode: WriteMode = "overwrite"
    partition_expr: str | None = None
    time_window: dg.TimeWindow | None = None
    partition_keys: Sequence[str] = ()
    partitions_def: dg.PartitionsDefinition | None = None
    primary_key: Sequence[str] = ()
    sequence_column: str | None = None
    group_key: Sequence[str] = ()
    unique_by_key: bool = False
    snapshot_properties: Mapping[str, str] = field(default_factory=dict)
    branch: str | None = None
    """Write to this branch (created from ``main`` if missing) instead of ``main``: the
    write half of write-audit-publish (:mod:`resources.iceberg.branches`)."""

    @property
    def spark_name(self) -> str:
        """The name Spark writes through: ``<table>.branch_<branch>`` for a branch."""
        return f"{self.table_name}.branch_{self.branch}" if self.branch else self.table_name


@dataclass
class WriteResult:
    """What a write did, for the materialisation's metadata."""

    snapshot_id: int | None
    rows: int
    schema: pa.Schema
    location: str
    attempts: int
    schema_changes: list[str] = field(default_factory=list)
    details: dict[str, int] = field(default_factory=dict)


def format_partition_keys(keys: Sequence[str]) -> str:
    """``a,b,c`` for a few keys, ``first...last`` for long ranges."""
    if len(keys) <= _MAX_LISTED_KEYS:
        return ",".join(keys)
    return f"{keys[0]}...{keys[-1]}"


def normalize_arrow(df: pa.Table) -> pa.Table:
    """Top-level ``timestamp[ns]`` → ``timestamp[us]`` (Iceberg v2 stores microseconds)."""
    fields = []
    changed = False
    for f in df.schema:
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
            fields.append(f.with_type(pa.timestamp("us", tz=f.type.tz)))
            changed = True
        else:
            fields.append(f)
    if not changed:
        return df
    return df.cast(pa.schema(fields, metadata=df.schema.metadata), safe=False)


def dedupe_latest(df: pa.Table, keys: list[str], sequence: str) -> tuple[pa.Table, int]:
    """One row per key, the one with the highest sequence (nulls lowest); returns (rows, dropped).

    pyiceberg's own upsert rejects inputs with duplicate keys; an input that holds
    several versions of a key keeps its latest.
    """
    if df.num_rows == 0:
        return df, 0
    order = pc.sort_indices(df, sort_keys=[(sequence, "descending")], null_placement="at_end")
    ordered = df.take(order)
    positions = ordered.select(keys).append_column(
        _POS, pa.array(range(ordered.num_rows), pa.int64())
    )
    first = positions.group_by(keys).aggregate([(_POS, "min")]).column(f"{_POS}_min")
    if len(first) == df.num_rows:
        return df, 0
    return ordered.take(_sorted(first)), df.num_rows - len(first)


def _sorted(positions: pa.ChunkedArray) -> pa.ChunkedArray:
    """Row positions in ascending order (keeps the input's row order on ``take``)."""
    return pc.take(positions, pc.array_sort_indices(positions))


def _field_type(schema: Schema, column: str, table_name: str) -> IcebergType:
    try:
        return schema.find_field(column).field_type
    except ValueError:
        raise IcebergWriteError(
            f"Iceberg table {table_name}: partition_expr column {column!r} is not in the table "
            f"(columns: {', '.join(f.name for f in schema.fields)})"
        ) from None


def window_filter(
    schema: Schema, column: str, window: dg.TimeWindow, table_name: str
) -> BooleanExpression:
    """``start <= column < end`` for a time window, typed for a date or timestamp column."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan
    from pyiceberg.types import DateType, TimestampType, TimestamptzType

    field_type = _field_type(schema, column, table_name)
    start, end = window.start, window.end
    bounds: tuple[str, str]
    if isinstance(field_type, DateType):
        # A date column holds whole days: [start day, first day not covered).
        end_day = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(1)
        bounds = (start.date().isoformat(), end_day.isoformat())
    elif isinstance(field_type, TimestamptzType):
        bounds = (_utc(start).isoformat(), _utc(end).isoformat())
    elif isinstance(field_type, TimestampType):
        # Timestamps without zone are read as UTC.
        bounds = (
            _utc(start).replace(tzinfo=None).isoformat(),
            _utc(end).replace(tzinfo=None).isoformat(),
        )
    else:
        raise IcebergWriteError(
            f"Iceberg table {table_name}: partition_expr column {column!r} is {field_type}; "
            "it must be a date or a timestamp"
        )
    # pyiceberg's predicates are pydantic models whose __init__ mypy does not see.
    at_least, below = cast(Any, GreaterThanOrEqual), cast(Any, LessThan)
    return And(at_least(column, bounds[0]), below(column, bounds[1]))


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.astimezone(UTC)


def check_rows_in_window(df: pa.Table, column: str, request: WriteRequest) -> None:
    """Overwrite replaces the run's window only; rows outside it would duplicate on replay."""
    window = cast(dg.TimeWindow, request.time_window)
    if column not in df.schema.names:
        raise IcebergWriteError(
            f"Iceberg table {request.table_name}: partition_expr column {column!r} is missing "
            "from the input"
        )
    values = df.column(column)
    value_type = values.type
    if pa.types.is_date(value_type):
        start: Any = _utc(window.start).date()
        end: Any = _utc(window.end).date()
        if _utc(window.end).time() != datetime.min.time():
            end = end + timedelta(1)
    elif pa.types.is_timestamp(value_type):
        start, end = _utc(window.start), _utc(window.end)
        if value_type.tz is None:
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    else:
        raise IcebergWriteError(
            f"Iceberg table {request.table_name}: partition_expr column {column!r} is "
            f"{value_type}; it must be a date or a timestamp"
        )
    inside = pc.and_kleene(
        pc.greater_equal(values, pa.scalar(start, value_type)),
        pc.less(values, pa.scalar(end, value_type)),
    )
    outside = df.num_rows - int(pc.sum(pc.fill_null(inside, False).cast(pa.int64())).as_py() or 0)
    if outside:
        raise rows_outside_window_error(request, column, outside, df.num_rows)


def rows_outside_window_error(
    request: WriteRequest, column: str, outside: int, total: int
) -> IcebergWriteError:
    """The error for an overwrite input with rows outside the run's window (both engines)."""
    keys = format_partition_keys(list(request.partition_keys))
    return IcebergWriteError(
        f"Iceberg table {request.table_name}: {outside} of {total} rows have "
        f"{column} outside the run's partitions ({keys}) or null; overwrite replaces only "
        "those partitions, so these rows would be duplicated by a re-run. Route them to "
        "their own partition (or use write_mode 'append'/'upsert')."
    )


def partition_transform(schema: Schema, column: str, request: WriteRequest) -> Transform[Any, Any]:
    """Iceberg transform matching the Dagster partitioning of the asset."""
    from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, MonthTransform
    from pyiceberg.types import DateType, TimestampType, TimestamptzType

    field_type = _field_type(schema, column, request.table_name)
    partitions_def = request.partitions_def
    cadence = (
        partitions_def.schedule_type.name
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition)
        and partitions_def.schedule_type is not None
        else "DAILY"
    )
    if isinstance(field_type, DateType):
        if cadence == "MONTHLY":
            return MonthTransform()
        if cadence == "HOURLY":
            raise IcebergWriteError(
                f"Iceberg table {request.table_name}: hourly partitions need a timestamp "
                f"partition_expr, {column!r} is a date"
            )
        return IdentityTransform()
    if isinstance(field_type, (TimestampType, TimestamptzType)):
        if cadence == "HOURLY":
            return HourTransform()
        if cadence == "MONTHLY":
            return MonthTransform()
        return DayTransform()
    raise IcebergWriteError(
        f"Iceberg table {request.table_name}: partition_expr column {column!r} is {field_type}; "
        "it must be a date or a timestamp"
    )


def _partition_field_name(request: WriteRequest, transform: Transform[Any, Any]) -> str:
    from pyiceberg.transforms import IdentityTransform

    column = cast(str, request.partition_expr)
    if isinstance(transform, IdentityTransform):
        return column
    return f"{column}_{str(transform).split('(')[0].lower()}"


def _partition_source_column(table: Table) -> str | None:
    """The column of a table's single time partition field (to load without metadata)."""
    from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, MonthTransform
    from pyiceberg.types import DateType, TimestampType, TimestamptzType

    schema = table.schema()
    for spec_field in table.spec().fields:
        if isinstance(spec_field.transform, (DayTransform, HourTransform, MonthTransform)):
            return schema.find_column_name(spec_field.source_id)
        if isinstance(spec_field.transform, IdentityTransform) and isinstance(
            schema.find_field(spec_field.source_id).field_type,
            (DateType, TimestampType, TimestamptzType),
        ):
            return schema.find_column_name(spec_field.source_id)
    return None


def conform_nullability(df: pa.Table, schema: Schema, table_name: str) -> pa.Table:
    """Mark input columns non-nullable where the table column is required.

    pyiceberg refuses a nullable Arrow field for a required column even when it
    holds no nulls; a column that does hold nulls fails here, naming it.
    """
    fields = list(df.schema)
    changed = False
    for i, arrow_field in enumerate(fields):
        if not arrow_field.nullable:
            continue
        try:
            table_field = schema.find_field(arrow_field.name)
        except ValueError:
            continue
        if table_field.required:
            nulls = df.column(i).null_count
            if nulls:
                raise IcebergSchemaError(
                    f"Iceberg table {table_name}: column {arrow_field.name!r} is required but "
                    f"{nulls} input row(s) hold null"
                )
            fields[i] = arrow_field.with_nullable(False)
            changed = True
    if not changed:
        return df
    return df.cast(pa.schema(fields, metadata=df.schema.metadata))


_POS = "__lakehouse_position"
