"""An HTTP dataset end to end: the weather API → typed bronze → silver (Spark → Iceberg)
→ gold (dbt's weather_daily).

The silver asset reads the typed bronze rows through the same contract path as Kafka
records: validation and quarantine, dedupe by the contract's key, and the
reconciliation that accounts for every record landed.
"""

import uuid
from datetime import timedelta
from typing import Any

import dagster as dg

from lakehouse_assets.gold.assets import build_gold_assets
from lakehouse_assets.silver.assets import RECONCILIATION_CHECK, build_silver_asset
from lakehouse_dev.stack import LocalStack
from lakehouse_dev.weather_api import RunningApi
from resources.dbt.project import dbt_project
from resources.environments import build_resources
from resources.settings import LakehouseSettings
from tests.integration.test_http_landing import (
    LATITUDE,
    LONGITUDE,
    HttpDataset,
    _day,
    _expected,
    weather_api,  # noqa: F401 (the module's server fixture)
)

WEATHER_DAILY = dg.AssetKey(["gold", "weather_daily"])


def _bad_and_repeated_hours(document: dict[str, Any]) -> dict[str, Any]:
    """Hour 5 with an impossible humidity, and hour 7 sent twice."""
    hourly = document["hourly"]
    hourly["relative_humidity_2m"][5] = 150
    for values in hourly.values():
        values.append(values[7])
    return document


def test_weather_bronze_reaches_silver_with_every_record_accounted_for(
    stack: LocalStack,
    settings: LakehouseSettings,
    spark: Any,
    weather_api: RunningApi,  # noqa: F811
) -> None:
    dataset = HttpDataset(settings, weather_api)
    suffix = uuid.uuid4().hex[:8]
    namespaces = {
        **dataset.settings.catalog.namespaces,
        "silver": f"silver_{suffix}",
        "gold": f"gold_{suffix}",
    }
    dataset.settings = dataset.settings.model_copy(
        update={"catalog": dataset.settings.catalog.model_copy(update={"namespaces": namespaces})}
    )
    dataset.resources = build_resources(dataset.settings)
    dataset.api.edit = _bad_and_repeated_hours
    try:
        dataset.land(_day(0), _day(1))
    finally:
        dataset.api.edit = None

    result = dg.materialize(
        [build_silver_asset(dataset.settings, dataset.name)],
        resources=dataset.resources,
        tags={
            "dagster/asset_partition_range_start": _day(0),
            "dagster/asset_partition_range_end": _day(0),
        },
        raise_on_error=False,
    )
    assert result.success

    catalog = dataset.resources["iceberg"].load()
    table = catalog.load_table((f"silver_{suffix}", "weather_hourly")).scan().to_arrow()
    hours = sorted(
        zip(
            *(
                table.column(c).to_pylist()
                for c in (
                    "time",
                    "temperature_2m",
                    "relative_humidity_2m",
                    "precipitation",
                    "wind_speed_10m",
                )
            ),
            strict=True,
        )
    )
    expected = [hour for index, hour in enumerate(_expected(_day(0))) if index != 5]
    assert hours == expected
    assert set(table.column("event_date").to_pylist()) == {
        (dataset.settings.dataset_start_date(dataset.name) + timedelta(days=5))
    }

    quarantine = catalog.load_table((f"silver_{suffix}", "weather_quarantine")).scan().to_arrow()
    assert quarantine.column("kafka_offset").to_pylist() == [5]
    assert b'"relative_humidity_2m":150' in quarantine.column("raw_value").to_pylist()[0]

    (check,) = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == RECONCILIATION_CHECK
    ]
    assert check.passed
    metadata = {k: v.value for k, v in check.metadata.items()}
    # Silver day 0 reads bronze days -1..3; only days 0 and 1 were landed, 25 records each.
    assert metadata["quarantined_in_table"] == 1
    assert metadata["duplicates_removed"] == 1
    assert metadata["accepted_in_table"] == 23

    # Gold from the contract's silver table, as for Kafka datasets: weather_daily.
    gold = [
        a
        for a in build_gold_assets(dataset.settings, dbt_project(dataset.settings))
        if WEATHER_DAILY in a.keys
    ]
    built = dg.materialize(
        gold,
        selection=[WEATHER_DAILY],
        resources=dataset.resources,
        partition_key=_day(0),
        raise_on_error=False,
    )
    assert built.success
    (row,) = catalog.load_table((f"gold_{suffix}", "weather_daily")).scan().to_arrow().to_pylist()
    temperatures = [hour[1] for hour in expected]
    assert (row["latitude"], row["longitude"], row["hours"]) == (LATITUDE, LONGITUDE, 23)
    assert row["weather_date"] == table.column("event_date").to_pylist()[0]
    assert row["temperature_min"] == min(temperatures)
    assert row["temperature_max"] == max(temperatures)
    assert abs(row["temperature_mean"] - sum(temperatures) / len(temperatures)) <= 0.005 + 1e-9
    precipitation = sum(hour[3] for hour in expected)
    assert abs(row["precipitation_sum"] - precipitation) <= 0.005 + 1e-9
    assert row["wind_speed_max"] == max(hour[4] for hour in expected)
