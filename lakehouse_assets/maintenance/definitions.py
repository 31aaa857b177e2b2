"""The maintenance layer's Definitions: per table an asset, its health check and a
schedule staggered from ``maintenance.cron``; one hourly schedule of every health check."""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.maintenance.assets import (
    HEALTH_CHECK,
    build_health_check,
    build_maintenance_asset,
    maintenance_targets,
    staggered_cron,
)
from resources.settings import LakehouseSettings

#: When the health checks run on their own (UTC): hourly, off the hour.
HEALTH_CRON = "23 * * * *"


def maintenance_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """Nothing when ``maintenance.enabled`` is false."""
    if not settings.maintenance.enabled:
        return dg.Definitions()
    targets = maintenance_targets(settings)
    assets = [build_maintenance_asset(settings, target) for target in targets]
    checks = [build_health_check(settings, target) for target in targets]
    schedules = [
        dg.ScheduleDefinition(
            name=f"maintain_{target.layer}_{target.table}",
            cron_schedule=staggered_cron(
                settings.maintenance.cron, i * settings.maintenance.stagger_minutes
            ),
            target=dg.AssetSelection.assets(target.key),
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Maintenance of {target.table_name}, then its health check.",
        )
        for i, target in enumerate(targets)
    ]
    health = dg.define_asset_job(
        HEALTH_CHECK,
        selection=dg.AssetSelection.checks(*checks),
        description="Every table's health check (metadata only), without maintenance.",
    )
    schedules.append(
        dg.ScheduleDefinition(
            name=HEALTH_CHECK,
            cron_schedule=HEALTH_CRON,
            job=health,
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.RUNNING,
        )
    )
    return dg.Definitions(assets=assets, asset_checks=checks, schedules=schedules, jobs=[health])
