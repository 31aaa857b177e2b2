"""Contract check evaluators on hand-made Arrow tables: each rule kind passing and failing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.contracts.document import ChildLinesSumTo, SumEquals
from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.contracts.model import RowRule, TableRule
from lakehouse_assets.silver.check_evaluators import (
    RuleOutcome,
    check_result,
    child_lines_mismatches,
    duplicate_keys,
    evaluate_freshness,
    evaluate_row_counts,
    evaluate_row_rules,
    evaluate_unique,
    row_rule_failures,
    schema_problems,
)
from lakehouse_assets.silver.checks import CHECK_ROW_RULES, CHECK_SCHEMA, build_contract_checks
from lakehouse_assets.silver.table_checks import (
    CHECK_FRESHNESS,
    CHECK_ROW_COUNT,
    CHECK_UNIQUE,
    builtin_check_name,
)

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
MONEY = pa.decimal128(18, 2)
RATE = pa.decimal128(5, 4)


def rule(kind: str, column: str | None = "x", **kwargs: object) -> RowRule:
    return RowRule(f"r_{kind}", "test rule", "error", kind, column, **kwargs)  # type: ignore[arg-type]


def failing(table: pa.Table, row_rule: RowRule) -> list[bool]:
    return row_rule_failures(table, row_rule).to_pylist()


# --------------------------------------------------------------------------- row rules


def test_required_fails_on_null_only() -> None:
    table = pa.table({"x": ["a", None, ""]})
    assert failing(table, rule("required")) == [False, True, False]


def test_required_fails_every_row_when_the_column_is_missing() -> None:
    table = pa.table({"y": [1, 2]})
    assert evaluate_row_rules(table, [rule("required")]) == {"r_required": 2}


def test_required_nested_field_fails_only_where_its_parent_exists() -> None:
    parent = pa.array(
        [{"email": "a@b"}, {"email": None}, None],
        pa.struct([("email", pa.string())]),
    )
    table = pa.table({"contact": parent})
    assert failing(table, rule("required", "contact.email")) == [False, True, False]


def test_allowed_values_pass_nulls_and_listed_values() -> None:
    table = pa.table({"x": ["paid", "lost", None, "created"]})
    allowed = rule("allowed_values", value=("created", "paid"))
    assert failing(table, allowed) == [False, True, False, False]


def test_allowed_values_on_integers() -> None:
    table = pa.table({"x": pa.array([1, 2, 3], pa.int32())})
    assert failing(table, rule("allowed_values", value=(1, 3))) == [False, True, False]


def test_pattern_is_a_search_and_nulls_pass() -> None:
    table = pa.table({"x": ["EUR", "eur", "EURO", None]})
    assert failing(table, rule("pattern", value="^[A-Z]{3}$")) == [False, True, True, False]


def test_pattern_beyond_re2_falls_back_to_python_re() -> None:
    table = pa.table({"x": ["PO-1", "PX-1", None]})
    lookahead = rule("pattern", value=r"^(?=P)PO-\d+$")
    assert failing(table, lookahead) == [False, True, False]


def test_comparison_on_decimals_with_decimal_bound() -> None:
    prices = pa.array([Decimal("0.00"), Decimal("-0.01"), None, Decimal("5.10")], MONEY)
    table = pa.table({"x": prices})
    assert failing(table, rule("comparison", operator=">=", value=Decimal(0))) == [
        False,
        True,
        False,
        False,
    ]


def test_between_is_inclusive() -> None:
    rates = pa.array([Decimal("0"), Decimal("1"), Decimal("1.0001"), Decimal("-0.5")], RATE)
    between = rule("comparison", operator="between", value=(Decimal(0), Decimal(1)))
    assert failing(pa.table({"x": rates}), between) == [False, False, True, True]


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("==", Decimal(2), [True, False, True]),
        ("!=", Decimal(2), [False, True, False]),
        (">", Decimal(2), [True, True, False]),
        ("<", Decimal(2), [False, True, True]),
        ("<=", Decimal("2.5"), [False, False, True]),
    ],
)
def test_comparison_operators_on_integers(
    operator: str, value: Decimal, expected: list[bool]
) -> None:
    table = pa.table({"x": pa.array([1, 2, 3], pa.int64())})
    assert failing(table, rule("comparison", operator=operator, value=value)) == expected


def test_comparison_on_floats() -> None:
    table = pa.table({"x": [0.5, 1.5]})
    assert failing(table, rule("comparison", operator=">=", value=Decimal(1))) == [True, False]


def test_length_of_strings_and_lists() -> None:
    table = pa.table({"x": ["", "ab", None], "items": [[], [1, 2], None]})
    assert failing(table, rule("length", operator=">=", value=1)) == [True, False, False]
    items = rule("length", "items", operator="between", value=(1, 1))
    assert failing(table, items) == [True, True, False]


def test_sum_equals_exact_on_decimals() -> None:
    table = pa.table(
        {
            "subtotal": pa.array([Decimal("35.98"), Decimal("10.00"), None], MONEY),
            "tax": pa.array([Decimal("6.84"), Decimal("1.90"), Decimal("1")], MONEY),
            "shipping": pa.array([Decimal("4.90"), Decimal("0.00"), Decimal("1")], MONEY),
            "total": pa.array([Decimal("47.72"), Decimal("11.91"), Decimal("2")], MONEY),
        }
    )
    totals = rule(
        "sum_equals",
        None,
        arguments=SumEquals(terms=["subtotal", "tax", "shipping"], equals="total"),
    )
    # A null term leaves the sum undecided: it passes (the required rule reports it).
    assert failing(table, totals) == [False, True, False]


def test_sum_equals_within_tolerance() -> None:
    table = pa.table(
        {
            "a": pa.array([Decimal("1.00"), Decimal("1.00")], MONEY),
            "b": pa.array([Decimal("1.01"), Decimal("1.02")], MONEY),
        }
    )
    within = rule(
        "sum_equals",
        None,
        arguments=SumEquals(terms=["a"], equals="b", tolerance=Decimal("0.01")),
    )
    assert failing(table, within) == [False, True]


def test_evaluate_row_rules_counts_per_rule() -> None:
    table = pa.table({"x": ["EUR", None, "usd"]})
    rules = [
        RowRule("x.required", "", "error", "required", "x"),
        RowRule("x.pattern", "", "error", "pattern", "x", value="^[A-Z]{3}$"),
    ]
    assert evaluate_row_rules(table, rules) == {"x.required": 1, "x.pattern": 1}


def test_a_missing_column_passes_every_rule_but_required() -> None:
    table = pa.table({"y": [1]})
    rules = [rule("pattern", value="^a$"), rule("comparison", operator=">", value=Decimal(1))]
    assert evaluate_row_rules(table, rules) == {"r_pattern": 0, "r_comparison": 0}


def test_an_empty_table_fails_nothing() -> None:
    table = pa.table({"x": pa.array([], pa.string())})
    assert evaluate_row_rules(table, [rule("required"), rule("pattern", value="a")]) == {
        "r_required": 0,
        "r_pattern": 0,
    }


# --------------------------------------------------------------------------- keys


def test_duplicate_keys_lists_repeated_keys_and_ignores_null_keys() -> None:
    table = pa.table(
        {
            "order_id": ["A", "A", "B", "C", None, None],
            "line": [1, 1, 1, 1, 1, 1],
        }
    )
    duplicated = duplicate_keys(table, ["order_id", "line"])
    assert duplicated.to_pylist() == [{"order_id": "A", "line": 1, "rows": 2}]


def test_evaluate_unique_per_rule() -> None:
    table = pa.table({"id": ["a", "b", "b"], "sku": ["s", "s", "t"]})
    rules = [
        TableRule("primary_key.unique", "", "error", "unique", ("id",)),
        TableRule("sku.unique", "", "warning", "unique", ("sku",)),
        TableRule("pair.unique", "", "warning", "unique", ("id", "sku")),
    ]
    assert evaluate_unique(table, rules) == {
        "primary_key.unique": 1,
        "sku.unique": 1,
        "pair.unique": 0,
    }


def test_unique_on_decimal_keys() -> None:
    table = pa.table({"k": pa.array([Decimal("1.10"), Decimal("1.10"), Decimal("1.20")], MONEY)})
    assert duplicate_keys(table, ["k"]).num_rows == 1


# --------------------------------------------------------------------------- counts, freshness


def test_row_count_bounds_per_partition() -> None:
    rules = [
        TableRule("at_most_two", "", "warning", "row_count", (), None, 2),
        TableRule("at_least_one", "", "error", "row_count", (), 1, None),
    ]
    counts = {"2026-01-01": 3, "2026-01-02": 0, "2026-01-03": 2}
    assert evaluate_row_counts(counts, rules) == {
        "at_most_two": ["2026-01-01"],
        "at_least_one": ["2026-01-02"],
    }


def test_freshness_against_the_time_of_the_check() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert evaluate_freshness(now - timedelta(hours=1), now, timedelta(hours=2)) == (
        True,
        timedelta(hours=1),
    )
    assert evaluate_freshness(now - timedelta(hours=3), now, timedelta(hours=2)) == (
        False,
        timedelta(hours=3),
    )
    assert evaluate_freshness(None, now, timedelta(hours=2)) == (False, None)


def test_freshness_reads_naive_timestamps_as_utc_and_dates_as_their_end() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert evaluate_freshness(datetime(2026, 3, 1, 11), now, timedelta(hours=2))[0]
    assert evaluate_freshness(date(2026, 2, 28), now, timedelta(hours=13))[0]
    assert not evaluate_freshness(date(2026, 2, 28), now, timedelta(hours=11))[0]


# --------------------------------------------------------------------------- child lines


LINES_RULE = ChildLinesSumTo(
    lines_table="order_lines",
    key=["order_id"],
    quantity="quantity",
    unit_price="unit_price",
    discount="discount",
    equals="subtotal",
    tolerance=Decimal("0.01"),
)


def orders(subtotals: dict[str, str | None]) -> pa.Table:
    return pa.table(
        {
            "order_id": list(subtotals),
            "subtotal": pa.array(
                [Decimal(v) if v is not None else None for v in subtotals.values()], MONEY
            ),
        }
    )


def lines(rows: list[tuple[str, int, str, str]]) -> pa.Table:
    return pa.table(
        {
            "order_id": [r[0] for r in rows],
            "quantity": pa.array([r[1] for r in rows], pa.int64()),
            "unit_price": pa.array([Decimal(r[2]) for r in rows], MONEY),
            "discount": pa.array([Decimal(r[3]) for r in rows], RATE),
        }
    )


def test_child_lines_add_up_with_rounding_half_up() -> None:
    # 2 * 19.99 * 0.9 = 35.982 -> 35.98; 1 * 0.01 * 0.5 = 0.005 -> 0.01 (half up).
    parents = orders({"A": "35.98", "B": "0.01"})
    children = lines([("A", 2, "19.99", "0.1000"), ("B", 1, "0.01", "0.5000")])
    strict = LINES_RULE.model_copy(update={"tolerance": Decimal(0)})
    assert child_lines_mismatches(parents, children, strict).num_rows == 0


def test_child_lines_that_do_not_add_up_are_reported_with_both_sums() -> None:
    parents = orders({"A": "40.00", "B": "10.00", "C": "0.00", "D": "5.00", "E": None})
    children = lines(
        [
            ("A", 2, "19.99", "0.1000"),  # 35.98, not 40.00
            ("B", 1, "10.00", "0"),
            ("B", 1, "0.01", "0"),  # 10.01: within 0.01
            # C and D have no lines: C sums to 0 as it says, D does not.
        ]
    )
    mismatches = child_lines_mismatches(parents, children, LINES_RULE)
    assert sorted(mismatches.to_pylist(), key=lambda r: r["order_id"]) == [
        {"order_id": "A", "expected": Decimal("40.00"), "lines_total": Decimal("35.98")},
        {"order_id": "D", "expected": Decimal("5.00"), "lines_total": Decimal("0.00")},
    ]


def test_child_lines_with_float_columns() -> None:
    parents = pa.table({"order_id": ["A"], "subtotal": [3.0]})
    children = pa.table(
        {"order_id": ["A", "A"], "quantity": [1, 1], "unit_price": [1.0, 2.5], "discount": [0, 0]}
    )
    mismatches = child_lines_mismatches(parents, children, LINES_RULE)
    assert mismatches.column("lines_total").to_pylist() == [3.5]


# --------------------------------------------------------------------------- schema


EXPECTED = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("n", pa.int32()),
        pa.field("amount", MONEY),
        pa.field("at", pa.timestamp("us", tz="UTC")),
    ]
)


def test_compatible_schema_allows_wider_types_and_extra_columns() -> None:
    actual = pa.schema(
        [
            ("id", pa.large_string()),
            ("n", pa.int64()),
            ("amount", pa.decimal128(38, 2)),
            ("at", pa.timestamp("ns", tz="UTC")),
            ("event_date", pa.date32()),
        ]
    )
    assert schema_problems(actual, EXPECTED) == {}


def test_schema_problems_name_the_column_and_the_reason() -> None:
    actual = pa.schema(
        [
            ("n", pa.int16()),
            ("amount", pa.decimal128(18, 4)),
            ("at", pa.timestamp("us")),
        ]
    )
    problems = schema_problems(actual, EXPECTED)
    assert set(problems) == {"id", "n", "amount", "at"}
    assert problems["id"] == "missing (expected string)"
    assert problems["amount"] == "is decimal128(18, 4), expected decimal128(18, 2)"
    assert "time zone" in problems["at"]


# --------------------------------------------------------------------------- results, factory


def test_check_result_severity_follows_the_failing_rules() -> None:
    ok = RuleOutcome("a", "error", "", 0)
    warned = RuleOutcome("b", "warning", "", 2, ("k1", "k2"))
    errored = RuleOutcome("c", "error", "", 1, ({"id": "x", "n": 1},))

    passed = check_result([ok])
    assert passed.passed
    assert passed.severity == dg.AssetCheckSeverity.ERROR
    only_warning = check_result([ok, warned])
    assert not only_warning.passed
    assert only_warning.severity == dg.AssetCheckSeverity.WARN
    both = check_result([ok, warned, errored])
    assert both.severity == dg.AssetCheckSeverity.ERROR
    assert both.metadata["failing"].value == {"a": 0, "b": 2, "c": 1}
    assert both.metadata["sample_failing_keys"].value == {
        "b": ["k1", "k2"],
        "c": [{"id": "x", "n": 1}],
    }


def test_factory_generates_one_check_per_kind_with_blocking_by_severity() -> None:
    contract = load_contract(CONTRACTS_DIR / "purchase_orders.yaml")
    partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
    orders_key = dg.AssetKey(["silver", "orders"])
    checks = build_contract_checks(contract, "orders", orders_key, partitions)
    specs = {spec.name: spec for c in checks for spec in c.check_specs}
    assert set(specs) == {
        CHECK_SCHEMA,
        CHECK_ROW_RULES,
        CHECK_UNIQUE,
        CHECK_ROW_COUNT,
        CHECK_FRESHNESS,
        builtin_check_name("order_lines_add_up_to_subtotal"),
    }
    assert {name for name, spec in specs.items() if spec.blocking} == {
        CHECK_SCHEMA,
        CHECK_ROW_RULES,
        CHECK_UNIQUE,
        builtin_check_name("order_lines_add_up_to_subtotal"),
    }
    assert {name for name, spec in specs.items() if spec.partitions_def is not None} == {
        CHECK_ROW_RULES,
        CHECK_UNIQUE,
        CHECK_ROW_COUNT,
        builtin_check_name("order_lines_add_up_to_subtotal"),
    }
    lines_check = specs[builtin_check_name("order_lines_add_up_to_subtotal")]
    assert [d.asset_key for d in lines_check.additional_deps] == [
        dg.AssetKey(["silver", "order_lines"])
    ]


def test_table_wide_keys_make_the_uniqueness_check_unpartitioned() -> None:
    contract = load_contract(CONTRACTS_DIR / "purchase_orders.yaml")
    partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
    checks = build_contract_checks(
        contract,
        "customers",
        dg.AssetKey(["silver", "customers"]),
        partitions,
        table_wide_keys=True,
    )
    specs = {spec.name: spec for c in checks for spec in c.check_specs}
    assert specs[CHECK_UNIQUE].partitions_def is None
    assert specs[CHECK_ROW_RULES].partitions_def == partitions


def test_factory_refuses_a_table_the_contract_does_not_have() -> None:
    contract = load_contract(CONTRACTS_DIR / "plain.yaml")
    with pytest.raises(ValueError, match="'event' is not a silver table"):
        build_contract_checks(contract, "event", dg.AssetKey(["silver", "event"]), None)
