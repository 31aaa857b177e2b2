"""Classify raw Kafka payloads by their data contract, in Python and in Spark, identically.

Two engines, one verdict:

* :func:`first_violation` (and :func:`classify`) is the **reference evaluator**, the
  specification: plain Python over one record's bytes.
* :func:`parse_payload` classifies a whole bronze DataFrame in Spark. A Java UDF
  (``resources/spark/java/lakehouse/validation/PayloadCertifier.java``) *certifies* the
  rows whose validity it can establish exactly in one pass over their bytes (the
  bulk: well-formed records), and every other row, and only those, goes through
  the reference evaluator. Verdicts therefore agree by construction: a row is
  either proven valid in the JVM (and the proof implies the reference evaluator
  finds no violation and yields the same typed values as the certifier), or the
  reference evaluator itself decides it, rule id and reason included.

Semantics (the rules come from :meth:`Contract.row_rules` of the payload object,
evaluated in that order; the first failing rule of severity ``error`` is the
violation; ``warning`` rules never quarantine a record):

``parseable``
    The value is not null, not empty, valid UTF-8 (strict: no overlong forms, no
    encoded surrogates), and one strict JSON document (RFC 8259: no NaN/Infinity,
    no single quotes, no comments, no trailing content) whose top level is an
    object. Escaped lone surrogates (``"\\ud800"``) are not text and fail it too.
    Duplicate keys: the last one wins. Keys the contract does not name are ignored.
``required``
    The value is present and not JSON ``null``. A nested field is checked only
    where its parent object exists (a missing parent is the parent's violation).
``type``
    ``string``: a JSON string. ``integer``: a JSON integer (not a boolean, not a
    number with a fraction or exponent), within the column's Arrow range (int64,
    or int32 for ``physicalType: int``). ``number``: a JSON number, or a string
    holding a plain decimal (``-?[0-9]+(.[0-9]+)?``, money travels as ``"19.99"``);
    for ``decimal(p,s)`` its exact value must be representable in ``decimal(p,s)``
    (at most ``s`` significant fraction digits, at most ``p-s`` integer digits),
    otherwise it must be a finite ``double``/``float``. ``timestamp``: an ISO-8601
    string ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM)`` (offset required, at
    most six fraction digits, a real calendar instant in years 1..9999 in UTC).
    ``date``: ``YYYY-MM-DD``. ``boolean``: ``true``/``false``. ``object``: a JSON
    object. ``array``: a JSON array whose elements are all of the items' type
    (a ``null`` element is a violation).
``allowed_values``, ``pattern``, ``comparison``, ``length``
    As :class:`~lakehouse_assets.contracts.model.RowRule` says; ``pattern`` uses
    ``re.search``; comparisons use the exact decimal value of the JSON text;
    lengths count code points (strings) or elements (arrays).
``builtin``
    ``sum_equals``: ``|sum(terms) - equals| <= tolerance``. ``lines_sum_to``:
    ``sum(quantity * unit_price * (1 - discount))`` over the lines, rounded half-up
    to the scale of ``equals`` (``decimal(p,s)``: ``s``; integer: 0; double: not
    rounded), equals ``equals`` within ``tolerance``. Exact decimal arithmetic.

Null values pass every rule except ``required``; a builtin rule whose inputs hold
a null passes. Paths in reasons are JSONPath-like with 0-based indexes
(``items[0].quantity``); values are shown as JSON and truncated.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa

from lakehouse_assets.contracts.document import LinesSumTo, Property, SumEquals
from lakehouse_assets.contracts.model import Column, Contract, RowRule
from resources.private_apis import apply_jvm_udf, jvm, parse_regex

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

__all__ = [
    "PAYLOAD_COLUMN",
    "VIOLATION_COLUMN",
    "Verdict",
    "Violation",
    "classify",
    "first_violation",
    "parse_payload",
]

#: Output columns of :func:`parse_payload`.
PAYLOAD_COLUMN = "payload"
VIOLATION_COLUMN = "violation"

_LOG = logging.getLogger(__name__)
_SHOW_LIMIT = 60
_EXACT = Context(prec=1000)
_INT_RANGES = {pa.int64(): (-(2**63), 2**63 - 1), pa.int32(): (-(2**31), 2**31 - 1)}

# Grammars shared by both engines (ASCII classes only: Python's \d is Unicode).
_DECIMAL_TEXT = r"-?[0-9]+(?:\.[0-9]+)?"
_TIMESTAMP_RE = re.compile(
    r"(?!0000)([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?(Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_DATE_RE = re.compile(r"(?!0000)([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DECIMAL_RE = re.compile(_DECIMAL_TEXT)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB]")


class Violation(NamedTuple):
    """The first failing ``error`` rule of a record: its id and a short, readable reason."""

    rule_id: str
    reason: str


class Verdict(NamedTuple):
    """A record's classification: the typed payload (valid) or the violation (invalid)."""

    payload: dict[str, Any] | None
    violation: Violation | None


