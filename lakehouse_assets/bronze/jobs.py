"""Landing jobs: the sensor, the schedule and people in the UI launch bronze runs through them."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

# define_asset_job returns this type; dagster does not re-export its name.
LandingJob = UnresolvedAssetJobDefinition


def landing_job_name(dataset: str) -> str:
    return f"land_{dataset}"


def build_landing_job(dataset: str, asset: dg.AssetsDefinition) -> LandingJob:
    """Lands one dataset's days; launch it from the UI with ``mode: append`` to land now."""
    return dg.define_asset_job(
        name=landing_job_name(dataset),
        selection=[asset.key],
        description=f"Land Kafka records of {dataset} into bronze (S3 Parquet).",
    )
