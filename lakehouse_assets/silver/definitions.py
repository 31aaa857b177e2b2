"""The silver layer's definitions: one multi-asset per dataset, its contract checks in it,
and the contract freshness checks on a schedule of their own.

The contract checks of a dataset's tables are ``check_specs`` of its silver
multi-asset: they run in the asset's own step, on the run's branch, before the run
publishes (see :mod:`lakehouse_assets.silver.publishing`). Freshness is the
exception: it is about the table's newest row, not a run's days, so it runs on the
``contract_freshness`` schedule (see :mod:`lakehouse_assets.silver.freshness`).
Where the silver work runs is ``silver_launcher.kind``: in the run's process, or as a
Spark job launched through Pipes (:mod:`lakehouse_assets.silver.launched`).
"""

from __future__ import annotations

import dagster as dg

from lakehouse_assets.silver.assets import build_freshness_checks, build_silver_asset
from lakehouse_assets.silver.freshness import FRESHNESS_JOB
from lakehouse_assets.silver.launched import build_launched_silver_asset
from resources.settings import LakehouseSettings


def silver_definitions(settings: LakehouseSettings) -> dg.Definitions:
    """The silver multi-asset of every configured dataset, and the freshness checks."""
    build = build_silver_asset
    if settings.silver_launcher.kind != "session":
        build = build_launched_silver_asset
    assets = [build(settings, name) for name in settings.datasets]
    checks = [
        check for name in settings.datasets for check in build_freshness_checks(settings, name)
    ]
    if not checks:
        return dg.Definitions(assets=assets)
    job = dg.define_asset_job(
        FRESHNESS_JOB,
        selection=dg.AssetSelection.checks(*checks),
        description="Every contract freshness check: the newest row of each table vs its SLA.",
    )
    schedule = dg.ScheduleDefinition(
        name=FRESHNESS_JOB,
        cron_schedule=settings.quality.freshness.check_cron,
        job=job,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=[job], schedules=[schedule])
