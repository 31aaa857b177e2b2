"""One silver multi-asset per dataset: its contract's tables and its quarantine table.

The factory reads the dataset's contract (``contracts/<dataset>.yaml``): every
``physicalType: table`` object becomes an asset ``["silver", <table>]`` stored by
the Iceberg IO manager (partition overwrite, or an upsert by primary key and
sequence column when the contract names one), plus ``["silver",
"<dataset>_quarantine"]``. One Spark job reads the bronze days that can hold the
run's records (see :mod:`lakehouse_assets.silver.transforms`), validates every
payload against the contract, and writes all of them; a reconciliation check
proves that every bronze record is accounted for.
"""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import dagster as dg

from lakehouse_assets.bronze.assets import bronze_key
from lakehouse_assets.bronze.typed import TypedBronze
from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.contracts.model import Contract
from lakehouse_assets.partitions import (
    AHEAD_TOLERANCE_DAYS,
    automated_days,
    bronze_days,
    daily_partitions,
)
from lakehouse_assets.silver.check_plans import CheckPlan
from lakehouse_assets.silver.checks import contract_check_plans, spec_check_options
from lakehouse_assets.silver.errors import s3_errors_named
from lakehouse_assets.silver.freshness import contract_policy
from lakehouse_assets.silver.publishing import audit, publish_order
from lakehouse_assets.silver.quality import (
    anomaly_check_spec,
    day_qualities,
    judge_quarantine_rates,
    record_days,
)
from lakehouse_assets.silver.table_checks import CHECK_FRESHNESS
from lakehouse_assets.silver.transforms import (
    ACCEPTED,
    DUPLICATE,
    QUARANTINED,
    STATUS,
    TARGET_DATE,
    classify,
    in_window,
    quarantine_rows,
    read_bronze_once,
    table_builder,
    write_options,
)
from resources.config_sections import FreshnessSettings
from resources.iceberg.branches import at_branch, run_branch
from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.publishing import drop_stale_branches, publish_tables
from resources.s3.parquet_store import ParquetStore
from resources.settings import LakehouseSettings
from resources.spark.resource import SparkResource

SILVER_GROUP = "silver"
RECONCILIATION_CHECK = "reconciliation"
QUARANTINE_PARTITION_COLUMN = "partition_date"
RULE_ID = "rule_id"


def silver_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([SILVER_GROUP, table])


def silver_pool(dataset: str) -> str:
    """The pool of everything that writes ``dataset``'s silver tables: one at a time."""
    return f"silver_{dataset}"


def event_table(contract: Contract) -> str:
    """The table with one row per accepted record: its key is the payload's key."""
    payload = contract.payload
    key = contract.keys(payload).primary_key if payload else ()
    for table in contract.tables:
        if contract.keys(table).primary_key == key and not contract.keys(table).sequence_column:
            return table
    raise ValueError(
        f"{contract.path}: no table keyed like the payload ({', '.join(key) or 'no key'}) "
        "holds every accepted record, so silver cannot be reconciled with bronze"
    )


def silver_automation_condition(late_window_days: int) -> dg.AutomationCondition:
    """Run a silver day when one of its bronze days landed new records.

    Like ``eager()``, but over the last ``late_window + 2`` days instead of only
    the latest (late records update older days), and without waiting for missing
    upstream days: a bronze day with no record is never materialised.
    """
    return (
        dg.AutomationCondition.in_latest_time_window(
            lookback_delta=timedelta(days=automated_days(late_window_days))
        )
        & dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"bronze landed (late window {late_window_days} days)")


@dataclass(frozen=True)
class Reconciliation:
    """Every bronze record read for the run's window, accounted for."""

    assigned: int
    accepted: int
    duplicates: int
    quarantined: int
    accepted_in_table: int
    quarantined_in_table: int
    read: int
    in_store: int
    """Records in the bronze files the run read, counted from their Parquet footers."""

    @property
    def holds(self) -> bool:
        return (
            self.assigned == self.accepted_in_table + self.quarantined_in_table + self.duplicates
            and self.accepted == self.accepted_in_table
            and self.quarantined == self.quarantined_in_table
            and self.read == self.in_store
        )

    def describe(self) -> str:
        return (
            f"bronze rows of the window {self.assigned} = silver {self.accepted_in_table} "
            f"+ quarantined {self.quarantined_in_table} + duplicates {self.duplicates}; "
            f"bronze rows read {self.read}, in those files' footers {self.in_store}"
        )


