"""Contract checks on real Iceberg tables: run with the asset, per partition, blocking on errors.

The test assets write small ``orders`` and ``order_lines`` tables of the
purchase_orders contract (under test-specific table names) through the Iceberg
IO manager; the generated checks read them back with pyiceberg.
"""

# No `from __future__ import annotations`: Dagster reads the assets' annotations.
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.contracts.model import Contract
from lakehouse_assets.silver.checks import CHECK_ROW_RULES, CHECK_SCHEMA, build_contract_checks
from lakehouse_assets.silver.table_checks import (
    CHECK_FRESHNESS,
    CHECK_ROW_COUNT,
    CHECK_UNIQUE,
    builtin_check_name,
)
from resources.iceberg.io_manager import IcebergIOManager
from resources.settings import LakehouseSettings

pytestmark = pytest.mark.integration

CONTRACT_PATH = Path(__file__).resolve().parents[2] / "contracts" / "purchase_orders.yaml"
PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
DAY, NEXT_DAY = "2026-01-02", "2026-01-03"
IO_KEY = "iceberg_io_manager"
LINES_CHECK = builtin_check_name("order_lines_add_up_to_subtotal")
#: The time the freshness check measures against: an hour after DAY's events (10:00).
CHECKED_AT = datetime(2026, 1, 2, 11, tzinfo=UTC)
#: Runs reaching one of the newest 3 days (as of the check's clock) judge freshness.
CURRENT_DAYS = 3

Row = dict[str, Any]


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(CONTRACT_PATH)


@pytest.fixture
def io_manager(resources: Any, settings: LakehouseSettings) -> IcebergIOManager:
    return IcebergIOManager(
        catalog=resources.iceberg,
        namespaces={str(k): v for k, v in settings.catalog.namespaces.items()},
        retry_base_seconds=0.01,
    )


def order(order_id: str, day: str, **changes: Any) -> Row:
    """A valid order of ``day``: one line of 2 * 19.99 at 10% off (35.98)."""
    row: Row = {
        "order_id": order_id,
        "version": 1,
        "event_id": f"e-{order_id}-{day}",
        "event_type": "order_created",
        "event_time": datetime.fromisoformat(day).replace(hour=10, tzinfo=UTC),
        "status": "created",
        "currency": "EUR",
        "customer_id": "C-1",
        "country": "DE",
        "subtotal": Decimal("35.98"),
        "tax": Decimal("6.84"),
        "shipping": Decimal("4.90"),
        "total": Decimal("47.72"),
    }
    row.update(changes)
    return row


def line(order_id: str, number: int = 1, **changes: Any) -> Row:
    row: Row = {
        "order_id": order_id,
        "line_number": number,
        "version": 1,
        "sku": f"SKU-{number}",
        "quantity": 2,
        "unit_price": Decimal("19.99"),
        "discount": Decimal("0.1000"),
    }
    row.update(changes)
    return row


def arrow(contract: Contract, table: str, rows: Sequence[Row], day: date) -> pa.Table:
    """``rows`` of ``day`` in the contract's schema, nullable so that bad rows can be written."""
    schema = pa.schema([f.with_nullable(True) for f in contract.arrow_schema(table)])
    return pa.Table.from_pylist([{**r, "event_date": day} for r in rows], schema=schema)


@dataclass
class Silver:
    """Test orders/order_lines assets, their contract checks and a downstream gold asset."""

    orders_key: dg.AssetKey
    lines_key: dg.AssetKey
    assets: list[Any]
    io_manager: IcebergIOManager

    def check_alone(self, check_name: str) -> dg.ExecuteInProcessResult:
        """One check of the orders table on its own, as its job or the UI's "Execute" runs it."""
        return dg.materialize(
            self.assets,
            resources={IO_KEY: self.io_manager},
            raise_on_error=False,
            selection=dg.AssetSelection.checks(dg.AssetCheckKey(self.orders_key, check_name)),
        )

    def run(self, days: Sequence[str]) -> dg.ExecuteInProcessResult:
        """One day as the UI materialises a partition; several as a single-run backfill."""
        if len(days) == 1:
            return dg.materialize(
                self.assets,
                resources={IO_KEY: self.io_manager},
                raise_on_error=False,
                partition_key=days[0],
            )
        return dg.materialize(
            self.assets,
            resources={IO_KEY: self.io_manager},
            raise_on_error=False,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )


def build_silver(
    contract: Contract,
    io_manager: IcebergIOManager,
    orders: dict[str, list[Row]],
    lines: dict[str, list[Row]],
    *,
    table_wide_keys: bool = False,
    checked_at: datetime = CHECKED_AT,
) -> Silver:
    """Assets writing ``orders[day]`` / ``lines[day]`` for each day of the run."""
    prefix = f"t_{uuid.uuid4().hex[:8]}"
    orders_key = dg.AssetKey(["silver", f"{prefix}_orders"])
    lines_key = dg.AssetKey(["silver", f"{prefix}_order_lines"])

    def rows_of(context: dg.AssetExecutionContext, table: str, data: dict[str, list[Row]]) -> Any:
        tables = [
            arrow(contract, table, data.get(key, []), date.fromisoformat(key))
            for key in context.partition_keys
        ]
        return pa.concat_tables(tables)

    @dg.asset(
        key=orders_key,
        partitions_def=PARTITIONS,
        metadata={"partition_expr": "event_date"},
        io_manager_key=IO_KEY,
    )
    def orders_asset(context: dg.AssetExecutionContext) -> pa.Table:
        return rows_of(context, "orders", orders)

    @dg.asset(
        key=lines_key,
        partitions_def=PARTITIONS,
        metadata={"partition_expr": "event_date"},
        io_manager_key=IO_KEY,
    )
    def lines_asset(context: dg.AssetExecutionContext) -> pa.Table:
        return rows_of(context, "order_lines", lines)

    @dg.asset(key=["gold", f"{prefix}_sales"], partitions_def=PARTITIONS, deps=[orders_key])
    def sales() -> None:
        return None

    checks = [
        *build_contract_checks(
            contract,
            "orders",
            orders_key,
            PARTITIONS,
            table_wide_keys=table_wide_keys,
            related_assets={"order_lines": lines_key},
            clock=lambda: checked_at,
            current_days=CURRENT_DAYS,
        ),
        *build_contract_checks(contract, "order_lines", lines_key, PARTITIONS),
    ]
    return Silver(orders_key, lines_key, [orders_asset, lines_asset, sales, *checks], io_manager)


def evaluations(
    result: dg.ExecuteInProcessResult, key: dg.AssetKey
) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == key}


def materialised(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        e.asset_key.path[0] + "/" + e.asset_key.path[-1].split("_", 2)[-1]
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }


def meta(evaluation: dg.AssetCheckEvaluation, key: str) -> Any:
    """A metadata value of a check evaluation."""
    value: Any = evaluation.metadata[key].value
    return value


def failing(evaluation: dg.AssetCheckEvaluation) -> dict[str, int]:
    """Failing count per rule, failing rules only."""
    return {k: v for k, v in meta(evaluation, "failing").items() if v}


def good_data() -> tuple[dict[str, list[Row]], dict[str, list[Row]]]:
    return (
        {DAY: [order("PO-1", DAY), order("PO-2", DAY)], NEXT_DAY: [order("PO-3", NEXT_DAY)]},
        {DAY: [line("PO-1"), line("PO-2")], NEXT_DAY: [line("PO-3")]},
    )


