"""The contract document as written (ODCS v3 with three extensions), as pydantic models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

Severity = Literal["error", "warning"]

LogicalType = Literal[
    "string", "integer", "number", "boolean", "date", "timestamp", "object", "array"
]

Operator = Literal["==", "!=", ">", ">=", "<", "<=", "between"]

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


class _Model(BaseModel):
    # Unknown keys are errors: a misspelt `requried` must not silently mean "optional".
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class SumEquals(_Model):
    """``rule: sum_equals`` (row): ``sum(terms) == equals`` within ``tolerance``."""

    terms: list[str] = Field(min_length=1, description="Columns that add up.")
    equals: str = Field(description="Column holding the expected sum.")
    tolerance: Decimal = Field(default=Decimal(0), ge=0)


class LinesSumTo(_Model):
    """``rule: lines_sum_to`` (row): the lines of a nested array add up to a column.

    A line's amount is ``quantity * unitPrice * (1 - discount)``; the lines' sum,
    rounded to the scale of ``equals``, must equal it within ``tolerance``.
    ``quantity``, ``unitPrice`` and ``discount`` are properties of the array's items.
    """

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

    lines_table: str
    key: list[str] = Field(min_length=1)
    quantity: str
    unit_price: str
    discount: str | None = None
    equals: str
    tolerance: Decimal = Field(default=Decimal(0), ge=0)


BuiltinArguments = SumEquals | LinesSumTo | ChildLinesSumTo


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


# The models refer to each other (an array's items are properties).
_PropertyBase.model_rebuild()
ArrayItems.model_rebuild()
Property.model_rebuild()
