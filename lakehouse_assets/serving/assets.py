"""The export assets of the serving stores, downstream of gold (see
:mod:`lakehouse_assets.serving.dynamodb` and :mod:`lakehouse_assets.serving.postgres`
for what an export writes)."""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
import warnings
from datetime import date, timedelta
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.gold.assets import gold_automation_condition, gold_key
from lakehouse_assets.partitions import automated_days, daily_partitions
from lakehouse_assets.serving import postgres as star_schema
from lakehouse_assets.serving.dynamodb import (
    differences,
    ensure_table,
    fetch_items,
    plan_export,
    sample,
    stored_hashes,
    to_item,
    write,
)
from lakehouse_assets.silver.assets import event_table, silver_key
from lakehouse_assets.silver.quality import QUARANTINE_RATE
from resources.config_sections import DynamoDbExport, PostgresExport
from resources.dbt.project import gold_late_window_days
from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.writes import window_filter
from resources.serving.dynamodb import DynamoDbResource
from resources.serving.postgres import PostgresResource
from resources.settings import LakehouseSettings

SERVING_GROUP = "serving"
DYNAMODB_CHECK = "dynamodb_reconciliation"
POSTGRES_CHECK = "postgres_reconciliation"
#: One export of a store at a time: two runs of the same day must not interleave.
SERVING_POOL = "serving"


def dynamodb_key(model: str) -> dg.AssetKey:
    return dg.AssetKey([SERVING_GROUP, "dynamodb", model])


def postgres_key(model: str) -> dg.AssetKey:
    return dg.AssetKey([SERVING_GROUP, "postgres", model])


def _gold_rows(
    iceberg: IcebergCatalogResource,
    settings: LakehouseSettings,
    model: str,
    column: str,
    window: dg.TimeWindow,
) -> tuple[list[dict[str, Any]], pa.Schema]:
    """The gold model's rows of the partition ``window`` on ``main``, and their schema."""
    identifier = (settings.namespace("gold"), model)
    table = iceberg.load().load_table(identifier)
    row_filter = window_filter(table.schema(), column, window, ".".join(identifier))
    rows = table.scan(row_filter=row_filter).to_arrow()
    return rows.to_pylist(), rows.schema


def _key_type(schema: pa.Schema, key: str) -> str:
    kind = schema.field(key).type
    return "N" if pa.types.is_integer(kind) or pa.types.is_decimal(kind) else "S"


class DynamoDbExportConfig(dg.Config):
    """Run config of an export."""

    rewrite_all: bool = Field(
        default=False,
        description=(
            "Put every row of the day, not only those whose hash changed: repairs items "
            "changed in DynamoDB behind the export's back (the reconciliation check "
            "finds them)."
        ),
    )


