"""Classify raw Kafka payloads by their data contract, in Python and in Spark, identically.

Two engines, one verdict:

* :func:`first_violation` (and :func:`classify`) is the **reference evaluator**, the
  specification: plain Python over one record's bytes.
* :func:`~lakehouse_assets.silver.spark_validation.parse_payload` classifies a whole
  bronze DataFrame in Spark. A Java UDF
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
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, NamedTuple

import pyarrow as pa

from lakehouse_assets.contracts.document import LinesSumTo, SumEquals
from lakehouse_assets.contracts.model import Contract, RowRule
from lakehouse_assets.contracts.rule_kinds import implement
from lakehouse_assets.silver.payload_plan import (
    _Field,
    _Plan,
    _plan,
)

__all__ = [
    "PAYLOAD_COLUMN",
    "VIOLATION_COLUMN",
    "Verdict",
    "Violation",
    "classify",
    "first_violation",
]

#: Output columns of :func:`parse_payload`.
PAYLOAD_COLUMN = "payload"
VIOLATION_COLUMN = "violation"

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
    return _CHECKS[rule.kind](plan, rule, document)


_Check = Callable[[_Plan, RowRule, dict[str, Any]], "str | None"]
_ValueCheck = Callable[[_Field, RowRule, str, Any], "str | None"]


def _parsed(plan: _Plan, rule: RowRule, document: dict[str, Any]) -> str | None:
    return None  # :func:`_parse` judged it before any rule runs


def _required(plan: _Plan, rule: RowRule, document: dict[str, Any]) -> str | None:
    assert rule.column is not None
    for shown, value in _occurrences(document, plan.chains[rule.column]):
        if value is _MISSING:
            return f"missing required field {shown}"
        if value is None:
            return f"required field {shown} is null"
    return None


def _each_value(test: _ValueCheck) -> _Check:
    """A check of every present value of the rule's column: the first problem wins."""

    def check(plan: _Plan, rule: RowRule, document: dict[str, Any]) -> str | None:
        assert rule.column is not None
        chain = plan.chains[rule.column]
        for shown, value in _present(document, chain):
            problem = test(chain[-1], rule, shown, value)
            if problem is not None:
                return problem
        return None

    return check


def _typed(field: _Field, rule: RowRule, shown: str, value: Any) -> str | None:
    return _type_problem(field, shown, value)


def _allowed(field: _Field, rule: RowRule, shown: str, value: Any) -> str | None:
    if value not in rule.value or isinstance(value, bool):
        listed = ", ".join(str(v) for v in rule.value)
        return f"{shown} is {_show(value)}, must be one of {listed}"
    return None


def _matching(field: _Field, rule: RowRule, shown: str, value: Any) -> str | None:
    if not re.search(rule.value, value):
        return f"{shown} is {_show(value)}, must match {rule.value}"
    return None


def _in_range(field: _Field, rule: RowRule, shown: str, value: Any) -> str | None:
    number = _exact_number(value)
    if number is not None and not _compare(number, rule.operator or "==", rule.value):
        return f"{shown} is {number}, must be {_says(rule.operator or '==', rule.value)}"
    return None


def _long_enough(field: _Field, rule: RowRule, shown: str, value: Any) -> str | None:
    if not _compare(Decimal(len(value)), rule.operator or "==", rule.value):
        return (
            f"{shown} has length {len(value)}, must be {_says(rule.operator or '==', rule.value)}"
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


def _sum_equals(plan: _Plan, rule: RowRule, document: dict[str, Any]) -> str | None:
    arguments = rule.arguments
    assert isinstance(arguments, SumEquals)
    terms = [_number_at(plan, document, term) for term in arguments.terms]
    expected = _number_at(plan, document, arguments.equals)
    if expected is None or any(term is None for term in terms):
        return None
    total = sum((term for term in terms if term is not None), Decimal(0))
    if abs(total - expected) > arguments.tolerance:
        return f"{' + '.join(arguments.terms)} = {total}, {arguments.equals} is {expected}"
    return None


def _lines_sum_to(plan: _Plan, rule: RowRule, document: dict[str, Any]) -> str | None:
    arguments = rule.arguments
    assert isinstance(arguments, LinesSumTo)
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
        total = total.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=_EXACT)
    if abs(total - expected) > arguments.tolerance:
        amount_text = " * ".join(parts[:2]) + (f" * (1 - {parts[2]})" if len(parts) > 2 else "")
        return f"sum of {arguments.lines} {amount_text} = {total}, {arguments.equals} is {expected}"
    return None


#: The reference evaluator of every payload rule kind (checked against the registry).
_CHECKS: Mapping[str, _Check] = implement(
    "reference evaluator",
    "payload",
    {
        "parseable": _parsed,
        "required": _required,
        "type": _each_value(_typed),
        "allowed_values": _each_value(_allowed),
        "pattern": _each_value(_matching),
        "comparison": _each_value(_in_range),
        "length": _each_value(_long_enough),
        "sum_equals": _sum_equals,
        "lines_sum_to": _lines_sum_to,
    },
)


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


# --------------------------------------------------------------------------- Spark


# Types, and the typed conversion of canonical text -----------------------------------------


# Contract patterns in Java's regex dialect ------------------------------------------------
