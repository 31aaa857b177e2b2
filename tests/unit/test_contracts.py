"""Data contracts: the shipped ones load, and every malformation names file, line and key."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse_assets.contracts.document import ChildLinesSumTo, LinesSumTo, SumEquals
from lakehouse_assets.contracts.errors import ContractError
from lakehouse_assets.contracts.loading import load_contract, load_contracts

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"

# A small valid contract; each malformation below edits one spot of it and marks
# the line the error must point at with `#!`.
BASE = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:demo
name: demo
version: 1.0.0
status: active
schema:
  - name: sales
    physicalType: table
    sequenceColumn: version
    properties:
      - name: id
        logicalType: string
        required: true
        primaryKey: true
      - name: version
        logicalType: integer
        required: true
      - name: amount
        logicalType: number
        physicalType: decimal(18,2)
        logicalTypeOptions:
          minimum: 0
          maximum: 100
      - name: fee
        logicalType: number
        physicalType: decimal(18,2)
      - name: total
        logicalType: number
        physicalType: decimal(18,2)
      - name: code
        logicalType: string
        logicalTypeOptions:
          pattern: "^[A-Z]{3}$"
      - name: sold_at
        logicalType: timestamp
        required: true
    quality:
      - id: total_adds_up
        description: amount + fee = total.
        rule: sum_equals
        arguments:
          terms: [amount, fee]
          equals: total
        severity: error
slaProperties:
  - property: latency
    value: 2
    unit: h
    element: sales.sold_at
"""


def _write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _edit(old: str, new: str) -> tuple[str, int]:
    """BASE with ``old`` replaced by ``new``, and the 1-based line marked ``#!`` in it."""
    assert BASE.count(old) == 1, old
    text = BASE.replace(old, new)
    marked = [number for number, line in enumerate(text.splitlines(), 1) if "#!" in line]
    assert len(marked) == 1, new
    return text, marked[0]


# --------------------------------------------------------------------------- shipped contracts


def test_shipped_contracts_load_keyed_by_dataset() -> None:
    contracts = load_contracts(CONTRACTS_DIR)
    assert set(contracts) == {"plain", "purchase_orders", "weather"}
    assert contracts["purchase_orders"].tables == [
        "order_events",
        "orders",
        "order_lines",
        "customers",
    ]
    assert contracts["plain"].tables == ["plain"]
    assert contracts["purchase_orders"].payload == "event"


def test_quarantine_table_follows_the_dataset_and_the_late_window_stays_in_config() -> None:
    contract = load_contract(CONTRACTS_DIR / "purchase_orders.yaml")
    assert contract.quarantine_table == "purchase_orders_quarantine"
    # config/lakehouse.yaml owns the late window; a contract may only restate it.
    assert contract.late_window_days is None


def test_plain_arrow_schema_has_decimal_money_and_utc_timestamps() -> None:
    schema = load_contract(CONTRACTS_DIR / "plain.yaml").arrow_schema("plain")
    assert schema.names == ["id", "name", "amount", "event_time", "event_date"]
    assert schema.field("event_date").type == pa.date32()
    assert schema.field("amount").type == pa.decimal128(18, 2)
    assert schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert not schema.field("id").nullable


def test_purchase_order_tables_have_typed_money_and_nullable_optional_columns() -> None:
    contract = load_contract(CONTRACTS_DIR / "purchase_orders.yaml")
    orders = contract.arrow_schema("orders")
    for money in ("subtotal", "tax", "shipping", "total"):
        assert orders.field(money).type == pa.decimal128(18, 2)
    assert orders.field("version").type == pa.int64()
    assert orders.field("event_time").type == pa.timestamp("us", tz="UTC")
    customers = contract.arrow_schema("customers")
    assert customers.field("email").nullable
    assert not customers.field("customer_id").nullable


def test_payload_arrow_schema_nests_objects_and_arrays() -> None:
    schema = load_contract(CONTRACTS_DIR / "purchase_orders.yaml").arrow_schema("event")
    items = schema.field("items").type
    assert isinstance(items, pa.ListType)
    item = items.value_type
    assert item.field("unit_price").type == pa.decimal128(18, 2)
    assert item.field("quantity").type == pa.int64()
    customer = schema.field("customer").type
    assert customer.field("contact_info").type == pa.struct(
        [pa.field("email", pa.string()), pa.field("phone", pa.string())]
    )


def test_keys_name_natural_key_and_sequence_column() -> None:
    contract = load_contract(CONTRACTS_DIR / "purchase_orders.yaml")
    assert contract.keys("orders").primary_key == ("order_id",)
    assert contract.keys("orders").sequence_column == "version"
    assert contract.keys("order_lines").primary_key == ("order_id", "line_number")
    assert contract.keys("customers").primary_key == ("customer_id",)
    assert contract.keys("event").primary_key == ("event_id",)