def _reconciliation_spec(events: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        RECONCILIATION_CHECK,
        asset=silver_key(events),
        blocking=True,
        description=(
            "Every bronze record of the run's days is accounted for: bronze = silver rows + "
            "quarantined + duplicates removed, counted in the committed tables."
        ),
    )


def _contract_plans(
    contract: Contract,
    specs: Sequence[dg.AssetSpec],
    partitions_def: dg.PartitionsDefinition,
    current_days: int | None = None,
) -> list[CheckPlan]:
    """The contract checks of every table output in ``specs`` (not the quarantine)."""
    quarantine = silver_key(contract.quarantine_table)
    return [
        plan
        for spec in specs
        if spec.key != quarantine
        for plan in contract_check_plans(
            contract,
            spec.key.path[-1],
            spec.key,
            partitions_def,
            related_assets={t: silver_key(t) for t in contract.tables},
            current_days=current_days,
            **spec_check_options(spec),
        )
    ]


def build_freshness_checks(
    settings: LakehouseSettings, dataset: str
) -> list[dg.AssetChecksDefinition]:
    """The ``contract_freshness`` checks of ``dataset``'s tables as standalone checks
    reading ``main`` (run by the ``contract_freshness`` schedule, or from the UI), judging
    in other runs only when they reach the days automation keeps current."""
    contract = load_contract(settings.contract_path(dataset))
    specs = _output_specs(contract, dataset, {}, settings.quality.freshness)
    current = automated_days(settings.late_window_days(dataset))
    plans = _contract_plans(contract, specs, daily_partitions(settings, dataset), current)
    return [plan.definition() for plan in plans if plan.name == CHECK_FRESHNESS]


def _output_specs(
    contract: Contract, dataset: str, common: dict[str, Any], freshness: FreshnessSettings
) -> list[dg.AssetSpec]:
    """The specs of the silver multi-asset's outputs: each contract table (with the
    freshness policy of the contract's SLA), then the quarantine."""
    quarantine = contract.quarantine_table
    policy = contract_policy(contract, freshness)
    specs = []
    for table in contract.tables:
        keys = contract.keys(table)
        metadata: dict[str, Any] = {
            "partition_expr": contract.partition_column(table),
            "contract": f"{contract.path.name} {contract.version}",
        }
        if keys.sequence_column:
            metadata.update(
                write_mode="upsert",
                primary_key=list(keys.primary_key),
                sequence_column=keys.sequence_column,
            )
        metadata.update(write_options(contract.dataset, table))
        specs.append(
            dg.AssetSpec(
                silver_key(table),
                description=contract.object(table).description,
                metadata=metadata,
                freshness_policy=policy,
                **common,
            )
        )
    specs.append(
        dg.AssetSpec(
            silver_key(quarantine),
            description=(
                f"Records of {dataset} that broke an error rule of its contract, arrived later "
                "than the late window or too far ahead: rule id, reason, the raw record and its "
                "Kafka coordinates, by the silver day that accounts for them."
            ),
            metadata={"partition_expr": QUARANTINE_PARTITION_COLUMN},
            **common,
        )
    )
    return specs


