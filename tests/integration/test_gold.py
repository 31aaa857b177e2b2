"""Gold end to end: Kafka → bronze → silver → dbt on Spark → Iceberg, real services.

Each test gets its own topic, dataset and silver and gold namespaces. Gold
figures are checked against aggregates computed here, in Python, from the
records the generator produced.
"""

import csv
import json
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.bronze.assets import build_bronze_asset, landing_run_config
from lakehouse_assets.gold.assets import build_gold_assets, gold_key
from lakehouse_assets.silver.assets import build_silver_asset
from lakehouse_dev.generator.records import expected_orders, generate
from lakehouse_dev.generator.spec import KIND_DUPLICATE, GeneratedRecord, GeneratorSpec
from lakehouse_dev.stack import LocalStack
from resources.dbt.project import dbt_project
from resources.environments import build_resources
from resources.settings import PROJECT_ROOT, load_settings
from tests.integration.conftest import failure_message
from tests.integration.test_silver import (
    DAY,
    SilverDataset,
    _at,
    _day,
    _make_dataset,
    order_event,
)

CENT = Decimal("0.01")


@dataclass
class Lakehouse:
    """One purchase-orders dataset through every layer, with gold in its own namespace."""

    dataset: SilverDataset
    seeded: bool = False

    @property
    def resources(self) -> dict[str, Any]:
        return self.dataset.resources

    def gold_assets(self) -> list[dg.AssetsDefinition]:
        settings = self.dataset.settings
        return build_gold_assets(settings, dbt_project(settings))

    def silver_asset(self) -> dg.AssetsDefinition:
        return build_silver_asset(self.dataset.settings, self.dataset.name)

    def gold_selection(self) -> dg.AssetSelection:
        """Every gold asset fed by the purchase-order silver tables (not the seeds)."""
        silver = dg.AssetSelection.assets(*self.silver_asset().keys)
        return silver.downstream() - silver

    def run(
        self, first: str, last: str | None = None, *, instance: dg.DagsterInstance | None = None
    ) -> None:
        """Land bronze, then build silver and gold for ``first``..``last`` (single runs)."""
        last = last or first
        self.dataset.land(first, last)
        tags = {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }
        silver = dg.materialize(
            [self.silver_asset()], resources=self.resources, tags=tags, instance=instance
        )
        assert silver.success
        self.gold(first, last, instance=instance)

    def gold(
        self, first: str, last: str | None = None, *, instance: dg.DagsterInstance | None = None
    ) -> dg.ExecuteInProcessResult:
        gold = self.gold_assets()
        models = [a for a in gold if a.partitions_def is not None]
        seeds = [a for a in gold if a.partitions_def is None]
        if not self.seeded:
            assert dg.materialize(seeds, resources=self.resources, instance=instance).success
            self.seeded = True
        silver = self.silver_asset()
        result = dg.materialize(
            [*models, *seeds, silver],
            selection=self.gold_selection(),
            resources=self.resources,
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last or first,
            },
            raise_on_error=False,
        )
        assert result.success, failure_message(result)
        return result

    def table(self, name: str) -> pa.Table:
        catalog = self.resources["iceberg"].load()
        namespace = self.dataset.settings.namespace("gold")
        return catalog.load_table((namespace, name)).scan().to_arrow()


@pytest.fixture
def lakehouse(stack: LocalStack, spark: Any, monkeypatch: pytest.MonkeyPatch) -> Lakehouse:
    monkeypatch.setenv("LAKEHOUSE__CATALOG__NAMESPACES__GOLD", f"gold_{uuid.uuid4().hex[:8]}")
    # Gold's days start with the dataset's (as with the default config), so silver and
    # gold of a day can run together: assets of one run share a partitions definition.
    monkeypatch.setenv("LAKEHOUSE__PARTITIONS__START_DATE", _day(-5))
    return Lakehouse(_make_dataset("contracts/purchase_orders.yaml"))


# --------------------------------------------------------------------------- the oracle


def _fx_rates() -> dict[str, list[tuple[date, Decimal]]]:
    """The seed's rates to the reporting currency, oldest first, per currency."""
    rates: defaultdict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    with (PROJECT_ROOT / "dbt" / "seeds" / "fx_rates.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["reporting_currency"] == "EUR":
                rates[row["currency"]].append(
                    (date.fromisoformat(row["valid_from"]), Decimal(row["rate"]))
                )
    return {currency: sorted(values) for currency, values in rates.items()}


def _rate(rates: dict[str, list[tuple[date, Decimal]]], currency: str, day: date) -> Decimal:
    return [rate for valid_from, rate in rates[currency] if valid_from <= day][-1]


def _accepted_documents(
    records: Iterable[GeneratedRecord], late_window: int
) -> list[dict[str, Any]]:
    """What silver accepts: clean records, once, that arrived within the late window."""
    documents = []
    for record in records:
        if record.is_malformed or record.kind == KIND_DUPLICATE:
            continue
        arrival = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC).date()
        event = datetime.fromtimestamp(record.event_time_ms / 1000, UTC).date()
        if (arrival - event).days > late_window:
            continue  # quarantined as `late`
        documents.append(json.loads(record.value, parse_float=Decimal))
    return documents