def build_dynamodb_export(
    settings: LakehouseSettings, model: str, export: DynamoDbExport
) -> list[Any]:
    """The export asset of gold ``model`` and its reconciliation check."""
    key = dynamodb_key(model)
    table_name = f"{settings.serving.dynamodb.table_prefix}{model}"
    partitions_def = daily_partitions(settings)
    sample_size = settings.serving.dynamodb.sample_size

    @dg.asset(
        key=key,
        deps=[gold_key(model)],
        group_name=SERVING_GROUP,
        kinds={"dynamodb"},
        partitions_def=partitions_def,
        pool=SERVING_POOL,
        automation_condition=gold_automation_condition(gold_late_window_days(settings)),
        description=(
            f"Gold {model} in DynamoDB table {table_name}, keyed by {export.key}, for lookups: "
            f"a day's rows (by {export.partition_column}); only new or changed rows are "
            "written, rows gone from gold are deleted."
        ),
    )
    def _export(
        context: dg.AssetExecutionContext,
        config: DynamoDbExportConfig,
        iceberg: IcebergCatalogResource,
        dynamodb: DynamoDbResource,
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        day = window.start.date()
        rows, schema = _gold_rows(iceberg, settings, model, export.partition_column, window)
        client = dynamodb.client()
        ensure_table(client, table_name, export.key, _key_type(schema, export.key))
        stored = stored_hashes(client, table_name, export.key, day)
        if config.rewrite_all:
            stored = dict.fromkeys(stored, "")
        plan = plan_export([to_item(row, day) for row in rows], stored, export.key)
        deleted = write(client, dynamodb.table(table_name), export.key, day, plan)
        context.log.info(
            f"{table_name} {day}: {len(plan.puts)} put, {deleted} deleted, "
            f"{plan.unchanged} unchanged of {len(rows)} gold rows"
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/partition_row_count": len(rows),
                "dynamodb_table": table_name,
                "endpoint": dynamodb.address,
                "items_put": len(plan.puts),
                "items_deleted": deleted,
                "items_unchanged": plan.unchanged,
            }
        )

    with warnings.catch_warnings():
        # Partitioned asset checks are a preview in Dagster 1.13 (see silver/checks.py).
        warnings.filterwarnings("ignore", message="Specifying a partitions_def")

        @dg.asset_check(
            asset=key,
            name=DYNAMODB_CHECK,
            partitions_def=partitions_def,
            description=(
                f"{table_name} holds exactly the gold {model} rows of the day: the same "
                f"number of items, and {sample_size} sampled rows equal value by value."
            ),
        )
        def _reconcile(
            context: dg.AssetCheckExecutionContext,
            iceberg: IcebergCatalogResource,
            dynamodb: DynamoDbResource,
        ) -> dg.AssetCheckResult:
            window = context.partition_time_window
            day = window.start.date()
            rows, _ = _gold_rows(iceberg, settings, model, export.partition_column, window)
            client = dynamodb.client()
            stored = stored_hashes(client, table_name, export.key, day)
            picked = sample(rows, export.key, sample_size)
            items = fetch_items(
                client, table_name, export.key, [str(r[export.key]) for r in picked]
            )
            problems = differences(picked, items, export.key, day)
            if len(stored) != len(rows):
                problems.insert(0, f"{len(stored)} items for {len(rows)} gold rows")
            return dg.AssetCheckResult(
                passed=not problems,
                severity=dg.AssetCheckSeverity.ERROR,
                description="; ".join(problems[:10]) or "items match gold",
                metadata={
                    "gold_rows": len(rows),
                    "items": len(stored),
                    "sampled": len(picked),
                    "mismatches": len(problems),
                },
            )

    return [_export, _reconcile]


# --- PostgreSQL: the star schema ------------------------------------------------------


def _gold_snapshot(
    iceberg: IcebergCatalogResource,
    settings: LakehouseSettings,
    model: str,
    column: str | None,
    window: dg.TimeWindow | None,
) -> tuple[list[dict[str, Any]], list[star_schema.Column], int | None]:
    """The gold model's rows on ``main`` (of the day ``window`` by ``column``, or all),
    its columns as exported, and the snapshot they were read from."""
    identifier = (settings.namespace("gold"), model)
    table = iceberg.load().load_table(identifier)
    snapshot = table.current_snapshot()
    snapshot_id = snapshot.snapshot_id if snapshot is not None else None
    columns = star_schema.columns_of(table.schema())
    if column is None or window is None:
        scan = table.scan(snapshot_id=snapshot_id)
    else:
        row_filter = window_filter(table.schema(), column, window, ".".join(identifier))
        scan = table.scan(row_filter=row_filter, snapshot_id=snapshot_id)
    return scan.to_arrow().to_pylist(), columns, snapshot_id


def dimension_automation_condition() -> dg.AutomationCondition:
    """Export a whole-table model after any day of its gold model updated, once nothing
    upstream is in progress (gold's days of one run are exported together)."""
    handled = (
        dg.AutomationCondition.newly_requested()
        | dg.AutomationCondition.newly_updated()
        | dg.AutomationCondition.initial_evaluation()
    )
    return (
        dg.AutomationCondition.any_deps_updated().since(handled)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("its gold model updated")


def _column_schema(columns: list[star_schema.Column]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name, c.type, constraints=dg.TableColumnConstraints(nullable=not c.required)
            )
            for c in columns
        ]
    )


