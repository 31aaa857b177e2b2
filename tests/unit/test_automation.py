"""Declarative automation on the real definitions: what one tick requests after bronze lands.

The events are reported to an ephemeral instance (no run executes), and
``evaluate_automation_conditions`` evaluates the conditions of every asset of
``lakehouse_assets.definitions`` as the daemon's sensor would.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

# Not exported by `dagster`: what a check run records about the materialisation it read.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from lakehouse_assets.bronze.jobs import refresh_job_name
from lakehouse_assets.bronze.sensors import refresh_start
from lakehouse_assets.definitions import defs
from lakehouse_assets.gold.assets import gold_key
from resources.settings import load_settings

#: The tick's time, and its day: the days before it are within every late window.
NOW = datetime(2026, 11, 12, 12, tzinfo=UTC)
TODAY = "2026-11-12"
BRONZE = dg.AssetKey(["bronze", "purchase_orders"])
ORDERS = dg.AssetKey(["silver", "orders"])
ORDER_EVENTS = dg.AssetKey(["silver", "order_events"])
DAILY_SALES = gold_key("fct_daily_sales")


@pytest.fixture
def instance() -> dg.DagsterInstance:
    """Every asset materialised for a day long ago.

    ``since_last_handled`` conditions do not see what happened before their first
    evaluation, so each test evaluates once as a baseline before reporting its events.
    """
    instance = dg.DagsterInstance.ephemeral()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        partitioned = graph.get(key).partitions_def is not None
        instance.report_runless_asset_event(
            dg.AssetMaterialization(key, partition="2026-11-02" if partitioned else None)
        )
    return instance


def evaluate(
    instance: dg.DagsterInstance, cursor: dg.AssetDaemonCursor | None = None
) -> dg.EvaluateAutomationConditionsResult:
    return dg.evaluate_automation_conditions(defs, instance, evaluation_time=NOW, cursor=cursor)


def report_check(
    instance: dg.DagsterInstance, check: dg.AssetCheckKey, partition: str, *, passed: bool
) -> None:
    """A check result on the partition's latest materialisation, as a check step records it."""
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=check.asset_key, asset_partitions=[partition]), limit=1
    ).records[0]
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=check.asset_key,
            check_name=check.name,
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            partition=partition,
            target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
                storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp
            ),
        )
    )


def requested_days(result: dg.EvaluateAutomationConditionsResult, key: dg.AssetKey) -> list[str]:
    return sorted(p for p in result.get_requested_partitions(key) if p is not None)


def test_new_bronze_requests_silver_and_gold_of_the_same_days_on_one_tick(
    instance: dg.DagsterInstance,
) -> None:
    baseline = evaluate(instance)
    instance.report_runless_asset_event(dg.AssetMaterialization(BRONZE, partition=TODAY))

    tick = evaluate(instance, baseline.cursor)

    # Bronze day d can hold late records of days d-3..d, and a little early data of d+1.
    silver_days = requested_days(tick, ORDERS)
    assert silver_days[0] == "2026-11-09"
    assert TODAY in silver_days
    # Silver's contract checks ride along in silver's run; gold does not wait for them
    # to be requested on their own, and runs with silver over the same days.
    assert requested_days(tick, DAILY_SALES) == silver_days
    assert requested_days(tick, gold_key("fct_orders")) == silver_days


def test_gold_finishing_as_new_bronze_lands_still_runs_gold_with_the_new_silver(
    instance: dg.DagsterInstance,
) -> None:
    """The previous run's last model and a new landing are seen on the same tick.

    Silver is requested for the landing, so gold's trigger is "will be requested",
    which carries no time. Dagster's ``since_last_handled`` resets on the model's own
    update, and with no time to order the two, the reset would win: the day's gold
    would wait for the next change upstream (a second run, a minute later, or never
    in a quiet hour).
    """
    baseline = evaluate(instance)
    instance.report_runless_asset_event(dg.AssetMaterialization(DAILY_SALES, partition=TODAY))
    instance.report_runless_asset_event(dg.AssetMaterialization(BRONZE, partition=TODAY))

    tick = evaluate(instance, baseline.cursor)

    assert TODAY in requested_days(tick, ORDERS)
    assert TODAY in requested_days(tick, DAILY_SALES)
    assert requested_days(tick, DAILY_SALES) == requested_days(tick, ORDERS)