# --------------------------------------------------------------------------- the contract's shape


@dataclass(frozen=True)
class _Field:
    """A node of the payload: a property (``name``) or an array's items (``name == ""``)."""

    name: str
    logical: str
    arrow: pa.DataType
    decimal: tuple[int, int] | None
    children: tuple[_Field, ...]
    item: _Field | None

    @property
    def expected(self) -> str:
        """What the type rule asks for, in a reason."""
        if self.decimal is not None:
            return f"a decimal({self.decimal[0]},{self.decimal[1]})"
        if self.logical == "integer":
            return "an integer"
        if self.logical == "array" and self.item is not None:
            return f"an array of {self.item.logical}s"
        return "an object" if self.logical == "object" else f"a {self.logical}"


def _field(prop: Any, arrow: pa.DataType) -> _Field:
    name = prop.name if isinstance(prop, Property) else ""
    children: tuple[_Field, ...] = ()
    item = None
    if prop.logical_type == "object":
        assert isinstance(arrow, pa.StructType)
        children = tuple(
            _field(child, arrow.field(child.name).type) for child in prop.properties or ()
        )
    elif prop.logical_type == "array":
        assert isinstance(arrow, pa.ListType)
        assert prop.items is not None
        item = _field(prop.items, arrow.value_type)
    decimal = (arrow.precision, arrow.scale) if pa.types.is_decimal(arrow) else None
    return _Field(name, prop.logical_type, arrow, decimal, children, item)


@dataclass(frozen=True)
class _Plan:
    """A contract's payload compiled once: its field tree and its row rules."""

    contract: Contract
    fields: tuple[_Field, ...]
    chains: dict[str, tuple[_Field, ...]]
    """Per column path, the fields from the top level down to the column."""
    rules: tuple[RowRule, ...]

    @classmethod
    def build(cls, contract: Contract) -> _Plan:
        payload = contract.payload
        if payload is None:
            raise ValueError(
                f"{contract.path}: no schema object with physicalType: topic describes the payload"
            )
        schema = contract.arrow_schema(payload)
        props = contract.object(payload).properties
        fields = tuple(_field(prop, schema.field(prop.name).type) for prop in props)
        chains: dict[str, tuple[_Field, ...]] = {}

        def index(nodes: Sequence[_Field], prefix: str, chain: tuple[_Field, ...]) -> None:
            for node in nodes:
                path = f"{prefix}.{node.name}" if prefix else node.name
                chains[path] = (*chain, node)
                index(node.children, path, (*chain, node))
                if node.item is not None:
                    index(node.item.children, path, (*chain, node))

        index(fields, "", ())
        rules = tuple(rule for rule in contract.row_rules(payload) if rule.severity == "error")
        for rule in rules:
            if isinstance(rule.arguments, SumEquals):
                for path in (*rule.arguments.terms, rule.arguments.equals):
                    if contract.columns(payload)[path].in_array:
                        raise ValueError(
                            f"{contract.path}: rule {rule.id!r}: sum_equals takes columns "
                            f"outside arrays, {path!r} is inside one"
                        )
        return cls(contract, fields, chains, rules)

    def column(self, path: str) -> Column:
        payload = self.contract.payload
        assert payload is not None
        return self.contract.columns(payload)[path]


_PLANS: dict[int, tuple[Contract, _Plan]] = {}


def _plan(contract: Contract) -> _Plan:
    cached = _PLANS.get(id(contract))
    if cached is None or cached[0] is not contract:
        cached = (contract, _Plan.build(contract))
        _PLANS[id(contract)] = cached
    return cached[1]


# --------------------------------------------------------------------------- Python: the reference


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def first_violation(contract: Contract, value: bytes | None) -> Violation | None:
    """The first ``error`` rule of the contract's payload that ``value`` breaks, or None.

    The reference semantics of the module docstring; :func:`parse_payload` agrees
    with it on every record.
    """
    return classify(contract, value).violation


