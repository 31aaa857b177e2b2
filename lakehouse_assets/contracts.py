"""Data contracts as code: one YAML file per dataset, close to ODCS v3.

A contract (``contracts/<dataset>.yaml``) follows the Open Data Contract Standard
(``apiVersion``, ``kind: DataContract``, ``schema`` objects whose ``properties``
carry ``logicalType``/``physicalType``, ``required``, ``primaryKey``, ``unique``,
``quality`` rules, ``slaProperties``) with three small, explicit extensions that
the pipeline needs and ODCS leaves open:

* ``logicalTypeOptions.enum``: allowed values of a string or integer property;
* ``sequenceColumn`` on a schema object: the version column by which the latest
  row per primary key wins;
* ``rule: <name>`` + ``arguments``: a named built-in check (:data:`BUILTIN_RULES`)
  for what a single column comparison cannot say (totals that add up).

A schema object with ``physicalType: topic`` describes the raw Kafka payload: a
record that breaks one of its row rules (unparseable, missing required field,
wrong type, value not allowed, out of range, failed rule) goes to the dataset's
quarantine table. Objects with ``physicalType: table`` are silver tables; their
rules become asset checks.

Loading validates everything up front and fails with a :class:`ContractError`
naming the file, the line and the key (pydantic error locations are mapped back
to the YAML nodes they came from), so a typo in a contract never surfaces later
as a failed run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "BUILTIN_RULES",
    "ChildLinesSumTo",
    "Column",
    "Contract",
    "ContractError",
    "Freshness",
    "Keys",
    "LinesSumTo",
    "Problem",
    "RowRule",
    "SchemaObject",
    "SumEquals",
    "TableRule",
    "load_contract",
    "load_contracts",
]

Severity = Literal["error", "warning"]
LogicalType = Literal[
    "string", "integer", "number", "boolean", "date", "timestamp", "object", "array"
]
Operator = Literal["==", "!=", ">", ">=", "<", "<=", "between"]
Loc = tuple[str | int, ...]

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_SCALARS = ("string", "integer", "number", "boolean", "date", "timestamp")
_NUMERIC = ("integer", "number")
_TIMES = ("date", "timestamp")

#: ``physicalType`` values each ``logicalType`` accepts (``decimal(p,s)`` for numbers too).
_PHYSICAL_TYPES: Mapping[str, Mapping[str, pa.DataType]] = {
    "string": {"string": pa.string()},
    "integer": {"bigint": pa.int64(), "long": pa.int64(), "int": pa.int32(), "integer": pa.int32()},
    "number": {"double": pa.float64(), "float": pa.float32()},
    "boolean": {"boolean": pa.bool_()},
    "date": {"date": pa.date32()},
    "timestamp": {"timestamp": pa.timestamp("us", tz="UTC")},
    "object": {"struct": pa.null()},
    "array": {"array": pa.null()},
}
_DEFAULT_ARROW: Mapping[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_OPERATORS: Mapping[str, Operator] = {
    "must_be": "==",
    "must_not_be": "!=",
    "must_be_greater_than": ">",
    "must_be_greater_or_equal_to": ">=",
    "must_be_less_than": "<",
    "must_be_less_or_equal_to": "<=",
    "must_be_between": "between",
}
_UNITS: Mapping[str, timedelta] = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}


# --------------------------------------------------------------------------- errors


class Problem(NamedTuple):
    """One thing wrong with a contract: where (line, key) and why."""

    line: int | None
    key: str
    reason: str


class ContractError(ValueError):
    """A contract is invalid; the message names the file, the line, the key and the problem.

    ``problems`` lists every problem found (the message shows them all); ``line``,
    ``key`` and ``reason`` are those of the first.
    """

    def __init__(self, path: Path | str, problems: Sequence[Problem]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        first = self.problems[0] if self.problems else Problem(None, "<root>", "invalid")
        self.line, self.key, self.reason = first
        lines = [
            f"{self.path}:{problem.line or 1}: {problem.key}: {problem.reason}"
            for problem in self.problems
        ]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- document model


class _Model(BaseModel):
    # Unknown keys are errors: a misspelt `requried` must not silently mean "optional".
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class SumEquals(_Model):
    """``rule: sum_equals`` (row): ``sum(terms) == equals`` within ``tolerance``."""

    level: ClassVar[Literal["row", "table"]] = "row"
    terms: list[str] = Field(min_length=1, description="Columns that add up.")
    equals: str = Field(description="Column holding the expected sum.")
    tolerance: Decimal = Field(default=Decimal(0), ge=0)


class LinesSumTo(_Model):
    """``rule: lines_sum_to`` (row): the lines of a nested array add up to a column.

    A line's amount is ``quantity * unitPrice * (1 - discount)``; the lines' sum,
    rounded to the scale of ``equals``, must equal it within ``tolerance``.
    ``quantity``, ``unitPrice`` and ``discount`` are properties of the array's items.
    """

    level: ClassVar[Literal["row", "table"]] = "row"
    lines: str = Field(description="The array property holding the lines.")
    quantity: str
    unit_price: str
    discount: str | None = None
    equals: str
    tolerance: Decimal = Field(default=Decimal(0), ge=0)


class ChildLinesSumTo(_Model):
    """``rule: child_lines_sum_to`` (table): another table's lines add up to a column.

    Like :class:`LinesSumTo`, across two tables joined on ``key``: per row of this
    table, the rows of ``linesTable`` with the same key add up to ``equals``.
    """

    level: ClassVar[Literal["row", "table"]] = "table"
    lines_table: str
    key: list[str] = Field(min_length=1)
    quantity: str
    unit_price: str
    discount: str | None = None
    equals: str
    tolerance: Decimal = Field(default=Decimal(0), ge=0)


BuiltinArguments = SumEquals | LinesSumTo | ChildLinesSumTo

#: Named built-in checks a ``rule:`` may reference, with the model of their ``arguments``.
BUILTIN_RULES: Mapping[str, type[BuiltinArguments]] = {
    "sum_equals": SumEquals,
    "lines_sum_to": LinesSumTo,
    "child_lines_sum_to": ChildLinesSumTo,
}


class QualityRule(_Model):
    """An ODCS ``quality`` entry: a comparison, a library metric or a built-in rule."""

    id: str = Field(description="Names the rule in checks and quarantine rows.")
    description: str = Field(min_length=1)
    severity: Severity = Field(
        description="`error` blocks downstream / quarantines; `warning` reports."
    )
    metric: Literal["rowCount", "duplicateValues"] | None = None
    rule: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    must_be: Decimal | None = None
    must_not_be: Decimal | None = None
    must_be_greater_than: Decimal | None = None
    must_be_greater_or_equal_to: Decimal | None = None
    must_be_less_than: Decimal | None = None
    must_be_less_or_equal_to: Decimal | None = None
    must_be_between: tuple[Decimal, Decimal] | None = None

    @field_validator("id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a lowercase identifier")
        return value

    def thresholds(self) -> list[tuple[str, Operator, Any]]:
        """``(field, operator, value)`` of every ``mustBe…`` key that is set."""
        return [
            (name, operator, getattr(self, name))
            for name, operator in _OPERATORS.items()
            if getattr(self, name) is not None
        ]


class LogicalTypeOptions(_Model):
    """ODCS ``logicalTypeOptions`` (plus ``enum``: the allowed values)."""

    enum: list[str | int] | None = Field(default=None, min_length=1)
    pattern: str | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    min_items: int | None = Field(default=None, ge=0)
    max_items: int | None = Field(default=None, ge=0)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value


class _PropertyBase(_Model):
    logical_type: LogicalType
    physical_type: str | None = None
    required: bool = False
    description: str = ""
    logical_type_options: LogicalTypeOptions = Field(default_factory=LogicalTypeOptions)
    properties: list[Property] | None = None
    items: ArrayItems | None = None
    quality: list[QualityRule] = Field(default_factory=list)
    examples: list[Any] | None = None


class ArrayItems(_PropertyBase):
    """The element type of an array property (ODCS ``items``)."""


class Property(_PropertyBase):
    """A column (or a nested field of a payload), ODCS ``properties`` entry."""

    name: str
    primary_key: bool = False
    primary_key_position: int | None = Field(default=None, ge=1)
    unique: bool = False
    partitioned: bool = False


class SchemaObject(_Model):
    """An ODCS ``schema`` entry: the raw payload (``topic``) or a silver ``table``."""

    name: str
    physical_type: Literal["topic", "table"]
    description: str = ""
    properties: list[Property] = Field(min_length=1)
    sequence_column: str | None = None
    quality: list[QualityRule] = Field(default_factory=list)


class SlaProperty(_Model):
    """ODCS ``slaProperties`` entry: ``latency`` (freshness) or ``lateWindow``."""

    kind: Literal["latency", "lateWindow"] = Field(alias="property")
    value: int = Field(gt=0)
    unit: Literal["m", "h", "d"]
    element: str | None = Field(default=None, description="`<object>.<column>` it applies to.")
    severity: Severity = "warning"
    description: str = ""

    @property
    def duration(self) -> timedelta:
        return self.value * _UNITS[self.unit]


class ContractDescription(_Model):
    purpose: str = ""
    usage: str = ""
    limitations: str = ""


class _Document(_Model):
    api_version: str = Field(pattern=r"^v3\.\d+\.\d+$")
    kind: Literal["DataContract"]
    id: str = Field(min_length=1)
    name: str
    version: str = Field(min_length=1)
    status: Literal["proposed", "draft", "active", "deprecated", "retired"]
    domain: str = ""
    description: ContractDescription = Field(default_factory=ContractDescription)
    schema_: list[SchemaObject] = Field(alias="schema", min_length=1)
    sla_properties: list[SlaProperty] = Field(default_factory=list)


_PropertyBase.model_rebuild()
ArrayItems.model_rebuild()
Property.model_rebuild()


# --------------------------------------------------------------------------- derived views


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


@dataclass(frozen=True)
class RowRule:
    """A check on each row (record) on its own; what a quarantine row names.

    ``kind`` says how to evaluate it:

    ``parseable``       the payload is UTF-8 JSON holding an object (topic objects only);
    ``required``        ``column`` is present and not null;
    ``type``            ``column`` has ``value`` (a :class:`Column`) as type (topic only:
                        tables are typed by their Arrow schema);
    ``allowed_values``  ``column`` is one of ``value`` (a tuple);
    ``pattern``         ``column`` matches the regular expression ``value`` (``re.search``);
    ``comparison``      ``column <operator> value`` (``between``: ``value`` is ``(low, high)``,
                        inclusive);
    ``length``          ``len(column) <operator> value`` (strings and arrays);
    ``builtin``         the built-in check ``rule`` with typed ``arguments``.

    Null values pass every kind except ``required`` (that is its job).
    """

    id: str
    description: str
    severity: Severity
    kind: Literal[
        "parseable",
        "required",
        "type",
        "allowed_values",
        "pattern",
        "comparison",
        "length",
        "builtin",
    ]
    column: str | None = None
    operator: Operator | None = None
    value: Any = None
    rule: str | None = None
    arguments: BuiltinArguments | None = None


@dataclass(frozen=True)
class TableRule:
    """A check on a whole partition of a table.

    ``unique``: no two rows share ``columns``; ``row_count``: the partition holds
    between ``minimum`` and ``maximum`` rows (either may be None); ``freshness``:
    the newest ``columns[0]`` is at most ``max_delay`` old; ``builtin``: the
    built-in check ``rule`` with ``arguments``.
    """

    id: str
    description: str
    severity: Severity
    kind: Literal["unique", "row_count", "freshness", "builtin"]
    columns: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_delay: timedelta | None = None
    rule: str | None = None
    arguments: BuiltinArguments | None = None


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
            if rule.rule is not None and arguments is not None and arguments.level == "row":
                rules.append(
                    RowRule(
                        rule.id,
                        rule.description,
                        rule.severity,
                        "builtin",
                        rule=rule.rule,
                        arguments=arguments,
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
                if arguments is not None and arguments.level == "table":
                    rules.append(
                        TableRule(
                            rule.id,
                            rule.description,
                            rule.severity,
                            "builtin",
                            rule=rule.rule,
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


# --------------------------------------------------------------------------- YAML with lines


def _compose(path: Path, text: str) -> tuple[Any, dict[Loc, int]]:
    """Parse ``text`` and map every key path (pydantic ``loc``) to its 1-based line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ContractError(path, [Problem(1, "<root>", "the file is empty")])
        lines: dict[Loc, int] = {}
        _index(path, node, (), lines)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = f"not valid YAML: {exc.problem or exc.context}"
        if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            # An unclosed bracket or quote is noticed lines later; say where it opened.
            reason += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        raise ContractError(path, [Problem(line, "<yaml>", reason)]) from None
    finally:
        loader.dispose()


