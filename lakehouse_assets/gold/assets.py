"""Gold: the dbt project's seeds, models and snapshots as Dagster assets.

Every dbt model, snapshot and seed becomes an asset ``["gold", <name>]``; its
dbt sources are the silver assets ``["silver", <table>]``, so the lineage runs
from Kafka to gold in one graph. Models and snapshots are daily-partitioned
like silver: a run passes its partition window (a single-run backfill passes
the whole range) and the late window to dbt, and the incremental
models reprocess that window plus the late window, so late corrections reach
gold. dbt tests become asset checks. Seeds are reference data, not
partitioned: they load when missing or when their CSV changes.
"""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtProject,
    dbt_assets,
)
from pyiceberg.exceptions import NoSuchTableError

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.gold.publishing import (
    drop_run_branch,
    enable_wap,
    gold_tables,
    refuse_unaudited_models,
    writing_to_branch,
)
from lakehouse_assets.groups import GOLD_GROUP
from lakehouse_assets.partitions import automated_days, daily_partitions
from lakehouse_assets.silver.freshness import downstream_policy, table_latencies
from resources.dbt.in_process import InProcessDbtResource, commits_carrying
from resources.dbt.project import (
    environment,
    gold_late_window_days,
    vars_argument,
    window_environment,
)
from resources.iceberg.branches import at_branch, run_branch
from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.publishing import drop_stale_branches, publish_tables
from resources.iceberg.writes import (
    PARTITION_KEYS_PROPERTY,
    RUN_ID_PROPERTY,
    format_partition_keys,
)
from resources.lineage.dbt_columns import iceberg_columns, with_dbt_column_lineage
from resources.settings import ConfigError, LakehouseSettings
from resources.spark.resource import SparkResource
from resources.table_metadata import column_schema

GOLD_POOL = "gold"


def gold_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([GOLD_GROUP, name])


def no_blocking_check_failed_upstream() -> dg.AutomationCondition:
    """True for a day when no table it reads has a failed blocking check, or the
    table is requested again on this tick (its checks then run in the same run
    and block there).

    Dagster's ``all_deps_blocking_checks_passed`` asks more: each upstream check
    must have passed or be requested itself. Contract checks have no automation
    condition of their own (they ride along in every run of their asset), so for
    a new silver day they are neither, and gold would never be requested.

    Like Dagster's own condition, this sees whether a check failed, not its
    severity: a blocking check that failed on warning rules only holds the day
    here too, while in a run it does not block. It matters only when gold runs
    apart from silver's run (a dataset with a start date of its own).
    """
    failed = dg.AutomationCondition.any_checks_match(
        dg.AutomationCondition.check_failed(), blocking_only=True
    )
    return dg.AutomationCondition.all_deps_match(
        dg.AutomationCondition.will_be_requested() | ~failed
    ).with_label("no blocking check failed upstream")


