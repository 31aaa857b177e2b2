"""The Spark evaluator agrees with the Python reference on every record, and the JVM
certifier takes the valid ones itself."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.contracts.model import Contract
from lakehouse_assets.silver import spark_validation, validation
from lakehouse_assets.silver.spark_validation import parse_payload
from lakehouse_assets.silver.validation import classify
from lakehouse_dev.generator.records import MALFORMATIONS, generate
from lakehouse_dev.generator.spec import GeneratorSpec

pytestmark = pytest.mark.integration

# The routed rows run in a pandas UDF: Spark's Python workers need this interpreter
# (read when the session's context starts, so set before the session fixture runs).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
SPEC = GeneratorSpec(count=4000, days=3, end_date=date(2026, 11, 20), malformed_share=0.05)

PLAIN = b'{"id":"e1","name":"Ada","amount":%s,"event_time":"%s"}'
PLAIN_EDGES: list[bytes | None] = [
    None,
    b"",
    b"   ",
    b'{"id":"e1","name":"\xc3\x28","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'[{"id":"e1"}]',
    b'"just text"',
    b'{"id":5,"name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":true,"amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":{"first":"Ada"},"amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","n\\u0061me":5,"amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"} {"x":1}',
    b'{"id":"e1","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}]',
    b'{"id":"e1","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}}',
    b'{"id":"e1","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"},',
    b'{"id":"e1","name":"Ada","amount":NaN,"event_time":"2026-11-21T10:15:00Z"}',
    b"{'id':'e1','name':'Ada','amount':1.00,'event_time':'2026-11-21T10:15:00Z'}",
    b'{"id":"\\ud800","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"\\u00e9\\ud83d\\ude00","name":"Ad\xc3\xa9","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"Ada","amount":null,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z","extra":[1,{"a":NaN}]}',
    *[
        PLAIN % (amount, stamp)
        for amount, stamp in [
            (b'"19.99"', b"2026-11-21T10:15:00Z"),
            (b'"19,99"', b"2026-11-21T10:15:00Z"),
            (b"19.999999999999999999", b"2026-11-21T10:15:00Z"),
            (b"2.82879384806159E17", b"2026-11-21T10:15:00Z"),
            (b"12.345", b"2026-11-21T10:15:00Z"),
            (b"1e2", b"2026-11-21T10:15:00Z"),
            (b"12345678.5", b"2026-11-21T10:15:00Z"),
            (b"0.001", b"2026-11-21T10:15:00Z"),
            (b"-0.0", b"2026-11-21T10:15:00Z"),
            (b"1234567890123456.78", b"2026-11-21T10:15:00Z"),
            (b"12345678901234567", b"2026-11-21T10:15:00Z"),
            (b"true", b"2026-11-21T10:15:00Z"),
            (b"1.00", b"2026-11-21T10:15:00"),
            (b"1.00", b"2026-11-21T10:15:00.123456+05:30"),
            (b"1.00", b"2026-11-21T10:15:00.1234567Z"),
            (b"1.00", b"2026-02-30T10:15:00Z"),
            (b"1.00", b"2026-11-21T24:00:00Z"),
            (b"1.00", b"2026-11-21T10:15:00+19:00"),
            (b"1.00", b"2026-11-21 10:15:00Z"),
            (b"1.00", b"0000-01-01T10:15:00Z"),
            (b"1.00", b"2026-11-21T10:15:00Z\\n"),
        ]
    ],
]


#: Valid records in unusual but exact forms: the JVM certifier must take them itself.
PLAIN_CERTIFIED: list[bytes] = [
    PLAIN % (b"1", b"2026-11-21T10:15:00.1Z"),
    PLAIN % (b"-0", b"2026-11-21T10:15:00.12345-00:00"),
    PLAIN % (b'"0019.50"', b"2026-11-21T23:15:00+17:59"),
    PLAIN % (b"12345678.5", b"2026-11-21T00:15:00.000001-17:30"),
    PLAIN % (b"0.01", b"2026-11-21T10:15:00+18:00"),
    PLAIN % (b'"-9999999999999999.99"', b"2026-11-21T10:15:00Z"),
    PLAIN % (b"1234567890123456.7", b"2026-11-21T10:15:00Z"),
    PLAIN % (b"2", b"2026-11-21T23:15:00.5-23:59"),
    b' \n{"id":"e1","extra":{"deep":[1,2.5e300,"x",null,true]},"name":"A\\u00e9\xc3\xa9",'
    b'"amount":0.5,"event_time":"2026-11-21T10:15:00-05:00"}\t',
    b'{"id":"e1","name":"A\xf0\x9f\x98\x80","amount":1,"event_time":"2026-11-21T10:15:00Z"}',
    # Spark skips unknown fields as the certifier does, never converting their numbers.
    b'{"id":"e1","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z","n":1e999999}',
]

#: Records only the reference may decide: duplicate keys, a BOM, text that is not
#: strict UTF-8 or holds raw control characters, numbers the certifier does not read.
PLAIN_ROUTED: list[bytes] = [
    b'{"id":"e1","id":"e2","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"Ada","amount":1.00,"amount":2.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'\xef\xbb\xbf{"id":"e1","name":"Ada","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"A\xc0\xafa","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"A\xed\xa0\x80","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"A\xf4\x90\x80\x80","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"A\x01","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"Ada","amount":"1.0E2","event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"","amount":1.00,"event_time":"2026-11-21T10:15:00Z"}',
    b'{"id":"e1","name":"Ada","amount":1.00,"event_time":"0001-01-01T00:15:00+01:00"}',
    b'{"id":"e1","name":"Ada","amount":1.00,"event_time":"9999-12-31T23:15:00-01:00"}',
]


def order(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "event_id": "3d55d6e9-e28e-4857-9242-bc0713efd51f",
        "event_type": "order_created",
        "event_time": "2026-11-21T10:15:00Z",
        "order_id": "PO-000123",
        "version": 3,
        "status": "created",
        "currency": "EUR",
        "customer": {
            "customer_id": "C-42",
            "name": "Ada",
            "country": "DE",
            "tier": "gold",
            "contact_info": {"email": "ada@example.com", "phone": "+49"},
        },
        "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "19.99", "discount": "0.10"}],
        "totals": {"subtotal": "35.98", "tax": "6.84", "shipping": "4.90", "total": "47.72"},
    }
    for dotted, value in changes.items():
        *parents, name = dotted.split("__")
        node: Any = document
        for parent in parents:
            node = node[int(parent)] if parent.isdigit() else node[parent]
        if value is _DELETE:
            del node[name]
        else:
            node[name] = value
    return json.dumps(document).encode()


_DELETE = object()

#: Valid orders in unusual but exact forms: the JVM certifier must take them itself.
ORDER_CERTIFIED: list[bytes] = [
    order(),
    order(items__0__unit_price=19.99, totals__shipping=4.9),
    order(customer__contact_info=None, customer__loyalty={"points": [1, 2]}),
    order(customer__contact_info__email=None, items__0__note="gift"),
    # 0.05 * 0.5 = 0.025 rounds half up to 0.03, within 0.01 of 0.04 (0.02 would not be).
    order(
        items=[{"sku": "S", "quantity": 1, "unit_price": "0.05", "discount": "0.5"}],
        totals={"subtotal": "0.04", "tax": "0", "shipping": "0.00", "total": "0.04"},
    ),
]

ORDER_EDGES: list[bytes | None] = [
    None,
    b"",
    *ORDER_CERTIFIED,
    # 0.025 rounds half up to 0.03, 0.02 away from 0.01 (0.02 would be within 0.01).
    order(
        items=[{"sku": "S", "quantity": 1, "unit_price": "0.05", "discount": "0.5"}],
        totals={"subtotal": "0.01", "tax": "0", "shipping": "0.00", "total": "0.01"},
    ),
    order().replace(b'"version": 3', b'"version": 3, "version": 4'),
    order().replace(b'"tier": "gold"', b'"tier": "gold", "tier": "silver"'),
    order(version=-0),
    order(items__0__quantity=0),
    order(items__0__quantity=True),
    order(customer__name=["Ada"]),
    order(items=[{"sku": "S", "quantity": 1, "unit_price": "1.00", "discount": "0"}, None]),
    order(totals__subtotal=35.98),
    order(version="3"),
    order(version=3.0),
    order(version=2**63),
    order(version=0),
    order(items={"sku": "SKU-1"}),
    order(items=[]),
    order(items=[None]),
    order(items=[5]),
    order(customer=_DELETE),
    order(customer=None),
    order(customer="C-42"),
    order(customer__tier=_DELETE),
    order(customer__contact_info=None),
    order(customer__contact_info=5),
    order(customer__contact_info__email=7),
    order(customer__country="de"),
    order(customer__country="DE\n"),
    order(currency="EU\u2028"),
    order(status="lost"),
    order(items__0__quantity=-3),
    order(items__0__quantity="2"),
    order(items__0__unit_price=19.99),
    order(items__0__unit_price="19.999"),
    order(items__0__discount="1.5"),
    order(items__0__discount="0.12345"),
    order(totals__total="47.73"),
    order(totals__subtotal="36.00", totals__total="47.74"),
    order(totals__subtotal="35.99", totals__total="47.73"),
    order(totals__tax=None),
    order(event_time="2026-11-21T10:15:00"),
    order(event_id="3D55D6E9-E28E-4857-9242-BC0713EFD51F"),
]


@pytest.fixture(scope="module")
def contracts() -> dict[str, Contract]:
    return {name: load_contract(CONTRACTS / f"{name}.yaml") for name in MALFORMATIONS}


def values_of(dataset: str) -> list[bytes | None]:
    generated: list[bytes | None] = [record.value for record in generate(dataset, SPEC)]
    if dataset == "plain":
        return generated + PLAIN_EDGES + PLAIN_CERTIFIED + PLAIN_ROUTED
    return generated + ORDER_EDGES


def frame(spark: SparkSession, values: Sequence[bytes | None]) -> DataFrame:
    return spark.createDataFrame(list(enumerate(values)), "id long, value binary")


def as_python(value: Any) -> Any:
    """A collected Spark value in the reference evaluator's terms (UTC-aware timestamps)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    if isinstance(value, dict):
        return {k: as_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_python(v) for v in value]
    return value


