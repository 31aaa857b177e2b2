"""Data-quality figures, the quarantine-rate anomaly rule and the freshness policies."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest

from lakehouse_assets.definitions import defs
from lakehouse_assets.silver.freshness import (
    FRESHNESS_JOB,
    downstream_policy,
    not_judged_reason,
    sla_policy,
)
from lakehouse_assets.silver.quality import DayQuality, day_qualities, evaluate_anomaly
from resources.config_sections import FreshnessSettings, QuarantineAnomalySettings

DAY = date(2026, 11, 20)
SETTINGS = QuarantineAnomalySettings(k=3, window_days=7, min_history_days=3, min_rate_increase=0.01)


def _day(offset: int, quarantined: int, rows: int = 100) -> DayQuality:
    return DayQuality(
        DAY + timedelta(days=offset), accepted=rows - quarantined, quarantined=quarantined
    )


def test_a_day_counts_every_outcome_and_each_rule_that_fired() -> None:
    counts = [
        (DAY, "accepted", None, 90),
        (DAY, "quarantined", "name.required", 6),
        (DAY, "quarantined", "late", 2),
        (DAY, "duplicate", None, 2),
        (DAY - timedelta(days=1), "accepted", None, 500),  # another day: ignored
    ]
    (day, empty) = day_qualities(
        counts,
        DAY,
        DAY + timedelta(days=1),
        accepted="accepted",
        quarantined="quarantined",
        duplicate="duplicate",
    )
    assert day.metadata() == {
        "dagster/partition_row_count": 90,
        "rows_in": 100,
        "rows_accepted": 90,
        "rows_quarantined": 8,
        "rows_duplicate": 2,
        "quarantine_rate": 0.08,
        "duplicate_rate": 0.02,
        "quarantined/late": 2,
        "quarantined/name.required": 6,
    }
    assert empty.rows_in == 0
    assert empty.quarantine_rate == 0.0


def test_a_spike_above_k_standard_deviations_of_the_trailing_window_is_flagged() -> None:
    recorded = {DAY - timedelta(days=i): rate for i, rate in enumerate([0.02, 0.03, 0.02, 0.03], 1)}
    (normal,) = evaluate_anomaly([_day(0, 3)], recorded, SETTINGS)
    assert normal.judged
    assert not normal.anomalous
    (spike,) = evaluate_anomaly([_day(0, 20)], recorded, SETTINGS)
    assert spike.anomalous
    assert spike.history == 4
    assert spike.mean == pytest.approx(0.025)
    assert spike.threshold == pytest.approx(0.025 + 3 * spike.stddev)  # type: ignore[operator]


def test_a_flat_history_needs_the_minimum_increase_and_short_history_is_not_judged() -> None:
    flat = {DAY - timedelta(days=i): 0.05 for i in range(1, 8)}
    (small_rise,) = evaluate_anomaly([_day(0, 5 + 0)], flat, SETTINGS)
    assert not small_rise.anomalous
    assert small_rise.threshold == pytest.approx(0.06)
    (rise,) = evaluate_anomaly([_day(0, 7)], flat, SETTINGS)
    assert rise.anomalous
    short = {DAY - timedelta(days=1): 0.0, DAY - timedelta(days=2): 0.0}
    (unjudged,) = evaluate_anomaly([_day(0, 90)], short, SETTINGS)
    assert not unjudged.judged
    assert not unjudged.anomalous


def test_the_runs_own_earlier_days_are_history_and_days_out_of_the_window_are_not() -> None:
    old = {DAY - timedelta(days=30 + i): 0.9 for i in range(10)}  # far outside the window
    run = [_day(i, 2) for i in range(-4, 0)] + [_day(0, 40), _day(1, 0, rows=0)]
    verdicts = evaluate_anomaly(run, old, SETTINGS)
    assert [v.judged for v in verdicts] == [False, False, False, True, True, False]
    assert [v.anomalous for v in verdicts] == [False, False, False, False, True, False]


def test_freshness_policies_follow_the_contract_sla_and_skip_seeds() -> None:
    graph = defs.resolve_asset_graph()
    settings = FreshnessSettings()
    silver = sla_policy(timedelta(hours=2), settings)
    gold = downstream_policy(["orders"], {"orders": timedelta(hours=2)}, settings)
    assert gold == dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=2, minutes=30), warn_window=timedelta(hours=1, minutes=15)
    )
    policies = {
        key.to_user_string(): graph.get(key).freshness_policy for key in graph.get_all_asset_keys()
    }
    for table in ("orders", "order_events", "order_lines", "customers", "plain"):
        assert policies[f"silver/{table}"] == silver, table
    assert policies["silver/purchase_orders_quarantine"] is None
    for model in ("fct_orders", "fct_daily_sales", "dim_customers", "plain_daily_totals"):
        assert policies[f"gold/{model}"] == gold, model
    assert policies["gold/fx_rates"] is None  # a seed: reviewed CSV, no SLA
    assert downstream_policy(["fx_rates"], {"orders": timedelta(hours=2)}, settings) is None


def test_contract_freshness_is_a_check_of_its_own_not_in_silvers_step() -> None:
    graph = defs.resolve_asset_graph()
    silver = graph.get(dg.AssetKey(["silver", "orders"]))
    step_checks = {key.name for key in graph.get_check_keys_for_assets({silver.key})}
    assert "contract_freshness" in step_checks
    multi_asset = defs.resolve_assets_def(dg.AssetKey(["silver", "orders"]))
    assert "contract_freshness" not in {key.name for key in multi_asset.check_keys}
    schedule = defs.resolve_schedule_def(FRESHNESS_JOB)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(FRESHNESS_JOB)
    assert job.asset_layer.asset_graph.asset_check_keys == {
        dg.AssetCheckKey(dg.AssetKey(["silver", "orders"]), "contract_freshness"),
        dg.AssetCheckKey(dg.AssetKey(["silver", "plain"]), "contract_freshness"),
        dg.AssetCheckKey(dg.AssetKey(["silver", "weather_hourly"]), "contract_freshness"),
    }


def test_contract_freshness_judges_runs_reaching_the_current_days_only() -> None:
    today = date(2026, 12, 7)
    judged = not_judged_reason
    # Its own job, the UI's "Execute" on the check: no partition, always judged.
    assert judged({}, today, 5) is None
    # A run reaching one of the 5 current days (2026-12-03 .. today) brings new data.
    assert judged({"dagster/partition": "2026-12-07"}, today, 5) is None
    assert judged({"dagster/partition": "2026-12-03"}, today, 5) is None
    range_tags = {
        "dagster/asset_partition_range_start": "2026-11-01",
        "dagster/asset_partition_range_end": "2026-12-04",
    }
    assert judged(range_tags, today, 5) is None
    # A backfill of older days says nothing about freshness.
    reason = judged({"dagster/partition": "2026-12-02"}, today, 5)
    assert reason is not None
    assert "2026-12-02" in reason
    assert "2026-12-03 to 2026-12-07" in reason
    range_tags["dagster/asset_partition_range_end"] = "2026-11-30"
    assert judged(range_tags, today, 5) is not None
