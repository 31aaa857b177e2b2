"""Gold exported to PostgreSQL as a star schema: one table per exported model.

``serving/postgres/<model>`` writes the gold model to ``<schema_name>.<model>``:

* **Tables** are created from the Iceberg schema of the gold table (:func:`postgres_type`
  maps each column's type; required columns are ``NOT NULL``), with the configured
  primary key and indexes (the partition column gets one too). A column that gold
  gains later is added; a column whose type changed is an error naming both types.
* **A daily model** (``partition_column`` set) is exported one day at a time: the day's
  rows are copied (``COPY``) into a temporary table, then, in **one transaction**, the
  table's rows of the day are deleted, so are rows of other days whose key the day now
  holds (an order that moved to this day), and the day's rows are inserted. Readers see
  the old day or the new one, never a mix; a rerun or a backfill replaces the day and
  can never duplicate a row (the primary key would refuse it anyway).
* **A dimension** (no ``partition_column``) is replaced whole, in one transaction.
* Every export also writes its row in ``<schema_name>.serving_exports`` (table, day,
  rows, the gold snapshot it read, run id, time) in the same transaction: when each
  table was last exported, for readers such as the dashboard.

Exports of one table are serialised by a transaction-scoped advisory lock, so two
runs of the same table (two days, or a day and a rerun) never interleave.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.types.json import Jsonb
from pyiceberg import types as it

if TYPE_CHECKING:
    import psycopg
    from pyiceberg.schema import Schema

#: The export log: one row per table and exported day ('' for a table replaced whole).
EXPORT_LOG = "serving_exports"
WHOLE_TABLE = ""
#: PostgreSQL truncates longer identifiers.
MAX_IDENTIFIER = 63

_PRIMITIVES: dict[type[it.IcebergType], str] = {
    it.BooleanType: "boolean",
    it.IntegerType: "integer",
    it.LongType: "bigint",
    it.FloatType: "real",
    it.DoubleType: "double precision",
    it.DateType: "date",
    it.TimeType: "time without time zone",
    it.TimestampType: "timestamp without time zone",
    it.TimestamptzType: "timestamp with time zone",
    it.StringType: "text",
    it.UUIDType: "uuid",
    it.BinaryType: "bytea",
    it.FixedType: "bytea",
}


def postgres_type(kind: it.IcebergType) -> str:
    """The PostgreSQL type of an Iceberg type, spelled as ``format_type`` spells it.

    Decimals keep precision and scale, timestamps their zone (``timestamptz`` ->
    ``timestamp with time zone``); structs, lists and maps become ``jsonb``.
    """
    if isinstance(kind, it.DecimalType):
        return f"numeric({kind.precision},{kind.scale})"
    if isinstance(kind, it.StructType | it.ListType | it.MapType):
        return "jsonb"
    for iceberg, postgres in _PRIMITIVES.items():
        if isinstance(kind, iceberg):
            return postgres
    raise TypeError(f"no PostgreSQL type for Iceberg type {kind}")


@dataclass(frozen=True)
class Column:
    """A column of an exported table."""

    name: str
    type: str
    required: bool = False


def columns_of(schema: Schema) -> list[Column]:
    """The table's columns, in the gold table's order, from its Iceberg schema."""
    return [Column(f.name, postgres_type(f.field_type), f.required) for f in schema.fields]


def _table(schema_name: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema_name, table)


def _names(columns: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c) for c in columns)


def index_name(table: str, columns: Sequence[str]) -> str:
    """``<table>__<columns>_idx``, shortened to PostgreSQL's identifier length."""
    name = f"{table}__{'_'.join(columns)}_idx"
    return name if len(name) <= MAX_IDENTIFIER else name[: MAX_IDENTIFIER - 4] + "_idx"


def create_table_sql(
    schema_name: str, table: str, columns: Sequence[Column], primary_key: Sequence[str]
) -> sql.Composed:
    """``CREATE TABLE IF NOT EXISTS`` with the columns and the primary key."""
    definitions = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            sql.SQL(c.type),
            sql.SQL(" not null" if c.required else ""),
        )
        for c in columns
    ]
    definitions.append(sql.SQL("primary key ({})").format(_names(primary_key)))
    return sql.SQL("create table if not exists {} ({})").format(
        _table(schema_name, table), sql.SQL(", ").join(definitions)
    )


