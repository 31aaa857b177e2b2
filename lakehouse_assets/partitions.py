"""Daily UTC partitions, one definition per dataset (its start date comes from config)
and one for gold, which spans datasets."""

from __future__ import annotations

import dagster as dg

from resources.settings import LakehouseSettings


def daily_partitions(
    settings: LakehouseSettings, dataset: str | None = None
) -> dg.DailyPartitionsDefinition:
    """Daily partitions from the dataset's start date (or, with no dataset, the
    project's ``partitions.start_date``) up to and including today (UTC).

    ``end_offset=1`` makes today's partition exist while the day is still open, so
    records arriving today land today instead of tomorrow.
    """
    start = (
        settings.partitions.start_date if dataset is None else settings.dataset_start_date(dataset)
    )
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(),
        timezone="UTC",
        end_offset=1,
    )


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one run over the partitions ``first``..``last`` (a single-run backfill)."""
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }
