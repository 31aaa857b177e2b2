"""Asset checks generated from a data contract, one set per silver table.

:func:`contract_check_plans` turns the rules of one contract table
(:meth:`Contract.row_rules`, :meth:`Contract.table_rules`,
:meth:`Contract.arrow_schema`) into checks: the silver multi-asset runs them in its
own step, on the run's branch, before it publishes (write-audit-publish), and
:func:`build_contract_checks` makes them standalone ``@dg.asset_check`` definitions
that read ``main``, for tables written elsewhere. Each check
groups the rules of one kind, reads the Iceberg table once through pyiceberg
(where the asset's IO manager wrote it) and reports, per rule, how many rows
(or keys, or partitions) break it, with a few sample failing keys:

=============================  ==============================================  ==========
check                          evaluates                                       scope
=============================  ==============================================  ==========
``contract_schema``            every contract column present, compatible type  table
``contract_row_rules``         required, allowed values, pattern, range,       partition
                               length, ``sum_equals`` (the table's row rules)
``contract_unique``            primary key, ``unique`` columns,                partition, or
                               ``duplicateValues`` rules                       table (upserts)
``contract_row_count``         ``rowCount`` bounds, per daily partition        partition
``contract_freshness``         the SLA ``latency`` on the table's newest row   table
``contract_<rule id>``         a built-in table rule (``child_lines_sum_to``)  partition
=============================  ==============================================  ==========

Severity. A check is ``blocking`` when one of its rules has severity ``error``.
Its result has severity ERROR when an ``error`` rule fails (downstream assets of
the run do not materialise) and WARN when only ``warning`` rules fail: Dagster
blocks on failed blocking checks of ERROR severity only, so a ``warning`` rule
never stops the pipeline, whichever check carries it. A check whose rules are
all warnings is not blocking.

Partitions. Checks whose rules are about a partition's rows are partitioned like
the asset (``partitions_def`` on ``@asset_check``, preview in Dagster 1.13):
when the asset's run materialises a partition, its checks run in the same run
and the evaluations are recorded for that partition. The rows checked are the
run's partition window on ``partition_column`` (a ranged run, i.e. a single-run
backfill, checks its whole window; Dagster then records the evaluation without a
partition key). Schema, table-wide key uniqueness (upsert tables hold one row
per key across partitions) and freshness are about the whole table and are not
partitioned: freshness compares the table's newest ``latency`` column value with
the time the check runs, so backfilling an old partition never makes it fail.

Cost: one Iceberg scan per check and run (two for the built-in that compares
two tables), selecting only the columns the rules need; row rules stream the
scan batch by batch. The pure evaluators
(:mod:`lakehouse_assets.silver.check_evaluators`: :func:`row_rule_failures`,
:func:`evaluate_row_rules`, :func:`duplicate_keys`, :func:`evaluate_unique`,
:func:`evaluate_row_counts`, :func:`evaluate_freshness`,
:func:`child_lines_mismatches`, :func:`schema_problems`) work on Arrow tables
and are what the unit tests specify.
"""

# No `from __future__ import annotations`: Dagster reads the check functions'
# annotations at definition time.
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa

from lakehouse_assets.contracts.model import Contract, RowRule
from lakehouse_assets.contracts.rule_kinds import rule_kind
from lakehouse_assets.silver.check_evaluators import (
    RuleOutcome,
    _count,
    check_result,
    nullable_required_columns,
    row_rule_failures,
    schema_problems,
)
from lakehouse_assets.silver.check_plans import (
    CheckPlan,
    CheckSite,
    Clock,
    blocking,
    rules_metadata,
)
from lakehouse_assets.silver.check_reading import (
    _existing,
    _row_rule_columns,
    _Samples,
    _Target,
    _window_metadata,
)
from lakehouse_assets.silver.table_checks import TABLE_CHECKS

CHECK_SCHEMA = "contract_schema"
CHECK_ROW_RULES = "contract_row_rules"

#: Partition time column of silver tables whose contract marks none.
DEFAULT_PARTITION_COLUMN = "event_date"

#: Sample failing keys reported per rule.
DEFAULT_SAMPLE_SIZE = 5


# --------------------------------------------------------------------------- factory


