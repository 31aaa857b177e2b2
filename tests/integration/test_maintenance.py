"""Iceberg maintenance on the real stack: a silver table after many small commits is
compacted, its snapshots expired and its orphans removed, and nothing a reader or a
branch needs is lost."""

import threading
import uuid
from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.maintenance.assets import (
    HEALTH_CHECK,
    MaintenanceTarget,
    build_health_check,
    build_maintenance_asset,
)
from resources.environments import build_resources
from resources.iceberg.branches import ensure_branch
from resources.iceberg.io_manager import IcebergIOManager
from resources.iceberg.maintenance import MaintenancePolicy, measure, stored_objects
from resources.settings import LakehouseSettings
from tests.integration.conftest import failure_message
from tests.integration.test_iceberg_io_manager import daily_rows, run, silver_asset

pytestmark = pytest.mark.integration

COMMITS = 50
DAYS = ["2026-01-01", "2026-01-02"]
#: Bounds the test's table passes before maintenance and meets after it.
BOUNDS = {"max_small_files": 10, "max_snapshots": 20}


def _settings(settings: LakehouseSettings) -> LakehouseSettings:
    """The session's settings with maintenance that expires and removes at once."""
    maintenance = settings.maintenance.model_copy(
        update={
            "snapshot_retain_last": 5,
            "snapshot_max_age_hours": 0,
            "orphan_min_age_hours": 0,
            "health": settings.maintenance.health.model_copy(update=BOUNDS),
        }
    )
    return settings.model_copy(update={"maintenance": maintenance})


def _rows(i: int) -> pa.Table:
    day = date.fromisoformat(DAYS[i % 2])
    return pa.table(
        {
            "id": [f"small-{i}"],
            "event_date": pa.array([day], pa.date32()),
            "amount": pa.array([i], pa.int64()),
            "version": ["small"],
        }
    )


def _small_commits(io_manager: IcebergIOManager, name: str) -> Any:
    """A silver table (written by the IO manager) and 50 one-row commits to it."""
    run([silver_asset(name, daily_rows("v1"), {"partition_expr": "event_date"})], io_manager, DAYS)
    table = io_manager.catalog.load().load_table(("silver", name))
    for i in range(COMMITS):
        table.append(_rows(i))
    return table.refresh()


def _content(table: Any, spark: Any, ref: str | None = None) -> tuple[list[str], int]:
    scan = table.scan().use_ref(ref) if ref else table.scan()
    rows = sorted(repr(sorted(r.items())) for r in scan.to_arrow().to_pylist())
    version = f" VERSION AS OF '{ref}'" if ref else ""
    spark_count = spark.sql(f"SELECT * FROM lakehouse.silver.`{table.name()[-1]}`{version}").count()
    return rows, spark_count


def _maintenance(settings: LakehouseSettings, name: str) -> list[Any]:
    target = MaintenanceTarget("silver", "silver", name, dg.AssetKey(["silver", name]), "test")
    return [build_maintenance_asset(settings, target), build_health_check(settings, target)]


