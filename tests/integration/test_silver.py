"""Silver end to end: Kafka → bronze (S3 Parquet) → silver (Spark → Iceberg), real services.

Each test gets its own topic, dataset and silver namespace; records are produced
with chosen Kafka timestamps so that arrival days (bronze) and event days
(silver) differ exactly as the test needs.
"""

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from confluent_kafka.admin import NewTopic

from lakehouse_assets.bronze.assets import build_bronze_asset, landing_run_config
from lakehouse_assets.silver.assets import RECONCILIATION_CHECK, build_silver_asset
from lakehouse_dev.stack import LocalStack
from resources.environments import build_resources
from resources.iceberg.branches import run_branch
from resources.settings import PROJECT_ROOT, LakehouseSettings, load_settings

DAY = date(2026, 11, 10)


def _day(offset: int) -> str:
    return (DAY + timedelta(days=offset)).isoformat()


def _at(offset: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=UTC) + timedelta(days=offset)


def order_event(
    order: int,
    version: int,
    when: datetime,
    *,
    event_id: str | None = None,
    status: str = "created",
    tier: str = "gold",
    lines: tuple[tuple[str, int, str, str], ...] = (("SKU-1", 2, "10.00", "0"),),
    tax: str = "1.00",
    shipping: str = "2.00",
) -> dict[str, Any]:
    """A purchase-order event whose totals add up."""
    subtotal = sum(
        (
            Decimal(price) * quantity * (1 - Decimal(discount))
            for _, quantity, price, discount in lines
        ),
        Decimal(0),
    ).quantize(Decimal("0.01"))
    total = subtotal + Decimal(tax) + Decimal(shipping)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": "order_created" if version == 1 else "order_updated",
        "event_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "order_id": f"PO-{order:06d}",
        "version": version,
        "status": status,
        "currency": "EUR",
        "customer": {
            "customer_id": f"C-{order % 7}",
            "name": "Ada",
            "country": "DE",
            "tier": tier,
            "contact_info": {"email": "ada@example.com", "phone": "+49 30 1234"},
        },
        "items": [
            {"sku": sku, "quantity": quantity, "unit_price": price, "discount": discount}
            for sku, quantity, price, discount in lines
        ],
        "totals": {
            "subtotal": str(subtotal),
            "tax": tax,
            "shipping": shipping,
            "total": str(total),
        },
    }


def plain_event(ident: str, when: datetime, amount: str = "1.50", **extra: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "name": "n1",
        "amount": float(amount),
        "event_time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }


@dataclass
class SilverDataset:
    """A dataset of its own: topic, bronze prefix and silver namespace per test."""

    name: str
    topic: str
    settings: LakehouseSettings
    resources: dict[str, Any]

    def produce(self, records: list[tuple[Any, datetime]], partition: int = 0) -> None:
        """Produce ``(payload, arrival)`` pairs; a payload that is not bytes is sent as JSON."""
        producer = self.resources["kafka"].producer()
        for payload, arrival in records:
            value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            producer.produce(
                self.topic,
                value=value,
                partition=partition,
                timestamp=int(arrival.timestamp() * 1000),
            )
        assert producer.flush(60) == 0

    def land(self, first: str, last: str) -> None:
        dg.materialize(
            [build_bronze_asset(self.settings, self.name)],
            resources=self.resources,
            run_config=landing_run_config(self.name, "replace"),
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
        )

    def silver(
        self, first: str, last: str | None = None, instance: dg.DagsterInstance | None = None
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [build_silver_asset(self.settings, self.name)],
            resources=self.resources,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last or first,
            },
            raise_on_error=False,
            instance=instance,
        )

    def use_contract(self, contract: Path) -> None:
        """The same dataset, topic and tables under another contract (a new version)."""
        namespace = self.settings.namespace("silver")
        self.settings = _dataset_settings(self.name, self.topic, contract, namespace)
        self.resources = build_resources(self.settings)

    @property
    def environ(self) -> dict[str, str]:
        """The environment of a child process that loads these settings."""
        return _dataset_environ(
            self.name,
            self.topic,
            self.settings.contract_path(self.name),
            self.settings.namespace("silver"),
            self.settings.late_window_days(self.name),
        )

    def table(self, name: str) -> pa.Table:
        catalog = self.resources["iceberg"].load()
        loaded = catalog.load_table((self.settings.namespace("silver"), name))
        return loaded.scan().to_arrow()

    def snapshot_summary(self, name: str) -> dict[str, str]:
        catalog = self.resources["iceberg"].load()
        loaded = catalog.load_table((self.settings.namespace("silver"), name))
        snapshot = loaded.current_snapshot()
        assert snapshot is not None
        assert snapshot.summary is not None
        return dict(snapshot.summary.additional_properties)


def _dataset_environ(
    name: str, topic: str, contract: str | Path, namespace: str, late_window: int = 3
) -> dict[str, str]:
    """This process's environment plus dataset ``name`` on ``topic`` under ``contract``,
    silver in ``namespace`` (what a child process needs to load the same settings)."""
    environ = dict(os.environ)
    prefix = f"LAKEHOUSE__DATASETS__{name.upper()}"
    environ[f"{prefix}__TOPIC"] = topic
    environ[f"{prefix}__CONTRACT"] = str(contract)
    environ[f"{prefix}__START_DATE"] = _day(-5)
    environ[f"{prefix}__LATE_WINDOW_DAYS"] = str(late_window)
    environ["LAKEHOUSE__CATALOG__NAMESPACES__SILVER"] = namespace
    return environ


def _dataset_settings(
    name: str, topic: str, contract: str | Path, namespace: str, late_window: int = 3
) -> LakehouseSettings:
    """Settings with dataset ``name`` on ``topic`` under ``contract``, silver in ``namespace``."""
    environ = _dataset_environ(name, topic, contract, namespace, late_window)
    return load_settings("local", environ=environ)


def _make_dataset(contract: str | Path, late_window: int = 3) -> SilverDataset:
    suffix = uuid.uuid4().hex[:8]
    name, topic = f"s_{suffix}", f"silver-{suffix}"
    settings = _dataset_settings(name, topic, contract, f"silver_{suffix}", late_window)
    resources = build_resources(settings)
    admin = resources["kafka"].admin()
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    return SilverDataset(name, topic, settings, resources)


@pytest.fixture
def orders(stack: LocalStack, spark: Any) -> SilverDataset:
    return _make_dataset("contracts/purchase_orders.yaml")


@pytest.fixture
def plain(stack: LocalStack, spark: Any) -> SilverDataset:
    return _make_dataset("contracts/plain.yaml")


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == name
    ]
    assert evaluations, f"no evaluation of check {name}"
    return evaluations[-1]


def _requested(
    result: dg.EvaluateAutomationConditionsResult, silver: dg.AssetsDefinition
) -> list[str]:
    """Partition keys of the dataset's main silver table that the evaluation requested."""
    keys = result.get_requested_partitions(silver.keys_by_output_name["silver__plain"])
    return [key for key in keys if key is not None]