@pytest.mark.parametrize("passed", [False, True], ids=["failed", "passed"])
def test_a_failed_blocking_silver_check_holds_the_gold_it_feeds_until_silver_runs_again(
    instance: dg.DagsterInstance, passed: bool
) -> None:
    baseline = evaluate(instance)
    # Silver's day ran in a run without gold (as when gold's days differ from the
    # dataset's), and the blocking row-rules check of order_events failed (or passed).
    day = "2026-11-11"
    for table in ("order_events", "order_lines", "orders", "customers"):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey(["silver", table]), partition=day)
        )
    check = dg.AssetCheckKey(ORDER_EVENTS, "contract_row_rules")
    assert defs.resolve_asset_graph().get(check).blocking
    report_check(instance, check, day, passed=passed)

    tick = evaluate(instance, baseline.cursor)

    assert requested_days(tick, ORDER_EVENTS) == []
    # What reads only tables whose checks passed goes ahead either way.
    assert requested_days(tick, gold_key("customers_snapshot")) == [day]
    # What reads order_events, directly or through fct_orders, waits.
    for model in ("fct_orders", "fct_order_lines", "fct_daily_sales"):
        assert requested_days(tick, gold_key(model)) == ([day] if passed else []), model
    if passed:
        return

    # What that tick requested runs. Then the day is fixed upstream: bronze lands again,
    # silver re-runs with its checks and gold is requested with it.
    for key in {result.key for result in tick.results if isinstance(result.key, dg.AssetKey)}:
        for partition in tick.get_requested_partitions(key):
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))
    instance.report_runless_asset_event(dg.AssetMaterialization(BRONZE, partition=day))
    fixed = evaluate(instance, tick.cursor)

    assert day in requested_days(fixed, ORDER_EVENTS)
    assert day in requested_days(fixed, gold_key("fct_orders"))
    assert day in requested_days(fixed, DAILY_SALES)


def report_run(instance: dg.DagsterInstance, keys: set[dg.AssetKey], days: list[str]) -> None:
    """What a run over ``days`` records: each asset's days, upstream assets first."""
    for key in defs.resolve_asset_graph().toposorted_asset_keys:
        if key in keys:
            for day in days:
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))


@pytest.mark.parametrize("shorter_by", [0, 1], ids=["sensor's range", "one day shorter"])
def test_after_a_refresh_run_automation_has_nothing_left_to_run(
    instance: dg.DagsterInstance, shorter_by: int
) -> None:
    """The refresh run lands today and rebuilds silver and gold over its range; its
    landing also touches the older bronze days of the range. Its range is what
    automation keeps current, so no silver day before it is rebuilt alone (as it was
    when the range was one day shorter)."""
    baseline = evaluate(instance)
    first = refresh_start(load_settings(), "purchase_orders", NOW.date())
    first += timedelta(days=shorter_by)
    days = [
        (first + timedelta(days=i)).isoformat()
        for i in range((date.fromisoformat(TODAY) - first).days + 1)
    ]
    job = defs.resolve_job_def(refresh_job_name("purchase_orders"))

    report_run(instance, set(job.asset_layer.selected_asset_keys), days)
    tick = evaluate(instance, baseline.cursor)

    before = (first - timedelta(days=1)).isoformat()
    assert requested_days(tick, ORDERS) == ([] if shorter_by == 0 else [before])
    assert requested_days(tick, DAILY_SALES) == ([] if shorter_by == 0 else [before])


def test_on_a_fresh_deployment_gold_waits_for_the_models_it_reads() -> None:
    """The seeds load first; a model reading another gold model (fct_daily_sales reads
    fct_orders) is not run alone against a table that does not exist yet."""
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate(instance)
    fx_rates = gold_key("fx_rates")
    assert first.get_num_requested(fx_rates) == 1
    instance.report_runless_asset_event(dg.AssetMaterialization(fx_rates))

    tick = evaluate(instance, first.cursor)

    assert requested_days(tick, DAILY_SALES) == []
    # Once silver lands, the models run together on one tick.
    instance.report_runless_asset_event(dg.AssetMaterialization(BRONZE, partition=TODAY))
    landed = evaluate(instance, tick.cursor)
    assert TODAY in requested_days(landed, gold_key("fct_orders"))
    assert TODAY in requested_days(landed, DAILY_SALES)
