"""The contract as the pipeline uses it: tables, columns, keys, row and table rules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakehouse_assets.contracts.document import (
    _DECIMAL,
    _DEFAULT_ARROW,
    _PHYSICAL_TYPES,
    BuiltinArguments,
    LogicalType,
    Operator,
    Property,
    QualityRule,
    SchemaObject,
    Severity,
    _Document,
    _PropertyBase,
)
from lakehouse_assets.contracts.errors import (
    ContractError,
    Problem,
)
from lakehouse_assets.contracts.rule_kinds import RuleKindError, rule_kind


@dataclass(frozen=True)
class Column:
    """A property with its dotted path (``customer.contact_info.email``, ``items.quantity``)."""

    path: str
    logical_type: LogicalType
    physical_type: str | None
    required: bool
    in_array: bool
    """Whether the path goes through an array (the value repeats per element)."""
    decimal: tuple[int, int] | None
    """``(precision, scale)`` of a ``decimal(p,s)`` column."""


@dataclass(frozen=True)
class Keys:
    """Natural key and the version column by which the latest row per key wins."""

    primary_key: tuple[str, ...]
    sequence_column: str | None


@dataclass(frozen=True)
class Freshness:
    """The newest ``column`` value must be at most ``max_delay`` old."""

    column: str
    max_delay: timedelta
    severity: Severity


def _declared(rule: RowRule | TableRule, level: str) -> None:
    kind = rule_kind(rule.kind)
    if kind.level != level:
        raise RuleKindError(f"rule {rule.id!r}: kind {rule.kind!r} is a {kind.level} rule")
    if (kind.arguments is None) != (rule.arguments is None) or (
        kind.arguments is not None and not isinstance(rule.arguments, kind.arguments)
    ):
        raise RuleKindError(f"rule {rule.id!r}: arguments do not fit kind {rule.kind!r}")


@dataclass(frozen=True)
class RowRule:
    """A check on each row (record) on its own; what a quarantine row names.

    ``kind`` names a row-level entry of :data:`~lakehouse_assets.contracts.rule_kinds.RULE_KINDS`,
    which says how to evaluate it:

    ``parseable``       the payload is UTF-8 JSON holding an object (topic objects only);
    ``required``        ``column`` is present and not null;
    ``type``            ``column`` has ``value`` (a :class:`Column`) as type (topic only:
                        tables are typed by their Arrow schema);
    ``allowed_values``  ``column`` is one of ``value`` (a tuple);
    ``pattern``         ``column`` matches the regular expression ``value`` (``re.search``);
    ``comparison``      ``column <operator> value`` (``between``: ``value`` is ``(low, high)``,
                        inclusive);
    ``length``          ``len(column) <operator> value`` (strings and arrays);
    a built-in          (``sum_equals``, ``lines_sum_to``) with its typed ``arguments``.

    Null values pass every kind except ``required`` (that is its job).
    """

    id: str
    description: str
    severity: Severity
    kind: str
    column: str | None = None
    operator: Operator | None = None
    value: Any = None
    arguments: BuiltinArguments | None = None

    def __post_init__(self) -> None:
        _declared(self, "row")


@dataclass(frozen=True)
class TableRule:
    """A check on a whole partition of a table.

    ``unique``: no two rows share ``columns``; ``row_count``: the partition holds
    between ``minimum`` and ``maximum`` rows (either may be None); ``freshness``:
    the newest ``columns[0]`` is at most ``max_delay`` old; a built-in
    (``child_lines_sum_to``) with its typed ``arguments``.
    """

    id: str
    description: str
    severity: Severity
    kind: str
    columns: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_delay: timedelta | None = None
    arguments: BuiltinArguments | None = None

    def __post_init__(self) -> None:
        _declared(self, "table")


@dataclass(frozen=True)
class Contract:
    """A validated data contract of one dataset, with the views checks and assets need."""

    path: Path
    document: _Document
    _builtin_arguments: Mapping[str, BuiltinArguments] = field(repr=False)

    # Identity --------------------------------------------------------------------------

    @property
    def dataset(self) -> str:
        """The dataset the contract governs (``datasets.<name>`` in the project config)."""
        return self.document.name

    @property
    def version(self) -> str:
        return self.document.version

    @property
    def quarantine_table(self) -> str:
        """Silver table receiving records that break an ``error`` row rule: ``<dataset>_quarantine``."""
        return f"{self.dataset}_quarantine"

    @property
    def late_window_days(self) -> int | None:
        """Days late records are still accepted (``lateWindow`` SLA); None: the config's default."""
        for sla in self.document.sla_properties:
            if sla.kind == "lateWindow":
                return sla.duration.days
        return None

    # Objects ---------------------------------------------------------------------------

    @property
    def objects(self) -> dict[str, SchemaObject]:
        return {obj.name: obj for obj in self.document.schema_}

    @property
    def tables(self) -> list[str]:
        """Names of the silver tables (``physicalType: table``), in contract order."""
        return [obj.name for obj in self.document.schema_ if obj.physical_type == "table"]

    @property
    def payload(self) -> str | None:
        """Name of the raw payload object (``physicalType: topic``), if the contract has one."""
        return next(
            (obj.name for obj in self.document.schema_ if obj.physical_type == "topic"), None
        )

    def object(self, table: str) -> SchemaObject:
        """The schema object ``table`` (a silver table or the payload)."""
        try:
            return self.objects[table]
        except KeyError:
            known = ", ".join(self.objects)
            raise ContractError(
                self.path, [Problem(None, "schema", f"no object {table!r} (known: {known})")]
            ) from None

    def columns(self, table: str) -> dict[str, Column]:
        """Every property of ``table`` by dotted path, nested ones included."""
        return {column.path: column for column, _ in _walk(self.object(table).properties)}

    # Views for assets and checks ---------------------------------------------------------

    def arrow_schema(self, table: str) -> pa.Schema:
        """The Arrow schema of ``table``: ``decimal(p,s)`` → ``decimal128(p,s)``, timestamps
        ``timestamp('us', tz='UTC')``, objects structs, arrays lists; optional → nullable."""
        return pa.schema([_arrow_field(prop) for prop in self.object(table).properties])

    def required_columns(self, table: str) -> list[str]:
        """Dotted paths of the required properties (a nested one only if its parent exists)."""
        return [column.path for column in self.columns(table).values() if column.required]

    def keys(self, table: str) -> Keys:
        obj = self.object(table)
        keyed = [prop for prop in obj.properties if prop.primary_key]
        keyed.sort(key=lambda prop: prop.primary_key_position or 0)
        return Keys(tuple(prop.name for prop in keyed), obj.sequence_column)

    def partition_column(self, table: str) -> str | None:
        """The date/timestamp column marked ``partitioned: true`` (Dagster's ``partition_expr``)."""
        return next((p.name for p in self.object(table).properties if p.partitioned), None)

    def freshness(self, table: str) -> Freshness | None:
        self.object(table)
        for sla in self.document.sla_properties:
            if sla.kind == "latency" and sla.element is not None:
                owner, _, column = sla.element.partition(".")
                if owner == table:
                    return Freshness(column, sla.duration, sla.severity)
        return None

    def latency(self) -> timedelta | None:
        """The dataset's freshness SLA: the shortest ``latency`` of its ``slaProperties``
        (whichever table it names: a dataset's tables are written together)."""
        latencies = [s.duration for s in self.document.sla_properties if s.kind == "latency"]
        return min(latencies) if latencies else None

    def row_rules(self, table: str) -> list[RowRule]:
        """Row-level rules of ``table`` in evaluation order: parsing (payload), then per
        property its required/type/allowed values/pattern/range/length and own rules,
        then the object's built-in row rules. Derived rules have dotted ids
        (``items.quantity.required``) and severity ``error``."""
        obj = self.object(table)
        rules: list[RowRule] = []
        if obj.physical_type == "topic":
            rules.append(
                RowRule(
                    "parseable",
                    "The payload is UTF-8 JSON holding an object.",
                    "error",
                    "parseable",
                )
            )
        for column, prop in _walk(obj.properties):
            rules.extend(_column_rules(column, prop, typed=obj.physical_type == "table"))
            for rule in prop.quality:
                if rule.metric is None and rule.rule is None:
                    operator, value = _comparison(rule)
                    rules.append(
                        RowRule(
                            rule.id,
                            rule.description,
                            rule.severity,
                            "comparison",
                            column.path,
                            operator,
                            value,
                        )
                    )
        for rule in obj.quality:
            arguments = self._builtin_arguments.get(f"{table}/{rule.id}")
            if (
                rule.rule is not None
                and arguments is not None
                and rule_kind(rule.rule).level == "row"
            ):
                rules.append(
                    RowRule(
                        rule.id, rule.description, rule.severity, rule.rule, arguments=arguments
                    )
                )
        return rules

    def table_rules(self, table: str) -> list[TableRule]:
        """Table-level rules of ``table``: key and ``unique`` uniqueness (tables only; a
        payload's key is its dedupe key, repeats are expected), ``rowCount`` bounds
        per partition, ``duplicateValues``, built-in table rules and freshness."""
        obj = self.object(table)
        rules: list[TableRule] = []
        keys = self.keys(table)
        if obj.physical_type == "table":
            if keys.primary_key:
                rules.append(
                    TableRule(
                        "primary_key.unique",
                        f"One row per {', '.join(keys.primary_key)}.",
                        "error",
                        "unique",
                        keys.primary_key,
                    )
                )
            for prop in obj.properties:
                if prop.unique and (prop.name,) != keys.primary_key:
                    rules.append(
                        TableRule(
                            f"{prop.name}.unique",
                            f"No two rows share {prop.name}.",
                            "error",
                            "unique",
                            (prop.name,),
                        )
                    )
        for prop in obj.properties:
            for rule in prop.quality:
                if rule.metric == "duplicateValues":
                    rules.append(
                        TableRule(rule.id, rule.description, rule.severity, "unique", (prop.name,))
                    )
        for rule in obj.quality:
            if rule.metric == "rowCount":
                low, high = _count_bounds(rule)
                rules.append(
                    TableRule(rule.id, rule.description, rule.severity, "row_count", (), low, high)
                )
            elif rule.metric == "duplicateValues":
                columns = tuple(rule.arguments.get("properties", ()))
                rules.append(TableRule(rule.id, rule.description, rule.severity, "unique", columns))
            elif rule.rule is not None:
                arguments = self._builtin_arguments.get(f"{table}/{rule.id}")
                if arguments is not None and rule_kind(rule.rule).level == "table":
                    rules.append(
                        TableRule(
                            rule.id,
                            rule.description,
                            rule.severity,
                            rule.rule,
                            arguments=arguments,
                        )
                    )
        fresh = self.freshness(table)
        if fresh is not None:
            rules.append(
                TableRule(
                    "freshness",
                    f"The newest {fresh.column} is at most {fresh.max_delay} old.",
                    fresh.severity,
                    "freshness",
                    (fresh.column,),
                    max_delay=fresh.max_delay,
                )
            )
        return rules


