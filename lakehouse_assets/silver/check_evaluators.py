"""The contract rules evaluated on Arrow tables: what each silver check computes.

Pure functions over ``pyarrow`` tables, no I/O: a table's schema against the contract's
(:func:`schema_problems`), row rules (:func:`row_rule_failures`,
:func:`evaluate_row_rules`), key uniqueness (:func:`duplicate_keys`,
:func:`evaluate_unique`), row counts, freshness and the built-in that compares two
tables (:func:`child_lines_mismatches`), and the check result that reports them
(:func:`check_result`). :mod:`lakehouse_assets.silver.checks` reads the tables and
builds the asset checks around them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse_assets.contracts.document import ChildLinesSumTo, Severity, SumEquals
from lakehouse_assets.contracts.model import RowRule, TableRule
from lakehouse_assets.contracts.rule_kinds import implement

#: Scale of the intermediate line amounts (quantity * price * (1 - discount)).
_WIDE = 76


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
    """Why a column of type ``actual`` cannot hold what the contract types ``expected``
    (``None``: it can; widening integers, floats and decimal precision is fine)."""
    if actual == expected or pa.types.is_null(expected):
        return None
    pair = f"is {actual}, expected {expected}"
    for applies, problem in _TYPE_RULES:
        if applies(expected):
            return problem(actual, expected, pair)
    return pair


def _widens(widths: Mapping[pa.DataType, int]) -> _TypeProblem:
    def problem(actual: pa.DataType, expected: pa.DataType, pair: str) -> str | None:
        return None if widths.get(actual, 0) >= widths[expected] else pair

    return problem


def _same_family(is_family: Callable[[pa.DataType], bool]) -> _TypeProblem:
    return lambda actual, expected, pair: None if is_family(actual) else pair


def _decimal_problem(actual: pa.DataType, expected: pa.DataType, pair: str) -> str | None:
    fits = (
        pa.types.is_decimal(actual)
        and actual.scale == expected.scale
        and actual.precision >= expected.precision
    )
    return None if fits else pair


def _timestamp_problem(actual: pa.DataType, expected: pa.DataType, pair: str) -> str | None:
    if not pa.types.is_timestamp(actual):
        return pair
    if (expected.tz is None) != (actual.tz is None):
        return f"{pair} (time zone differs)"
    if expected.tz is not None and actual.tz not in ("UTC", "+00:00", "Etc/UTC"):
        return f"{pair} (not UTC)"
    return None


def _list_problem(actual: pa.DataType, expected: pa.DataType, pair: str) -> str | None:
    if not _is_list(actual):
        return pair
    inner = _type_problem(actual.value_type, expected.value_type)
    return f"element {inner}" if inner else None


def _struct_problem(actual: pa.DataType, expected: pa.DataType, pair: str) -> str | None:
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


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


_TypeProblem = Callable[[pa.DataType, pa.DataType, str], "str | None"]

#: Per family of the expected type: how an actual type may differ from it.
_TYPE_RULES: Sequence[tuple[Callable[[pa.DataType], bool], _TypeProblem]] = (
    (lambda t: t in _INTEGER_WIDTH, _widens(_INTEGER_WIDTH)),
    (lambda t: t in _FLOAT_WIDTH, _widens(_FLOAT_WIDTH)),
    (pa.types.is_decimal, _decimal_problem),
    (_is_string, _same_family(_is_string)),
    (_is_binary, _same_family(_is_binary)),
    (pa.types.is_timestamp, _timestamp_problem),
    (_is_list, _list_problem),
    (pa.types.is_struct, _struct_problem),
)


def row_rule_failures(table: pa.Table, rule: RowRule) -> pa.ChunkedArray:
    """Boolean mask over ``table``'s rows: True where the row breaks ``rule``.

    Nulls pass every kind but ``required`` (as the contract defines); a column
    missing from the table is all nulls (the schema check reports it). Dotted
    columns address struct fields; a required nested field only fails where its
    parent exists.
    """
    return _FAILURES[rule.kind](table, rule)


_Failures = Callable[[pa.Table, RowRule], pa.ChunkedArray]


def _required_failures(table: pa.Table, rule: RowRule) -> pa.ChunkedArray:
    assert rule.column is not None, rule
    column, parent = _resolve(table, rule.column)
    n = table.num_rows
    if column is None:
        return pa.chunked_array([pa.array([n > 0] * n, pa.bool_())], pa.bool_())
    missing = pc.is_null(column)
    if parent is not None:
        missing = pc.and_(missing, pc.is_valid(parent))
    return _mask(missing)


def _present_values(test: Callable[[Any, RowRule], Any]) -> _Failures:
    """Failures of a rule on its column's values: none where the column is missing."""

    def failures(table: pa.Table, rule: RowRule) -> pa.ChunkedArray:
        assert rule.column is not None, rule
        column, _ = _resolve(table, rule.column)
        if column is None:
            return pa.chunked_array([pa.array([False] * table.num_rows, pa.bool_())], pa.bool_())
        return _mask(test(column, rule))

    return failures


def _not_allowed(column: Any, rule: RowRule) -> Any:
    allowed = pa.array(list(rule.value)).cast(column.type)
    return pc.and_(pc.is_valid(column), pc.invert(pc.is_in(column, value_set=allowed)))


def _not_matching(column: Any, rule: RowRule) -> Any:
    return pc.invert(_matches(column, str(rule.value)))


def _out_of_range(column: Any, rule: RowRule) -> Any:
    return pc.invert(_compare(column, cast(str, rule.operator), rule.value))


def _wrong_length(column: Any, rule: RowRule) -> Any:
    lengths = (
        pc.list_value_length(column)
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
        else pc.utf8_length(column)
    )
    return pc.invert(_compare(lengths, cast(str, rule.operator), rule.value))


def _sum_equals_rule_failures(table: pa.Table, rule: RowRule) -> pa.ChunkedArray:
    assert isinstance(rule.arguments, SumEquals), rule
    return _sum_equals_failures(table, rule.arguments)


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


#: The Arrow evaluator of every table-row rule kind (checked against the registry).
_FAILURES: Mapping[str, _Failures] = implement(
    "Arrow evaluator",
    "table_rows",
    {
        "required": _required_failures,
        "allowed_values": _present_values(_not_allowed),
        "pattern": _present_values(_not_matching),
        "comparison": _present_values(_out_of_range),
        "length": _present_values(_wrong_length),
        "sum_equals": _sum_equals_rule_failures,
    },
)