@pytest.fixture(params=["false", "true"], ids=["ansi-off", "ansi-on"])
def ansi(spark: SparkSession, request: pytest.FixtureRequest) -> Iterator[str]:
    before = spark.conf.get("spark.sql.ansi.enabled") or "false"
    spark.conf.set("spark.sql.ansi.enabled", request.param)
    yield request.param
    spark.conf.set("spark.sql.ansi.enabled", before)


def verdict_mismatches(
    spark: SparkSession, contract: Contract, values: Sequence[bytes | None]
) -> list[tuple[Any, ...]]:
    """Rows whose Spark verdict or typed payload differs from the reference's."""
    rows = parse_payload(contract, frame(spark, values)).collect()
    assert len(rows) == len(values)
    mismatches = []
    for row in rows:
        expected = classify(contract, values[row.id])
        violation = None if row.violation is None else tuple(row.violation)
        payload = None if row.payload is None else as_python(row.payload.asDict(recursive=True))
        wanted = None if expected.violation is None else tuple(expected.violation)
        if violation != wanted or payload != expected.payload:
            mismatches.append((values[row.id], violation, wanted, payload, expected.payload))
    return mismatches


@pytest.mark.parametrize("dataset", ["plain", "purchase_orders"])
def test_spark_verdicts_equal_the_reference_on_every_row(
    spark: SparkSession, contracts: dict[str, Contract], dataset: str, ansi: str
) -> None:
    mismatches = verdict_mismatches(spark, contracts[dataset], values_of(dataset))
    assert not mismatches, mismatches[:3]