def build_silver_asset(settings: LakehouseSettings, dataset: str) -> dg.AssetsDefinition:
    """The silver multi-asset of ``dataset``, from its contract and config."""
    contract = load_contract(settings.contract_path(dataset))
    late_window = settings.late_window_days(dataset)
    builder = table_builder(contract.dataset)
    typed, source_property = _bronze_source(settings, dataset, contract)
    events = event_table(contract)
    events_partition = contract.partition_column(events)
    if events_partition is None:
        raise ValueError(f"{contract.path}: table {events!r} marks no column `partitioned: true`")
    quarantine = contract.quarantine_table
    automation = silver_automation_condition(late_window)
    anomaly_settings = settings.quality.quarantine_anomaly
    common: dict[str, Any] = {
        "group_name": SILVER_GROUP,
        "kinds": {"spark", "iceberg"},
        "automation_condition": automation,
    }
    specs = _output_specs(contract, dataset, common, settings.quality.freshness)
    partitions_def = daily_partitions(settings, dataset)
    # Freshness is about the table's newest row, not the run's days: a standalone check
    # (silver/freshness.py), never in this step, where it could hold a publish back.
    plans = [
        plan
        for plan in _contract_plans(contract, specs, partitions_def)
        if plan.name != CHECK_FRESHNESS
    ]

    # Outputs go through the Iceberg IO manager (specs alone would be Nothing-typed).
    outs = {
        spec.key.to_python_identifier(): dg.AssetOut.from_spec(
            spec, dagster_type=Any, io_manager_key="iceberg_io_manager"
        )
        for spec in specs
    }

    with warnings.catch_warnings():
        # Partitioned check specs are a preview in Dagster 1.13 (see silver/checks.py).
        warnings.filterwarnings(
            "ignore", message="Specifying a partitions_def on an AssetCheckSpec"
        )
        check_specs = [
            _reconciliation_spec(events),
            anomaly_check_spec(silver_key(events), partitions_def, anomaly_settings),
            *(plan.spec() for plan in plans),
        ]
    published_order = publish_order(settings, contract)
    wap = settings.catalog.write_audit_publish

    @dg.multi_asset(
        name=f"silver_{dataset}",
        outs=outs,
        deps=[_bronze_dep(dataset, late_window)],
        check_specs=check_specs,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=silver_pool(dataset),
        can_subset=False,
    )
    def _silver(
        context: dg.AssetExecutionContext,
        spark: SparkResource,
        bronze_store: ParquetStore,
        iceberg: IcebergCatalogResource,
        # The contract checks read the tables where the IO manager wrote them.
        iceberg_io_manager: dg.ResourceParam[Any],
    ) -> Iterator[dg.Output[Any] | dg.AssetCheckResult]:
        from lakehouse_assets.silver.spark_validation import parse_payload

        # The op context's run id: also set when the function is called directly.
        branch = run_branch(context.op_execution_context.run_id) if wap else None
        if branch:
            max_age = timedelta(days=settings.catalog.audit_branch_max_age_days)
            drop_stale_branches(iceberg, published_order, max_age, context.log)
            context.log.info(
                f"writing {dataset}'s silver tables to run branch {branch}; main is published "
                "only when every blocking check passes"
            )
        window = context.partition_time_window
        first, last = window.start.date(), (window.end - timedelta(days=1)).date()
        days = bronze_days(first, last, late_window)
        session = spark.spark_session
        with s3_errors_named(bronze_store.s3):
            # One read of bronze, computed once: every output, count and property below
            # comes from it, never from a second read of files a landing may remove.
            bronze = read_bronze_once(
                session,
                bronze_store,
                dataset,
                days,
                lambda frame: classify(parse_payload(contract, frame), contract, late_window),
                on_retry=context.log.warning,
                typed=typed,
            )
            classified = bronze.rows
            counts = _outcome_counts(classified)
        qualities = day_qualities(
            counts, first, last, accepted=ACCEPTED, quarantined=QUARANTINED, duplicate=DUPLICATE
        )
        mine = classified.where(in_window(first, last))
        tables = builder(mine.where(f"{STATUS} = '{ACCEPTED}'"), contract)
        properties = {
            **source_property,
            "lakehouse.source_offsets": json.dumps(bronze.offsets, sort_keys=True),
            "lakehouse.late_window_days": str(late_window),
            "lakehouse.contract": f"{contract.path.name} {contract.version}",
        }
        output_metadata: dict[str, Any] = {"snapshot_properties": properties}
        if branch:
            output_metadata["branch"] = branch
        frames = {table: tables[table] for table in contract.tables}
        frames[quarantine] = quarantine_rows(mine, contract)
        # Each day's own figures on its materialisation (not the outputs' metadata, which
        # a ranged run gives every day alike).
        record_days(context, silver_key(events), silver_key(quarantine), qualities)
        yield from _outputs(frames, output_metadata)

        result = Reconciliation(
            assigned=sum(q.rows_in for q in qualities),
            accepted=sum(q.accepted for q in qualities),
            duplicates=sum(q.duplicates for q in qualities),
            quarantined=sum(q.quarantined for q in qualities),
            accepted_in_table=_count(
                iceberg, settings, events, column=events_partition, window=window, ref=branch
            ),
            quarantined_in_table=_count(
                iceberg,
                settings,
                quarantine,
                column=QUARANTINE_PARTITION_COLUMN,
                window=window,
                ref=branch,
            ),
            read=sum(n for *_, n in counts),
            # The files this run read, not the store now: a landing since may have
            # replaced them, and reading them again would race it.
            in_store=bronze.rows_in_files,
        )
        context.log.info(f"reconciliation of {dataset} {first}..{last}: {result.describe()}")
        # The audit: every contract check of the run's tables, on what the run wrote.
        audits, failed = audit(plans, context, branch)
        if not result.holds:
            failed.insert(0, RECONCILIATION_CHECK)
        yield from audits
        yield judge_quarantine_rates(context, silver_key(events), qualities, anomaly_settings)
        yield dg.AssetCheckResult(
            check_name=RECONCILIATION_CHECK,
            asset_key=silver_key(events),
            passed=result.holds,
            severity=dg.AssetCheckSeverity.ERROR,
            description=result.describe(),
            metadata={
                "bronze_days_read": f"{days[0]}..{days[-1]}",
                "bronze_rows_read": result.read,
                "bronze_rows_in_store": result.in_store,
                "bronze_read_attempts": bronze.attempts,
                "bronze_rows_of_window": result.assigned,
                "accepted": result.accepted,
                "accepted_in_table": result.accepted_in_table,
                "quarantined": result.quarantined,
                "quarantined_in_table": result.quarantined_in_table,
                "duplicates_removed": result.duplicates,
                **({"branch": branch} if branch else {}),
            },
        )
        if branch and failed:
            context.log.error(
                f"blocking checks failed ({', '.join(failed)}): main of {dataset}'s silver "
                f"tables is unchanged; the rejected rows stay on branch {branch} (read it as "
                f"<table>.branch_{branch} in Spark, scan().use_ref({branch!r}) in pyiceberg)"
            )
        elif branch:
            publish_tables(iceberg, published_order, branch, context.log)

    return _silver


