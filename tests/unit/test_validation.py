"""The reference evaluator (first_violation / classify) as the specification of payload validity."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.contracts.model import Contract
from lakehouse_assets.silver.validation import Violation, classify, first_violation
from lakehouse_dev.generator.records import MALFORMATIONS, generate
from lakehouse_dev.generator.spec import GeneratorSpec

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
SPEC = GeneratorSpec(count=1500, days=3, end_date=date(2026, 11, 20), malformed_share=0.05)


@pytest.fixture(scope="module")
def plain() -> Contract:
    return load_contract(CONTRACTS / "plain.yaml")


@pytest.fixture(scope="module")
def orders() -> Contract:
    return load_contract(CONTRACTS / "purchase_orders.yaml")


def plain_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "e1",
        "name": "Ada",
        "amount": Decimal("12.50"),
        "event_time": "2026-11-21T10:15:00Z",
    }
    event.update(changes)
    return event


def order_event() -> dict[str, Any]:
    return {
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
        "items": [
            {"sku": "SKU-1", "quantity": 2, "unit_price": "19.99", "discount": "0.10"},
        ],
        "totals": {"subtotal": "35.98", "tax": "6.84", "shipping": "4.90", "total": "47.72"},
    }


def encode(document: Any) -> bytes:
    return json.dumps(document, default=str).encode()


def rule_of(contract: Contract, value: bytes | None) -> str | None:
    violation = first_violation(contract, value)
    return None if violation is None else violation.rule_id


# Valid events ----------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["plain", "purchase_orders"])
def test_every_generated_record_gets_the_verdict_its_kind_promises(dataset: str) -> None:
    contract = load_contract(CONTRACTS / f"{dataset}.yaml")
    seen = set()
    for record in generate(dataset, SPEC):
        violation = first_violation(contract, record.value)
        assert (violation is not None) == record.is_malformed, (record.kind, violation)
        seen.add(record.kind)
    assert {f"malformed:{reason}" for reason in MALFORMATIONS[dataset]} <= seen


def test_a_valid_event_yields_typed_values(orders: Contract) -> None:
    verdict = classify(orders, encode(order_event()))
    assert verdict.violation is None
    assert verdict.payload is not None
    assert verdict.payload["event_time"] == datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
    assert verdict.payload["version"] == 3
    line = verdict.payload["items"][0]
    assert (line["unit_price"], line["discount"]) == (Decimal("19.99"), Decimal("0.1000"))
    assert verdict.payload["totals"]["total"] == Decimal("47.72")


@pytest.mark.parametrize("amount", ['"12.50"', '"12.5"', "12.5", "12.500", "1.25e1", "125E-1"])
def test_money_may_travel_as_a_number_or_a_decimal_string(plain: Contract, amount: str) -> None:
    value = b'{"id":"e1","name":"Ada","amount":%s,"event_time":"2026-11-21T10:15:00Z"}'
    verdict = classify(plain, value % amount.encode())
    assert verdict.payload is not None
    assert verdict.payload["amount"] == Decimal("12.50")


def test_timestamps_with_an_offset_become_utc(plain: Contract) -> None:
    verdict = classify(plain, encode(plain_event(event_time="2026-11-21T10:15:00.5+02:00")))
    assert verdict.payload is not None
    assert verdict.payload["event_time"] == datetime(2026, 11, 21, 8, 15, 0, 500000, tzinfo=UTC)


# parseable --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "payload is null"),
        (b"", "payload is empty"),
        (b'{"id": "\xc3\x28"}', "payload is not valid UTF-8 (byte 0xc3 at offset 8)"),
        (b"[1, 2]", "payload is a JSON array, not an object"),
        (b'"text"', "payload is a JSON string, not an object"),
        (b"null", "payload is a JSON null, not an object"),
    ],
)
def test_unparseable_payloads_name_the_problem(
    plain: Contract, value: bytes | None, reason: str
) -> None:
    assert first_violation(plain, value) == Violation("parseable", reason)


@pytest.mark.parametrize(
    "value",
    [
        b'{"id": "e1"',  # truncated
        b'{"id": "e1"} {"id": "e2"}',  # trailing content
        b"{'id': 'e1'}",  # single quotes
        b'{"amount": NaN}',  # not a JSON number
        b'{"id": "a\tb"}',  # raw control character
        b'\xef\xbb\xbf{"id": "e1"}',  # byte-order mark
        b'{"id": "\\ud800"}',  # unpaired surrogate escape
    ],
)
def test_what_strict_json_refuses_is_not_parseable(plain: Contract, value: bytes) -> None:
    assert rule_of(plain, value) == "parseable"


# required, type ---------------------------------------------------------------------------


def test_a_missing_nested_field_is_named_by_its_path(orders: Contract) -> None:
    event = order_event()
    del event["customer"]["tier"]
    assert first_violation(orders, encode(event)) == Violation(
        "customer.tier.required", "missing required field customer.tier"
    )


def test_a_null_required_field_is_a_violation(plain: Contract) -> None:
    assert rule_of(plain, encode(plain_event(name=None))) == "name.required"


def test_children_of_an_absent_optional_object_are_not_required(orders: Contract) -> None:
    event = order_event()
    event["customer"]["contact_info"] = None
    assert first_violation(orders, encode(event)) is None


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"name": 5}, "name.type"),
        ({"name": True}, "name.type"),
        ({"amount": "12,50"}, "amount.type"),
        ({"amount": "12.505"}, "amount.type"),
        ({"amount": "1e3"}, "amount.type"),
        ({"amount": "12345678901234567.00"}, "amount.type"),
        ({"amount": True}, "amount.type"),
        ({"event_time": "2026-11-21T10:15:00"}, "event_time.type"),
        ({"event_time": "2026-02-30T10:15:00Z"}, "event_time.type"),
        ({"event_time": "2026-11-21T10:15:00.1234567Z"}, "event_time.type"),
        ({"event_time": 1763720100}, "event_time.type"),
    ],
)
def test_values_of_the_wrong_type(plain: Contract, changes: dict[str, Any], rule: str) -> None:
    assert rule_of(plain, encode(plain_event(**changes))) == rule


@pytest.mark.parametrize("amount", ["12.505", "1e17", "12.3456789012345678901"])
def test_numbers_must_be_exact_in_the_decimal_column(plain: Contract, amount: str) -> None:
    value = b'{"id":"e1","name":"Ada","amount":%s,"event_time":"2026-11-21T10:15:00Z"}'
    assert rule_of(plain, value % amount.encode()) == "amount.type"


def test_a_type_reason_shows_the_value_and_the_expected_type(orders: Contract) -> None:
    event = order_event()
    event["version"] = "3"
    assert first_violation(orders, encode(event)) == Violation(
        "version.type", 'version is "3", must be an integer'
    )


@pytest.mark.parametrize("version", [3.0, 3.5, True, 2**63])
def test_integers_are_json_integers_within_int64(orders: Contract, version: Any) -> None:
    event = order_event()
    event["version"] = version
    assert rule_of(orders, encode(event)) == "version.type"


@pytest.mark.parametrize(
    ("items", "rule"),
    [
        ({"sku": "SKU-1"}, "items.type"),
        ([None], "items.type"),
        ([5], "items.type"),
        ([], "items.length"),
    ],
)
def test_items_are_a_non_empty_array_of_objects(orders: Contract, items: Any, rule: str) -> None:
    event = order_event()
    event["items"] = items
    assert rule_of(orders, encode(event)) == rule


def test_an_object_in_place_of_a_string(orders: Contract) -> None:
    event = order_event()
    event["customer"] = "C-42"
    assert first_violation(orders, encode(event)) == Violation(
        "customer.type", 'customer is "C-42", must be an object'
    )


# allowed values, pattern, comparison, length -------------------------------------------------


def test_a_value_outside_the_enum(orders: Contract) -> None:
    event = order_event()
    event["status"] = "lost"
    assert first_violation(orders, encode(event)) == Violation(
        "status.allowed_values",
        'status is "lost", must be one of created, paid, shipped, cancelled, refunded',
    )


def test_a_value_not_matching_its_pattern(orders: Contract) -> None:
    event = order_event()
    event["currency"] = "eur"
    assert first_violation(orders, encode(event)) == Violation(
        "currency.pattern", 'currency is "eur", must match ^[A-Z]{3}$'
    )


def test_a_negative_quantity_names_the_line(orders: Contract) -> None:
    event = order_event()
    event["items"].append(dict(event["items"][0], quantity=-3))
    assert first_violation(orders, encode(event)) == Violation(
        "positive_quantity", "items[1].quantity is -3, must be >= 1"
    )


def test_a_discount_out_of_range(orders: Contract) -> None:
    event = order_event()
    event["items"][0]["discount"] = "1.5"
    assert first_violation(orders, encode(event)) == Violation(
        "items.discount.range", "items[0].discount is 1.5, must be between 0 and 1"
    )


def test_an_empty_id_is_too_short(plain: Contract) -> None:
    assert first_violation(plain, encode(plain_event(id=""))) == Violation(
        "id.length", "id has length 0, must be >= 1"
    )


# built-in rules -----------------------------------------------------------------------------


def test_totals_that_do_not_add_up(orders: Contract) -> None:
    event = order_event()
    event["totals"]["total"] = "47.73"
    assert first_violation(orders, encode(event)) == Violation(
        "totals_add_up",
        "totals.subtotal + totals.tax + totals.shipping = 47.72, totals.total is 47.73",
    )


def test_lines_that_do_not_add_up_to_the_subtotal(orders: Contract) -> None:
    event = order_event()
    event["totals"].update(subtotal="36.00", total="47.74")
    assert first_violation(orders, encode(event)) == Violation(
        "lines_add_up_to_subtotal",
        "sum of items quantity * unit_price * (1 - discount) = 35.98, totals.subtotal is 36.00",
    )


def test_lines_within_the_tolerance_pass(orders: Contract) -> None:
    event = order_event()
    event["totals"].update(subtotal="35.99", total="47.73")
    assert first_violation(orders, encode(event)) is None


def test_rules_are_checked_in_contract_order(orders: Contract) -> None:
    event = order_event()
    event["status"] = "lost"
    event["items"][0]["quantity"] = -1
    assert rule_of(orders, encode(event)) == "status.allowed_values"