def _rows(table: pa.Table, *columns: str) -> list[tuple[Any, ...]]:
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def test_duplicates_versions_and_quarantine_reconcile(orders: SilverDataset) -> None:
    """The same event twice is one row; an older version arriving last never wins; a
    malformed event is quarantined with its rule; bronze = silver + quarantine + dups."""
    v1 = order_event(1, 1, _at(0, 9), lines=(("SKU-1", 1, "10.00", "0"), ("SKU-2", 1, "5.00", "0")))
    v2 = order_event(1, 2, _at(0, 10), status="paid", lines=(("SKU-1", 3, "10.00", "0"),))
    v3 = order_event(1, 3, _at(0, 11), status="shipped", lines=(("SKU-1", 3, "10.00", "0"),))
    other = order_event(2, 1, _at(0, 12))
    negative = order_event(3, 1, _at(0, 13), lines=(("SKU-1", -2, "10.00", "0"),))
    orders.produce(
        [
            (v1, _at(0, 9)),
            (v1, _at(0, 9, 5)),  # re-sent: a declared duplicate
            (v3, _at(0, 11)),
            (v2, _at(0, 11, 30)),  # older version, arriving after the newer one
            (other, _at(0, 12)),
            (negative, _at(0, 13)),
            (b"{not json", _at(0, 14)),
        ]
    )
    orders.land(_day(0), _day(0))
    result = orders.silver(_day(0))
    assert result.success, result.all_events

    events = orders.table("order_events")
    assert sorted(events.column("event_id").to_pylist()) == sorted(
        [v1["event_id"], v2["event_id"], v3["event_id"], other["event_id"]]
    )
    current = orders.table("orders")
    assert _rows(current, "order_id", "version", "status") == [
        ("PO-000001", 3, "shipped"),
        ("PO-000002", 1, "created"),
    ]
    assert current.schema.field("total").type == pa.decimal128(18, 2)
    lines = orders.table("order_lines")
    assert _rows(lines, "order_id", "line_number", "quantity") == [
        ("PO-000001", 1, 3),
        ("PO-000002", 1, 2),
    ]
    quarantine = orders.table("purchase_orders_quarantine")
    reasons = dict(
        zip(
            quarantine.column("kafka_offset").to_pylist(),
            quarantine.column("rule_id").to_pylist(),
            strict=True,
        )
    )
    assert reasons == {5: "positive_quantity", 6: "parseable"}
    assert (
        quarantine.column("raw_value").to_pylist()[
            quarantine.column("kafka_offset").to_pylist().index(6)
        ]
        == b"{not json"
    )

    check = _check(result, RECONCILIATION_CHECK)
    assert check.passed
    metadata = {k: v.value for k, v in check.metadata.items()}
    assert metadata["bronze_rows_of_window"] == 7
    assert metadata["accepted_in_table"] == 4
    assert metadata["quarantined_in_table"] == 2
    assert metadata["duplicates_removed"] == 1

    summary = orders.snapshot_summary("orders")
    assert summary["dagster.partition_keys"] == _day(0)
    assert json.loads(summary["lakehouse.source_offsets"]) == {_day(0): {"0": [0, 6]}}


def test_replay_is_identical_and_versions_survive_an_older_partition(orders: SilverDataset) -> None:
    """A newer version on day 1 is not undone by re-running day 0; replaying a range twice
    leaves every table with the same rows and values."""
    first = order_event(1, 1, _at(0, 9), tier="silver")
    second = order_event(1, 2, _at(1, 9), status="paid", tier="gold")
    orders.produce([(first, _at(0, 9)), (second, _at(1, 9))])
    orders.land(_day(0), _day(1))
    assert orders.silver(_day(1)).success
    assert orders.silver(_day(0)).success  # the older day after the newer one
    tables = ("order_events", "orders", "order_lines", "customers", "purchase_orders_quarantine")
    before = {
        name: orders.table(name).sort_by([(orders.table(name).column_names[0], "ascending")])
        for name in tables
    }
    assert _rows(before["orders"], "order_id", "version", "status") == [("PO-000001", 2, "paid")]
    assert _rows(before["customers"], "customer_id", "tier") == [("C-1", "gold")]
    assert orders.silver(_day(0), _day(1)).success
    assert orders.silver(_day(0), _day(1)).success
    for name in tables:
        after = orders.table(name)
        after = after.sort_by([(after.column_names[0], "ascending")])
        assert after.equals(before[name]), name


def test_late_records_within_the_window_reach_their_day_and_later_ones_are_quarantined(
    plain: SilverDataset,
) -> None:
    on_time = plain_event("a", _at(0, 10))
    late = plain_event("b", _at(0, 11))  # arrives two days later: inside the 3-day window
    too_late = plain_event("c", _at(0, 12))  # arrives five days later: quarantined as late
    plain.produce([(on_time, _at(0, 10)), (late, _at(2, 1)), (too_late, _at(5, 1))])
    plain.land(_day(0), _day(5))
    result = plain.silver(_day(0), _day(5))
    assert result.success
    assert _check(result, RECONCILIATION_CHECK).passed
    rows = plain.table("plain")
    assert _rows(rows, "id", "event_date") == [("a", DAY), ("b", DAY)]
    quarantine = plain.table("plain_quarantine")
    assert _rows(quarantine, "rule_id", "partition_date", "bronze_date") == [
        ("late", DAY + timedelta(days=5), DAY + timedelta(days=5))
    ]
    assert "5 days late" in quarantine.column("reason")[0].as_py()


