"""The bronze layer's Definitions, built from the settings (see the package docstring)."""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.bronze.assets import build_bronze_asset, build_kafka_topic_spec
from lakehouse_assets.bronze.http_assets import (
    build_fetch_schedule,
    build_http_bronze_asset,
    build_http_source_spec,
)
from lakehouse_assets.bronze.jobs import build_landing_job, build_refresh_job
from lakehouse_assets.bronze.schedules import build_compaction_schedule
from lakehouse_assets.bronze.sensors import build_arrivals_sensor
from resources.settings import LakehouseSettings


def bronze_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """Per Kafka dataset: asset, landing and refresh jobs, arrivals sensor and daily
    compaction schedule. Per HTTP dataset: its source, asset, landing job and the
    schedule that fetches new days."""
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = []
    jobs, sensors, schedules = [], [], []
    for dataset, spec in settings.datasets.items():
        if spec.kind == "http":
            asset = build_http_bronze_asset(settings, dataset)
            job = build_landing_job(dataset, asset, source=spec.http_source.url)
            assets += [build_http_source_spec(settings, dataset), asset]
            jobs.append(job)
            schedules.append(build_fetch_schedule(settings, dataset, job))
            continue
        asset = build_bronze_asset(settings, dataset)
        assets.append(build_kafka_topic_spec(settings, dataset))
        job = build_landing_job(dataset, asset)
        # One run holds one partitions definition: gold joins the refresh run only
        # when its days start on the dataset's first day.
        refresh = build_refresh_job(
            dataset,
            asset,
            with_gold=settings.dataset_start_date(dataset) == settings.partitions.start_date,
        )
        assets.append(asset)
        jobs += [job, refresh]
        sensors.append(build_arrivals_sensor(settings, dataset, job, refresh))
        schedules.append(
            build_compaction_schedule(
                dataset, job, settings.dataset_start_date(dataset), settings.landing.lookback_days
            )
        )
    return dg.Definitions(assets=assets, jobs=jobs, sensors=sensors, schedules=schedules)
