"""Validation of a whole bronze DataFrame in Spark: the Java certifier, then the reference.

:func:`parse_payload` classifies every row: the JVM certifier
(``resources/spark/java/lakehouse/validation/PayloadCertifier.java``) certifies the rows
it can prove valid in one pass over their bytes, and every other row, and only those,
goes through the Python reference evaluator of :mod:`lakehouse_assets.silver.validation`
in a pandas UDF, so the verdicts agree with the reference by construction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse_assets.contracts.document import LinesSumTo, SumEquals
from lakehouse_assets.contracts.model import Contract, RowRule
from lakehouse_assets.contracts.rule_kinds import Deferred, implement
from lakehouse_assets.silver.java_regex import (
    _FLOAT_TEXT,
    _java_regex,
)
from lakehouse_assets.silver.payload_plan import _Field, _Plan, _plan
from lakehouse_assets.silver.validation import (
    PAYLOAD_COLUMN,
    VIOLATION_COLUMN,
    classify,
    first_violation,
)
from resources.private_apis import apply_jvm_udf, jvm

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

_LOG = logging.getLogger(__name__)


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

    rules = [spec for spec in map(_rule_spec, plan.rules) if spec is not None]
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


def _rule_spec(rule: RowRule) -> dict[str, Any] | None:
    """The rule as the certifier reads it (``None``: nothing to send)."""
    build = _SPECS[rule.kind]
    if isinstance(build, Deferred):
        return {"kind": f"defer {rule.kind}"}  # never certain in the JVM
    return build(rule)


def _column_spec(rule: RowRule, **spec: Any) -> dict[str, Any]:
    return {"kind": rule.kind, "column": rule.column, **spec}


def _allowed_spec(rule: RowRule) -> dict[str, Any]:
    values = list(rule.value)
    return _column_spec(
        rule,
        strings=[v for v in values if isinstance(v, str)],
        numbers=[t for t in map(_number_text, values) if t is not None],
    )


def _bound_spec(rule: RowRule) -> dict[str, Any]:
    operator = rule.operator or "=="
    bounds = list(rule.value) if operator == "between" else [rule.value]
    texts = [_number_text(bound) for bound in bounds]
    bound: Any = None
    if all(text is not None for text in texts):
        bound = texts if operator == "between" else texts[0]
    return _column_spec(rule, operator=operator, bound=bound)


def _sum_equals_spec(rule: RowRule) -> dict[str, Any]:
    arguments = rule.arguments
    assert isinstance(arguments, SumEquals)
    return {
        "kind": "sum_equals",
        "terms": list(arguments.terms),
        "equals": arguments.equals,
        "tolerance": str(arguments.tolerance),
    }


def _lines_sum_to_spec(rule: RowRule) -> dict[str, Any]:
    arguments = rule.arguments
    assert isinstance(arguments, LinesSumTo)
    return {
        "kind": "lines_sum_to",
        "lines": arguments.lines,
        "quantity": arguments.quantity,
        "unit_price": arguments.unit_price,
        "discount": arguments.discount,
        "equals": arguments.equals,
        "tolerance": str(arguments.tolerance),
    }


#: What the JVM certifier is told of each payload rule kind (checked against the
#: registry); ``PayloadCertifier.rule`` has a case per kind that is not :data:`DEFER`,
#: and a kind it does not know is never certain there.
_SPECS: Mapping[str, Callable[[RowRule], dict[str, Any] | None] | Deferred] = implement(
    "JVM certifier",
    "payload",
    {
        "parseable": lambda rule: None,  # every payload is parsed before any rule
        "required": _column_spec,
        "type": _column_spec,  # reading checks every field's type
        "allowed_values": _allowed_spec,
        "pattern": lambda rule: _column_spec(rule, regex=_java_regex(rule.value)),
        "comparison": _bound_spec,
        "length": _bound_spec,
        "sum_equals": _sum_equals_spec,
        "lines_sum_to": _lines_sum_to_spec,
    },
)


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