def _bronze_source(
    settings: LakehouseSettings, dataset: str, contract: Contract
) -> tuple[TypedBronze | None, dict[str, str]]:
    """How silver reads the dataset's bronze, and the snapshot property naming its source.

    An HTTP dataset's bronze is typed rows, read as records of the Kafka shape so that
    they take the same contract path (validation, quarantine, dedupe, reconciliation).
    """
    source = settings.dataset(dataset)
    if source.kind == "http":
        return TypedBronze(dataset, contract), {"lakehouse.source_url": source.http_source.url}
    return None, {"lakehouse.source_topic": source.kafka_topic}


def _bronze_dep(dataset: str, late_window: int) -> dg.AssetDep:
    """Silver days read the bronze days their records can have landed on."""
    with warnings.catch_warnings():
        # Beta in 1.13; needed because the newest silver days read bronze days that do
        # not exist yet (tomorrow's), and the oldest one reads the day before the start.
        warnings.simplefilter("ignore", dg.BetaWarning)
        mapping = dg.TimeWindowPartitionMapping(
            start_offset=-AHEAD_TOLERANCE_DAYS,
            end_offset=late_window,
            allow_nonexistent_upstream_partitions=True,
        )
    return dg.AssetDep(bronze_key(dataset), partition_mapping=mapping)


def _outputs(frames: dict[str, Any], metadata: dict[str, Any]) -> Iterator[dg.Output[Any]]:
    """One output per table, in ``frames``' order (the quarantine last)."""
    for table, frame in frames.items():
        yield dg.Output(
            frame, output_name=silver_key(table).to_python_identifier(), metadata=metadata
        )


def _outcome_counts(classified: Any) -> list[tuple[date, str, str | None, int]]:
    """``(silver day, status, quarantine rule id or None, records)`` of every bronze
    record the run read, the window's days and the days around them."""
    grouped = classified.groupBy(
        TARGET_DATE, STATUS, classified["violation"]["rule_id"].alias(RULE_ID)
    ).count()
    return [
        (row[TARGET_DATE], row[STATUS], row[RULE_ID], row["count"]) for row in grouped.collect()
    ]


def _count(
    iceberg: IcebergCatalogResource,
    settings: LakehouseSettings,
    table: str,
    *,
    column: str,
    window: dg.TimeWindow,
    ref: str | None = None,
) -> int:
    """Rows of a committed silver table in the run's partition window (on branch ``ref``
    when given)."""
    from resources.iceberg.io_manager import window_filter

    identifier = (settings.namespace("silver"), table)
    loaded = at_branch(iceberg.load().load_table(identifier), ref)
    row_filter = window_filter(loaded.schema(), column, window, ".".join(identifier))
    return loaded.scan(row_filter=row_filter).count()