def gold_automation_condition(
    late_window_days: int, seeds: Sequence[dg.AssetKey] = ()
) -> dg.AutomationCondition:
    """Run a gold day when a table it reads changed, unless a blocking check upstream failed.

    Silver's condition (new data over the last days of the late window, nothing
    upstream in progress) plus :func:`no_blocking_check_failed_upstream`.
    ``any_deps_updated`` also holds when silver is requested on the same tick, so
    silver and gold of a day run together in one run, where a failing blocking
    check stops gold's step. A model waits for the gold models it reads (unless
    they run on the same tick) and the ``seeds`` it reads to exist: seeds load in
    runs of their own.

    A model's own update does not reset its trigger on a tick that requests a table
    it reads. The trigger on that tick is "will be requested", which carries no
    time, so when the model's update from the previous run is seen on the same tick,
    Dagster's ``since_last_handled`` cannot order the two and the reset wins: the
    new day's gold would wait for the next change upstream. On every other tick the
    reset is Dagster's own (requested, updated or first evaluation).
    """
    deps_requested = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.will_be_requested()
    )
    handled = (
        dg.AutomationCondition.newly_requested()
        | (dg.AutomationCondition.newly_updated() & ~deps_requested)
        | dg.AutomationCondition.initial_evaluation()
    ).with_label("handled, unless a table it reads is requested now")
    condition = (
        dg.AutomationCondition.in_latest_time_window(
            lookback_delta=timedelta(days=automated_days(late_window_days))
        )
        & dg.AutomationCondition.any_deps_updated().since(handled)
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & no_blocking_check_failed_upstream()
    )
    # A model reading another gold model waits for it (run alone it would fail on the
    # missing table), unless that model is requested on this tick too: then both run
    # in one run. Seeds load in runs of their own, so a model waits until a seed
    # exists, even when it is requested on this tick.
    models = dg.AssetSelection.groups(GOLD_GROUP) - dg.AssetSelection.assets(*seeds)
    condition &= ~dg.AutomationCondition.any_deps_missing().allow(models)
    if seeds:
        condition &= ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.missing()).allow(
            dg.AssetSelection.assets(*seeds)
        )
    return condition.with_label(
        f"a table it reads updated, no blocking check failed (late window {late_window_days})"
    )


#: Seeds are loaded when missing and again when their file (code version) changes.
SEED_AUTOMATION = (
    dg.AutomationCondition.missing() | dg.AutomationCondition.code_version_changed()
).newly_true() & ~dg.AutomationCondition.in_progress()


