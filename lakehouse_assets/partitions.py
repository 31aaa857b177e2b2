"""Daily UTC partitions, one definition per dataset (its start date comes from config)."""

from __future__ import annotations

import dagster as dg

from resources.settings import LakehouseSettings


def daily_partitions(settings: LakehouseSettings, dataset: str) -> dg.DailyPartitionsDefinition:
    """Daily partitions from the dataset's start date up to and including today (UTC).

    ``end_offset=1`` makes today's partition exist while the day is still open, so
    records arriving today land today instead of tomorrow.
    """
    return dg.DailyPartitionsDefinition(
        start_date=settings.dataset_start_date(dataset).isoformat(),
        timezone="UTC",
        end_offset=1,
    )