def test_single_run_backfill_of_seven_days_overwrites_exactly_those(plain: SilverDataset) -> None:
    records = [(plain_event(f"e{d}", _at(d, 8)), _at(d, 8)) for d in range(-4, 6)]
    plain.produce(records)
    plain.land(_day(-4), _day(5))
    assert plain.silver(_day(-4), _day(5)).success
    catalog = plain.resources["iceberg"].load()
    table = catalog.load_table((plain.settings.namespace("silver"), "plain"))
    outside = {
        r["id"]: r["kafka_offset"]
        for r in table.scan().to_arrow().to_pylist()
        if not _day(-2) <= r["event_date"].isoformat() <= _day(4)
    }
    snapshots_before = len(table.history())
    result = plain.silver(_day(-2), _day(4))
    assert result.success
    table = catalog.load_table((plain.settings.namespace("silver"), "plain"))
    # One run, one commit for the whole 7-day range.
    assert len(table.history()) == snapshots_before + 1
    summary = plain.snapshot_summary("plain")
    assert summary["dagster.partition_keys"] == ",".join(_day(d) for d in range(-2, 5))
    assert summary["deleted-records"] == "7"
    assert summary["added-records"] == "7"
    rows = table.scan().to_arrow().to_pylist()
    assert len(rows) == 10
    assert {r["id"]: r["kafka_offset"] for r in rows if r["id"] in outside} == outside


def test_a_new_optional_field_evolves_the_silver_schema(
    plain: SilverDataset, tmp_path: Path
) -> None:
    """Contract 1.1 adds an optional `channel`: new rows carry it, older partitions read null."""
    plain.produce([(plain_event("old", _at(0, 9)), _at(0, 9))])
    plain.produce([(plain_event("new", _at(1, 9), channel="web"), _at(1, 9))])
    plain.land(_day(0), _day(1))
    assert plain.silver(_day(0)).success

    text = (PROJECT_ROOT / "contracts" / "plain.yaml").read_text()
    optional = "      - name: channel\n        logicalType: string\n"
    text = text.replace("version: 1.0.0", "version: 1.1.0")
    text = text.replace(
        "      - name: event_time\n        logicalType: timestamp\n        required: true\n        partitioned: true",
        optional
        + "      - name: event_time\n        logicalType: timestamp\n        required: true\n        partitioned: true",
    )
    text = text.replace("      - name: event_date\n", optional + "      - name: event_date\n")
    evolved = tmp_path / "plain.yaml"
    evolved.write_text(text)
    plain.use_contract(evolved)
    result = plain.silver(_day(1))
    assert result.success
    rows = _rows(plain.table("plain"), "id", "channel")
    assert rows == [("new", "web"), ("old", None)]


