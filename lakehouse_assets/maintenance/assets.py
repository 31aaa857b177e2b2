"""One maintenance asset per Iceberg table, its health check and its schedule.

``maintenance/<layer>/<table>`` depends on the table's own asset and runs
:func:`resources.iceberg.maintenance.maintain` on it (compaction of the crowded
partitions, manifests, snapshot expiry, orphan files). It runs in the pool of the
table's writers (``silver_<dataset>`` or ``gold``), so it never runs at the same time
as a Dagster write to the table. Its materialisation records the table's health before
(``*_before``) and after, and what it rewrote and removed: the asset's Plots tab
shows each table's health over time.

The ``table_health`` check of each maintenance asset compares the table's current
health with ``maintenance.health``; it warns (never blocks) when the compactable small
files or the snapshots pass their bounds. It runs after every maintenance run and
hourly on its own (schedule ``table_health``), reading metadata only.
"""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pyiceberg.exceptions import NoSuchTableError

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.gold.assets import GOLD_POOL, gold_key
from lakehouse_assets.gold.publishing import gold_tables
from lakehouse_assets.silver.assets import silver_key, silver_pool
from resources.dbt.project import dbt_project
from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.maintenance import (
    MaintenancePolicy,
    TableHealth,
    bytes_removed,
    maintain,
    measure,
    stored_objects,
)
from resources.s3.client import S3Resource
from resources.settings import ConfigError, LakehouseSettings
from resources.spark.resource import SparkResource

MAINTENANCE_GROUP = "maintenance"
HEALTH_CHECK = "table_health"


@dataclass(frozen=True)
class MaintenanceTarget:
    """An Iceberg table that gets maintenance: where it lives and who writes it."""

    layer: str
    namespace: str
    table: str
    table_key: dg.AssetKey
    pool: str

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([MAINTENANCE_GROUP, self.layer, self.table])

    @property
    def identifier(self) -> tuple[str, str]:
        return (self.namespace, self.table)

    @property
    def table_name(self) -> str:
        return f"{self.namespace}.{self.table}"


def maintenance_targets(settings: LakehouseSettings) -> list[MaintenanceTarget]:
    """Every silver table and quarantine of each dataset, then every gold table."""
    targets = []
    for dataset in settings.datasets:
        contract = load_contract(settings.contract_path(dataset))
        for table in (*contract.tables, contract.quarantine_table):
            targets.append(
                MaintenanceTarget(
                    "silver",
                    settings.namespace("silver"),
                    table,
                    silver_key(table),
                    silver_pool(dataset),
                )
            )
    manifest = json.loads(dbt_project(settings).manifest_path.read_text())
    for table in gold_tables(manifest):
        targets.append(
            MaintenanceTarget("gold", settings.namespace("gold"), table, gold_key(table), GOLD_POOL)
        )
    return targets


def staggered_cron(base: str, offset_minutes: int) -> str:
    """``base`` (``M H <day> <month> <weekday>``) moved ``offset_minutes`` later within
    the day."""
    fields = base.split()
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()):
        raise ConfigError(
            f"maintenance.cron {base!r}: give a fixed minute and hour ('M H * * *', say "
            "'0 2 * * *'); the tables' schedules are staggered from it"
        )
    minutes = int(fields[1]) * 60 + int(fields[0]) + offset_minutes
    return " ".join([str(minutes % 60), str(minutes // 60 % 24), *fields[2:]])


def health_result(health: TableHealth, settings: LakehouseSettings) -> dg.AssetCheckResult:
    """Warn when the compactable small files or the snapshots pass their bounds."""
    bounds = settings.maintenance.health
    problems = []
    if health.small_files > bounds.max_small_files:
        problems.append(
            f"{health.small_files} small files compaction could merge (bound "
            f"{bounds.max_small_files})"
        )
    if health.snapshots > bounds.max_snapshots:
        problems.append(f"{health.snapshots} snapshots (bound {bounds.max_snapshots})")
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "; ".join(problems) + ": run its maintenance" if problems else "within bounds"
        ),
        metadata={
            **health.metadata(),
            "max_small_files": bounds.max_small_files,
            "max_snapshots": bounds.max_snapshots,
        },
    )


def build_maintenance_asset(
    settings: LakehouseSettings, target: MaintenanceTarget
) -> dg.AssetsDefinition:
    """The maintenance asset of ``target`` (its health check: :func:`build_health_check`)."""
    policy = MaintenancePolicy.from_settings(settings.maintenance)
    name = target.table_name

    @dg.asset(
        key=target.key,
        deps=[target.table_key],
        group_name=MAINTENANCE_GROUP,
        pool=target.pool,
        kinds={"iceberg", "spark"},
        description=(
            f"Maintenance of Iceberg table {name}: compaction of crowded partitions, "
            "manifests, snapshot expiry, orphan files; its health before and after."
        ),
    )
    def _maintain(
        context: dg.AssetExecutionContext,
        spark: SparkResource,
        iceberg: IcebergCatalogResource,
        s3: S3Resource,
    ) -> dg.MaterializeResult:
        try:
            table = iceberg.load().load_table(target.identifier)
        except NoSuchTableError:
            context.log.info(f"{name} does not exist yet: nothing to maintain")
            return dg.MaterializeResult(metadata={"dagster/table_name": name, "exists": False})
        if settings.maintenance.orphan_min_age_hours < 24:
            context.log.warning(
                f"maintenance.orphan_min_age_hours is {settings.maintenance.orphan_min_age_hours}: "
                "files of a write in flight younger than that may be taken for orphans"
            )
        measured = measure(table, policy)
        before = measured.health
        objects = stored_objects(s3.client(), table.location())
        result = maintain(
            spark.spark_session, settings.catalog.name, table, policy, measured=measured
        )
        table = table.refresh()
        after = measure(table, policy).health
        removed = bytes_removed(objects, stored_objects(s3.client(), table.location()))
        context.log.info(
            f"{name}: data files {before.data_files} -> {after.data_files}, snapshots "
            f"{before.snapshots} -> {after.snapshots}, {removed} bytes removed"
        )
        metadata: dict[str, Any] = {
            "dagster/table_name": name,
            **after.metadata(),
            **before.metadata("_before"),
            **result.metadata(),
            "bytes_removed": removed,
            "maintained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return dg.MaterializeResult(metadata=metadata)

    return _maintain


def build_health_check(
    settings: LakehouseSettings, target: MaintenanceTarget
) -> dg.AssetChecksDefinition:
    """``table_health`` of ``target``: after each maintenance run and hourly on its own."""
    policy = MaintenancePolicy.from_settings(settings.maintenance)
    name = target.table_name

    @dg.asset_check(
        asset=target.key,
        name=HEALTH_CHECK,
        description=(
            f"{name}: compactable small files and snapshots within maintenance.health "
            "(warns; reads metadata only)"
        ),
    )
    def _health(iceberg: IcebergCatalogResource) -> dg.AssetCheckResult:
        try:
            table = iceberg.load().load_table(target.identifier)
        except NoSuchTableError:
            return dg.AssetCheckResult(passed=True, description=f"{name} does not exist yet")
        return health_result(measure(table, policy).health, settings)

    return _health