def contract_check_plans(  # noqa: PLR0913 (keyword-only: one per option)
    contract: Contract,
    table: str,
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    *,
    partition_column: str | None = None,
    table_wide_keys: bool = False,
    related_assets: Mapping[str, dg.AssetKey] | None = None,
    io_manager_key: str = "iceberg_io_manager",
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    clock: Clock | None = None,
    current_days: int | None = None,
) -> list[CheckPlan]:
    """The checks of contract table ``table`` for the asset ``asset_key``, as plans
    (:class:`~lakehouse_assets.silver.check_plans.CheckPlan`): the specs and evaluations
    that :func:`build_contract_checks` turns into standalone checks and the silver
    multi-asset runs in its own step.

    Args:
        contract: The dataset's contract.
        table: A silver table of the contract (``physicalType: table``).
        asset_key: The asset that materialises it (``["silver", table]`` in the pipeline).
        partitions_def: The asset's partitions; partition-scoped checks get the same.
        partition_column: Column holding the partition's time (the asset's
            ``partition_expr``); a run's checks read the rows of its window on it.
            Default: the contract's ``partitioned: true`` column, else ``event_date``.
        table_wide_keys: Check key uniqueness over the whole table (assets written
            with ``write_mode: upsert`` hold one row per key across partitions).
        related_assets: Asset key of another contract table a built-in rule reads
            (``child_lines_sum_to``'s ``linesTable``); default: ``asset_key`` with
            its last component replaced by the table name.
        io_manager_key: Resource key of the :class:`IcebergIOManager` storing the
            tables: the checks read where it writes.
        sample_size: Failing keys reported per rule.
        clock: The time freshness is measured against (default: now, UTC).
        current_days: As a standalone check, ``contract_freshness`` judges only runs
            without a partition (its own job, the UI's "Execute") and runs whose
            partitions reach one of the newest ``current_days`` days as of ``clock``;
            a backfill of older days leaves it skipped, so rebuilding history never
            reports a stale table (default: every run).

    Returns plans of checks named ``contract_schema``, ``contract_row_rules``,
    ``contract_unique``, ``contract_row_count``, ``contract_freshness`` and
    ``contract_<rule id>`` per built-in table rule, each only when the table has
    rules of that kind (see the module docstring).
    """
    # Partitioned asset checks are a preview API in Dagster 1.13 (see the module
    # docstring): used on purpose, so its warning is not repeated at every load.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Specifying a partitions_def on an AssetCheckSpec"
        )
        if table not in contract.tables:
            raise ValueError(
                f"{contract.path}: {table!r} is not a silver table of the contract "
                f"(tables: {', '.join(contract.tables)})"
            )
        site = CheckSite(
            contract,
            table,
            asset_key,
            partitions_def,
            _Target(
                io_manager_key,
                partition_column or contract.partition_column(table) or DEFAULT_PARTITION_COLUMN,
            ),
            contract.keys(table).primary_key,
            table_wide_keys,
            related_assets or {},
            sample_size,
            clock or (lambda: datetime.now(UTC)),
            current_days,
        )
        return _contract_check_plans(site)


def build_contract_checks(
    contract: Contract,
    table: str,
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    **options: Any,
) -> list[dg.AssetChecksDefinition]:
    """The checks of :func:`contract_check_plans` (same arguments) as standalone
    ``@asset_check`` definitions, reading ``main``."""
    plans = contract_check_plans(contract, table, asset_key, partitions_def, **options)
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Specifying a partitions_def on an AssetCheckSpec"
        )
        return [plan.definition() for plan in plans]


def _contract_check_plans(site: CheckSite) -> list[CheckPlan]:
    contract, table = site.contract, site.table
    row_rules = contract.row_rules(table)
    checks = [_schema_check(site)]
    if row_rules:
        checks.append(_row_rules_check(site, row_rules))
    table_rules = contract.table_rules(table)
    for kind, build in TABLE_CHECKS.items():
        rules = [r for r in table_rules if r.kind == kind]
        if rules:
            checks.extend(build(site, rules))
    return checks


def _schema_check(site: CheckSite) -> CheckPlan:
    target, asset_key = site.target, site.asset_key
    expected_schema = site.contract.arrow_schema(site.table)

    @site.plan(
        name=CHECK_SCHEMA,
        description=f"{site.label}: every contract column is present with a compatible type.",
        blocking=True,
    )
    def schema_check(context: Any, ref: str | None) -> dg.AssetCheckResult:
        iceberg = target.table(context, asset_key, ref)
        actual = iceberg.schema().as_arrow()
        problems = schema_problems(actual, expected_schema)
        outcomes = [
            RuleOutcome(
                f"{f.name}.schema",
                "error",
                f"{f.name} is a {f.type}",
                int(f.name in problems),
                (problems[f.name],) if f.name in problems else (),
                unit="column",
            )
            for f in expected_schema
        ]
        return check_result(
            outcomes,
            {
                "dagster/table_name": target.table_name(context, asset_key),
                "schema_problems": dg.MetadataValue.json(problems),
                "nullable_required_columns": dg.MetadataValue.json(
                    nullable_required_columns(actual, expected_schema)
                ),
                "extra_columns": dg.MetadataValue.json(
                    [n for n in actual.names if n not in expected_schema.names]
                ),
            },
        )

    return schema_check