def wanted_indexes(
    primary_key: Sequence[str], partition_column: str | None, indexes: Sequence[Sequence[str]]
) -> list[tuple[str, ...]]:
    """The secondary indexes to create: the configured ones, plus one on the partition
    column unless an index (the primary key's included) already starts with it."""
    wanted = [tuple(i) for i in indexes]
    if partition_column is not None:
        leading = {i[0] for i in [*wanted, tuple(primary_key)] if i}
        if partition_column not in leading:
            wanted.insert(0, (partition_column,))
    return list(dict.fromkeys(wanted))


def create_index_sql(schema_name: str, table: str, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("create index if not exists {} on {} ({})").format(
        sql.Identifier(index_name(table, columns)), _table(schema_name, table), _names(columns)
    )


def _lock(conn: psycopg.Connection, schema_name: str, table: str) -> None:
    """Serialise exports (and DDL) of one table until the transaction ends."""
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{schema_name}.{table}",))


def ensure_export_log(conn: psycopg.Connection, schema_name: str) -> None:
    with conn.transaction():
        _lock(conn, schema_name, EXPORT_LOG)
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema_name)))
        conn.execute(
            sql.SQL(
                "create table if not exists {} ("
                "table_name text not null, partition_key text not null, row_count bigint not null, "
                "gold_snapshot_id bigint, run_id text, "
                "exported_at timestamp with time zone not null default now(), "
                "primary key (table_name, partition_key))"
            ).format(_table(schema_name, EXPORT_LOG))
        )


def existing_columns(conn: psycopg.Connection, schema_name: str, table: str) -> dict[str, str]:
    """Column name -> type (``format_type``) of an existing table; empty if there is none."""
    rows = conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) "
        "from pg_attribute a join pg_class c on c.oid = a.attrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped "
        "order by a.attnum",
        (schema_name, table),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def ensure_table(
    conn: psycopg.Connection,
    schema_name: str,
    table: str,
    columns: Sequence[Column],
    primary_key: Sequence[str],
    indexes: Sequence[Sequence[str]],
) -> list[str]:
    """Create the schema, table and indexes if missing, add columns gold gained; returns
    the columns added. A column whose type differs from gold's is an error."""
    names = {c.name for c in columns}
    unknown = [c for c in [*primary_key, *(c for i in indexes for c in i)] if c not in names]
    if unknown:
        raise ValueError(
            f"serving.postgres.exports.{table}: column(s) {', '.join(sorted(set(unknown)))} "
            f"are not in the gold table (its columns: {', '.join(c.name for c in columns)})"
        )
    ensure_export_log(conn, schema_name)
    added: list[str] = []
    with conn.transaction():
        _lock(conn, schema_name, table)
        present = existing_columns(conn, schema_name, table)
        if not present:
            conn.execute(create_table_sql(schema_name, table, columns, primary_key))
        changed = [
            f"{c.name} is {present[c.name]} in PostgreSQL, {c.type} in gold"
            for c in columns
            if c.name in present and present[c.name] != c.type
        ]
        if changed:
            raise TypeError(
                f"{schema_name}.{table}: {'; '.join(changed)}. Migrate the column (or drop the "
                "table, the next exports recreate it day by day)"
            )
        for column in columns:
            if present and column.name not in present:
                conn.execute(
                    sql.SQL("alter table {} add column {} {}").format(
                        _table(schema_name, table),
                        sql.Identifier(column.name),
                        sql.SQL(column.type),
                    )
                )
                added.append(column.name)
        for index in indexes:
            conn.execute(create_index_sql(schema_name, table, index))
    return added


def _json(value: Any) -> str:
    # Decimals, dates and times inside nested values as strings.
    return json.dumps(value, default=str, sort_keys=True)


def copy_value(value: Any, column: Column) -> Any:
    """A gold value as COPY sends it (nested values as JSON)."""
    if value is not None and column.type == "jsonb":
        return Jsonb(value, dumps=_json)
    return value


@dataclass(frozen=True)
class ExportCounts:
    """What one export changed."""

    inserted: int
    deleted: int
    moved_in: int