def expected_daily_sales(
    documents: Sequence[dict[str, Any]],
) -> dict[tuple[date, str], dict[str, Decimal]]:
    """fct_daily_sales computed from the accepted events (definitions: dbt/models/marts)."""
    rates = _fx_rates()
    by_order: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for document in documents:
        by_order[document["order_id"]].append(document)
    figures: defaultdict[tuple[date, str], defaultdict[str, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for events in by_order.values():
        latest = max(events, key=lambda e: e["version"])
        ordered = min(datetime.fromisoformat(e["event_time"]) for e in events).date()
        country, currency = latest["customer"]["country"], latest["currency"]
        subtotal = Decimal(latest["totals"]["subtotal"])
        day = figures[(ordered, country)]
        if latest["status"] == "cancelled":
            day["cancelled_orders"] += 1
        else:
            rate = _rate(rates, currency, ordered)
            day["orders"] += 1
            day["items"] += sum(item["quantity"] for item in latest["items"])
            day["gross_revenue"] += sum(
                item["quantity"] * Decimal(item["unit_price"]) * rate for item in latest["items"]
            )
            day["net_sales"] += subtotal * rate
        if latest["status"] == "refunded":
            refund = max(e["event_time"] for e in events if e["event_type"] == "order_refunded")
            refund_day = datetime.fromisoformat(refund).date()
            figures[(refund_day, country)]["refunds"] += subtotal * _rate(
                rates, currency, refund_day
            )
    result = {}
    for key, day in figures.items():
        values = {name: day[name] for name in ("orders", "cancelled_orders", "items")}
        for name in ("gross_revenue", "net_sales", "refunds"):
            values[name] = day[name].quantize(CENT, ROUND_HALF_UP)
        values["net_revenue"] = values["net_sales"] - values["refunds"]
        result[key] = values
    return result


def expected_customer_sales(documents: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """fct_customer_sales computed from the accepted events: fct_daily_sales' sales and
    refunds, per customer of the order's newest version."""
    rates = _fx_rates()
    by_order: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for document in documents:
        by_order[document["order_id"]].append(document)
    figures: defaultdict[str, defaultdict[str, Any]] = defaultdict(lambda: defaultdict(Decimal))
    for events in by_order.values():
        latest = max(events, key=lambda e: e["version"])
        ordered = min(datetime.fromisoformat(e["event_time"]) for e in events).date()
        customer, currency = latest["customer"]["customer_id"], latest["currency"]
        subtotal = Decimal(latest["totals"]["subtotal"])
        # A customer has a row once an order of theirs counts: a sale or a refund.
        if latest["status"] != "cancelled":
            figures[customer]["orders"] += 1
            figures[customer]["net_sales"] += subtotal * _rate(rates, currency, ordered)
            figures[customer].setdefault("days", []).append(ordered)
        if latest["status"] == "refunded":
            refund = max(e["event_time"] for e in events if e["event_type"] == "order_refunded")
            refund_day = datetime.fromisoformat(refund).date()
            figures[customer]["refunds"] += subtotal * _rate(rates, currency, refund_day)
    result = {}
    for customer, values in figures.items():
        net_sales = values["net_sales"].quantize(CENT, ROUND_HALF_UP)
        refunds = values["refunds"].quantize(CENT, ROUND_HALF_UP)
        days = values.get("days") or [None]
        result[customer] = {
            "orders": values["orders"],
            "net_sales": net_sales,
            "refunds": refunds,
            "net_revenue": net_sales - refunds,
            "first_order_date": min(days) if days != [None] else None,
            "last_order_date": max(days) if days != [None] else None,
        }
    return result


def _sales(table: pa.Table) -> dict[tuple[date, str], dict[str, Any]]:
    return {(row["sales_date"], row["country"]): row for row in table.to_pylist()}


# --------------------------------------------------------------------------- tests


def test_gold_daily_sales_match_the_generated_events(lakehouse: Lakehouse) -> None:
    spec = GeneratorSpec(count=3_000, days=5, end_date=DAY, seed=11)
    records = list(generate("purchase_orders", spec))
    lakehouse.dataset.produce(
        [(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)) for r in records]
    )
    first, last = spec.first_day.isoformat(), DAY.isoformat()
    lakehouse.run(first, last)

    expected = expected_daily_sales(_accepted_documents(records, late_window=3))
    actual = _sales(lakehouse.table("fct_daily_sales"))
    assert set(actual) == set(expected)
    for key, values in expected.items():
        row = actual[key]
        for name, value in values.items():
            assert row[name] == value, f"{name} of {key}: gold {row[name]}, expected {value}"
        if values["orders"]:
            aov = values["net_sales"] / values["orders"]
            assert abs(row["average_order_value"] - aov) <= CENT
        assert row["net_revenue"] <= row["gross_revenue"]

    customers = {r["customer_id"]: r for r in lakehouse.table("fct_customer_sales").to_pylist()}
    expected_customers = expected_customer_sales(_accepted_documents(records, late_window=3))
    assert set(customers) == set(expected_customers)
    for customer, values in expected_customers.items():
        for name, value in values.items():
            got = customers[customer][name]
            assert got == value, f"{name} of {customer}: gold {got}, expected {value}"

    orders = lakehouse.table("fct_orders")
    latest = expected_orders(records)
    accepted = {d["order_id"] for d in _accepted_documents(records, late_window=3)}
    assert len(orders) == len(accepted)
    statuses = dict(zip(orders["order_id"].to_pylist(), orders["status"].to_pylist(), strict=True))
    mismatched = [o for o in accepted if statuses[o] != latest[o]["status"]]
    assert len(mismatched) <= len(accepted) // 100  # only orders whose newest event came too late


def test_an_older_day_rebuilt_alone_keeps_each_order_and_its_lines_in_agreement(
    lakehouse: Lakehouse,
) -> None:
    # Order 1 is placed on day -2 with two lines and amended on day -1 (a line
    # removed, a lower subtotal); silver runs both days, then gold runs day -2 alone,
    # into empty tables, as one run per partition does (and as a UI re-run of an old
    # day after newer days ran). Silver holds only the newest version's lines.
    placed = order_event(
        1, 1, _at(-2), lines=(("SKU-1", 2, "10.00", "0"), ("SKU-2", 1, "50.00", "0"))
    )
    amended = order_event(1, 2, _at(-1), status="paid", lines=(("SKU-1", 2, "10.00", "0"),))
    lakehouse.dataset.produce([(placed, _at(-2)), (amended, _at(-1))])
    lakehouse.dataset.land(_day(-2), _day(-1))
    assert lakehouse.dataset.silver(_day(-2), _day(-1)).success

    lakehouse.gold(_day(-2))  # dbt's tests (net revenue <= gross revenue) pass

    orders = lakehouse.table("fct_orders").to_pylist()
    lines = lakehouse.table("fct_order_lines").to_pylist()
    assert [(o["order_id"], o["version"], o["subtotal"]) for o in orders] == [
        ("PO-000001", 2, Decimal("20.00"))
    ]
    assert [(line["line_number"], line["version"]) for line in lines] == [(1, 2)]
    assert sum(line["net_amount"] for line in lines) == orders[0]["subtotal"]
    sales = _sales(lakehouse.table("fct_daily_sales"))
    day = sales[(date.fromisoformat(_day(-2)), "DE")]
    assert (day["orders"], day["gross_revenue"], day["net_revenue"]) == (
        1,
        Decimal("20.00"),
        Decimal("20.00"),
    )


@pytest.mark.timeout(1800)  # three silver and gold runs, each starting dbt's own JVM
def test_late_events_update_sales_and_customer_history_through_automation(
    lakehouse: Lakehouse,
) -> None:
    """A refund of day 1 that arrives on day 2, from a customer whose tier changed:
    automation re-runs silver and gold of day 1, whose refunds and net revenue change
    (the order's own day keeps its sales), and the customer gets a second SCD2 row."""
    instance = dg.DagsterInstance.ephemeral()
    paid = order_event(1, 1, _at(0, 9), status="paid", tier="silver")
    lakehouse.dataset.produce([(paid, _at(0, 9))])
    lakehouse.run(_day(0), _day(1), instance=instance)
    before = _sales(lakehouse.table("fct_daily_sales"))
    assert before[(DAY, "DE")]["net_sales"] == Decimal("20.00")

    silver = lakehouse.silver_asset()
    gold = lakehouse.gold_assets()
    bronze = build_bronze_asset(lakehouse.dataset.settings, lakehouse.dataset.name)
    defs = dg.Definitions(assets=[bronze, silver, *gold], resources=lakehouse.resources)
    now = _at(2, 12)
    baseline = dg.evaluate_automation_conditions(defs, instance, evaluation_time=now)

    refund = order_event(1, 2, _at(1, 15), status="refunded", tier="gold")
    refund["event_type"] = "order_refunded"
    lakehouse.dataset.produce([(refund, _at(2, 1))])
    dg.materialize(
        [bronze],
        instance=instance,
        resources=lakehouse.resources,
        partition_key=_day(2),
        run_config=landing_run_config(lakehouse.dataset.name, "append"),
    )
    evaluation = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=now, cursor=baseline.cursor
    )
    orders_key = silver.keys_by_output_name["silver__orders"]
    silver_days = sorted(p for p in evaluation.get_requested_partitions(orders_key) if p)
    gold_days = sorted(
        p for p in evaluation.get_requested_partitions(gold_key("fct_daily_sales")) if p
    )
    # Bronze day 2 feeds silver days -1..2; gold follows on the same tick.
    assert silver_days == gold_days == [_day(d) for d in range(-1, 3)]
    # Run what automation asked for, as the daemon would: one run, silver then gold.
    result = dg.materialize(
        [silver, *gold],
        selection=dg.AssetSelection.assets(*silver.keys) | lakehouse.gold_selection(),
        resources=lakehouse.resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": silver_days[0],
            "dagster/asset_partition_range_end": silver_days[-1],
        },
        raise_on_error=False,
    )
    assert result.success, failure_message(result)

    after = _sales(lakehouse.table("fct_daily_sales"))
    assert after[(DAY + timedelta(days=1), "DE")]["refunds"] == Decimal("20.00")
    assert after[(DAY + timedelta(days=1), "DE")]["net_revenue"] == Decimal("-20.00")
    assert after[(DAY, "DE")]["net_sales"] == Decimal("20.00")
    assert after[(DAY, "DE")]["orders"] == 1

    history = sorted(
        (r for r in lakehouse.table("dim_customers").to_pylist() if r["customer_id"] == "C-1"),
        key=lambda r: r["valid_from"],
    )
    assert [(r["tier"], r["is_current"]) for r in history] == [("silver", False), ("gold", True)]
    assert history[0]["valid_to"] == history[1]["valid_from"]
    assert history[1]["valid_from"].replace(tzinfo=UTC) == _at(1, 15)
    assert history[1]["valid_to"] is None