def _walk(
    properties: Sequence[_PropertyBase] | None, prefix: str = "", in_array: bool = False
) -> Iterator[tuple[Column, _PropertyBase]]:
    """Depth-first ``(Column, property)`` over properties; array items add no path segment."""
    for prop in properties or ():
        name = prop.name if isinstance(prop, Property) else ""
        path = f"{prefix}.{name}" if prefix else name
        yield _column(path, prop, in_array), prop
        yield from _walk(prop.properties, path, in_array)
        if prop.items is not None:
            yield from _walk(prop.items.properties, path, True)


def _column(path: str, prop: _PropertyBase, in_array: bool) -> Column:
    match = _DECIMAL.match(prop.physical_type or "")
    decimal = (int(match.group(1)), int(match.group(2))) if match else None
    return Column(path, prop.logical_type, prop.physical_type, prop.required, in_array, decimal)


def _arrow_type(prop: _PropertyBase) -> pa.DataType:
    if prop.logical_type == "object":
        return pa.struct([_arrow_field(child) for child in prop.properties or ()])
    if prop.logical_type == "array":
        assert prop.items is not None
        return pa.list_(_arrow_type(prop.items))
    match = _DECIMAL.match(prop.physical_type or "")
    if match:
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    if prop.physical_type is not None:
        return _PHYSICAL_TYPES[prop.logical_type][prop.physical_type]
    return _DEFAULT_ARROW[prop.logical_type]