def build_postgres_export(
    settings: LakehouseSettings, model: str, export: PostgresExport
) -> list[Any]:
    """The export asset of gold ``model`` into the star schema, and its reconciliation
    check: daily when the export names a ``partition_column``, else the whole table."""
    key = postgres_key(model)
    schema_name = settings.serving.postgres.schema_name
    table_name = f"{schema_name}.{model}"
    daily = export.partition_column is not None
    partitions_def = daily_partitions(settings) if daily else None
    sample_size = settings.serving.postgres.sample_size
    indexes = star_schema.wanted_indexes(
        export.primary_key, export.partition_column, export.indexes
    )
    what = (
        f"a day's rows (by {export.partition_column}) replaced in one transaction"
        if daily
        else "the whole table replaced in one transaction"
    )

    def _partition(
        context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    ) -> tuple[dg.TimeWindow | None, tuple[str, Any] | None]:
        if export.partition_column is None:
            return None, None
        window = context.partition_time_window
        return window, (export.partition_column, window.start.date())

    @dg.asset(
        key=key,
        deps=[gold_key(model)],
        group_name=SERVING_GROUP,
        kinds={"postgres"},
        partitions_def=partitions_def,
        pool=SERVING_POOL,
        automation_condition=(
            gold_automation_condition(gold_late_window_days(settings))
            if daily
            else dimension_automation_condition()
        ),
        description=(
            f"Gold {model} in PostgreSQL table {table_name} (primary key "
            f"{', '.join(export.primary_key)}) for BI tools: {what}."
        ),
    )
    def _export(
        context: dg.AssetExecutionContext,
        iceberg: IcebergCatalogResource,
        postgres: PostgresResource,
    ) -> dg.MaterializeResult:
        window, partition = _partition(context)
        rows, columns, snapshot_id = _gold_snapshot(
            iceberg, settings, model, export.partition_column, window
        )
        with postgres.connect(autocommit=True) as conn:
            added = star_schema.ensure_table(
                conn, schema_name, model, columns, export.primary_key, indexes
            )
            counts = star_schema.replace_rows(
                conn,
                schema_name,
                model,
                columns,
                rows,
                export.primary_key,
                partition,
                run_id=context.run.run_id,
                gold_snapshot_id=snapshot_id,
            )
        scope = partition[1].isoformat() if partition else "whole table"
        context.log.info(
            f"{table_name} {scope}: {counts.inserted} rows written, {counts.deleted} replaced"
            + (f", {counts.moved_in} moved in from other days" if counts.moved_in else "")
            + (f"; columns added: {', '.join(added)}" if added else "")
        )
        return dg.MaterializeResult(
            metadata={
                ("dagster/partition_row_count" if daily else "dagster/row_count"): counts.inserted,
                "dagster/table_name": table_name,
                "dagster/column_schema": _column_schema(columns),
                "server": postgres.address,
                "rows_deleted": counts.deleted,
                "rows_moved_in": counts.moved_in,
                "columns_added": ", ".join(added),
                "gold_snapshot_id": str(snapshot_id),
            }
        )

    with warnings.catch_warnings():
        # Partitioned asset checks are a preview in Dagster 1.13 (see silver/checks.py).
        warnings.filterwarnings("ignore", message="Specifying a partitions_def")

        @dg.asset_check(
            asset=key,
            name=POSTGRES_CHECK,
            partitions_def=partitions_def,
            description=(
                f"{table_name} holds exactly the gold {model} rows"
                + (" of the day" if daily else "")
                + f": the same number of rows, and {sample_size} sampled rows equal value by value."
            ),
        )
        def _reconcile(
            context: dg.AssetCheckExecutionContext,
            iceberg: IcebergCatalogResource,
            postgres: PostgresResource,
        ) -> dg.AssetCheckResult:
            window, partition = _partition(context)
            rows, columns, _ = _gold_snapshot(
                iceberg, settings, model, export.partition_column, window
            )
            picked = star_schema.sample(rows, export.primary_key, sample_size)
            with postgres.connect(autocommit=True) as conn:
                stored_count = star_schema.count_rows(conn, schema_name, model, partition)
                stored = star_schema.fetch_rows(
                    conn,
                    schema_name,
                    model,
                    columns,
                    export.primary_key,
                    [tuple(r[k] for k in export.primary_key) for r in picked],
                )
            problems = star_schema.differences(picked, stored, columns, export.primary_key)
            if stored_count != len(rows):
                problems.insert(0, f"{stored_count} rows for {len(rows)} gold rows")
            return dg.AssetCheckResult(
                passed=not problems,
                severity=dg.AssetCheckSeverity.ERROR,
                description="; ".join(problems[:10]) or "rows match gold",
                metadata={
                    "gold_rows": len(rows),
                    "postgres_rows": stored_count,
                    "sampled": len(picked),
                    "mismatches": len(problems),
                },
            )

    return [_export, _reconcile]