def classify(contract: Contract, value: bytes | None) -> Verdict:
    """The typed payload of a valid record (Python values shaped like the contract's
    Arrow schema: ``Decimal`` quantized to the column's scale, UTC ``datetime``), or
    the record's first violation."""
    plan = _plan(contract)
    document = _parse(value)
    if isinstance(document, Violation):
        return Verdict(None, document)
    for rule in plan.rules:
        reason = _check(plan, rule, document)
        if reason is not None:
            return Verdict(None, Violation(rule.id, reason))
    return Verdict(_typed_object(plan.fields, document), None)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(value: bytes | None) -> dict[str, Any] | Violation:
    if value is None:
        return Violation("parseable", "payload is null")
    raw = bytes(value)
    if not raw:
        return Violation("parseable", "payload is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Violation(
            "parseable",
            f"payload is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
        )
    try:
        document = _loads(text)
    except json.JSONDecodeError as exc:
        return Violation("parseable", f"payload is not valid JSON ({exc.msg}, char {exc.pos})")
    except (ValueError, RecursionError) as exc:
        return Violation("parseable", f"payload is not valid JSON ({_truncate(str(exc))})")
    if not isinstance(document, dict):
        return Violation("parseable", f"payload is a JSON {_json_kind(document)}, not an object")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
        except UnicodeEncodeError:
            return Violation("parseable", "payload holds an unpaired surrogate escape (\\ud800..)")
    return document


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        # Deep nesting is valid JSON; the JVM parser accepts 1000 levels.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 5000))
        try:
            return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
        finally:
            sys.setrecursionlimit(limit)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "number"


def _truncate(text: str) -> str:
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 1] + "…"


