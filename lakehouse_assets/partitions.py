"""The rules every layer shares: daily UTC partitions and the late window.

Partitions: one definition per dataset (its start date comes from config) and one for
gold, which spans datasets. The late window: a record that arrived on bronze day ``b``
belongs to silver day ``b - W .. b + 1`` (``W`` the dataset's late window, and up to
:data:`AHEAD_TOLERANCE_DAYS` ahead of the broker's clock), so silver day ``D`` reads
bronze days ``D-1 .. D+W`` and automation keeps :func:`automated_days` days current.
Bronze, silver and gold all import these from here, never from each other's layer.
"""

from __future__ import annotations

from datetime import date, timedelta

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


#: Days an event time may lie ahead of its Kafka timestamp (producer clock skew).
AHEAD_TOLERANCE_DAYS = 1


def automated_days(late_window_days: int) -> int:
    """How many days, today included, automation keeps current in silver and gold:
    the late window ``W``, the ahead tolerance and today.

    A record landed in bronze day ``b`` belongs to silver ``b - W .. b + 1``;
    records stamped yesterday still arrive after midnight, so silver days back to
    ``today - W - 1`` still change. The arrivals sensor's refresh run covers exactly
    these days: had it covered fewer, its no-op landings of the older bronze days
    would make automation rebuild the day before its range in a run of its own.
    """
    return late_window_days + AHEAD_TOLERANCE_DAYS + 1


def bronze_days(first: date, last: date, late_window_days: int) -> list[str]:
    """Bronze days that can hold records of silver days ``first..last`` (inclusive)."""
    start = first - timedelta(days=AHEAD_TOLERANCE_DAYS)
    count = (last - start).days + late_window_days + 1
    return [(start + timedelta(days=i)).isoformat() for i in range(count)]