def test_payload_required_fields_cover_every_top_level_field() -> None:
    contract = load_contract(CONTRACTS_DIR / "purchase_orders.yaml")
    required = contract.required_columns("event")
    for name in ("event_id", "event_type", "event_time", "order_id", "version", "status"):
        assert name in required
    for name in ("currency", "customer", "items", "totals", "items.quantity", "totals.total"):
        assert name in required
    assert "customer.contact_info.email" not in required


def test_payload_row_rules_express_every_quarantine_reason() -> None:
    rules = {
        rule.id: rule
        for rule in load_contract(CONTRACTS_DIR / "purchase_orders.yaml").row_rules("event")
    }
    assert rules["parseable"].kind == "parseable"
    assert rules["order_id.required"].kind == "required"
    assert rules["version.type"].kind == "type"
    assert rules["status.allowed_values"].value == (
        "created",
        "paid",
        "shipped",
        "cancelled",
        "refunded",
    )
    assert rules["currency.pattern"].value == "^[A-Z]{3}$"
    quantity = rules["positive_quantity"]
    assert (quantity.column, quantity.operator, quantity.value) == ("items.quantity", ">=", 1)
    assert quantity.severity == "error"
    assert isinstance(rules["totals_add_up"].arguments, SumEquals)
    lines = rules["lines_add_up_to_subtotal"].arguments
    assert isinstance(lines, LinesSumTo)
    assert lines.tolerance == Decimal("0.01")
    assert next(iter(rules)) == "parseable"


def test_table_rules_check_key_uniqueness_row_counts_and_freshness() -> None:
    contract = load_contract(CONTRACTS_DIR / "purchase_orders.yaml")
    rules = {rule.id: rule for rule in contract.table_rules("orders")}
    assert rules["primary_key.unique"].columns == ("order_id",)
    assert rules["event_id.unique"].columns == ("event_id",)
    assert (rules["orders_row_count"].minimum, rules["orders_row_count"].maximum) == (
        0,
        5_000_000,
    )
    assert rules["freshness"].max_delay == timedelta(hours=2)
    assert isinstance(rules["order_lines_add_up_to_subtotal"].arguments, ChildLinesSumTo)
    # A payload's key is its dedupe key: repeats are expected there, not a failed check.
    assert not [r for r in contract.table_rules("event") if r.kind == "unique"]


def test_unknown_table_is_an_error_naming_the_known_ones() -> None:
    contract = load_contract(CONTRACTS_DIR / "plain.yaml")
    with pytest.raises(ContractError, match="no object 'nope'"):
        contract.arrow_schema("nope")


# --------------------------------------------------------------------------- malformations


def test_base_contract_is_valid(tmp_path: Path) -> None:
    contract = load_contract(_write(tmp_path, BASE))
    assert contract.dataset == "demo"
    assert contract.late_window_days is None


MALFORMATIONS = {
    "unknown key": (
        "        required: true\n        primaryKey: true\n",
        "        requried: true  #!\n        primaryKey: true\n",
        "requried",
        "unknown key",
    ),
    "missing key": (
        "      - name: fee\n        logicalType: number\n",
        "      - name: fee  #!\n",
        "logicalType",
        "required key is missing",
    ),
    "unknown logical type": (
        "      - name: code\n        logicalType: string\n",
        "      - name: code\n        logicalType: text  #!\n",
        "logicalType",
        "'text'",
    ),
    "unknown severity": (
        "        severity: error\n",
        "        severity: fatal  #!\n",
        "severity",
        "'error' or 'warning'",
    ),
    "invalid regex": (
        '          pattern: "^[A-Z]{3}$"\n',
        '          pattern: "^[A-Z"  #!\n',
        "pattern",
        "invalid regular expression",
    ),
    "minimum above maximum": (
        "          minimum: 0\n",
        "          minimum: 500  #!\n",
        "minimum",
        "greater than maximum",
    ),
    "duplicate column": (
        "      - name: fee\n",
        "      - name: amount  #!\n",
        "name",
        "duplicate column 'amount'",
    ),
    "sequence column not in schema": (
        "    sequenceColumn: version\n",
        "    sequenceColumn: revision  #!\n",
        "sequenceColumn",
        "unknown column 'revision'",
    ),
    "key column nested": (
        "      - name: sold_at\n        logicalType: timestamp\n        required: true\n",
        "      - name: sold_at\n        logicalType: timestamp\n        required: true\n"
        "      - name: meta\n        logicalType: object\n        properties:\n"
        "          - name: ref\n            logicalType: string\n"
        "            primaryKey: true  #!\n",
        "primaryKey",
        "only top-level",
    ),
    "rule references unknown column": (
        "          terms: [amount, fee]\n",
        "          terms: [amount, tip]  #!\n",
        "arguments.terms[1]",
        "unknown column 'tip'",
    ),
    "unknown built-in rule": (
        "        rule: sum_equals\n",
        "        rule: totals_balance  #!\n",
        "rule",
        "unknown built-in rule 'totals_balance'",
    ),
    "unknown argument of a built-in": (
        "          equals: total\n",
        "          equals: total\n          tolerence: 0.01  #!\n",
        "tolerence",
        "unknown key",
    ),
    "comparison on a text column": (
        '          pattern: "^[A-Z]{3}$"\n',
        '          pattern: "^[A-Z]{3}$"\n        quality:\n'
        "          - id: code_positive  #!\n            description: x\n"
        "            mustBeGreaterThan: 0\n            severity: error\n",
        "quality[0]",
        "integer or number",
    ),
    "between bounds reversed": (
        "        physicalType: decimal(18,2)\n      - name: total\n",
        "        physicalType: decimal(18,2)\n        quality:\n"
        "          - id: fee_bounded\n            description: x\n"
        "            mustBeBetween: [10, 1]  #!\n            severity: warning\n"
        "      - name: total\n",
        "mustBeBetween",
        "lower bound 10 is greater than upper bound 1",
    ),
    "duplicate rule id": (
        "slaProperties:\n",
        "      - id: total_adds_up  #!\n        description: again\n"
        "        metric: rowCount\n        mustBeGreaterThan: 0\n        severity: error\n"
        "slaProperties:\n",
        "id",
        "duplicate rule id 'total_adds_up'",
    ),
    "physical type does not fit": (
        "      - name: code\n        logicalType: string\n",
        "      - name: code\n        logicalType: string\n        physicalType: decimal(18,2)  #!\n",
        "physicalType",
        "does not fit logicalType 'string'",
    ),
    "decimal scale above precision": (
        "      - name: fee\n        logicalType: number\n        physicalType: decimal(18,2)\n",
        "      - name: fee\n        logicalType: number\n        physicalType: decimal(2,4)  #!\n",
        "physicalType",
        "scale <= precision",
    ),
    "sla on unknown column": (
        "    element: sales.sold_at\n",
        "    element: sales.shipped_at  #!\n",
        "element",
        "unknown column 'sales.shipped_at'",
    ),
    "unknown sla property": (
        "  - property: latency\n",
        "  - property: retention  #!\n",
        "property",
        "'latency' or 'lateWindow'",
    ),
    "duplicate yaml key": (
        "    physicalType: table\n",
        "    physicalType: table\n    physicalType: topic  #!\n",
        "physicalType",
        "duplicate key",
    ),
    "invalid yaml": (
        "      - name: total\n",
        "      - name: total\n\tlogicalType: number  #!\n",
        "<yaml>",
        "not valid YAML",
    ),
    "dataset name not the file name": (
        "name: demo\n",
        "name: other  #!\n",
        "name",
        "must live in other.yaml",
    ),
    "built-in of payloads on a table": (
        "        rule: sum_equals\n",
        "        rule: lines_sum_to  #!\n",
        "rule",
        "does not apply to silver tables",
    ),
    "unknown kind": (
        "kind: DataContract\n",
        "kind: Contract  #!\n",
        "kind",
        "'DataContract'",
    ),
}


@pytest.mark.parametrize(("old", "new", "key", "reason"), MALFORMATIONS.values(), ids=MALFORMATIONS)
def test_malformed_contract_names_file_line_and_key(
    tmp_path: Path, old: str, new: str, key: str, reason: str
) -> None:
    text, line = _edit(old, new)
    path = _write(tmp_path, text)
    with pytest.raises(ContractError) as caught:
        load_contract(path)
    error = caught.value
    assert error.path == path
    assert error.line == line
    assert key in error.key
    assert reason in error.reason
    assert f"{path}:{line}: " in str(error)


def test_unclosed_bracket_names_where_it_opened(tmp_path: Path) -> None:
    text, opened = _edit("          terms: [amount, fee]\n", "          terms: [amount, fee  #!\n")
    with pytest.raises(ContractError) as caught:
        load_contract(_write(tmp_path, text))
    # YAML notices on the next line; the reason says where the bracket opened.
    assert caught.value.line == opened + 1
    assert f"started on line {opened}" in caught.value.reason


def test_every_problem_is_reported_with_its_own_line(tmp_path: Path) -> None:
    text = BASE.replace("    sequenceColumn: version\n", "    sequenceColumn: revision\n").replace(
        "          terms: [amount, fee]\n", "          terms: [amount, tip]\n"
    )
    with pytest.raises(ContractError) as caught:
        load_contract(_write(tmp_path, text))
    lines = [problem.line for problem in caught.value.problems]
    assert lines == [10, 43]


def test_missing_file_is_a_contract_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "absent.yaml")