def _show(value: Any) -> str:
    """A value as JSON text (decimals as written), truncated."""
    if isinstance(value, Decimal):
        return _truncate(str(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return _truncate(json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")))


def _occurrences(document: dict[str, Any], chain: Sequence[_Field]) -> Iterator[tuple[str, Any]]:
    """``(shown path, value)`` of a column wherever its parents exist; ``_MISSING`` when absent."""

    def walk(node: Any, depth: int, shown: str) -> Iterator[tuple[str, Any]]:
        if not isinstance(node, dict):
            return
        field = chain[depth]
        here = f"{shown}.{field.name}" if shown else field.name
        value = node.get(field.name, _MISSING)
        if depth == len(chain) - 1:
            yield here, value
        elif field.logical == "array":
            if isinstance(value, list):
                for position, element in enumerate(value):
                    yield from walk(element, depth + 1, f"{here}[{position}]")
        else:
            yield from walk(value, depth + 1, here)

    return walk(document, 0, "")


def _present(document: dict[str, Any], chain: Sequence[_Field]) -> Iterator[tuple[str, Any]]:
    return (
        (shown, value)
        for shown, value in _occurrences(document, chain)
        if value is not _MISSING and value is not None
    )


def _exact_number(value: Any) -> Decimal | None:
    """The exact value of a JSON number or a plain decimal string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
        return Decimal(value)
    return None


def _fits_decimal(number: Decimal, precision: int, scale: int) -> bool:
    quantum = Decimal(1).scaleb(-scale)
    try:
        rounded = number.quantize(quantum, context=_EXACT)
    except InvalidOperation:
        return False
    return rounded == number and abs(rounded) < Decimal(10) ** (precision - scale)


def _timestamp(text: str) -> datetime | None:
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or ""
    offset = timedelta(0)
    if match.group(8) != "Z":
        hours, minutes = int(match.group(10)), int(match.group(11))
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if match.group(9) == "-" else 1)
    try:
        local = datetime(
            year,
            month,
            day,
            hour,
            minute,
            second,
            int(fraction.ljust(6, "0")),
            tzinfo=timezone(offset),
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _date(text: str) -> date | None:
    match = _DATE_RE.fullmatch(text)
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def _typed_scalar(field: _Field, value: Any) -> tuple[bool, Any]:
    """``(True, typed value)`` when ``value`` (not null) has the field's type, else ``(False, None)``."""
    logical = field.logical
    if logical == "string":
        return isinstance(value, str), value
    if logical == "boolean":
        return isinstance(value, bool), value
    if logical == "integer":
        low, high = _INT_RANGES.get(field.arrow, _INT_RANGES[pa.int64()])
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return ok, value
    if logical == "number":
        number = _exact_number(value)
        if number is None:
            return False, None
        if field.decimal is not None:
            precision, scale = field.decimal
            if not _fits_decimal(number, precision, scale):
                return False, None
            return True, number.quantize(Decimal(1).scaleb(-scale), context=_EXACT)
        as_float = float(number)
        if not math.isfinite(as_float) or (
            pa.types.is_float32(field.arrow) and abs(as_float) > 3.4028234663852886e38
        ):
            return False, None
        return True, as_float
    if logical == "timestamp":
        stamp = _timestamp(value) if isinstance(value, str) else None
        return stamp is not None, stamp
    if logical == "date":
        day = _date(value) if isinstance(value, str) else None
        return day is not None, day
    if logical == "object":
        return isinstance(value, dict), value
    if logical == "array":
        return isinstance(value, list), value
    raise AssertionError(logical)


def _type_problem(field: _Field, shown: str, value: Any) -> str | None:
    ok, _ = _typed_scalar(field, value)
    if not ok:
        return f"{shown} is {_show(value)}, must be {field.expected}"
    if field.logical == "array":
        assert field.item is not None
        for position, element in enumerate(value):
            if element is None or not _typed_scalar(field.item, element)[0]:
                return f"{shown}[{position}] is {_show(element)}, must be {field.item.expected}"
    return None


def _compare(number: Decimal, operator: str, bound: Any) -> bool:
    if operator == "between":
        return bool(bound[0] <= number <= bound[1])
    return bool(
        {
            "==": number == bound,
            "!=": number != bound,
            ">": number > bound,
            ">=": number >= bound,
            "<": number < bound,
            "<=": number <= bound,
        }[operator]
    )


def _says(operator: str, bound: Any) -> str:
    if operator == "between":
        return f"between {bound[0]} and {bound[1]}"
    return f"{operator} {bound}"


def _check(plan: _Plan, rule: RowRule, document: dict[str, Any]) -> str | None:
    """Why ``document`` breaks ``rule`` (its first offending value), or None."""
    if rule.kind == "builtin":
        return _check_builtin(plan, rule, document)
    if rule.kind == "parseable":
        return None
    assert rule.column is not None
    chain = plan.chains[rule.column]
    field = chain[-1]
    if rule.kind == "required":
        for shown, value in _occurrences(document, chain):
            if value is _MISSING:
                return f"missing required field {shown}"
            if value is None:
                return f"required field {shown} is null"
        return None
    for shown, value in _present(document, chain):
        if rule.kind == "type":
            problem = _type_problem(field, shown, value)
            if problem is not None:
                return problem
        elif rule.kind == "allowed_values":
            if value not in rule.value or isinstance(value, bool):
                listed = ", ".join(str(v) for v in rule.value)
                return f"{shown} is {_show(value)}, must be one of {listed}"
        elif rule.kind == "pattern":
            if not re.search(rule.value, value):
                return f"{shown} is {_show(value)}, must match {rule.value}"
        elif rule.kind == "comparison":
            number = _exact_number(value)
            if number is not None and not _compare(number, rule.operator or "==", rule.value):
                return f"{shown} is {number}, must be {_says(rule.operator or '==', rule.value)}"
        elif rule.kind == "length" and not _compare(
            Decimal(len(value)), rule.operator or "==", rule.value
        ):
            return (
                f"{shown} has length {len(value)}, "
                f"must be {_says(rule.operator or '==', rule.value)}"
            )
    return None


def _number_at(plan: _Plan, document: dict[str, Any], path: str) -> Decimal | None:
    values = [value for _, value in _present(document, plan.chains[path])]
    if not values:
        return None
    ok, typed = _typed_scalar(plan.chains[path][-1], values[0])
    if not ok:
        return None
    return Decimal(typed) if isinstance(typed, int) else _exact_number(values[0])


def _scale_of(field: _Field) -> int | None:
    if field.decimal is not None:
        return field.decimal[1]
    return 0 if field.logical == "integer" else None


def _check_builtin(plan: _Plan, rule: RowRule, document: dict[str, Any]) -> str | None:
    arguments = rule.arguments
    if isinstance(arguments, SumEquals):
        terms = [_number_at(plan, document, term) for term in arguments.terms]
        expected = _number_at(plan, document, arguments.equals)
        if expected is None or any(term is None for term in terms):
            return None
        total = sum((term for term in terms if term is not None), Decimal(0))
        if abs(total - expected) > arguments.tolerance:
            return f"{' + '.join(arguments.terms)} = {total}, {arguments.equals} is {expected}"
        return None
    if isinstance(arguments, LinesSumTo):
        lines_chain = plan.chains[arguments.lines]
        expected = _number_at(plan, document, arguments.equals)
        lines = [value for _, value in _present(document, lines_chain)]
        if expected is None or not lines or not isinstance(lines[0], list):
            return None
        parts = [arguments.quantity, arguments.unit_price] + (
            [arguments.discount] if arguments.discount else []
        )
        fields = [plan.chains[f"{arguments.lines}.{part}"][-1] for part in parts]
        total = Decimal(0)
        for line in lines[0]:
            numbers = []
            for part, field in zip(parts, fields, strict=True):
                value = _dig(line, part)
                ok, typed = _typed_scalar(field, value) if value is not None else (False, None)
                if not ok:
                    return None
                numbers.append(Decimal(typed) if isinstance(typed, int) else _exact_number(value))
            quantity, price = numbers[0], numbers[1]
            assert quantity is not None
            assert price is not None
            amount = _EXACT.multiply(quantity, price)
            if len(numbers) > 2:
                assert numbers[2] is not None
                amount = _EXACT.multiply(amount, _EXACT.subtract(Decimal(1), numbers[2]))
            total = _EXACT.add(total, amount)
        scale = _scale_of(plan.chains[arguments.equals][-1])
        if scale is not None:
            total = total.quantize(
                Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=_EXACT
            )
        if abs(total - expected) > arguments.tolerance:
            amount_text = " * ".join(parts[:2]) + (f" * (1 - {parts[2]})" if len(parts) > 2 else "")
            return (
                f"sum of {arguments.lines} {amount_text} = {total}, "
                f"{arguments.equals} is {expected}"
            )
        return None
    raise ValueError(f"rule {rule.id!r}: unsupported built-in {rule.rule!r}")


def _dig(node: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def _typed_object(fields: Sequence[_Field], document: dict[str, Any]) -> dict[str, Any]:
    return {field.name: _typed_value(field, document.get(field.name)) for field in fields}


def _typed_value(field: _Field, value: Any) -> Any:
    if value is None:
        return None
    if field.logical == "object":
        return _typed_object(field.children, value)
    if field.logical == "array":
        assert field.item is not None
        item = field.item
        return [_typed_value(item, element) for element in value]
    ok, typed = _typed_scalar(field, value)
    assert ok, f"{field.name}: {value!r} passed its type rule"
    return typed


# --------------------------------------------------------------------------- canonical text


def _canonical(fields: Sequence[_Field], payload: dict[str, Any]) -> str:
    """The typed payload as JSON whose scalars are strings in the forms the Spark side
    converts exactly (plain decimals, UTC timestamps with microseconds)."""

    def scalar(field: _Field, value: Any) -> Any:
        if value is None:
            return None
        if field.logical == "object":
            return {child.name: scalar(child, value[child.name]) for child in field.children}
        if field.logical == "array":
            assert field.item is not None
            item = field.item
            return [scalar(item, element) for element in value]
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, float):
            return repr(value)
        if isinstance(value, datetime):
            return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        if isinstance(value, date):
            return value.isoformat()
        return str(value)

    return json.dumps({field.name: scalar(field, payload[field.name]) for field in fields})


# --------------------------------------------------------------------------- Spark


_CERTIFIED_PAYLOAD = "__validation_certified_payload"
_CERTIFIED = "__validation_certified"
_JUDGED = "__validation_python"
_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]XXX"
#: The JVM certifier (``resources/spark/java``, on the classpath through ``spark.jars``).
_CERTIFIER_CLASS = "lakehouse.validation.PayloadCertifier"
_JSON_OPTIONS = {
    "mode": "PERMISSIVE",
    "allowSingleQuotes": "false",
    "allowNonNumericNumbers": "false",
    "allowComments": "false",
    "allowUnquotedFieldNames": "false",
    "allowNumericLeadingZeros": "false",
    "allowBackslashEscapingAnyCharacter": "false",
    "allowUnquotedControlChars": "false",
}


def parse_payload(contract: Contract, df: DataFrame, value_column: str = "value") -> DataFrame:
    """Classify every row of ``df`` by the contract's payload object.

    Returns ``df``'s columns plus ``payload`` (a struct typed like
    ``contract.arrow_schema(payload)``: ``DecimalType(p,s)``, ``TimestampType``
    (UTC instants), ``LongType``/``IntegerType``, ``DoubleType``, ``BooleanType``,
    ``DateType``, structs and arrays of structs; every field nullable; null when the
    row is invalid) and ``violation`` (``struct<rule_id: string, reason: string>``,
    null when the row is valid).

    Rows are certified valid in the JVM: a Java UDF (``PayloadCertifier``) reads each
    payload's bytes once, checks them against the contract and returns the typed
    payload. Only rows that are not certified (invalid ones, and the rare valid ones
    whose exactness the certifier cannot prove) have their bytes evaluated by
    :func:`classify` in a pandas UDF, whose canonical text of a valid payload
    ``from_json`` types. Certified rows reach the UDF operator as a null argument and
    are not looked at in Python. Without the certifier's jar on the session's
    classpath every row goes to Python: the same verdicts, far slower.
    """
    from pyspark.sql import functions as F

    plan = _plan(contract)
    value = F.col(value_column)
    staged = _certify(plan, df, value_column)

    judge = _python_judge(contract)
    routed = F.when(~F.col(_CERTIFIED) & value.isNotNull(), value)
    judged = staged.withColumn(_JUDGED, judge(routed))
    python = F.col(_JUDGED)
    null_verdict = first_violation(contract, None)
    assert null_verdict is not None
    violation = (
        F.when(F.col(_CERTIFIED), F.lit(None))
        .when(
            value.isNull(),
            F.struct(
                F.lit(null_verdict.rule_id).alias("rule_id"),
                F.lit(null_verdict.reason).alias("reason"),
            ),
        )
        .when(
            python.getField("rule_id").isNotNull(),
            F.struct(
                python.getField("rule_id").alias("rule_id"),
                python.getField("reason").alias("reason"),
            ),
        )
    )
    canonical = F.from_json(
        python.getField("canonical"), _lenient_struct(plan.fields), _JSON_OPTIONS
    )
    payload = F.when(F.col(_CERTIFIED), F.col(_CERTIFIED_PAYLOAD)).when(
        canonical.isNotNull(), _typed_struct(plan.fields, canonical)
    )
    return judged.select(
        *[F.col(f"`{name}`") for name in df.columns],
        payload.alias(PAYLOAD_COLUMN),
        violation.cast(_violation_type()).alias(VIOLATION_COLUMN),
    )


def _certify(plan: _Plan, df: DataFrame, value_column: str) -> DataFrame:
    """``df`` plus the typed payload of the rows certified valid in the JVM
    (``_CERTIFIED_PAYLOAD``, null for the others) and whether the row is certified
    (``_CERTIFIED``, never null)."""
    from pyspark.sql import functions as F

    certifier = _certifier(df.sparkSession, plan)
    if certifier is None:
        certified = F.lit(None).cast(_payload_type(plan.fields))
    else:
        certified = certifier(F.col(value_column))
    staged = df.withColumn(_CERTIFIED_PAYLOAD, certified)
    return staged.withColumn(_CERTIFIED, F.col(_CERTIFIED_PAYLOAD).isNotNull())


def _certifier(spark: SparkSession, plan: _Plan) -> Callable[[SparkColumn], SparkColumn] | None:
    """The JVM certifier of ``plan`` as a column function, or None without its jar."""
    from resources.spark.udfs import has_class

    if not has_class(spark, _CERTIFIER_CLASS):
        _LOG.warning(
            "%s is not on the Spark session's classpath (spark.jars): every payload of %s "
            "is checked in Python, which is correct but slow",
            _CERTIFIER_CLASS,
            plan.contract.path.name,
        )
        return None
    udf = jvm(spark).lakehouse.validation.PayloadCertifier.udf(_certifier_spec(plan))

    def certify(value: SparkColumn) -> SparkColumn:
        return apply_jvm_udf(spark, udf, value)

    return certify


def _certifier_spec(plan: _Plan) -> str:
    """The plan as the JVM certifier reads it: the payload's fields, its Spark type (what
    the certifier returns) and its error rules."""

    def field(node: _Field) -> dict[str, Any]:
        return {
            "name": node.name,
            "kind": node.logical,
            "int32": node.arrow == pa.int32(),
            "float32": pa.types.is_float32(node.arrow),
            "decimal": list(node.decimal) if node.decimal is not None else None,
            "children": [field(child) for child in node.children],
            "item": field(node.item) if node.item is not None else None,
        }

    rules = [_rule_spec(rule) for rule in plan.rules if rule.kind != "parseable"]
    return json.dumps(
        {
            "fields": [field(node) for node in plan.fields],
            "type": json.loads(_payload_type(plan.fields).json()),
            "rules": rules,
        }
    )


def _number_text(value: Any) -> str | None:
    """A contract's numeric literal as exact decimal text (None: not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    number = Decimal(value)
    return str(number) if number.is_finite() else None


def _rule_spec(rule: RowRule) -> dict[str, Any]:
    arguments = rule.arguments
    if isinstance(arguments, SumEquals):
        return {
            "kind": "sum_equals",
            "terms": list(arguments.terms),
            "equals": arguments.equals,
            "tolerance": str(arguments.tolerance),
        }
    if isinstance(arguments, LinesSumTo):
        return {
            "kind": "lines_sum_to",
            "lines": arguments.lines,
            "quantity": arguments.quantity,
            "unit_price": arguments.unit_price,
            "discount": arguments.discount,
            "equals": arguments.equals,
            "tolerance": str(arguments.tolerance),
        }
    if rule.kind == "builtin":
        return {"kind": f"unknown builtin {rule.rule}"}  # never certain in the JVM
    spec: dict[str, Any] = {"kind": rule.kind, "column": rule.column}
    if rule.kind == "allowed_values":
        values = list(rule.value)
        spec["strings"] = [v for v in values if isinstance(v, str)]
        spec["numbers"] = [t for t in map(_number_text, values) if t is not None]
    elif rule.kind == "pattern":
        spec["regex"] = _java_regex(rule.value)
    elif rule.kind in ("comparison", "length"):
        operator = rule.operator or "=="
        spec["operator"] = operator
        bounds = list(rule.value) if operator == "between" else [rule.value]
        texts = [_number_text(bound) for bound in bounds]
        if any(text is None for text in texts):
            spec["bound"] = None
        else:
            spec["bound"] = texts if operator == "between" else texts[0]
    return spec


def _violation_type() -> StructType:
    from pyspark.sql import types as T

    return T.StructType(
        [T.StructField("rule_id", T.StringType()), T.StructField("reason", T.StringType())]
    )


def _verdict_type() -> StructType:
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("rule_id", T.StringType()),
            T.StructField("reason", T.StringType()),
            T.StructField("canonical", T.StringType()),
        ]
    )


def _python_judge(contract: Contract) -> Callable[[SparkColumn], SparkColumn]:
    """A pandas UDF: ``classify`` on the routed values (null means: not routed)."""
    from pyspark.sql.functions import pandas_udf

    def judge(values: pd.Series) -> pd.DataFrame:
        import pandas as pd

        plan = _plan(contract)
        rule_ids: list[str | None] = []
        reasons: list[str | None] = []
        canonical: list[str | None] = []
        for value in values:
            if value is None:
                rule_ids.append(None)
                reasons.append(None)
                canonical.append(None)
                continue
            verdict = classify(contract, value)
            if verdict.violation is not None:
                rule_ids.append(verdict.violation.rule_id)
                reasons.append(verdict.violation.reason)
                canonical.append(None)
            else:
                assert verdict.payload is not None
                rule_ids.append(None)
                reasons.append(None)
                canonical.append(_canonical(plan.fields, verdict.payload))
        return pd.DataFrame({"rule_id": rule_ids, "reason": reasons, "canonical": canonical})

    import pandas as pd

    # Real objects, not the strings `from __future__ import annotations` leaves: pyspark
    # reads the hints to tell a Series -> DataFrame (scalar) pandas UDF.
    judge.__annotations__ = {"values": pd.Series, "return": pd.DataFrame}
    udf: Callable[[SparkColumn], SparkColumn] = pandas_udf(judge, _verdict_type())  # type: ignore[call-overload]
    return udf


# Types, and the typed conversion of canonical text -----------------------------------------


def _payload_type(fields: Sequence[_Field]) -> StructType:
    """The Spark type of the typed payload (every field nullable)."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(field.name, _spark_type(field)) for field in fields])


def _spark_type(field: _Field) -> DataType:
    from pyspark.sql import types as T

    if field.logical == "object":
        return _payload_type(field.children)
    if field.logical == "array":
        assert field.item is not None
        return T.ArrayType(_spark_type(field.item))
    if field.logical == "integer":
        return T.IntegerType() if field.arrow == pa.int32() else T.LongType()
    if field.logical == "number":
        if field.decimal is not None:
            return T.DecimalType(*field.decimal)
        return T.FloatType() if pa.types.is_float32(field.arrow) else T.DoubleType()
    scalars: dict[str, DataType] = {
        "string": T.StringType(),
        "boolean": T.BooleanType(),
        "timestamp": T.TimestampType(),
        "date": T.DateType(),
    }
    return scalars[field.logical]


def _lenient_type(field: _Field) -> DataType:
    from pyspark.sql import types as T

    if field.logical == "object":
        return _lenient_struct(field.children)
    if field.logical == "array":
        assert field.item is not None
        return T.ArrayType(_lenient_type(field.item))
    return T.StringType()


def _lenient_struct(fields: Sequence[_Field]) -> StructType:
    """The payload with its scalar leaves as strings: how canonical text is read."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(field.name, _lenient_type(field)) for field in fields])


def _typed_struct(fields: Sequence[_Field], node: SparkColumn) -> SparkColumn:
    from pyspark.sql import functions as F

    return F.struct(
        *[_typed_column(field, node.getField(field.name)).alias(field.name) for field in fields]
    )


def _typed_column(field: _Field, node: SparkColumn) -> SparkColumn:
    """Exact conversion of a lenient value of canonical text to its typed form.

    Integers and numbers convert only when their text has the expected shape (null
    otherwise).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if field.logical == "object":
        return F.when(node.isNotNull(), _typed_struct(field.children, node))
    if field.logical == "array":
        item = field.item
        assert item is not None
        return F.transform(node, lambda element: _typed_column(item, element))
    if field.logical == "string":
        return node
    if field.logical == "boolean":
        return F.when(node.isNotNull(), node == F.lit("true"))
    if field.logical == "integer":
        target = T.IntegerType() if field.arrow == pa.int32() else T.LongType()
        return F.when(node.rlike(r"\A-?[0-9]{1,19}\z"), node.cast(target))
    if field.logical == "number":
        if field.decimal is not None:
            target_type: DataType = T.DecimalType(*field.decimal)
        else:
            target_type = T.FloatType() if pa.types.is_float32(field.arrow) else T.DoubleType()
        return F.when(node.rlike(_FLOAT_TEXT), node.cast(target_type))
    if field.logical == "timestamp":
        return F.try_to_timestamp(node, F.lit(_TIMESTAMP_FORMAT))
    if field.logical == "date":
        return F.to_date(F.try_to_timestamp(node, F.lit("yyyy-MM-dd")))
    raise AssertionError(field.logical)


#: What a canonical number looks like (Python's repr may add an exponent).
_FLOAT_TEXT = r"\A-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\z"


# Contract patterns in Java's regex dialect ------------------------------------------------


def _java_regex(pattern: str) -> str | None:
    """``pattern`` rewritten for ``java.util.regex`` so that a Java match implies a
    Python ``re.search`` match; None when the pattern uses anything outside that
    safe subset (flags, lookarounds, word boundaries, back references, negated
    Unicode classes).

    The Python parse tree is re-emitted (every literal as ``\\x{…}``), so the two
    dialects' syntax differences never matter; ``(?d)`` (UNIX_LINES) gives ``.``
    and ``$`` Python's meaning; ``\\d``, ``\\w``, ``\\s`` become their ASCII subsets.
    """
    try:
        tree = parse_regex(pattern)
    except re.error:
        return None
    if tree.state.flags & ~re.UNICODE:
        return None
    body = _emit(list(tree))
    return None if body is None else "(?d)" + body


_CATEGORIES = {
    "CATEGORY_DIGIT": "0-9",
    "CATEGORY_WORD": "a-zA-Z0-9_",
    "CATEGORY_SPACE": " \\t\\n\\x0B\\f\\r",
}


def _emit(items: list[tuple[Any, Any]]) -> str | None:
    out: list[str] = []
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            out.append(f"\\x{{{av:X}}}")
        elif name == "NOT_LITERAL":
            out.append(f"[^\\x{{{av:X}}}]")
        elif name == "ANY":
            out.append(".")
        elif name == "IN":
            members: list[str] = []
            negate = False
            for member_op, member_av in av:
                member = str(member_op)
                if member == "NEGATE":
                    negate = True
                elif member == "LITERAL":
                    members.append(f"\\x{{{member_av:X}}}")
                elif member == "RANGE":
                    members.append(f"\\x{{{member_av[0]:X}}}-\\x{{{member_av[1]:X}}}")
                elif member == "CATEGORY" and str(member_av) in _CATEGORIES:
                    members.append(_CATEGORIES[str(member_av)])
                else:
                    return None
            if negate and any(str(m_op) == "CATEGORY" for m_op, _ in av):
                return None
            out.append(("[^" if negate else "[") + "".join(members) + "]")
        elif name == "BRANCH":
            branches = [_emit(list(branch)) for branch in av[1]]
            if any(branch is None for branch in branches):
                return None
            out.append("(?:" + "|".join(b for b in branches if b is not None) + ")")
        elif name == "SUBPATTERN":
            _, add_flags, del_flags, sub = av
            inner = _emit(list(sub))
            if add_flags or del_flags or inner is None:
                return None
            out.append(f"(?:{inner})")
        elif name == "ATOMIC_GROUP":
            inner = _emit(list(av))
            if inner is None:
                return None
            out.append(f"(?>{inner})")
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = av
            inner = _emit(list(sub))
            if inner is None:
                return None
            upper = "" if high == _maxrepeat() else str(high)
            suffix = {"MAX_REPEAT": "", "MIN_REPEAT": "?", "POSSESSIVE_REPEAT": "+"}[name]
            out.append(f"(?:{inner}){{{low},{upper}}}{suffix}")
        elif name == "AT":
            anchors = {
                "AT_BEGINNING": "^",
                "AT_END": "$",
                "AT_BEGINNING_STRING": "\\A",
                "AT_END_STRING": "\\z",
            }
            if str(av) not in anchors:
                return None
            out.append(anchors[str(av)])
        else:
            return None
    return "".join(out)


def _maxrepeat() -> int:
    import re._constants as sre_constants

    return int(sre_constants.MAXREPEAT)
