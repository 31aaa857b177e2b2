"""Landing jobs: the sensor, the schedule and people in the UI launch bronze runs through them."""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.groups import GOLD_GROUP, PIPELINE_GROUPS
from resources.private_apis import AssetJob

#: What the landing and refresh job factories return.
LandingJob = AssetJob


def landing_job_name(dataset: str) -> str:
    return f"land_{dataset}"


def build_landing_job(
    dataset: str, asset: dg.AssetsDefinition, *, source: str | None = None
) -> LandingJob:
    """Lands one dataset's days. Kafka datasets: launch it from the UI with ``mode: append``
    to land now. HTTP datasets (``source``: the URL): each day is fetched and replaced."""
    what = f"Kafka records of {dataset}" if source is None else f"{dataset} from {source}"
    return dg.define_asset_job(
        name=landing_job_name(dataset),
        selection=[asset.key],
        description=f"Land {what} into bronze (S3 Parquet).",
    )


def refresh_job_name(dataset: str) -> str:
    return f"refresh_{dataset}"


def build_refresh_job(dataset: str, asset: dg.AssetsDefinition, *, with_gold: bool) -> LandingJob:
    """Lands a dataset's newest days and rebuilds what reads them, in one run.

    The selection is bronze and what is downstream of it in the pipeline's layers
    (:data:`~lakehouse_assets.groups.PIPELINE_GROUPS`): the dataset's silver tables
    with their contract checks and, with ``with_gold``, the gold models over them with
    their dbt tests; not the tables' maintenance nor the serving exports. One run holds one partitions definition, so gold is
    left to automation when its days start on another date than the dataset's.
    """
    groups = [group for group in PIPELINE_GROUPS if with_gold or group != GOLD_GROUP]
    selection: dg.AssetSelection = dg.AssetSelection.assets(
        asset.key
    ).downstream() & dg.AssetSelection.groups(*groups)
    return dg.define_asset_job(
        name=refresh_job_name(dataset),
        selection=selection,
        description=(
            f"Land new Kafka records of {dataset} and rebuild its silver and gold days in the "
            "same run (what the arrivals sensor requests for today's records)."
        ),
    )