# --- PostgreSQL: silver's data quality per day, beside the star schema ----------------

QUALITY_TABLE = "silver_quality_daily"
QUALITY_COLUMNS = [
    star_schema.Column("dataset", "text", required=True),
    star_schema.Column("day", "date", required=True),
    star_schema.Column("rows_in", "bigint"),
    star_schema.Column("rows_quarantined", "bigint"),
    star_schema.Column("quarantine_rate", "double precision"),
    star_schema.Column("silver_run_id", "text"),
]
QUALITY_KEY = ["dataset", "day"]


def silver_events_keys(settings: LakehouseSettings) -> dict[str, dg.AssetKey]:
    """Dataset -> its silver events table, whose materialisations carry the day's
    ``quarantine_rate`` (``lakehouse_assets.silver.quality``)."""
    return {
        name: silver_key(event_table(load_contract(settings.contract_path(name))))
        for name in settings.datasets
    }


def recorded_quality(
    instance: dg.DagsterInstance, dataset: str, asset_key: dg.AssetKey, day: date
) -> dict[str, Any] | None:
    """The day's figures from the newest materialisation of ``asset_key`` that has them."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[day.isoformat()]), limit=20
    ).records
    for record in records:
        event = record.asset_materialization
        if event is None or QUARANTINE_RATE not in event.metadata:
            continue
        values = {k: v.value for k, v in event.metadata.items()}
        return {
            "dataset": dataset,
            "day": day,
            "rows_in": values.get("rows_in"),
            "rows_quarantined": values.get("rows_quarantined"),
            "quarantine_rate": values[QUARANTINE_RATE],
            "silver_run_id": record.run_id,
        }
    return None


def build_postgres_quality_export(settings: LakehouseSettings) -> dg.AssetsDefinition:
    """``serving/postgres/silver_quality``: each dataset's quarantine rate of the day,
    copied from the metadata of its silver events table's newest materialisation of the
    day into ``<schema_name>.silver_quality_daily``, so that readers of the star schema
    (the dashboard) see it without access to Dagster. Replaced per day, like the facts."""
    schema_name = settings.serving.postgres.schema_name
    sources = silver_events_keys(settings)
    lookback = timedelta(days=automated_days(settings.partitions.late_window_days))
    handled = (
        dg.AutomationCondition.newly_requested()
        | dg.AutomationCondition.newly_updated()
        | dg.AutomationCondition.initial_evaluation()
    )

    @dg.asset(
        key=postgres_key("silver_quality"),
        deps=list(sources.values()),
        group_name=SERVING_GROUP,
        kinds={"postgres"},
        partitions_def=daily_partitions(settings),
        pool=SERVING_POOL,
        automation_condition=(
            dg.AutomationCondition.in_latest_time_window(lookback_delta=lookback)
            & dg.AutomationCondition.any_deps_updated().since(handled)
            & ~dg.AutomationCondition.any_deps_in_progress()
            & ~dg.AutomationCondition.in_progress()
        ).with_label("a silver events table's day updated"),
        description=(
            f"Silver's quarantine rate per dataset and day in {schema_name}.{QUALITY_TABLE}, "
            "from the metadata of each silver events table's materialisation of the day."
        ),
    )
    def _export(
        context: dg.AssetExecutionContext, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        day = context.partition_time_window.start.date()
        rows = [
            found
            for dataset, key in sources.items()
            if (found := recorded_quality(context.instance, dataset, key, day)) is not None
        ]
        with postgres.connect(autocommit=True) as conn:
            star_schema.ensure_table(
                conn, schema_name, QUALITY_TABLE, QUALITY_COLUMNS, QUALITY_KEY, []
            )
            counts = star_schema.replace_rows(
                conn,
                schema_name,
                QUALITY_TABLE,
                QUALITY_COLUMNS,
                rows,
                QUALITY_KEY,
                ("day", day),
                run_id=context.run.run_id,
                gold_snapshot_id=None,
            )
        return dg.MaterializeResult(
            metadata={
                "dagster/partition_row_count": counts.inserted,
                "dagster/table_name": f"{schema_name}.{QUALITY_TABLE}",
                "datasets": ", ".join(r["dataset"] for r in rows),
                "server": postgres.address,
            }
        )

    return _export