class GoldTranslator(DagsterDbtTranslator):
    """Keys, groups, owners and automation of the dbt project's assets.

    * models, snapshots and seeds: ``["gold", <name>]`` in group ``gold``;
    * sources: ``[<source name>, <table>]``, so source ``silver`` is the silver assets;
    * owners: the ``owner`` in a resource's dbt ``meta``, else ``dbt.owner`` of the config;
    * automation: seeds when missing or changed, everything else
      :func:`gold_automation_condition`;
    * checks: every dbt test, described by its own ``description``.
    """

    def __init__(self, settings: LakehouseSettings, seeds: Sequence[str] = ()) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self._default_owner = settings.dbt.owner
        self._freshness = settings.quality.freshness
        self._latencies = table_latencies(
            load_contract(settings.contract_path(name)) for name in settings.datasets
        )
        self._condition = gold_automation_condition(
            gold_late_window_days(settings), [gold_key(name) for name in seeds]
        )

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return gold_key(dbt_resource_props["name"])

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        """dagster-dbt's spec, with the freshness policy of the silver tables the model
        reads (:func:`~lakehouse_assets.silver.freshness.downstream_policy`)."""
        spec = super().get_asset_spec(manifest, unique_id, project)
        if manifest["nodes"].get(unique_id, {}).get("resource_type") not in FRESH_RESOURCES:
            return spec
        read = silver_sources(manifest, unique_id)
        policy = downstream_policy(read, self._latencies, self._freshness)
        return spec.replace_attributes(freshness_policy=policy) if policy else spec

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return None
        return GOLD_GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        meta = dbt_resource_props.get("config", {}).get("meta") or dbt_resource_props.get("meta")
        owner = (meta or {}).get("owner")
        return [str(owner) if owner else self._default_owner]

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetCheckSpec | None:
        """dagster-dbt's check of a dbt test, described by the test's own ``description``
        (dagster-dbt reads only ``meta.description``), so the UI says what failed."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        described = manifest["nodes"].get(unique_id, {}).get("description")
        if spec is None or spec.description or not described:
            return spec
        return dg.AssetCheckSpec(
            name=spec.name,
            asset=spec.asset_key,
            description=described,
            additional_deps=spec.additional_deps,
            metadata=spec.metadata,
            blocking=spec.blocking,
        )

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        kind = dbt_resource_props["resource_type"]
        if kind == "source":
            return None
        if kind == "seed":
            return SEED_AUTOMATION
        return self._condition


#: dbt resources that are built from silver and get a freshness policy (seeds are not).
FRESH_RESOURCES = frozenset({"model", "snapshot"})
#: The dbt source of the silver tables (dbt/models/staging/_silver__sources.yml).
SILVER_SOURCE = "silver"


def silver_sources(manifest: Mapping[str, Any], unique_id: str) -> set[str]:
    """The silver tables (dbt source ``silver``) that ``unique_id`` reads, directly or
    through other models."""
    parents = manifest.get("parent_map", {})
    seen: set[str] = set()
    pending = [unique_id]
    while pending:
        for parent in parents.get(pending.pop(), []):
            if parent not in seen:
                seen.add(parent)
                pending.append(parent)
    sources = manifest.get("sources", {})
    return {
        sources[uid]["name"]
        for uid in seen
        if uid in sources and sources[uid].get("source_name") == SILVER_SOURCE
    }


def dbt_window(window: dg.TimeWindow | None) -> dict[str, str | None]:
    """The environment that gives dbt a run's partition window (a single-run backfill:
    the whole range); ``None`` (seeds): everything. The incremental models reprocess
    from its start minus ``late_window_days`` (``dbt/macros/lookback.sql``)."""
    if window is None:
        return window_environment(None, None)
    return window_environment(window.start.date(), window.end.date())


def _with_table_metadata(
    context: dg.AssetExecutionContext,
    events: Iterator[Any],
    iceberg: IcebergCatalogResource,
    namespace: str,
    branch: str | None,
) -> Iterator[Any]:
    """Add the Iceberg table's row count, schema, name and snapshot to each dbt output,
    as the run wrote it (at ``branch``'s head when the run writes a branch).

    Views (staging models) are not Iceberg tables and keep dbt's metadata only.
    """
    catalog = iceberg.load()
    for event in events:
        if isinstance(event, dg.Output):
            name = context.assets_def.keys_by_output_name[event.output_name].path[-1]
            try:
                table = at_branch(catalog.load_table((namespace, name)), branch)
            except NoSuchTableError:
                yield event
                continue
            snapshot = table.current_snapshot()
            metadata: dict[str, Any] = {
                "dagster/column_schema": column_schema(table.schema().as_arrow()),
                "dagster/table_name": f"{namespace}.{name}",
            }
            if branch:
                metadata["branch"] = branch
            if snapshot is not None:
                metadata["snapshot_id"] = str(snapshot.snapshot_id)
                rows = snapshot.summary.get("total-records") if snapshot.summary else None
                if rows is not None:
                    metadata["dagster/row_count"] = int(rows)
            yield event.with_metadata({**event.metadata, **metadata})
        else:
            yield event


def _prepare_branch(
    context: dg.AssetExecutionContext,
    iceberg: IcebergCatalogResource,
    settings: LakehouseSettings,
    audited: list[tuple[str, str]],
) -> str:
    """The run's branch for gold's tables, with stale branches and an earlier attempt's
    branch dropped and write-audit-publish enabled on every existing table."""
    branch = run_branch(context.op_execution_context.run_id)
    max_age = timedelta(days=settings.catalog.audit_branch_max_age_days)
    drop_stale_branches(iceberg, audited, max_age, context.log)
    again = drop_run_branch(iceberg, audited, branch)
    if again:
        context.log.info(f"dropped {branch} of {', '.join(again)}: an earlier attempt's writes")
    enable_wap(iceberg, audited)
    context.log.info(
        f"dbt writes gold to run branch {branch}; main is published only when dbt build "
        "succeeds (every test of severity error passes)"
    )
    return branch


def _dbt_build(
    context: dg.AssetExecutionContext,
    dbt: InProcessDbtResource,
    spark: SparkResource,
    iceberg: IcebergCatalogResource,
    *,
    settings: LakehouseSettings,
    window: dg.TimeWindow | None,
    audited: list[tuple[str, str]] | None = None,
) -> Iterator[Any]:
    """``dbt build`` of the step's selection, with the table metadata of each output.

    In-process dbt runs on the run's Spark session, started here from the project's
    Spark resource (silver steps of the same run have started it already). With
    ``audited`` (the gold tables, in publishing order) dbt writes the run's branch and
    the tables are published when the build succeeds (:mod:`lakehouse_assets.gold.publishing`).
    """
    if audited is not None and not dbt.in_process:
        raise ConfigError(
            "gold's write-audit-publish sets the run's branch on the run's Spark session, "
            "which only in-process dbt shares: set the dbt resource's in_process, or "
            "catalog.write_audit_publish to false"
        )
    if dbt.in_process:
        spark.spark_session  # noqa: B018  (starts the session dbt-spark will reuse)
    branch = _prepare_branch(context, iceberg, settings, audited) if audited is not None else None
    on_branch = writing_to_branch(spark.spark_session, branch) if branch else nullcontext()
    properties = {RUN_ID_PROPERTY: context.run_id}
    if window is not None:
        properties[PARTITION_KEYS_PROPERTY] = format_partition_keys(context.partition_keys)
    carrying = (
        commits_carrying(spark.spark_session, properties) if dbt.in_process else nullcontext()
    )
    with environment(dbt_window(window)), on_branch, carrying:
        invocation = dbt.cli(["build", *vars_argument(settings)], context=context)
        # OpenLineage: each model's output carries dbt's column lineage (resources.lineage).
        events = with_dbt_column_lineage(
            invocation, iceberg_columns(iceberg.load), invocation.stream()
        )
        try:
            yield from _with_table_metadata(
                context, events, iceberg, settings.namespace("gold"), branch
            )
        except Exception:
            if branch:
                context.log.error(
                    f"dbt build failed: main of the gold tables is unchanged; what this run "
                    f"wrote stays on branch {branch} (lakehouse-branches list --gold; in Spark "
                    f"<table>.branch_{branch}, in pyiceberg scan().use_ref({branch!r}))"
                )
            raise
    if branch and audited is not None:
        publish_tables(iceberg, audited, branch, context.log)


def build_gold_assets(
    settings: LakehouseSettings, project: DbtProject
) -> list[dg.AssetsDefinition]:
    """The partitioned models and snapshots, and the unpartitioned seeds, of ``project``."""
    manifest = json.loads(project.manifest_path.read_text())
    audited: list[tuple[str, str]] | None = None
    if settings.catalog.write_audit_publish:
        refuse_unaudited_models(manifest)
        audited = [(settings.namespace("gold"), table) for table in gold_tables(manifest)]
    seeds = [node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "seed"]
    translator = GoldTranslator(settings, seeds)

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        exclude="resource_type:seed",
        name="gold_models",
        partitions_def=daily_partitions(settings),
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        pool=GOLD_POOL,
    )
    def gold_models(
        context: dg.AssetExecutionContext,
        dbt: InProcessDbtResource,
        spark: SparkResource,
        iceberg: IcebergCatalogResource,
    ) -> Iterator[Any]:
        """``dbt build`` of the selected models and snapshots, for the run's partition window."""
        window = context.partition_time_window
        yield from _dbt_build(
            context, dbt, spark, iceberg, settings=settings, window=window, audited=audited
        )

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select="resource_type:seed",
        name="gold_seeds",
        dagster_dbt_translator=translator,
        pool=GOLD_POOL,
    )
    def gold_seeds(
        context: dg.AssetExecutionContext,
        dbt: InProcessDbtResource,
        spark: SparkResource,
        iceberg: IcebergCatalogResource,
    ) -> Iterator[Any]:
        """``dbt build`` of the seeds (reference data such as FX rates) and their tests."""
        yield from _dbt_build(context, dbt, spark, iceberg, settings=settings, window=None)

    return [gold_models, gold_seeds]