def test_good_partition_passes_every_check_in_the_assets_run(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    silver = build_silver(contract, io_manager, *good_data())
    result = silver.run([DAY])

    assert result.success
    orders_checks = evaluations(result, silver.orders_key)
    assert set(orders_checks) == {
        CHECK_SCHEMA,
        CHECK_ROW_RULES,
        CHECK_UNIQUE,
        CHECK_ROW_COUNT,
        CHECK_FRESHNESS,
        LINES_CHECK,
    }
    assert set(evaluations(result, silver.lines_key)) == {
        CHECK_SCHEMA,
        CHECK_ROW_RULES,
        CHECK_UNIQUE,
    }
    assert all(e.passed for e in result.get_asset_check_evaluations())
    # Partition-scoped checks record the partition; table-wide ones do not.
    assert orders_checks[CHECK_ROW_RULES].partition == DAY
    assert orders_checks[LINES_CHECK].partition == DAY
    assert orders_checks[CHECK_SCHEMA].partition is None
    assert orders_checks[CHECK_FRESHNESS].partition is None
    assert meta(orders_checks[CHECK_ROW_RULES], "rows_checked") == 2
    assert meta(orders_checks[CHECK_ROW_COUNT], "rows_by_partition") == {DAY: 2}
    assert "gold/sales" in materialised(result)


def test_ranged_run_checks_every_partition_of_its_window(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    silver = build_silver(contract, io_manager, *good_data())
    result = silver.run([DAY, NEXT_DAY])

    assert result.success
    checks = evaluations(result, silver.orders_key)
    assert meta(checks[CHECK_ROW_RULES], "rows_checked") == 3
    assert meta(checks[CHECK_ROW_COUNT], "rows_by_partition") == {DAY: 2, NEXT_DAY: 1}
    assert meta(checks[LINES_CHECK], "lines_checked") == 3
    # Dagster 1.13 records a ranged run's evaluation without a partition key.
    assert checks[CHECK_ROW_RULES].partition is None


def test_bad_rows_fail_the_right_rules_with_counts_and_sample_keys(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    orders = [
        order("PO-1", DAY),
        order("PO-1", DAY, event_id="e-dup"),  # duplicate key
        order("PO-2", DAY, currency=None),  # null required
        order("PO-3", DAY, tax=Decimal("-1.00"), total=Decimal("39.88")),  # out of range
        order("PO-4", DAY, total=Decimal("50.00")),  # totals do not add up
        order("PO-5", DAY, subtotal=Decimal("30.00"), total=Decimal("41.74")),  # lines don't
    ]
    lines = [line(f"PO-{i}") for i in range(1, 6)]
    silver = build_silver(contract, io_manager, {DAY: orders}, {DAY: lines})
    result = silver.run([DAY])

    assert not result.success
    checks = evaluations(result, silver.orders_key)
    rows = checks[CHECK_ROW_RULES]
    assert not rows.passed
    assert rows.severity == dg.AssetCheckSeverity.ERROR
    assert failing(rows) == {"currency.required": 1, "tax.range": 1, "order_totals_add_up": 1}
    samples = meta(rows, "sample_failing_keys")
    assert samples == {
        "currency.required": ["PO-2"],
        "tax.range": ["PO-3"],
        "order_totals_add_up": ["PO-4"],
    }
    unique = checks[CHECK_UNIQUE]
    assert failing(unique) == {"primary_key.unique": 1}
    assert meta(unique, "sample_failing_keys") == {"primary_key.unique": ["PO-1"]}
    lines_check = checks[LINES_CHECK]
    assert not lines_check.passed
    # PO-1's two rows both say 35.98 while its one line sums to 35.98: only PO-5 is off.
    assert failing(lines_check) == {"order_lines_add_up_to_subtotal": 1}
    [sample] = meta(lines_check, "sample_failing_keys")["order_lines_add_up_to_subtotal"]
    assert sample == {"order_id": "PO-5", "expected": "30.00", "lines_total": "35.98"}
    assert checks[CHECK_SCHEMA].passed
    assert meta(checks[CHECK_SCHEMA], "nullable_required_columns")


def test_blocking_failure_stops_the_downstream_asset_in_the_same_run(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    orders, lines = good_data()
    orders[DAY].append(order("PO-9", DAY, status="lost"))
    lines[DAY].append(line("PO-9"))
    silver = build_silver(contract, io_manager, orders, lines)
    result = silver.run([DAY])

    assert not result.success
    failed_steps = {e.step_key for e in result.get_step_failure_events()}
    assert failed_steps == {f"{silver.orders_key.to_python_identifier()}_{CHECK_ROW_RULES}"}
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert not any(key and "sales" in key for key in started)
    assert "gold/sales" not in materialised(result)
    assert "silver/orders" in materialised(result)


def test_warning_rules_fail_without_blocking(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    orders, lines = good_data()
    # One SKU twice in an order (one_line_per_sku is a warning, in the blocking key check).
    lines[DAY].append(line("PO-2", 2, sku="SKU-1", quantity=1, unit_price=Decimal("0.00")))
    silver = build_silver(contract, io_manager, orders, lines)
    result = silver.run([DAY])

    assert result.success
    unique = evaluations(result, silver.lines_key)[CHECK_UNIQUE]
    assert not unique.passed
    assert unique.severity == dg.AssetCheckSeverity.WARN
    assert failing(unique) == {"one_line_per_sku": 1}
    assert meta(unique, "sample_failing_keys") == {
        "one_line_per_sku": [{"order_id": "PO-2", "sku": "SKU-1"}]
    }
    assert "gold/sales" in materialised(result)


def test_freshness_applies_to_the_newest_data_not_the_run_partition(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    an_hour_after_next_day = CHECKED_AT + timedelta(days=1)
    silver = build_silver(contract, io_manager, *good_data(), checked_at=an_hour_after_next_day)
    newest = silver.run([NEXT_DAY])
    assert evaluations(newest, silver.orders_key)[CHECK_FRESHNESS].passed

    # Re-materialising an old day: the table's newest row is still an hour old.
    backfill = silver.run([DAY])
    freshness = evaluations(backfill, silver.orders_key)[CHECK_FRESHNESS]
    assert freshness.passed
    assert meta(freshness, "lag_seconds") == 3600.0


def test_stale_table_warns_without_blocking(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    orders, lines = good_data()
    a_day_later = CHECKED_AT + timedelta(days=1)
    silver = build_silver(
        contract, io_manager, {DAY: orders[DAY]}, {DAY: lines[DAY]}, checked_at=a_day_later
    )
    result = silver.run([DAY])

    assert result.success
    freshness = evaluations(result, silver.orders_key)[CHECK_FRESHNESS]
    assert not freshness.passed
    assert freshness.severity == dg.AssetCheckSeverity.WARN
    # The newest event is 2026-01-02 10:00, 25 hours before the check.
    assert meta(freshness, "lag_seconds") == timedelta(hours=25).total_seconds()
    assert "gold/sales" in materialised(result)


def test_a_backfill_of_old_days_leaves_freshness_unjudged_and_its_own_run_judges(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    orders, lines = good_data()
    ten_days_later = CHECKED_AT + timedelta(days=10)
    silver = build_silver(contract, io_manager, orders, lines, checked_at=ten_days_later)
    backfill = silver.run([DAY, NEXT_DAY])

    assert backfill.success
    judged = evaluations(backfill, silver.orders_key)
    assert CHECK_FRESHNESS not in judged  # skipped: the days rebuilt are history
    assert judged[CHECK_SCHEMA].passed  # the run's other checks still judge
    assert "gold/sales" in materialised(backfill)

    # The contract_freshness job (or the UI's "Execute") judges the table as it is.
    alone = silver.check_alone(CHECK_FRESHNESS)
    assert alone.success
    freshness = evaluations(alone, silver.orders_key)[CHECK_FRESHNESS]
    assert not freshness.passed
    assert freshness.severity == dg.AssetCheckSeverity.WARN


def test_a_table_never_written_is_not_fresh_and_its_check_run_does_not_fail(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    silver = build_silver(contract, io_manager, *good_data())
    alone = silver.check_alone(CHECK_FRESHNESS)

    assert alone.success  # the hourly job keeps running for a dataset just added
    freshness = evaluations(alone, silver.orders_key)[CHECK_FRESHNESS]
    assert not freshness.passed
    assert freshness.severity == dg.AssetCheckSeverity.WARN
    assert meta(freshness, "table_exists") is False
    assert meta(freshness, "newest") == "none"


def test_table_wide_keys_catch_a_key_repeated_in_another_partition(
    contract: Contract, io_manager: IcebergIOManager
) -> None:
    orders = {DAY: [order("PO-1", DAY)], NEXT_DAY: [order("PO-1", NEXT_DAY, version=2)]}
    lines = {DAY: [line("PO-1")], NEXT_DAY: [line("PO-1", version=2)]}
    per_partition = build_silver(contract, io_manager, orders, lines)
    per_partition.run([DAY])
    assert per_partition.run([NEXT_DAY]).success

    table_wide = build_silver(contract, io_manager, orders, lines, table_wide_keys=True)
    table_wide.run([DAY])
    result = table_wide.run([NEXT_DAY])
    assert not result.success
    unique = evaluations(result, table_wide.orders_key)[CHECK_UNIQUE]
    assert unique.partition is None
    assert failing(unique) == {"primary_key.unique": 1}
    assert meta(unique, "rows_checked") == 2
