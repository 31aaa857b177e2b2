"""Daily compaction: re-land each closed day that holds small files, in replace mode.

The arrivals sensor lands a day in many small appends (one file per Kafka partition
and tick), and late records append to earlier days within the landing lookback.
Every night the schedule looks at the closed days of that lookback (yesterday and
the ``landing.lookback_days`` before it) and requests one replace run for each day
where some Kafka partition has more than one file: the day is rewritten as one file
per Kafka partition (same records, same offsets, exactly once). Days already
compacted are left alone; a day whose run failed is requested again the next night
(the run key names the files it found).
"""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
import hashlib
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg

from lakehouse_assets.bronze.assets import landing_run_config
from lakehouse_assets.bronze.jobs import LandingJob
from resources.s3.offset_files import OffsetRange
from resources.s3.parquet_store import ParquetStore

#: When the closed days are compacted (UTC): after midnight, once yesterday is closed.
COMPACTION_CRON = "30 0 * * *"


def days_to_compact(
    landed: dict[str, list[OffsetRange]],
) -> dict[str, str]:
    """Days where a Kafka partition has more than one file, each with a digest of its
    files (the run key's part that changes when the day's files do)."""
    found = {}
    for day, ranges in sorted(landed.items()):
        files = Counter((r.topic, r.partition) for r in ranges)
        if any(count > 1 for count in files.values()):
            names = "\n".join(sorted(r.file_name for r in ranges))
            found[day] = hashlib.sha256(names.encode()).hexdigest()[:12]
    return found


def build_compaction_schedule(
    dataset: str, job: LandingJob, first_day: date, lookback_days: int
) -> dg.ScheduleDefinition:
    """The nightly compaction of ``dataset``'s closed days in the landing lookback."""

    @dg.schedule(
        name=f"compact_{dataset}_bronze",
        job=job,
        cron_schedule=COMPACTION_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Re-land each closed day of {dataset}'s bronze (yesterday and the "
            f"{lookback_days} before it) that holds small files, as one file per Kafka "
            "partition."
        ),
    )
    def _compaction(
        context: dg.ScheduleEvaluationContext, bronze_store: ParquetStore
    ) -> Iterator[dg.RunRequest | dg.SkipReason]:
        yesterday = (context.scheduled_execution_time - timedelta(days=1)).date()
        days = [
            (yesterday - timedelta(days=n)).isoformat()
            for n in range(lookback_days + 1)
            if yesterday - timedelta(days=n) >= first_day
        ]
        found = days_to_compact(bronze_store.landed_days(dataset, days))
        if not found:
            yield dg.SkipReason(f"no closed day of {dataset} since {days[-1]} has small files")
            return
        for day, digest in found.items():
            yield dg.RunRequest(
                run_key=f"compact:{day}:{digest}",
                partition_key=day,
                run_config=landing_run_config(dataset, "replace"),
            )

    return _compaction