def test_late_records_trigger_the_affected_silver_days_through_automation(
    plain: SilverDataset,
) -> None:
    """Declarative automation: a bronze day landing late records requests exactly the
    silver days that read it (within the lookback), and running them applies the record."""
    instance = dg.DagsterInstance.ephemeral()
    bronze = build_bronze_asset(plain.settings, plain.name)
    silver = build_silver_asset(plain.settings, plain.name)
    now = _at(2, 12)
    defs = dg.Definitions(assets=[bronze, silver], resources=plain.resources)
    # The first evaluation sees nothing new: automation reacts to updates after it starts.
    start = dg.evaluate_automation_conditions(defs, instance, evaluation_time=now)
    assert start.total_requested == 0

    plain.produce([(plain_event("a", _at(0, 10)), _at(0, 10))])
    dg.materialize(
        [bronze],
        instance=instance,
        resources=plain.resources,
        partition_key=_day(0),
        run_config=landing_run_config(plain.name, "append"),
    )
    first = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=now, cursor=start.cursor
    )
    # Silver days that read bronze day 0: three days earlier (late window) to one day later.
    initial = sorted(_requested(first, silver))
    assert _day(0) in initial
    assert set(initial) <= {_day(d) for d in range(-3, 2)}
    dg.materialize(
        [silver],
        instance=instance,
        resources=plain.resources,
        tags={
            "dagster/asset_partition_range_start": initial[0],
            "dagster/asset_partition_range_end": initial[-1],
        },
    )
    idle = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=now, cursor=first.cursor
    )
    assert idle.total_requested == 0

    # A record of day 0 arrives on day 2 and lands there.
    plain.produce([(plain_event("late", _at(0, 11)), _at(2, 1))])
    dg.materialize(
        [bronze],
        instance=instance,
        resources=plain.resources,
        partition_key=_day(2),
        run_config=landing_run_config(plain.name, "append"),
    )
    after = dg.evaluate_automation_conditions(
        defs, instance, evaluation_time=now, cursor=idle.cursor
    )
    requested = set(_requested(after, silver))
    # Bronze day 2 feeds silver days 1 day earlier up to 3 days earlier; day 3 is the future.
    assert requested == {_day(-1), _day(0), _day(1), _day(2)}
    keys = sorted(requested)
    result = dg.materialize(
        [silver],
        instance=instance,
        resources=plain.resources,
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
    )
    assert result.success
    assert _rows(plain.table("plain"), "id", "event_date") == [("a", DAY), ("late", DAY)]


def test_a_failing_blocking_contract_check_stops_the_downstream_asset(
    plain: SilverDataset, tmp_path: Path
) -> None:
    """A contract whose row-count rule (severity error) the day breaks: the check, run in
    silver's own step on the run's branch, fails; an asset downstream of silver does not
    materialise in the same run, the run fails, main stays as it was and the branch holds
    the rejected rows."""
    text = (PROJECT_ROOT / "contracts" / "plain.yaml").read_text()
    text = text.replace(
        "mustBeBetween: [0, 10000000]\n        severity: warning",
        "mustBeBetween: [0, 1]\n        severity: error",
    )
    strict = tmp_path / "plain.yaml"
    strict.write_text(text)
    plain.use_contract(strict)
    plain.produce([(plain_event(f"e{i}", _at(0, 9 + i)), _at(0, 9 + i)) for i in range(3)])
    plain.land(_day(0), _day(0))

    silver = build_silver_asset(plain.settings, plain.name)
    key = silver.keys_by_output_name["silver__plain"]

    @dg.asset(deps=[key], partitions_def=silver.partitions_def)
    def downstream() -> None:
        raise AssertionError("must not run after a failed blocking check")

    result = dg.materialize(
        [silver, downstream],
        resources=plain.resources,
        partition_key=_day(0),
        raise_on_error=False,
    )
    row_count = _check(result, "contract_row_count")
    assert not row_count.passed
    assert row_count.severity == dg.AssetCheckSeverity.ERROR
    assert _check(result, RECONCILIATION_CHECK).passed
    assert result.asset_materializations_for_node("downstream") == []
    assert not result.success
    assert len(plain.table("plain")) == 0, "main shows rows that failed a blocking check"
    branch = run_branch(result.run_id)
    catalog = plain.resources["iceberg"].load()
    loaded = catalog.load_table((plain.settings.namespace("silver"), "plain"))
    assert loaded.scan().use_ref(branch).to_arrow().num_rows == 3


def _materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, dict[str, Any]]:
    """The metadata values of ``key``'s latest materialisation per partition."""
    latest: dict[str, dict[str, Any]] = {}
    for record in reversed(instance.fetch_materializations(key, limit=1000).records):
        event = record.asset_materialization
        assert event is not None
        assert record.partition_key is not None
        latest[record.partition_key] = {k: v.value for k, v in event.metadata.items()}
    return latest


def test_quality_history_is_recorded_per_day_and_a_quarantine_spike_warns(
    plain: SilverDataset,
) -> None:
    """Each silver day records rows in/accepted/quarantined/duplicates and the rates (a
    ranged run too: each day's own figures on its materialisation), and
    ``quarantine_rate_anomaly`` flags a day whose rate leaves the trailing window, without
    blocking. Freshness is not evaluated by a run that rebuilds old days."""
    quality = plain.settings.quality
    plain.settings = plain.settings.model_copy(
        update={
            "quality": quality.model_copy(
                update={
                    "quarantine_anomaly": quality.quarantine_anomaly.model_copy(
                        update={"min_history_days": 3, "window_days": 7}
                    )
                }
            )
        }
    )
    nameless = {k: v for k, v in plain_event("x", _at(0)).items() if k != "name"}
    records: list[tuple[Any, datetime]] = []
    for d in range(-4, 2):
        bad = 5 if d == 1 else 1  # 10% quarantined a day, then 50% on the last day
        for i in range(10):
            when = _at(d, 8, i)
            event = plain_event(f"e{d}-{i}", when)
            if i < bad:
                event = {**nameless, "id": f"e{d}-{i}", "event_time": event["event_time"]}
            records.append((event, when))
        records.append((plain_event(f"e{d}-9", _at(d, 8, 9)), _at(d, 9)))  # a duplicate
    plain.produce(records)
    plain.land(_day(-4), _day(1))
    events_key = dg.AssetKey(["silver", "plain"])
    instance = dg.DagsterInstance.ephemeral()

    backfill = plain.silver(_day(-4), _day(-1), instance=instance)
    assert backfill.success
    rules = set(plain.table("plain_quarantine").column("rule_id").to_pylist())
    assert len(rules) == 1
    rule = rules.pop()
    recorded = _materialized(instance, events_key)
    assert sorted(recorded) == [_day(d) for d in range(-4, 0)]
    for figures in recorded.values():
        assert figures["rows_in"] == 11
        assert figures["rows_accepted"] == figures["dagster/partition_row_count"] == 9
        assert figures["rows_quarantined"] == figures[f"quarantined/{rule}"] == 1
        assert figures["rows_duplicate"] == 1
        assert figures["quarantine_rate"] == pytest.approx(1 / 11)
        assert figures["duplicate_rate"] == pytest.approx(1 / 11)
    quarantined = _materialized(instance, dg.AssetKey(["silver", "plain_quarantine"]))
    assert {d: m["dagster/partition_row_count"] for d, m in quarantined.items()} == {
        _day(d): 1 for d in range(-4, 0)
    }
    assert all(m["snapshot_properties"] for m in recorded.values())  # the outputs' own too
    anomaly = _check(backfill, "quarantine_rate_anomaly")
    assert anomaly.passed
    assert anomaly.metadata["days_judged"].value == 1  # the 4th day: 3 days of history
    checks = {
        e.asset_check_evaluation_data.check_name
        for e in backfill.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }
    assert "contract_freshness" not in checks

    usual = plain.silver(_day(0), instance=instance)
    assert usual.success
    day = _materialized(instance, events_key)[_day(0)]
    assert day["quarantine_rate"] == pytest.approx(1 / 11)
    assert day["dagster/partition_row_count"] == 9
    assert _check(usual, "quarantine_rate_anomaly").passed

    spike = plain.silver(_day(1), instance=instance)
    assert spike.success  # the check warns and never blocks
    anomaly = _check(spike, "quarantine_rate_anomaly")
    assert not anomaly.passed
    assert anomaly.severity == dg.AssetCheckSeverity.WARN
    assert anomaly.metadata["anomalous_days"].value == [_day(1)]
    assert anomaly.metadata["quarantine_rate"].value == pytest.approx(5 / 11)
    # History: the four days of the ranged run and the one-day run's, all at 1/11.
    assert anomaly.metadata["history_days"].value == 5
    assert anomaly.metadata["trailing_mean"].value == pytest.approx(1 / 11)
    assert _materialized(instance, events_key)[_day(1)]["rows_quarantined"] == 5