def replace_rows(
    conn: psycopg.Connection,
    schema_name: str,
    table: str,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    primary_key: Sequence[str],
    partition: tuple[str, date] | None,
    *,
    run_id: str,
    gold_snapshot_id: int | None,
) -> ExportCounts:
    """Replace the rows of ``partition`` (column, day), or of the whole table when None,
    with ``rows``, in one transaction; also logs the export (see the module docstring)."""
    target = _table(schema_name, table)
    names = [c.name for c in columns]
    with conn.transaction(), conn.cursor() as cur:
        _lock(conn, schema_name, table)
        cur.execute(
            sql.SQL(
                "create temporary table _stage (like {} including defaults) on commit drop"
            ).format(target)
        )
        with cur.copy(sql.SQL("copy _stage ({}) from stdin").format(_names(names))) as copy:
            for row in rows:
                copy.write_row([copy_value(row.get(c.name), c) for c in columns])
        if partition is None:
            cur.execute(sql.SQL("delete from {}").format(target))
            deleted, moved = cur.rowcount, 0
        else:
            column, day = partition
            cur.execute(
                sql.SQL("delete from {} where {} = %s").format(target, sql.Identifier(column)),
                (day,),
            )
            deleted = cur.rowcount
            # Rows of other days whose key this day holds now (e.g. an order whose first
            # version arrived late and moved its order_date).
            matches = sql.SQL(" and ").join(
                sql.SQL("t.{0} = s.{0}").format(sql.Identifier(k)) for k in primary_key
            )
            cur.execute(
                sql.SQL("delete from {} as t using _stage as s where {}").format(target, matches)
            )
            moved = cur.rowcount
        cur.execute(
            sql.SQL("insert into {} ({}) select {} from _stage").format(
                target, _names(names), _names(names)
            )
        )
        inserted = cur.rowcount
        cur.execute(
            sql.SQL(
                "insert into {} (table_name, partition_key, row_count, gold_snapshot_id, run_id, "
                "exported_at) values (%s, %s, %s, %s, %s, now()) "
                "on conflict (table_name, partition_key) do update set "
                "row_count = excluded.row_count, gold_snapshot_id = excluded.gold_snapshot_id, "
                "run_id = excluded.run_id, exported_at = excluded.exported_at"
            ).format(_table(schema_name, EXPORT_LOG)),
            (
                table,
                partition[1].isoformat() if partition else WHOLE_TABLE,
                inserted,
                gold_snapshot_id,
                run_id,
            ),
        )
    return ExportCounts(inserted=inserted, deleted=deleted, moved_in=moved)


# --- reconciliation --------------------------------------------------------------------


def count_rows(
    conn: psycopg.Connection, schema_name: str, table: str, partition: tuple[str, date] | None
) -> int:
    query = sql.SQL("select count(*) from {}").format(_table(schema_name, table))
    params: tuple[Any, ...] = ()
    if partition is not None:
        query += sql.SQL(" where {} = %s").format(sql.Identifier(partition[0]))
        params = (partition[1],)
    found = conn.execute(query, params).fetchone()
    return int(found[0]) if found else 0


def _key(row: Mapping[str, Any], primary_key: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[k] for k in primary_key)


def sample(
    rows: Sequence[Mapping[str, Any]], primary_key: Sequence[str], size: int
) -> list[Mapping[str, Any]]:
    """Up to ``size`` rows spread evenly over the rows sorted by key (deterministic)."""
    ordered = sorted(rows, key=lambda r: tuple(str(v) for v in _key(r, primary_key)))
    if len(ordered) <= size:
        return ordered
    step = len(ordered) / size
    return [ordered[int(i * step)] for i in range(size)]


def fetch_rows(
    conn: psycopg.Connection,
    schema_name: str,
    table: str,
    columns: Sequence[Column],
    primary_key: Sequence[str],
    keys: Sequence[tuple[Any, ...]],
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The stored rows of ``keys`` (primary key values), by key."""
    if not keys:
        return {}
    names = [c.name for c in columns]
    one_key = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(primary_key)))
    query = sql.SQL("select {} from {} where ({}) in ({})").format(
        _names(names),
        _table(schema_name, table),
        _names(primary_key),
        sql.SQL(", ").join([one_key] * len(keys)),
    )
    params = [value for key in keys for value in key]
    found = {}
    for values in conn.execute(query, params).fetchall():
        row = dict(zip(names, values, strict=True))
        found[_key(row, primary_key)] = row
    return found


def _comparable(value: Any, column: Column) -> Any:
    if value is not None and column.type == "jsonb":
        return json.loads(_json(value))
    return value


def differences(
    rows: Sequence[Mapping[str, Any]],
    stored: Mapping[tuple[Any, ...], Mapping[str, Any]],
    columns: Sequence[Column],
    primary_key: Sequence[str],
) -> list[str]:
    """Where the sampled gold ``rows`` and their stored rows disagree, value by value."""
    problems = []
    for row in rows:
        key = _key(row, primary_key)
        label = ", ".join(f"{k}={v}" for k, v in zip(primary_key, key, strict=True))
        found = stored.get(key)
        if found is None:
            problems.append(f"{label}: missing")
            continue
        changed = [
            c.name
            for c in columns
            if _comparable(row.get(c.name), c) != _comparable(found.get(c.name), c)
        ]
        if changed:
            problems.append(f"{label}: {', '.join(changed)} differ")
    return problems
