"""Daily compaction: re-land yesterday in replace mode once the day is closed.

The arrivals sensor lands a day in many small appends; replacing the closed day
rewrites it as one file per Kafka partition (same records, same offsets).
"""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
from datetime import timedelta

import dagster as dg

from lakehouse_assets.bronze.assets import landing_run_config
from lakehouse_assets.bronze.jobs import LandingJob


def build_compaction_schedule(dataset: str, job: LandingJob) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"compact_{dataset}_bronze",
        job=job,
        cron_schedule="30 0 * * *",
        execution_timezone="UTC",
        description=f"Re-land yesterday's {dataset} bronze partition as one file per Kafka partition.",
    )
    def _compaction(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
        return dg.RunRequest(
            run_key=f"compact:{day}",
            partition_key=day,
            run_config=landing_run_config(dataset, "replace"),
        )

    return _compaction
