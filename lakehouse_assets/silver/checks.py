"""Asset checks generated from a data contract, one set per silver table.

:func:`build_contract_checks` turns the rules of one contract table
(:meth:`Contract.row_rules`, :meth:`Contract.table_rules`,
:meth:`Contract.arrow_schema`) into ``@dg.asset_check`` definitions. Each check
groups the rules of one kind, reads the Iceberg table once through pyiceberg
(where the asset's IO manager wrote it) and reports, per rule, how many rows
(or keys, or partitions) break it, with a few sample failing keys:

=============================  ==============================================  ==========
check                          evaluates                                       scope
=============================  ==============================================  ==========
``contract_schema``            every contract column present, compatible type  table
``contract_row_rules``         required, allowed values, pattern, range,       partition
                               length, ``sum_equals`` (the table's row rules)
``contract_unique``            primary key, ``unique`` columns,                partition, or
                               ``duplicateValues`` rules                       table (upserts)
``contract_row_count``         ``rowCount`` bounds, per daily partition        partition
``contract_freshness``         the SLA ``latency`` on the table's newest row   table
``contract_<rule id>``         a built-in table rule (``child_lines_sum_to``)  partition
=============================  ==============================================  ==========

Severity. A check is ``blocking`` when one of its rules has severity ``error``.
Its result has severity ERROR when an ``error`` rule fails (downstream assets of
the run do not materialise) and WARN when only ``warning`` rules fail: Dagster
blocks on failed blocking checks of ERROR severity only, so a ``warning`` rule
never stops the pipeline, whichever check carries it. A check whose rules are
all warnings is not blocking.

Partitions. Checks whose rules are about a partition's rows are partitioned like
the asset (``partitions_def`` on ``@asset_check``, preview in Dagster 1.13):
when the asset's run materialises a partition, its checks run in the same run
and the evaluations are recorded for that partition. The rows checked are the
run's partition window on ``partition_column`` (a ranged run, i.e. a single-run
backfill, checks its whole window; Dagster then records the evaluation without a
partition key). Schema, table-wide key uniqueness (upsert tables hold one row
per key across partitions) and freshness are about the whole table and are not
partitioned: freshness compares the table's newest ``latency`` column value with
the time the check runs, so backfilling an old partition never makes it fail.

Cost: one Iceberg scan per check and run (two for the built-in that compares
two tables), selecting only the columns the rules need; row rules stream the
scan batch by batch. The pure evaluators (:func:`row_rule_failures`,
:func:`evaluate_row_rules`, :func:`duplicate_keys`, :func:`evaluate_unique`,
:func:`evaluate_row_counts`, :func:`evaluate_freshness`,
:func:`child_lines_mismatches`, :func:`schema_problems`) work on Arrow tables
and are what the unit tests specify.
"""

# No `from __future__ import annotations`: Dagster reads the check functions'
# annotations at definition time.
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts.document import ChildLinesSumTo, Severity, SumEquals
from lakehouse_assets.contracts.model import Contract, RowRule, TableRule
from resources.iceberg.io_manager import IcebergIOManager, window_filter

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table as IcebergTable

__all__ = [
    "CHECK_FRESHNESS",
    "CHECK_ROW_COUNT",
    "CHECK_ROW_RULES",
    "CHECK_SCHEMA",
    "CHECK_UNIQUE",
    "RuleOutcome",
    "build_contract_checks",
    "builtin_check_name",
    "check_result",
    "child_lines_mismatches",
    "contract_checks_for_asset",
    "duplicate_keys",
    "evaluate_freshness",
    "evaluate_row_counts",
    "evaluate_row_rules",
    "evaluate_unique",
    "row_rule_failures",
    "schema_problems",
]

CHECK_SCHEMA = "contract_schema"
CHECK_ROW_RULES = "contract_row_rules"
CHECK_UNIQUE = "contract_unique"
CHECK_ROW_COUNT = "contract_row_count"
CHECK_FRESHNESS = "contract_freshness"

#: Partition time column of silver tables whose contract marks none.
DEFAULT_PARTITION_COLUMN = "event_date"

#: Sample failing keys reported per rule.
DEFAULT_SAMPLE_SIZE = 5

#: Scale of the intermediate line amounts (quantity * price * (1 - discount)).
_WIDE = 76

Clock = Callable[[], datetime]


def builtin_check_name(rule_id: str) -> str:
    """Name of the check evaluating the built-in table rule ``rule_id``."""
    return f"contract_{rule_id}"


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule fared: ``failing`` rows (keys, partitions) and a few sample keys."""

    rule_id: str
    severity: Severity
    description: str
    failing: int
    samples: Sequence[Any] = ()
    unit: str = "rows"
    """What ``failing`` counts: rows, keys, partitions, columns."""


def check_result(
    outcomes: Sequence[RuleOutcome], metadata: Mapping[str, Any] | None = None
) -> dg.AssetCheckResult:
    """One check's result from its rules' outcomes.

    Passed when no rule fails; severity ERROR when an ``error`` rule fails, WARN
    when only ``warning`` rules fail. Metadata: ``failing`` (rule id → count, every
    rule), ``failed_rules``, ``sample_failing_keys`` (failing rules only), plus
    ``metadata``.
    """
    failed = [o for o in outcomes if o.failing]
    errors = [o for o in failed if o.severity == "error"]
    only_warnings = failed and not errors
    severity = dg.AssetCheckSeverity.WARN if only_warnings else dg.AssetCheckSeverity.ERROR
    if failed:
        shown = "; ".join(f"{o.rule_id}: {o.failing} {o.unit}" for o in failed)
        description = f"{len(failed)} of {len(outcomes)} rule(s) failed: {shown}"
    else:
        description = f"all {len(outcomes)} rule(s) passed"
    samples = {o.rule_id: _jsonable(list(o.samples)) for o in failed if o.samples}
    return dg.AssetCheckResult(
        passed=not failed,
        severity=severity,
        description=description,
        metadata={
            **(metadata or {}),
            "failing": dg.MetadataValue.json({o.rule_id: o.failing for o in outcomes}),
            "failed_rules": len(failed),
            "sample_failing_keys": dg.MetadataValue.json(samples),
            "rules": dg.MetadataValue.json(
                {o.rule_id: f"[{o.severity}] {o.description}" for o in outcomes}
            ),
        },
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# --------------------------------------------------------------------------- schema


def schema_problems(actual: pa.Schema, expected: pa.Schema) -> dict[str, str]:
    """Contract columns missing from ``actual`` or of an incompatible type, with the reason.

    Compatible: the same type, a wider integer or float, a decimal of the same
    scale and at least the precision, string/large_string (binary, list alike),
    timestamps with a UTC zone in any unit; structs and lists field by field.
    Extra columns in ``actual`` are fine (partition and load columns).
    """
    problems: dict[str, str] = {}
    for expected_field in expected:
        index = actual.get_field_index(expected_field.name)
        if index < 0:
            problems[expected_field.name] = f"missing (expected {expected_field.type})"
            continue
        reason = _type_problem(actual.field(index).type, expected_field.type)
        if reason:
            problems[expected_field.name] = reason
    return problems


def nullable_required_columns(actual: pa.Schema, expected: pa.Schema) -> list[str]:
    """Required contract columns the table declares nullable (its nulls are a row rule's job)."""
    return [
        f.name
        for f in expected
        if not f.nullable and actual.get_field_index(f.name) >= 0 and actual.field(f.name).nullable
    ]


_INTEGER_WIDTH = {pa.int8(): 8, pa.int16(): 16, pa.int32(): 32, pa.int64(): 64}
_FLOAT_WIDTH = {pa.float16(): 16, pa.float32(): 32, pa.float64(): 64}


def _type_problem(actual: pa.DataType, expected: pa.DataType) -> str | None:
    if actual == expected:
        return None
    pair = f"is {actual}, expected {expected}"
    if pa.types.is_null(expected):
        return None
    if expected in _INTEGER_WIDTH:
        if actual in _INTEGER_WIDTH and _INTEGER_WIDTH[actual] >= _INTEGER_WIDTH[expected]:
            return None
        return pair
    if expected in _FLOAT_WIDTH:
        if actual in _FLOAT_WIDTH and _FLOAT_WIDTH[actual] >= _FLOAT_WIDTH[expected]:
            return None
        return pair
    if pa.types.is_decimal(expected):
        if (
            pa.types.is_decimal(actual)
            and actual.scale == expected.scale
            and actual.precision >= expected.precision
        ):
            return None
        return pair
    if pa.types.is_string(expected) or pa.types.is_large_string(expected):
        ok = pa.types.is_string(actual) or pa.types.is_large_string(actual)
        return None if ok else pair
    if pa.types.is_binary(expected) or pa.types.is_large_binary(expected):
        ok = pa.types.is_binary(actual) or pa.types.is_large_binary(actual)
        return None if ok else pair
    if pa.types.is_timestamp(expected):
        if not pa.types.is_timestamp(actual):
            return pair
        if (expected.tz is None) != (actual.tz is None):
            return f"{pair} (time zone differs)"
        if expected.tz is not None and actual.tz not in ("UTC", "+00:00", "Etc/UTC"):
            return f"{pair} (not UTC)"
        return None
    if pa.types.is_list(expected) or pa.types.is_large_list(expected):
        if not (pa.types.is_list(actual) or pa.types.is_large_list(actual)):
            return pair
        inner = _type_problem(actual.value_type, expected.value_type)
        return f"element {inner}" if inner else None
    if pa.types.is_struct(expected):
        if not pa.types.is_struct(actual):
            return pair
        names = [actual.field(i).name for i in range(actual.num_fields)]
        for i in range(expected.num_fields):
            child = expected.field(i)
            if child.name not in names:
                return f"field {child.name!r} missing"
            inner = _type_problem(actual.field(names.index(child.name)).type, child.type)
            if inner:
                return f"field {child.name!r} {inner}"
        return None
    return pair


# --------------------------------------------------------------------------- row rules


def row_rule_failures(table: pa.Table, rule: RowRule) -> pa.ChunkedArray:
    """Boolean mask over ``table``'s rows: True where the row breaks ``rule``.

    Nulls pass every kind but ``required`` (as the contract defines); a column
    missing from the table is all nulls (the schema check reports it). Dotted
    columns address struct fields; a required nested field only fails where its
    parent exists.
    """
    n = table.num_rows
    passing = pa.chunked_array([pa.array([False] * n, pa.bool_())], pa.bool_())
    if rule.kind == "builtin":
        if isinstance(rule.arguments, SumEquals):
            return _sum_equals_failures(table, rule.arguments)
        raise ValueError(
            f"rule {rule.id!r}: built-in {rule.rule!r} is not evaluated on silver tables "
            "(it describes nested payloads; quarantine applies it)"
        )
    assert rule.column is not None, rule
    column, parent = _resolve(table, rule.column)
    if rule.kind == "required":
        if column is None:
            return pa.chunked_array([pa.array([n > 0] * n, pa.bool_())], pa.bool_())
        missing = pc.is_null(column)
        if parent is not None:
            missing = pc.and_(missing, pc.is_valid(parent))
        return _mask(missing)
    if column is None:
        return passing
    if rule.kind == "allowed_values":
        allowed = pa.array(list(rule.value)).cast(column.type)
        return _mask(pc.and_(pc.is_valid(column), pc.invert(pc.is_in(column, value_set=allowed))))
    if rule.kind == "pattern":
        return _mask(pc.invert(_matches(column, str(rule.value))))
    if rule.kind == "comparison":
        return _mask(pc.invert(_compare(column, cast(str, rule.operator), rule.value)))
    if rule.kind == "length":
        lengths = (
            pc.list_value_length(column)
            if pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            else pc.utf8_length(column)
        )
        return _mask(pc.invert(_compare(lengths, cast(str, rule.operator), rule.value)))
    raise ValueError(f"rule {rule.id!r}: kind {rule.kind!r} does not apply to table rows")


def evaluate_row_rules(table: pa.Table, rules: Iterable[RowRule]) -> dict[str, int]:
    """Failing row count per rule id."""
    return {rule.id: _count(row_rule_failures(table, rule)) for rule in rules}


def _resolve(table: pa.Table, path: str) -> tuple[Any, Any]:
    """``(column, parent struct or None)`` of a dotted path; ``(None, None)`` if absent."""
    head, *rest = path.split(".")
    if head not in table.schema.names:
        return None, None
    column, parent = table.column(head), None
    for name in rest:
        if not pa.types.is_struct(column.type) or column.type.get_field_index(name) < 0:
            return None, None
        parent, column = column, pc.struct_field(column, name)
    return column, parent


def _mask(values: Any) -> pa.ChunkedArray:
    """A boolean mask where null (undecided) counts as passing."""
    filled = pc.fill_null(values, False)
    if isinstance(filled, pa.Array):
        return pa.chunked_array([filled], pa.bool_())
    return filled


def _count(mask: pa.ChunkedArray) -> int:
    return int(pc.sum(mask, min_count=0).as_py() or 0)


def _matches(column: Any, pattern: str) -> Any:
    """``re.search`` per value: Arrow's RE2 when it accepts the pattern, else Python's ``re``
    on the distinct values (lookarounds, backreferences)."""
    try:
        return pc.match_substring_regex(column, pattern)
    except pa.ArrowInvalid:
        compiled = re.compile(pattern)
        distinct = pc.unique(column).drop_null()
        matching = [v for v in distinct.to_pylist() if compiled.search(v)]
        result = pc.is_in(column, value_set=pa.array(matching, column.type))
        return pc.if_else(pc.is_null(column), None, result)


def _scalar(value: Any, arrow_type: pa.DataType) -> pa.Scalar:
    """A comparison bound typed to compare exactly with a column of ``arrow_type``."""
    if pa.types.is_floating(arrow_type):
        return pa.scalar(float(value), pa.float64())
    if isinstance(value, Decimal) or pa.types.is_decimal(arrow_type):
        return pa.scalar(Decimal(value))
    return pa.scalar(value)


def _compare(column: Any, operator: str, value: Any) -> Any:
    functions = {
        "==": pc.equal,
        "!=": pc.not_equal,
        ">": pc.greater,
        ">=": pc.greater_equal,
        "<": pc.less,
        "<=": pc.less_equal,
    }
    if operator == "between":
        low, high = value
        return pc.and_(
            pc.greater_equal(column, _scalar(low, column.type)),
            pc.less_equal(column, _scalar(high, column.type)),
        )
    return functions[operator](column, _scalar(value, column.type))


def _numeric(column: Any, float_mode: bool) -> Any:
    """A column ready for exact (decimal256) or float arithmetic."""
    if float_mode:
        return pc.cast(column, pa.float64())
    if pa.types.is_integer(column.type):
        return pc.cast(column, pa.decimal256(20, 0))
    if pa.types.is_decimal(column.type):
        return pc.cast(column, pa.decimal256(column.type.precision, column.type.scale))
    raise TypeError(f"column of type {column.type} is not numeric")


def _sum_equals_failures(table: pa.Table, arguments: SumEquals) -> pa.ChunkedArray:
    columns = [_resolve(table, name)[0] for name in (*arguments.terms, arguments.equals)]
    if any(c is None for c in columns):
        return _mask(pa.array([None] * table.num_rows, pa.bool_()))
    float_mode = any(pa.types.is_floating(c.type) for c in columns)
    *terms, equals = (_numeric(c, float_mode) for c in columns)
    total = terms[0]
    for term in terms[1:]:
        total = pc.add(total, term)
    difference = pc.abs(pc.subtract(total, equals))
    tolerance = float(arguments.tolerance) if float_mode else _decimal_scalar(arguments.tolerance)
    return _mask(pc.greater(difference, tolerance))


def _decimal_scalar(value: Decimal) -> pa.Scalar:
    exponent = value.as_tuple().exponent
    scale = max(0, -exponent) if isinstance(exponent, int) else 0
    return pa.scalar(value, pa.decimal256(38, scale))


# --------------------------------------------------------------------------- table rules


def duplicate_keys(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """Key values that occur more than once, with their ``rows``; keys holding a null are
    left out (a required rule reports them)."""
    keys = table.select(list(columns))
    valid = None
    for name in columns:
        present = pc.is_valid(keys.column(name))
        valid = present if valid is None else pc.and_(valid, present)
    if valid is not None:
        keys = keys.filter(valid)
    counts = keys.group_by(list(columns), use_threads=False).aggregate([([], "count_all")])
    counts = counts.rename_columns([*columns, "rows"])
    return counts.filter(pc.greater(counts.column("rows"), 1))


def evaluate_unique(table: pa.Table, rules: Iterable[TableRule]) -> dict[str, int]:
    """Duplicated key values per ``unique`` rule id."""
    return {rule.id: duplicate_keys(table, rule.columns).num_rows for rule in rules}


def evaluate_row_counts(
    rows_by_partition: Mapping[str, int], rules: Iterable[TableRule]
) -> dict[str, list[str]]:
    """Partitions whose row count is out of each ``row_count`` rule's bounds, per rule id."""
    out: dict[str, list[str]] = {}
    for rule in rules:
        out[rule.id] = [
            key
            for key, rows in sorted(rows_by_partition.items())
            if (rule.minimum is not None and rows < rule.minimum)
            or (rule.maximum is not None and rows > rule.maximum)
        ]
    return out


def evaluate_freshness(
    newest: datetime | date | None, now: datetime, max_delay: timedelta
) -> tuple[bool, timedelta | None]:
    """``(fresh, lag)``: the newest value is at most ``max_delay`` before ``now``.

    A date counts as the end of its day; a naive timestamp as UTC. No value: stale.
    """
    if newest is None:
        return False, None
    if not isinstance(newest, datetime):
        newest = datetime.combine(newest + timedelta(days=1), datetime.min.time(), UTC)
    elif newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    lag = max(now - newest, timedelta(0))
    return lag <= max_delay, lag


def child_lines_mismatches(
    parents: pa.Table, lines: pa.Table, arguments: ChildLinesSumTo
) -> pa.Table:
    """Parent rows whose lines do not add up to ``arguments.equals``.

    A line's amount is ``quantity * unit_price * (1 - discount)``; per parent key the
    amounts' sum, rounded half up to the scale of ``equals``, must equal it within
    ``tolerance`` (a parent without lines sums to 0). Exact decimal arithmetic
    (decimal256) unless a column is a float. Returns the key columns,
    ``expected`` (the parent's value) and ``lines_total``. Parents whose ``equals``
    is null are left out.
    """
    key = list(arguments.key)
    float_mode = any(
        pa.types.is_floating(lines.schema.field(c).type)
        for c in (arguments.quantity, arguments.unit_price, arguments.discount)
        if c is not None
    ) or pa.types.is_floating(parents.schema.field(arguments.equals).type)
    amount = pc.multiply(
        _numeric(lines.column(arguments.quantity), float_mode),
        _numeric(lines.column(arguments.unit_price), float_mode),
    )
    if arguments.discount is not None:
        discount = _numeric(lines.column(arguments.discount), float_mode)
        one = 1.0 if float_mode else pa.scalar(Decimal(1), pa.decimal256(1, 0))
        amount = pc.multiply(amount, pc.subtract(one, discount))
    sums = (
        pa.table({**{k: lines.column(k) for k in key}, "amount": amount})
        .group_by(key, use_threads=False)
        .aggregate([("amount", "sum")])
    )
    equals_type = parents.schema.field(arguments.equals).type
    joined = parents.select([*key, arguments.equals]).join(
        sums, keys=key, join_type="left outer", use_threads=False
    )
    joined = joined.filter(pc.is_valid(joined.column(arguments.equals)))
    expected = _numeric(joined.column(arguments.equals), float_mode)
    if float_mode:
        total = pc.fill_null(joined.column("amount_sum"), 0.0)
        difference = pc.abs(pc.subtract(total, expected))
        failing = pc.greater(difference, float(arguments.tolerance))
    else:
        scale = equals_type.scale if pa.types.is_decimal(equals_type) else 0
        total = pc.round(joined.column("amount_sum"), ndigits=scale, round_mode="half_up")
        # The sum's type is decimal256(76, s): narrow it so the subtraction stays in range.
        total = pc.fill_null(
            pc.cast(total, pa.decimal256(_WIDE // 2, scale)),
            pa.scalar(Decimal(0), pa.decimal256(_WIDE // 2, scale)),
        )
        difference = pc.abs(pc.subtract(total, expected))
        failing = pc.greater(difference, _decimal_scalar(arguments.tolerance))
    out = pa.table(
        {**{k: joined.column(k) for k in key}, "expected": expected, "lines_total": total}
    )
    return out.filter(pc.fill_null(failing, False))


# --------------------------------------------------------------------------- reading


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

    def table(self, context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> "IcebergTable":
        from pyiceberg.exceptions import NoSuchTableError

        io_manager = self._io_manager(context)
        try:
            return io_manager.catalog.load().load_table(io_manager.table_identifier(key))
        except NoSuchTableError:
            raise dg.Failure(
                f"Iceberg table {io_manager.table_name(key)} (asset {key.to_user_string()}) "
                "does not exist yet: materialise the asset before checking it"
            ) from None

    def table_name(self, context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> str:
        return self._io_manager(context).table_name(key)

    def _io_manager(self, context: dg.AssetCheckExecutionContext) -> IcebergIOManager:
        io_manager = getattr(context.resources, self.io_manager_key)
        if not isinstance(io_manager, IcebergIOManager):
            raise dg.Failure(
                f"resource {self.io_manager_key!r} is {type(io_manager).__name__}, "
                "the contract checks read tables through an IcebergIOManager"
            )
        return io_manager

    def window(self, context: dg.AssetCheckExecutionContext) -> dg.TimeWindow | None:
        """The run's partition window, if the run is partitioned by time."""
        if not (context.has_partition_key or context.has_partition_key_range):
            return None
        return context.partition_time_window

    def row_filter(
        self, table: "IcebergTable", window: dg.TimeWindow | None, name: str
    ) -> "BooleanExpression":
        from pyiceberg.expressions import AlwaysTrue

        if window is None or self.partition_column is None:
            return AlwaysTrue()
        return window_filter(table.schema(), self.partition_column, window, name)


def _existing(table: "IcebergTable", columns: Iterable[str]) -> tuple[str, ...]:
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


# --------------------------------------------------------------------------- factory


def _blocking(severities: Iterable[Severity]) -> bool:
    return any(s == "error" for s in severities)


def build_contract_checks(
    contract: Contract,
    table: str,
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    *,
    partition_column: str | None = None,
    table_wide_keys: bool = False,
    related_assets: Mapping[str, dg.AssetKey] | None = None,
    io_manager_key: str = "iceberg_io_manager",
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    clock: Clock | None = None,
) -> list[dg.AssetChecksDefinition]:
    """The asset checks of contract table ``table`` for the asset ``asset_key``.

    Args:
        contract: The dataset's contract.
        table: A silver table of the contract (``physicalType: table``).
        asset_key: The asset that materialises it (``["silver", table]`` in the pipeline).
        partitions_def: The asset's partitions; partition-scoped checks get the same.
        partition_column: Column holding the partition's time (the asset's
            ``partition_expr``); a run's checks read the rows of its window on it.
            Default: the contract's ``partitioned: true`` column, else ``event_date``.
        table_wide_keys: Check key uniqueness over the whole table (assets written
            with ``write_mode: upsert`` hold one row per key across partitions).
        related_assets: Asset key of another contract table a built-in rule reads
            (``child_lines_sum_to``'s ``linesTable``); default: ``asset_key`` with
            its last component replaced by the table name.
        io_manager_key: Resource key of the :class:`IcebergIOManager` storing the
            tables: the checks read where it writes.
        sample_size: Failing keys reported per rule.
        clock: The time freshness is measured against (default: now, UTC).

    Returns checks named ``contract_schema``, ``contract_row_rules``,
    ``contract_unique``, ``contract_row_count``, ``contract_freshness`` and
    ``contract_<rule id>`` per built-in table rule, each only when the table has
    rules of that kind (see the module docstring).
    """
    # Partitioned asset checks are a preview API in Dagster 1.13 (see the module
    # docstring): used on purpose, so its warning is not repeated at every load.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Specifying a partitions_def on an AssetCheckSpec"
        )
        return _build_contract_checks(
            contract,
            table,
            asset_key,
            partitions_def,
            partition_column=partition_column
            or contract.partition_column(table)
            or DEFAULT_PARTITION_COLUMN,
            table_wide_keys=table_wide_keys,
            related_assets=related_assets or {},
            io_manager_key=io_manager_key,
            sample_size=sample_size,
            clock=clock or (lambda: datetime.now(UTC)),
        )


def _build_contract_checks(
    contract: Contract,
    table: str,
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    *,
    partition_column: str | None,
    table_wide_keys: bool,
    related_assets: Mapping[str, dg.AssetKey],
    io_manager_key: str,
    sample_size: int,
    clock: Clock,
) -> list[dg.AssetChecksDefinition]:
    if table not in contract.tables:
        raise ValueError(
            f"{contract.path}: {table!r} is not a silver table of the contract "
            f"(tables: {', '.join(contract.tables)})"
        )
    now = clock
    target = _Target(io_manager_key, partition_column)
    keys = contract.keys(table).primary_key
    row_rules = contract.row_rules(table)
    for rule in row_rules:
        if rule.kind == "builtin" and not isinstance(rule.arguments, SumEquals):
            raise ValueError(
                f"{contract.path}: row rule {rule.id!r} of table {table!r} uses built-in "
                f"{rule.rule!r}, which has no evaluator on silver tables"
            )
    table_rules = contract.table_rules(table)
    partitioned = partitions_def
    common: dict[str, Any] = {
        "asset": asset_key,
        "required_resource_keys": {io_manager_key},
    }
    label = f"{contract.dataset}.{table} (contract {contract.path.name} {contract.version})"
    checks: list[dg.AssetChecksDefinition] = []

    def metadata_of(rules: Sequence[RowRule | TableRule]) -> dict[str, Any]:
        return {"contract_rules": [r.id for r in rules]}

    # Schema ------------------------------------------------------------------------------
    expected_schema = contract.arrow_schema(table)

    @dg.asset_check(
        name=CHECK_SCHEMA,
        description=f"{label}: every contract column is present with a compatible type.",
        blocking=True,
        **common,
    )
    def schema_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        iceberg = target.table(context, asset_key)
        actual = iceberg.schema().as_arrow()
        problems = schema_problems(actual, expected_schema)
        outcomes = [
            RuleOutcome(
                f"{f.name}.schema",
                "error",
                f"{f.name} is a {f.type}",
                int(f.name in problems),
                (problems[f.name],) if f.name in problems else (),
                unit="column",
            )
            for f in expected_schema
        ]
        return check_result(
            outcomes,
            {
                "dagster/table_name": target.table_name(context, asset_key),
                "schema_problems": dg.MetadataValue.json(problems),
                "nullable_required_columns": dg.MetadataValue.json(
                    nullable_required_columns(actual, expected_schema)
                ),
                "extra_columns": dg.MetadataValue.json(
                    [n for n in actual.names if n not in expected_schema.names]
                ),
            },
        )

    checks.append(schema_check)

    # Row rules ---------------------------------------------------------------------------
    if row_rules:
        columns_needed = _row_rule_columns(row_rules)

        @dg.asset_check(
            name=CHECK_ROW_RULES,
            description=f"{label}: each row meets the row rules "
            f"({len(row_rules)}: required, allowed values, patterns, ranges, lengths, sums).",
            blocking=_blocking(r.severity for r in row_rules),
            partitions_def=partitioned,
            metadata=metadata_of(row_rules),
            **common,
        )
        def row_rules_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            name = target.table_name(context, asset_key)
            iceberg = target.table(context, asset_key)
            window = target.window(context)
            selected = _existing(iceberg, (*keys, *columns_needed))
            scan = iceberg.scan(
                row_filter=target.row_filter(iceberg, window, name),
                selected_fields=selected or ("*",),
            )
            failing = dict.fromkeys((r.id for r in row_rules), 0)
            samples = _Samples(keys, sample_size)
            rows = 0
            for batch in scan.to_arrow_batch_reader():
                chunk = pa.Table.from_batches([batch])
                rows += chunk.num_rows
                for rule in row_rules:
                    mask = row_rule_failures(chunk, rule)
                    count = _count(mask)
                    if count:
                        failing[rule.id] += count
                        samples.add(rule.id, chunk.filter(mask))
            outcomes = [
                RuleOutcome(
                    r.id,
                    r.severity,
                    r.description,
                    failing[r.id],
                    samples.by_rule.get(r.id, ()),
                )
                for r in row_rules
            ]
            return check_result(
                outcomes,
                {"dagster/table_name": name, "rows_checked": rows, **_window_metadata(window)},
            )

        checks.append(row_rules_check)

    # Key uniqueness ----------------------------------------------------------------------
    unique_rules = [r for r in table_rules if r.kind == "unique"]
    if unique_rules:
        scope = "the whole table" if table_wide_keys else "each partition"

        @dg.asset_check(
            name=CHECK_UNIQUE,
            description=f"{label}: no two rows share a key in {scope} "
            f"({', '.join('(' + ', '.join(r.columns) + ')' for r in unique_rules)}).",
            blocking=_blocking(r.severity for r in unique_rules),
            partitions_def=None if table_wide_keys else partitioned,
            metadata=metadata_of(unique_rules),
            **common,
        )
        def unique_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            name = target.table_name(context, asset_key)
            iceberg = target.table(context, asset_key)
            window = None if table_wide_keys else target.window(context)
            wanted = [c for r in unique_rules for c in r.columns]
            selected = _existing(iceberg, wanted)
            data = iceberg.scan(
                row_filter=target.row_filter(iceberg, window, name),
                selected_fields=selected or ("*",),
            ).to_arrow()
            outcomes = []
            for rule in unique_rules:
                if not set(rule.columns) <= set(data.schema.names):
                    # Missing key columns: the schema check fails; nothing to compare here.
                    outcomes.append(RuleOutcome(rule.id, rule.severity, rule.description, 0))
                    continue
                duplicated = duplicate_keys(data, rule.columns)
                outcomes.append(
                    RuleOutcome(
                        rule.id,
                        rule.severity,
                        rule.description,
                        duplicated.num_rows,
                        _keys_of(duplicated.slice(0, sample_size), rule.columns),
                        unit="duplicated keys",
                    )
                )
            return check_result(
                outcomes,
                {
                    "dagster/table_name": name,
                    "rows_checked": data.num_rows,
                    **_window_metadata(window),
                },
            )

        checks.append(unique_check)

    # Row count ---------------------------------------------------------------------------
    count_rules = [r for r in table_rules if r.kind == "row_count"]
    if count_rules:

        @dg.asset_check(
            name=CHECK_ROW_COUNT,
            description=f"{label}: rows per partition within bounds ("
            + "; ".join(f"{r.id}: {r.minimum}..{r.maximum}" for r in count_rules)
            + ").",
            blocking=_blocking(r.severity for r in count_rules),
            partitions_def=partitioned,
            metadata=metadata_of(count_rules),
            **common,
        )
        def row_count_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            name = target.table_name(context, asset_key)
            iceberg = target.table(context, asset_key)
            window = target.window(context)
            rows_by_partition = _rows_by_partition(iceberg, target, window, name)
            out_of_bounds = evaluate_row_counts(rows_by_partition, count_rules)
            outcomes = [
                RuleOutcome(
                    r.id,
                    r.severity,
                    r.description,
                    len(out_of_bounds[r.id]),
                    [{p: rows_by_partition[p]} for p in out_of_bounds[r.id][:sample_size]],
                    unit="partitions",
                )
                for r in count_rules
            ]
            return check_result(
                outcomes,
                {
                    "dagster/table_name": name,
                    "dagster/row_count": sum(rows_by_partition.values()),
                    "rows_by_partition": dg.MetadataValue.json(rows_by_partition),
                    **_window_metadata(window),
                },
            )

        checks.append(row_count_check)

    # Freshness ---------------------------------------------------------------------------
    fresh_rules = [r for r in table_rules if r.kind == "freshness"]
    if fresh_rules:
        fresh = fresh_rules[0]
        fresh_column = fresh.columns[0]
        max_delay = cast(timedelta, fresh.max_delay)

        @dg.asset_check(
            name=CHECK_FRESHNESS,
            description=f"{label}: the newest {fresh_column} is at most {max_delay} old "
            "when the check runs (the whole table, whatever partition the run wrote).",
            blocking=_blocking([fresh.severity]),
            metadata=metadata_of(fresh_rules),
            **common,
        )
        def freshness_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            name = target.table_name(context, asset_key)
            iceberg = target.table(context, asset_key)
            checked_at = now()
            newest = _newest(iceberg, fresh_column, checked_at - max_delay, name)
            is_fresh, lag = evaluate_freshness(newest, checked_at, max_delay)
            outcome = RuleOutcome(
                fresh.id,
                fresh.severity,
                fresh.description,
                0 if is_fresh else 1,
                () if is_fresh else (f"newest {fresh_column}: {newest}",),
                unit="stale table",
            )
            return check_result(
                [outcome],
                {
                    "dagster/table_name": name,
                    "checked_at": checked_at.isoformat(),
                    "newest": str(newest) if newest is not None else "none",
                    "lag_seconds": lag.total_seconds() if lag is not None else -1.0,
                    "max_delay_seconds": max_delay.total_seconds(),
                },
            )

        checks.append(freshness_check)

    # Built-in table rules ----------------------------------------------------------------
    for table_rule in (r for r in table_rules if r.kind == "builtin"):
        checks.append(
            _builtin_table_check(
                table_rule,
                contract=contract,
                asset_key=asset_key,
                partitions_def=partitioned,
                target=target,
                keys=keys,
                related_assets=related_assets,
                label=label,
                sample_size=sample_size,
                common=common,
            )
        )
    return checks


def _builtin_table_check(
    rule: TableRule,
    *,
    contract: Contract,
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    target: _Target,
    keys: Sequence[str],
    related_assets: Mapping[str, dg.AssetKey],
    label: str,
    sample_size: int,
    common: Mapping[str, Any],
) -> dg.AssetChecksDefinition:
    arguments = rule.arguments
    if not isinstance(arguments, ChildLinesSumTo):
        raise ValueError(
            f"{contract.path}: table rule {rule.id!r} uses built-in {rule.rule!r}, "
            "which has no asset check evaluator"
        )
    lines_key = related_assets.get(
        arguments.lines_table, dg.AssetKey([*asset_key.path[:-1], arguments.lines_table])
    )
    line_columns = [
        *arguments.key,
        arguments.quantity,
        arguments.unit_price,
        *([arguments.discount] if arguments.discount else []),
    ]

    # The lines are an extra dependency: in a run writing both tables, the check
    # waits for the lines of the same partitions.
    @dg.asset_check(
        name=builtin_check_name(rule.id),
        description=f"{label}: {rule.description}",
        blocking=_blocking([rule.severity]),
        partitions_def=partitions_def,
        additional_deps=[lines_key],
        metadata={"contract_rules": [rule.id], "lines_asset": lines_key.to_user_string()},
        **common,
    )
    def builtin_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        window = target.window(context)
        name = target.table_name(context, asset_key)
        parents_table = target.table(context, asset_key)
        lines_name = target.table_name(context, lines_key)
        lines_table = target.table(context, lines_key)
        parents = parents_table.scan(
            row_filter=target.row_filter(parents_table, window, name),
            selected_fields=tuple(dict.fromkeys((*arguments.key, *keys, arguments.equals))),
        ).to_arrow()
        lines = lines_table.scan(
            row_filter=target.row_filter(lines_table, window, lines_name),
            selected_fields=tuple(dict.fromkeys(line_columns)),
        ).to_arrow()
        mismatches = child_lines_mismatches(parents, lines, arguments)
        samples = mismatches.slice(0, sample_size).to_pylist()
        orphans = (
            lines.num_rows
            - lines.join(
                parents.select(list(arguments.key)), keys=list(arguments.key), join_type="left semi"
            ).num_rows
        )
        outcome = RuleOutcome(
            rule.id,
            rule.severity,
            rule.description,
            mismatches.num_rows,
            samples,
            unit="rows",
        )
        return check_result(
            [outcome],
            {
                "dagster/table_name": name,
                "lines_table": lines_name,
                "rows_checked": parents.num_rows,
                "lines_checked": lines.num_rows,
                "lines_without_parent": orphans,
                **_window_metadata(window),
            },
        )

    return builtin_check


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
    iceberg: "IcebergTable", target: _Target, window: dg.TimeWindow | None, name: str
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
    iceberg: "IcebergTable", column: str, since: datetime, name: str
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


# --------------------------------------------------------------------------- from an asset


def _metadata_value(metadata: Mapping[str, Any], key: str) -> Any:
    value = metadata.get(key)
    return getattr(value, "value", value)


def contract_checks_for_asset(
    contract: Contract,
    table: str,
    asset: dg.AssetsDefinition,
    *,
    asset_key: dg.AssetKey | None = None,
    related_assets: Mapping[str, dg.AssetKey] | None = None,
    io_manager_key: str = "iceberg_io_manager",
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    clock: Clock | None = None,
) -> list[dg.AssetChecksDefinition]:
    """:func:`build_contract_checks` with what the asset says about itself.

    ``asset_key`` picks one output of a multi-asset (default ``["silver", table]``
    if the asset has it, else the asset's only key); its ``partition_expr``
    metadata gives the partition column and ``write_mode: upsert`` makes key
    uniqueness table-wide.
    """
    if asset_key is None:
        preferred = dg.AssetKey(["silver", table])
        asset_key = preferred if preferred in asset.keys else asset.key
    metadata = asset.specs_by_key[asset_key].metadata or {}
    return build_contract_checks(
        contract,
        table,
        asset_key,
        asset.partitions_def,
        partition_column=_metadata_value(metadata, "partition_expr"),
        table_wide_keys=_metadata_value(metadata, "write_mode") == "upsert",
        related_assets=related_assets,
        io_manager_key=io_manager_key,
        sample_size=sample_size,
        clock=clock,
    )