def _row_rules_check(site: CheckSite, row_rules: Sequence[RowRule]) -> CheckPlan:
    for rule in row_rules:
        if "table_rows" not in rule_kind(rule.kind).subjects:
            raise ValueError(
                f"{site.contract.path}: row rule {rule.id!r} of table {site.table!r} is a "
                f"{rule.kind!r} rule, which does not apply to silver tables"
            )
    target, asset_key, keys = site.target, site.asset_key, site.keys
    columns_needed = _row_rule_columns(row_rules)

    @site.plan(
        name=CHECK_ROW_RULES,
        description=f"{site.label}: each row meets the row rules "
        f"({len(row_rules)}: required, allowed values, patterns, ranges, lengths, sums).",
        blocking=blocking(r.severity for r in row_rules),
        partitions_def=site.partitions_def,
        metadata=rules_metadata(row_rules),
    )
    def row_rules_check(context: Any, ref: str | None) -> dg.AssetCheckResult:
        name = target.table_name(context, asset_key)
        iceberg = target.table(context, asset_key, ref)
        window = target.window(context)
        selected = _existing(iceberg, (*keys, *columns_needed))
        scan = iceberg.scan(
            row_filter=target.row_filter(iceberg, window, name),
            selected_fields=selected or ("*",),
        )
        failing = dict.fromkeys((r.id for r in row_rules), 0)
        samples = _Samples(keys, site.sample_size)
        rows = 0
        for batch in scan.to_arrow_batch_reader():
            chunk = pa.Table.from_batches([batch])
            rows += chunk.num_rows
            for rule in row_rules:
                mask = row_rule_failures(chunk, rule)
                count = _count(mask)
                if count:
                    failing[rule.id] += count
                    samples.add(rule.id, chunk.filter(mask))
        outcomes = [
            RuleOutcome(
                r.id,
                r.severity,
                r.description,
                failing[r.id],
                samples.by_rule.get(r.id, ()),
            )
            for r in row_rules
        ]
        return check_result(
            outcomes,
            {"dagster/table_name": name, "rows_checked": rows, **_window_metadata(window)},
        )

    return row_rules_check


# --------------------------------------------------------------------------- from an asset


def _metadata_value(metadata: Mapping[str, Any], key: str) -> Any:
    value = metadata.get(key)
    return getattr(value, "value", value)


def spec_check_options(spec: dg.AssetSpec) -> dict[str, Any]:
    """The check options an asset's spec implies: its ``partition_expr`` is the partition
    column, and ``write_mode: upsert`` makes key uniqueness table-wide."""
    metadata = spec.metadata or {}
    return {
        "partition_column": _metadata_value(metadata, "partition_expr"),
        "table_wide_keys": _metadata_value(metadata, "write_mode") == "upsert",
    }


def contract_checks_for_asset(
    contract: Contract,
    table: str,
    asset: dg.AssetsDefinition,
    *,
    asset_key: dg.AssetKey | None = None,
    related_assets: Mapping[str, dg.AssetKey] | None = None,
    io_manager_key: str = "iceberg_io_manager",
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    clock: Clock | None = None,
) -> list[dg.AssetChecksDefinition]:
    """:func:`build_contract_checks` with what the asset says about itself
    (:func:`spec_check_options`).

    ``asset_key`` picks one output of a multi-asset (default ``["silver", table]``
    if the asset has it, else the asset's only key).
    """
    if asset_key is None:
        preferred = dg.AssetKey(["silver", table])
        asset_key = preferred if preferred in asset.keys else asset.key
    return build_contract_checks(
        contract,
        table,
        asset_key,
        asset.partitions_def,
        related_assets=related_assets,
        io_manager_key=io_manager_key,
        sample_size=sample_size,
        clock=clock,
        **spec_check_options(asset.specs_by_key[asset_key]),
    )