def _health(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    evaluations = result.get_asset_check_evaluations()
    assert [e.check_name for e in evaluations] == [HEALTH_CHECK]
    return evaluations[0]


def test_maintenance_compacts_expires_and_removes_orphans_without_losing_a_row(
    io_manager: IcebergIOManager, settings: LakehouseSettings, spark: Any
) -> None:
    configured = _settings(settings)
    policy = MaintenancePolicy.from_settings(configured.maintenance)
    name = f"m_{uuid.uuid4().hex[:10]}"
    table = _small_commits(io_manager, name)
    before = measure(table, policy).health
    assert before.data_files >= COMMITS
    assert before.snapshots > COMMITS
    assert before.small_files > BOUNDS["max_small_files"]
    content = _content(table, spark)
    assert content[1] == 3 * len(DAYS) + COMMITS

    # An unpublished run branch with rows of its own, and a file no snapshot references.
    branch = "audit_unpublished"
    table = ensure_branch(table, branch)
    table.append(_rows(999), branch=branch)
    branch_content = _content(table.refresh(), spark, branch)
    s3 = build_resources(settings)["s3"].client()
    bucket, _, prefix = table.location().split("://", 1)[1].partition("/")
    orphan = f"{prefix}/data/orphan-{uuid.uuid4().hex}.parquet"
    s3.put_object(Bucket=bucket, Key=orphan, Body=b"never committed")

    assets = _maintenance(configured, name)
    resources = build_resources(configured)
    health_only = dg.materialize(
        assets, resources=resources, selection=dg.AssetSelection.all_asset_checks()
    )
    warned = _health(health_only)
    assert not warned.passed
    assert warned.severity == dg.AssetCheckSeverity.WARN

    result = dg.materialize(assets, resources=resources, raise_on_error=False)
    assert result.success, failure_message(result)
    table = table.refresh()
    after = measure(table, policy).health
    assert _content(table, spark) == content
    assert _content(table, spark, branch) == branch_content
    assert after.data_files == len(DAYS)
    assert after.small_files == 0
    # retain_last holds per branch: main's last 5 and the run branch's last 5 (they share
    # the snapshots before the branch's own commit).
    assert after.snapshots <= 2 * 5
    assert after.snapshots <= BOUNDS["max_snapshots"]
    assert after.manifests == 1
    assert orphan not in stored_objects(s3, table.location())
    # Every file a snapshot of main or of the branch references is still stored.
    stored = {f"s3://{bucket}/{key}" for key in stored_objects(s3, table.location())}
    referenced = set(table.inspect.all_files().column("file_path").to_pylist())
    assert referenced <= stored
    assert _health(result).passed

    materialization = result.asset_materializations_for_node(assets[0].op.name)[0]
    metadata: dict[str, Any] = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["data_files_before"] == before.data_files
    assert metadata["data_files"] == len(DAYS)
    assert metadata["files_rewritten"] >= COMMITS
    assert metadata["partitions_compacted"] == len(DAYS)
    assert metadata["orphan_files_removed"] >= 1
    assert metadata["bytes_removed"] > 0
    assert metadata["metadata_json_bytes"] < metadata["metadata_json_bytes_before"]


def test_a_write_during_compaction_succeeds_or_retries_and_loses_nothing(
    io_manager: IcebergIOManager, settings: LakehouseSettings, spark: Any
) -> None:
    configured = _settings(settings)
    name = f"m_{uuid.uuid4().hex[:10]}"
    _small_commits(io_manager, name)
    resources = build_resources(configured)
    assets = _maintenance(configured, name)
    outcome: dict[str, dg.ExecuteInProcessResult] = {}

    def maintain() -> None:
        outcome["maintenance"] = dg.materialize(assets, resources=resources, raise_on_error=False)

    worker = threading.Thread(target=maintain)
    worker.start()
    # The IO manager replaces day 1 (overwrite), again and again while compaction runs.
    writes = 0
    while worker.is_alive() or writes == 0:
        written = run(
            [silver_asset(name, daily_rows("v2"), {"partition_expr": "event_date"})],
            io_manager,
            DAYS[:1],
        )
        assert written.success
        writes += 1
    worker.join()
    assert outcome["maintenance"].success, failure_message(outcome["maintenance"])

    table = io_manager.catalog.load().load_table(("silver", name))
    rows = table.scan().to_arrow().to_pylist()
    by_day: dict[str, list[str]] = {}
    for row in rows:
        by_day.setdefault(row["event_date"].isoformat(), []).append(row["id"])
    # Day 1 is exactly the last overwrite; day 2 kept every row it had.
    assert sorted(by_day[DAYS[0]]) == [f"{DAYS[0]}-{i}" for i in range(3)]
    assert len(by_day[DAYS[1]]) == 3 + COMMITS // 2
    assert {r["version"] for r in rows if r["event_date"].isoformat() == DAYS[0]} == {"v2"}
    count = spark.sql(f"SELECT * FROM lakehouse.silver.`{name}`").count()
    assert count == len(rows)
