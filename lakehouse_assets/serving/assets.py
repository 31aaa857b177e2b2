"""The export assets of the serving stores, downstream of gold (see
:mod:`lakehouse_assets.serving.dynamodb` for what an export writes)."""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
import warnings
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from lakehouse_assets.gold.assets import gold_automation_condition, gold_key
from lakehouse_assets.partitions import daily_partitions
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
from resources.config_sections import DynamoDbExport
from resources.dbt.project import gold_late_window_days
from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.writes import window_filter
from resources.serving.dynamodb import DynamoDbResource
from resources.settings import LakehouseSettings

SERVING_GROUP = "serving"
DYNAMODB_CHECK = "dynamodb_reconciliation"
#: One export of a store at a time: two runs of the same day must not interleave.
SERVING_POOL = "serving"


def dynamodb_key(model: str) -> dg.AssetKey:
    return dg.AssetKey([SERVING_GROUP, "dynamodb", model])


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