def _index(path: Path, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise ContractError(
                    path,
                    [Problem(key_node.start_mark.line + 1, _render((*loc, key)), "duplicate key")],
                )
            seen.add(key)
            lines[(*loc, key)] = key_node.start_mark.line + 1
            _index(path, value_node, (*loc, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _index(path, item, (*loc, position), lines)


def _render(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "<root>"


def _locate(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _describe(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    value = error.get("input")
    shown = "" if isinstance(value, Mapping | list) else f" (got {value!r})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message}{shown}"


# --------------------------------------------------------------------------- semantic checks


class _Checker:
    """Cross-field rules pydantic cannot see: references, keys, bounds, duplicates."""

    def __init__(self, path: Path, lines: Mapping[Loc, int]) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []
        self.builtin_arguments: dict[str, BuiltinArguments] = {}
        self.objects: dict[str, SchemaObject] = {}

    def fail(self, loc: Loc, reason: str) -> None:
        self.problems.append(Problem(_locate(self.lines, loc), _render(loc), reason))

    def check(self, document: _Document) -> None:
        self.objects = {obj.name: obj for obj in document.schema_}
        if not _IDENTIFIER.match(document.name):
            self.fail(("name",), f"{document.name!r} is not a lowercase dataset identifier")
        elif self.path.stem != document.name:
            self.fail(("name",), f"dataset {document.name!r} must live in {document.name}.yaml")
        names: set[str] = set()
        rule_ids: dict[str, Loc] = {}
        topics = 0
        for index, obj in enumerate(document.schema_):
            loc: Loc = ("schema", index)
            if not _IDENTIFIER.match(obj.name):
                self.fail((*loc, "name"), f"{obj.name!r} is not a lowercase identifier")
            if obj.name in names:
                self.fail((*loc, "name"), f"duplicate schema object {obj.name!r}")
            names.add(obj.name)
            topics += obj.physical_type == "topic"
            if topics > 1 and obj.physical_type == "topic":
                self.fail((*loc, "physicalType"), "only one object may describe the payload")
            self.check_object(obj, loc, rule_ids)
        self.check_slas(document)

    def check_object(self, obj: SchemaObject, loc: Loc, rule_ids: dict[str, Loc]) -> None:
        self.check_properties(obj.properties, (*loc, "properties"), rule_ids, top=True)
        columns = {column.path: column for column, _ in _walk(obj.properties)}
        top = {prop.name: prop for prop in obj.properties}
        positions: set[int] = set()
        partitioned = 0
        for index, prop in enumerate(obj.properties):
            ploc: Loc = (*loc, "properties", index)
            if prop.primary_key and prop.logical_type not in _SCALARS:
                self.fail((*ploc, "primaryKey"), f"key column {prop.name!r} must be a scalar")
            if prop.primary_key_position is not None:
                if not prop.primary_key:
                    self.fail((*ploc, "primaryKeyPosition"), "set without primaryKey: true")
                if prop.primary_key_position in positions:
                    self.fail((*ploc, "primaryKeyPosition"), "duplicate key position")
                positions.add(prop.primary_key_position)
            if prop.partitioned:
                partitioned += 1
                if prop.logical_type not in _TIMES:
                    self.fail(
                        (*ploc, "partitioned"), "the partition column must be a date or timestamp"
                    )
                if partitioned > 1:
                    self.fail((*ploc, "partitioned"), "only one column can be partitioned")
        if obj.sequence_column is not None:
            seq = top.get(obj.sequence_column)
            if seq is None:
                self.fail(
                    (*loc, "sequenceColumn"),
                    f"unknown column {obj.sequence_column!r} (not a top-level property of {obj.name!r})",
                )
            elif seq.logical_type not in ("integer", *_TIMES):
                self.fail(
                    (*loc, "sequenceColumn"),
                    f"{obj.sequence_column!r} must be an integer, date or timestamp",
                )
        for index, rule in enumerate(obj.quality):
            self.check_rule(obj, rule, (*loc, "quality", index), columns, rule_ids)

    def check_properties(
        self,
        properties: Sequence[_PropertyBase],
        loc: Loc,
        rule_ids: dict[str, Loc],
        top: bool,
    ) -> None:
        seen: set[str] = set()
        for index, prop in enumerate(properties):
            ploc: Loc = (*loc, index)
            if isinstance(prop, Property):
                if not _PROPERTY_NAME.match(prop.name):
                    self.fail((*ploc, "name"), f"{prop.name!r} is not an identifier")
                if prop.name in seen:
                    self.fail((*ploc, "name"), f"duplicate column {prop.name!r}")
                seen.add(prop.name)
                if not top:
                    for flag in ("primaryKey", "partitioned"):
                        if getattr(prop, _to_snake(flag)):
                            self.fail((*ploc, flag), "only top-level properties can have it")
            self.check_property(prop, ploc, rule_ids)

    def check_property(self, prop: _PropertyBase, loc: Loc, rule_ids: dict[str, Loc]) -> None:
        logical = prop.logical_type
        if prop.physical_type is not None:
            is_decimal = _DECIMAL.match(prop.physical_type)
            if is_decimal and logical == "number":
                precision, scale = int(is_decimal.group(1)), int(is_decimal.group(2))
                if not 1 <= precision <= 38 or scale > precision:
                    self.fail(
                        (*loc, "physicalType"),
                        f"{prop.physical_type}: need 1 <= precision <= 38 and scale <= precision",
                    )
            elif prop.physical_type not in _PHYSICAL_TYPES[logical]:
                allowed = [
                    *_PHYSICAL_TYPES[logical],
                    *(["decimal(p,s)"] if logical == "number" else []),
                ]
                self.fail(
                    (*loc, "physicalType"),
                    f"{prop.physical_type!r} does not fit logicalType {logical!r} "
                    f"(allowed: {', '.join(allowed)})",
                )
        if logical == "object":
            if not prop.properties:
                self.fail((*loc, "properties"), "an object needs properties")
            else:
                self.check_properties(prop.properties, (*loc, "properties"), rule_ids, top=False)
        elif prop.properties is not None:
            self.fail((*loc, "properties"), f"only objects have properties, not {logical}")
        if logical == "array":
            if prop.items is None:
                self.fail((*loc, "items"), "an array needs items")
            else:
                self.check_property(prop.items, (*loc, "items"), rule_ids)
        elif prop.items is not None:
            self.fail((*loc, "items"), f"only arrays have items, not {logical}")
        self.check_options(prop, (*loc, "logicalTypeOptions"))
        for index, rule in enumerate(prop.quality):
            rloc: Loc = (*loc, "quality", index)
            self.unique_id(rule, rloc, rule_ids)
            if rule.rule is not None:
                self.fail((*rloc, "rule"), "built-in rules belong in the object's quality list")
            elif rule.metric == "rowCount":
                self.fail((*rloc, "metric"), "rowCount belongs in the object's quality list")
            elif rule.metric == "duplicateValues":
                self.check_duplicates(rule, rloc)
            else:
                self.check_comparison(rule, rloc, prop)

    def check_options(self, prop: _PropertyBase, loc: Loc) -> None:
        options, logical = prop.logical_type_options, prop.logical_type
        applies = {
            "enum": ("string", "integer"),
            "pattern": ("string",),
            "minimum": _NUMERIC,
            "maximum": _NUMERIC,
            "min_length": ("string",),
            "max_length": ("string",),
            "min_items": ("array",),
            "max_items": ("array",),
        }
        for name, types in applies.items():
            if getattr(options, name) is not None and logical not in types:
                self.fail(
                    (*loc, to_camel(name)),
                    f"does not apply to logicalType {logical!r} (only {', '.join(types)})",
                )
        for low, high in (
            ("minimum", "maximum"),
            ("min_length", "max_length"),
            ("min_items", "max_items"),
        ):
            low_value, high_value = getattr(options, low), getattr(options, high)
            if low_value is not None and high_value is not None and low_value > high_value:
                self.fail(
                    (*loc, to_camel(low)),
                    f"{to_camel(low)} {low_value} is greater than {to_camel(high)} {high_value}",
                )
        if options.enum is not None:
            wanted = str if logical == "string" else int
            for index, value in enumerate(options.enum):
                if type(value) is not wanted:
                    self.fail((*loc, "enum", index), f"{value!r} is not a {logical}")

    def unique_id(self, rule: QualityRule, loc: Loc, rule_ids: dict[str, Loc]) -> None:
        if rule.id in rule_ids:
            first = _locate(self.lines, rule_ids[rule.id])
            self.fail((*loc, "id"), f"duplicate rule id {rule.id!r} (first on line {first})")
        else:
            rule_ids[rule.id] = (*loc, "id")

    def check_threshold(self, rule: QualityRule, loc: Loc, what: str) -> bool:
        thresholds = rule.thresholds()
        if len(thresholds) != 1:
            keys = ", ".join(to_camel(name) for name in _OPERATORS)
            found = ", ".join(to_camel(name) for name, _, _ in thresholds) or "none"
            self.fail(loc, f"{what} needs exactly one of {keys} (found: {found})")
            return False
        name, operator, value = thresholds[0]
        if operator == "between" and value[0] > value[1]:
            self.fail(
                (*loc, to_camel(name)),
                f"lower bound {value[0]} is greater than upper bound {value[1]}",
            )
            return False
        return True

    def check_comparison(self, rule: QualityRule, loc: Loc, prop: _PropertyBase) -> None:
        if rule.arguments:
            self.fail((*loc, "arguments"), "a comparison takes no arguments")
        if (
            self.check_threshold(rule, loc, "a comparison rule")
            and prop.logical_type not in _NUMERIC
        ):
            self.fail(
                loc, f"comparisons apply to integer or number columns, not {prop.logical_type}"
            )

    def check_duplicates(self, rule: QualityRule, loc: Loc) -> None:
        if self.check_threshold(rule, loc, "duplicateValues") and rule.must_be != 0:
            self.fail(loc, "duplicateValues supports `mustBe: 0` only")

    def check_rule(
        self,
        obj: SchemaObject,
        rule: QualityRule,
        loc: Loc,
        columns: Mapping[str, Column],
        rule_ids: dict[str, Loc],
    ) -> None:
        self.unique_id(rule, loc, rule_ids)
        if rule.metric is not None and rule.rule is not None:
            self.fail((*loc, "rule"), "give either `metric` or `rule`, not both")
        elif rule.metric == "rowCount":
            if rule.arguments:
                self.fail((*loc, "arguments"), "rowCount takes no arguments")
            if self.check_threshold(rule, loc, "rowCount"):
                _, _, value = rule.thresholds()[0]
                values = value if isinstance(value, tuple) else (value,)
                if any(v < 0 or v != int(v) for v in values):
                    self.fail(loc, "row counts are whole numbers >= 0")
        elif rule.metric == "duplicateValues":
            self.check_duplicates(rule, loc)
            names = rule.arguments.get("properties")
            if not isinstance(names, list) or not names:
                self.fail(
                    (*loc, "arguments"), "duplicateValues needs arguments.properties: [columns]"
                )
            else:
                for index, name in enumerate(names):
                    if name not in columns or columns[name].in_array or "." in str(name):
                        self.fail(
                            (*loc, "arguments", "properties", index),
                            f"unknown column {name!r} (not a top-level property of {obj.name!r})",
                        )
        elif rule.rule is not None:
            self.check_builtin(obj, rule, loc, columns)
        else:
            self.fail(
                loc,
                "an object-level rule needs `metric` or `rule`; "
                "put a column comparison under the property's quality",
            )

    def check_builtin(
        self,
        obj: SchemaObject,
        rule: QualityRule,
        loc: Loc,
        columns: Mapping[str, Column],
    ) -> None:
        assert rule.rule is not None
        model = BUILTIN_RULES.get(rule.rule)
        if model is None:
            known = ", ".join(BUILTIN_RULES)
            self.fail((*loc, "rule"), f"unknown built-in rule {rule.rule!r} (known: {known})")
            return
        if rule.thresholds():
            self.fail(loc, f"built-in rule {rule.rule!r} takes no mustBe… threshold")
        try:
            arguments = model.model_validate(rule.arguments)
        except ValidationError as exc:
            for error in exc.errors():
                self.fail((*loc, "arguments", *error["loc"]), _describe(error))
            return
        self.builtin_arguments[f"{obj.name}/{rule.id}"] = arguments
        aloc: Loc = (*loc, "arguments")

        def need(key: Loc, name: str | None, among: Mapping[str, Column], where: str) -> None:
            if name is None:
                return
            column = among.get(name)
            if column is None:
                self.fail((*aloc, *key), f"unknown column {name!r} in {where}")
            elif column.logical_type not in _NUMERIC:
                self.fail(
                    (*aloc, *key), f"{name!r} in {where} is {column.logical_type}, not a number"
                )

        def need_all(names: Sequence[str], among: Mapping[str, Column], where: str) -> None:
            for index, name in enumerate(names):
                if name not in among:
                    self.fail((*aloc, "key", index), f"unknown column {name!r} in {where}")

        if isinstance(arguments, SumEquals):
            for index, term in enumerate(arguments.terms):
                need(("terms", index), term, columns, obj.name)
            need(("equals",), arguments.equals, columns, obj.name)
        elif isinstance(arguments, LinesSumTo):
            lines = columns.get(arguments.lines)
            if lines is None or lines.logical_type != "array":
                self.fail(
                    (*aloc, "lines"), f"{arguments.lines!r} is not an array property of {obj.name}"
                )
            else:
                prefix = arguments.lines + "."
                items = {p[len(prefix) :]: c for p, c in columns.items() if p.startswith(prefix)}
                where = f"{obj.name}.{arguments.lines}[]"
                need(("quantity",), arguments.quantity, items, where)
                need(("unitPrice",), arguments.unit_price, items, where)
                need(("discount",), arguments.discount, items, where)
            need(("equals",), arguments.equals, columns, obj.name)
        else:
            child = self.objects.get(arguments.lines_table)
            if child is None or child.physical_type != "table" or child.name == obj.name:
                self.fail(
                    (*aloc, "linesTable"),
                    f"{arguments.lines_table!r} is not another table of this contract",
                )
                return
            child_columns = {c.path: c for c, _ in _walk(child.properties)}
            need_all(arguments.key, columns, obj.name)
            need_all(arguments.key, child_columns, child.name)
            need(("quantity",), arguments.quantity, child_columns, child.name)
            need(("unitPrice",), arguments.unit_price, child_columns, child.name)
            need(("discount",), arguments.discount, child_columns, child.name)
            need(("equals",), arguments.equals, columns, obj.name)

    def check_slas(self, document: _Document) -> None:
        seen: set[tuple[str, str | None]] = set()
        objects = {obj.name: obj for obj in document.schema_}
        for index, sla in enumerate(document.sla_properties):
            loc: Loc = ("slaProperties", index)
            owner = sla.element.partition(".")[0] if sla.element else None
            if (sla.kind, owner) in seen:
                self.fail((*loc, "property"), f"duplicate {sla.kind} SLA")
            seen.add((sla.kind, owner))
            if sla.kind == "lateWindow":
                if sla.unit != "d":
                    self.fail((*loc, "unit"), "lateWindow is counted in days (unit: d)")
                if sla.element is not None:
                    self.fail((*loc, "element"), "lateWindow applies to the dataset, not a column")
                continue
            if sla.element is None:
                self.fail(loc, "latency needs element: <table>.<timestamp column>")
                continue
            table, _, column = sla.element.partition(".")
            obj = objects.get(table)
            prop = next((p for p in obj.properties if p.name == column), None) if obj else None
            if obj is None or prop is None:
                self.fail(
                    (*loc, "element"), f"unknown column {sla.element!r} (want <table>.<column>)"
                )
            elif prop.logical_type not in _TIMES:
                self.fail(
                    (*loc, "element"), f"{sla.element!r} is {prop.logical_type}, not a timestamp"
                )


def _to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# --------------------------------------------------------------------------- loading


def load_contract(path: Path | str) -> Contract:
    """Load and validate one contract file.

    Raises:
        ContractError: naming the file, the line, the key and the problem, for YAML
            syntax, unknown or missing keys, wrong types and values, and semantic
            problems (unknown columns in rules and keys, duplicate columns or rule ids,
            invalid regular expressions, minimum above maximum, unknown built-ins).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(path, [Problem(None, "<file>", "does not exist")]) from None
    data, lines = _compose(path, text)
    if not isinstance(data, dict):
        raise ContractError(path, [Problem(1, "<root>", "the top level must be a mapping")])
    try:
        document = _Document.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(
                _locate(lines, tuple(error["loc"])), _render(tuple(error["loc"])), _describe(error)
            )
            for error in exc.errors()
        ]
        raise ContractError(path, problems) from None
    checker = _Checker(path, lines)
    checker.check(document)
    if checker.problems:
        raise ContractError(path, checker.problems)
    return Contract(path, document, checker.builtin_arguments)


def load_contracts(directory: Path | str) -> dict[str, Contract]:
    """Every ``*.yaml`` contract in ``directory``, keyed by dataset name."""
    contracts: dict[str, Contract] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        contract = load_contract(path)
        contracts[contract.dataset] = contract
    return contracts
