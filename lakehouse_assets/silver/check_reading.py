"""How a contract check reads its silver table: the run's window (on ``main``, or on
the run's branch before it is published), the columns the rules need, sample failing
keys, rows per partition and the newest row (one scan per check)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts.document import SumEquals
from lakehouse_assets.contracts.model import RowRule
from resources.iceberg.branches import at_branch
from resources.iceberg.io_manager import IcebergIOManager, window_filter

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table as IcebergTable


@dataclass
class _Samples:
    """Up to ``limit`` failing keys per rule, gathered across batches."""

    key: Sequence[str]
    limit: int
    by_rule: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, rule_id: str, rows: pa.Table) -> None:
        bucket = self.by_rule.setdefault(rule_id, [])
        room = self.limit - len(bucket)
        if room > 0 and rows.num_rows:
            bucket.extend(_keys_of(rows.slice(0, room), self.key))


def _keys_of(rows: pa.Table, key: Sequence[str]) -> list[Any]:
    columns = [c for c in key if c in rows.schema.names]
    if not columns:
        return [f"row {i}" for i in range(rows.num_rows)]
    records = rows.select(columns).to_pylist()
    if len(columns) == 1:
        return [r[columns[0]] for r in records]
    return records


@dataclass(frozen=True)
class _Target:
    """Where a check reads: the Iceberg table of an asset and the rows of the run."""

    io_manager_key: str
    partition_column: str | None

    def table(self, context: Any, key: dg.AssetKey, ref: str | None = None) -> IcebergTable:
        """The table of ``key``, as on branch ``ref`` when given (and existing), else main."""
        table = self.find(context, key, ref)
        if table is None:
            raise dg.Failure(
                f"Iceberg table {self.table_name(context, key)} (asset {key.to_user_string()}) "
                "does not exist yet: materialise the asset before checking it"
            )
        return table

    def find(self, context: Any, key: dg.AssetKey, ref: str | None = None) -> IcebergTable | None:
        """:meth:`table`, or ``None`` when the table was never written."""
        from pyiceberg.exceptions import NoSuchTableError

        io_manager = self._io_manager(context)
        try:
            table = io_manager.catalog.load().load_table(io_manager.table_identifier(key))
        except NoSuchTableError:
            return None
        return at_branch(table, ref)

    def table_name(self, context: Any, key: dg.AssetKey) -> str:
        return self._io_manager(context).table_name(key)

    def _io_manager(self, context: Any) -> IcebergIOManager:
        io_manager = getattr(context.resources, self.io_manager_key)
        if not isinstance(io_manager, IcebergIOManager):
            raise dg.Failure(
                f"resource {self.io_manager_key!r} is {type(io_manager).__name__}, "
                "the contract checks read tables through an IcebergIOManager"
            )
        return io_manager

    def window(self, context: Any) -> dg.TimeWindow | None:
        """The run's partition window, if the run is partitioned by time."""
        if not (context.has_partition_key or context.has_partition_key_range):
            return None
        return context.partition_time_window

    def row_filter(
        self, table: IcebergTable, window: dg.TimeWindow | None, name: str
    ) -> BooleanExpression:
        from pyiceberg.expressions import AlwaysTrue

        if window is None or self.partition_column is None:
            return AlwaysTrue()
        return window_filter(table.schema(), self.partition_column, window, name)


def _existing(table: IcebergTable, columns: Iterable[str]) -> tuple[str, ...]:
    names = set(table.schema().column_names)
    return tuple(dict.fromkeys(c for c in columns if c in names))


def _window_metadata(window: dg.TimeWindow | None) -> dict[str, Any]:
    if window is None:
        return {"rows_window": "whole table"}
    return {"rows_window": f"[{window.start.isoformat()}, {window.end.isoformat()})"}


def _day_keys(window: dg.TimeWindow) -> list[str]:
    days, day = [], window.start.date()
    while day < window.end.date():
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def _row_rule_columns(rules: Iterable[RowRule]) -> list[str]:
    """Top-level columns the row rules read (a scan selects only these)."""
    columns: list[str] = []
    for rule in rules:
        if rule.column is not None:
            columns.append(rule.column.split(".")[0])
        if isinstance(rule.arguments, SumEquals):
            columns.extend(c.split(".")[0] for c in (*rule.arguments.terms, rule.arguments.equals))
    return list(dict.fromkeys(columns))


def _rows_by_partition(
    iceberg: IcebergTable, target: _Target, window: dg.TimeWindow | None, name: str
) -> dict[str, int]:
    """Rows per day of the window (days without rows count 0); whole table: one count."""
    if window is None or target.partition_column is None:
        return {"all": iceberg.scan().count()}
    column = target.partition_column
    data = iceberg.scan(
        row_filter=target.row_filter(iceberg, window, name), selected_fields=(column,)
    ).to_arrow()
    values = data.column(column)
    if pa.types.is_timestamp(values.type):
        values = pc.cast(pc.floor_temporal(values, unit="day"), pa.timestamp("us", tz="UTC"))
        values = pc.cast(values, pa.date32())
    counts = pa.table({"day": values}).group_by("day").aggregate([([], "count_all")])
    found = {
        (d.isoformat() if isinstance(d, date) else str(d)): int(n)
        for d, n in zip(
            counts.column("day").to_pylist(),
            counts.column("count_all").to_pylist(),
            strict=True,
        )
    }
    return {**dict.fromkeys(_day_keys(window), 0), **found}


def _newest(
    iceberg: IcebergTable, column: str, since: datetime, name: str
) -> datetime | date | None:
    """The newest ``column`` value of the table.

    Reads only rows at or after ``since`` (file statistics prune the rest); when
    none is that new, the newest value comes from the data files' upper bounds
    (metadata only), so a stale table never costs a full scan.
    """
    from pyiceberg.expressions import GreaterThanOrEqual
    from pyiceberg.types import DateType, TimestampType

    field_type = iceberg.schema().find_field(column).field_type
    bound: str
    if isinstance(field_type, DateType):
        bound = since.date().isoformat()
    elif isinstance(field_type, TimestampType):
        bound = since.astimezone(UTC).replace(tzinfo=None).isoformat()
    else:
        bound = since.astimezone(UTC).isoformat()
    at_least = cast(Any, GreaterThanOrEqual)
    recent = iceberg.scan(row_filter=at_least(column, bound), selected_fields=(column,)).to_arrow()
    if recent.num_rows:
        return cast(datetime | date | None, pc.max(recent.column(column)).as_py())
    if iceberg.current_snapshot() is None:
        return None
    files = iceberg.inspect.files()
    metrics = files.column("readable_metrics").combine_chunks()
    uppers = pc.struct_field(pc.struct_field(metrics, column), "upper_bound")
    newest = pc.max(uppers).as_py()
    return cast(datetime | date | None, newest)