def test_a_failing_blocking_silver_check_stops_gold_for_that_day(
    lakehouse: Lakehouse, tmp_path: Path
) -> None:
    # order_events, which fct_orders and fct_daily_sales read, gets an error rule that
    # every order breaks: no more than 0 lines (the raw payload's rules are unchanged,
    # so the events are accepted, and the table's row-rules check fails).
    text = (PROJECT_ROOT / "contracts" / "purchase_orders.yaml").read_text()
    line_count = "- name: line_count\n        logicalType: integer\n        required: true\n"
    assert text.count(line_count + "        logicalTypeOptions:\n          minimum: 1") == 1
    text = text.replace(
        line_count + "        logicalTypeOptions:\n          minimum: 1",
        line_count + "        logicalTypeOptions:\n          maximum: 0",
    )
    strict = tmp_path / "purchase_orders.yaml"
    strict.write_text(text)
    lakehouse.dataset.use_contract(strict)
    lakehouse.dataset.produce([(order_event(1, 1, _at(0, 9)), _at(0, 9))])
    lakehouse.dataset.land(_day(0), _day(0))

    silver = lakehouse.silver_asset()
    gold = lakehouse.gold_assets()
    result = dg.materialize(
        [silver, *gold],
        selection=dg.AssetSelection.assets(*silver.keys)
        | dg.AssetSelection.checks_for_assets(*silver.keys)
        | lakehouse.gold_selection(),
        resources=lakehouse.resources,
        partition_key=_day(0),
        raise_on_error=False,
    )
    failed = [
        (e.asset_check_evaluation_data.asset_key, e.asset_check_evaluation_data.check_name)
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and not e.asset_check_evaluation_data.passed
        and e.asset_check_evaluation_data.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert failed == [(silver.keys_by_output_name["silver__order_events"], "contract_row_rules")]
    gold_materialized = [
        e.asset_key
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None and e.asset_key.path[0] == "gold"
    ]
    assert gold_materialized == []


def test_a_broken_dbt_model_fails_the_run_with_dbts_message(
    stack: LocalStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "dbt"
    shutil.copytree(PROJECT_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "broken_model.sql").write_text(
        "select missing_column from (select 1 as id) as one_row\n"
    )
    monkeypatch.setenv("LAKEHOUSE__DBT__PROJECT_DIR", str(project))
    settings = load_settings("local")
    resources = build_resources(settings)
    gold = build_gold_assets(settings, dbt_project(settings))
    result = dg.materialize(
        gold,
        selection=[gold_key("broken_model")],
        resources=resources,
        partition_key=_day(0),
        raise_on_error=False,
    )
    assert not result.success
    message = failure_message(result)
    assert "broken_model" in message
    assert "missing_column" in message  # dbt's own error, from Spark's analyser