def _arrow_field(prop: Property) -> pa.Field:
    return pa.field(
        prop.name,
        _arrow_type(prop),
        nullable=not prop.required,
        metadata={"description": prop.description} if prop.description else None,
    )


def _column_rules(column: Column, prop: _PropertyBase, typed: bool) -> Iterator[RowRule]:
    path, options = column.path, prop.logical_type_options
    if prop.required:
        yield RowRule(f"{path}.required", f"{path} is present.", "error", "required", path)
    if not typed:
        shown = prop.physical_type or prop.logical_type
        yield RowRule(f"{path}.type", f"{path} is a {shown}.", "error", "type", path, value=column)
    if options.enum is not None:
        values = tuple(options.enum)
        listed = ", ".join(str(v) for v in values)
        yield RowRule(
            f"{path}.allowed_values",
            f"{path} is one of {listed}.",
            "error",
            "allowed_values",
            path,
            value=values,
        )
    if options.pattern is not None:
        yield RowRule(
            f"{path}.pattern",
            f"{path} matches {options.pattern}.",
            "error",
            "pattern",
            path,
            value=options.pattern,
        )
    bound = _bounds(options.minimum, options.maximum)
    if bound is not None:
        operator, value = bound
        yield RowRule(
            f"{path}.range",
            _says(path, operator, value),
            "error",
            "comparison",
            path,
            operator,
            value,
        )
    low = options.min_length if options.min_length is not None else options.min_items
    high = options.max_length if options.max_length is not None else options.max_items
    length = _bounds(low, high)
    if length is not None:
        operator, value = length
        yield RowRule(
            f"{path}.length",
            _says(f"length of {path}", operator, value),
            "error",
            "length",
            path,
            operator,
            value,
        )


def _bounds(low: Any, high: Any) -> tuple[Operator, Any] | None:
    if low is not None and high is not None:
        return "between", (low, high)
    if low is not None:
        return ">=", low
    if high is not None:
        return "<=", high
    return None


def _says(subject: str, operator: Operator, value: Any) -> str:
    if operator == "between":
        return f"{subject} is between {value[0]} and {value[1]}."
    return f"{subject} {operator} {value}."


def _comparison(rule: QualityRule) -> tuple[Operator, Any]:
    _, operator, value = rule.thresholds()[0]
    return operator, value


def _count_bounds(rule: QualityRule) -> tuple[int | None, int | None]:
    operator, value = _comparison(rule)
    if operator == "between":
        return int(value[0]), int(value[1])
    number = int(value)
    return {
        "==": (number, number),
        ">": (number + 1, None),
        ">=": (number, None),
        "<": (None, number - 1),
        "<=": (None, number),
    }.get(operator, (None, None))