def certified_ids(spark: SparkSession, contract: Contract, values: list[bytes]) -> set[int]:
    staged = spark_validation._certify(validation._plan(contract), frame(spark, values), "value")
    return {row.id for row in staged.where(spark_validation._CERTIFIED).select("id").collect()}


@pytest.mark.parametrize("dataset", ["plain", "purchase_orders"])
def test_valid_records_are_certified_in_the_jvm(
    spark: SparkSession, contracts: dict[str, Contract], dataset: str
) -> None:
    contract = contracts[dataset]
    records = list(generate(dataset, SPEC))
    edges = PLAIN_CERTIFIED if dataset == "plain" else ORDER_CERTIFIED
    values = [r.value for r in records] + edges
    valid = {i for i, record in enumerate(records) if not record.is_malformed}
    valid |= set(range(len(records), len(values)))
    assert all(classify(contract, values[i]).violation is None for i in valid)
    assert certified_ids(spark, contract, values) == valid


def test_records_only_the_reference_can_decide_are_not_certified(
    spark: SparkSession, contracts: dict[str, Contract]
) -> None:
    assert certified_ids(spark, contracts["plain"], PLAIN_ROUTED) == set()


def test_without_the_certifier_every_record_is_judged_in_python(
    spark: SparkSession, contracts: dict[str, Contract], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session without the UDF jar (a cluster it was not shipped to) loses speed only."""
    import resources.spark.udfs

    contract = contracts["purchase_orders"]
    generated = [record.value for record in generate("purchase_orders", SPEC)][:200]
    values: list[bytes | None] = [*ORDER_EDGES, *generated]
    monkeypatch.setattr(resources.spark.udfs, "has_class", lambda spark, name: False)
    assert certified_ids(spark, contract, [v for v in values if v is not None]) == set()
    assert not verdict_mismatches(spark, contract, values)


#: A contract with what the shipped ones do not use: integer enums, an int32, a double
#: and a float32, ranges, string and array lengths, dates, booleans, scalar arrays.
KITCHEN = """
apiVersion: v3.1.0
kind: DataContract
id: urn:lakehouse:contract:kitchen
name: kitchen
version: 1.0.0
status: active
schema:
  - name: event
    physicalType: topic
    properties:
      - {name: id, logicalType: string, required: true, primaryKey: true,
         logicalTypeOptions: {minLength: 2, maxLength: 8, pattern: "^k[0-9]+$"}}
      - {name: priority, logicalType: integer, physicalType: int,
         logicalTypeOptions: {enum: [1, 2, 3]}}
      - {name: score, logicalType: number, physicalType: double,
         logicalTypeOptions: {minimum: -1.5, maximum: 1e3}}
      - {name: weight, logicalType: number, physicalType: float}
      - name: level
        logicalType: integer
        quality:
          - {id: level_in_range, description: Levels run from 0 to 10.,
             mustBeBetween: [0, 10], severity: error}
      - {name: active, logicalType: boolean}
      - {name: day, logicalType: date, required: true, partitioned: true}
      - {name: tags, logicalType: array, logicalTypeOptions: {minItems: 1, maxItems: 3},
         items: {logicalType: string}}
      - {name: counts, logicalType: array, items: {logicalType: integer}}
      - name: where
        logicalType: object
        properties:
          - {name: city, logicalType: string, required: true}
          - {name: zip, logicalType: string}
  - name: kitchen
    physicalType: table
    properties:
      - {name: id, logicalType: string, required: true, primaryKey: true}
      - {name: day, logicalType: date, required: true, partitioned: true}
"""


def kitchen(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "id": "k1",
        "priority": 2,
        "score": 0.5,
        "level": 3,
        "active": True,
        "day": "2026-11-21",
        "tags": ["a"],
        "counts": [1, 2],
        "where": {"city": "Oslo", "zip": "0150"},
    }
    for name, value in changes.items():
        if value is _DELETE:
            del document[name]
        else:
            document[name] = value
    return json.dumps(document).encode()


#: Valid records the certifier takes, valid ones it leaves to Python, invalid ones.
KITCHEN_CERTIFIED = [
    kitchen(),
    kitchen(priority=3, score=-1.5, level=0, active=False, tags=["a", "b", "c"], counts=[]),
    kitchen(score=1000, level=10, where=None, day="2024-02-29"),
    kitchen(where={"city": "Oslo"}, score="0.25", priority=None),
    b'{"id":"k12","day":"2026-11-21"}',
]
KITCHEN_ROUTED_VALID = [kitchen(weight=1.5), kitchen().replace(b'"score": 0.5', b'"score": 1e2')]
KITCHEN_INVALID = [
    kitchen(priority=4),
    kitchen(priority="2"),
    kitchen(priority=2.0),
    kitchen(level=11),
    kitchen(level=-1),
    kitchen(score=1000.5),
    kitchen(tags=[]),
    kitchen(tags=["a", "b", "c", "d"]),
    kitchen(tags=["a", 1]),
    kitchen(counts=[1, None]),
    kitchen(counts=[1.5]),
    kitchen(where={"zip": "0150"}),
    kitchen(where="Oslo"),
    kitchen(day="2026-02-30"),
    kitchen(day=_DELETE),
    kitchen(id="k"),
    kitchen(id="kabc"),
    kitchen(id="k1234567890"),
    kitchen(active="true"),
]


def test_rule_kinds_the_shipped_contracts_do_not_use_agree_too(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = tmp_path / "kitchen.yaml"
    path.write_text(KITCHEN)
    contract = load_contract(path)
    values = [*KITCHEN_CERTIFIED, *KITCHEN_ROUTED_VALID, *KITCHEN_INVALID]
    verdicts = [classify(contract, value).violation for value in values]
    assert verdicts[: -len(KITCHEN_INVALID)] == [None] * (len(values) - len(KITCHEN_INVALID))
    assert all(verdicts[-len(KITCHEN_INVALID) :])
    assert certified_ids(spark, contract, values) == set(range(len(KITCHEN_CERTIFIED)))
    mismatches = verdict_mismatches(spark, contract, values)
    assert not mismatches, mismatches[:3]


def test_output_columns_and_types(spark: SparkSession, contracts: dict[str, Contract]) -> None:
    out = parse_payload(contracts["purchase_orders"], frame(spark, [order()]))
    fields = {f.name: f.dataType.simpleString() for f in out.schema.fields}
    assert fields["violation"] == "struct<rule_id:string,reason:string>"
    payload = fields["payload"]
    for piece in (
        "event_time:timestamp",
        "version:bigint",
        "items:array<struct<sku:string,quantity:bigint,unit_price:decimal(18,2),discount:decimal(5,4)>>",
        "totals:struct<subtotal:decimal(18,2)",
        "contact_info:struct<email:string,phone:string>",
    ):
        assert piece in payload
    assert out.columns == ["id", "value", "payload", "violation"]
