"""The asset checks of table-level contract rules, one builder per rule kind.

Each builder takes the :class:`~lakehouse_assets.silver.check_reading.CheckSite` of a
contract table and all its rules of one kind, and returns their checks:
``contract_unique`` (``unique``), ``contract_row_count`` (``row_count``),
``contract_freshness`` (``freshness``) and ``contract_<rule id>`` per
``child_lines_sum_to`` rule. :data:`TABLE_CHECKS` is this engine's entry in the rule-kind
registry (:mod:`lakehouse_assets.contracts.rule_kinds`);
:func:`lakehouse_assets.silver.checks.build_contract_checks` calls it.
"""

# No `from __future__ import annotations`: Dagster reads the check functions'
# annotations at definition time.
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, timedelta
from typing import Any, cast

import dagster as dg

from lakehouse_assets.contracts.document import ChildLinesSumTo
from lakehouse_assets.contracts.model import TableRule
from lakehouse_assets.contracts.rule_kinds import implement
from lakehouse_assets.silver.check_evaluators import (
    RuleOutcome,
    check_result,
    child_lines_mismatches,
    duplicate_keys,
    evaluate_freshness,
    evaluate_row_counts,
)
from lakehouse_assets.silver.check_plans import CheckPlan, CheckSite, blocking, rules_metadata
from lakehouse_assets.silver.check_reading import (
    _existing,
    _keys_of,
    _newest,
    _rows_by_partition,
    _window_metadata,
)
from lakehouse_assets.silver.freshness import not_judged_reason

CHECK_UNIQUE = "contract_unique"
CHECK_ROW_COUNT = "contract_row_count"
CHECK_FRESHNESS = "contract_freshness"


def builtin_check_name(rule_id: str) -> str:
    """Name of the check evaluating the built-in table rule ``rule_id``."""
    return f"contract_{rule_id}"


def _unique_checks(site: CheckSite, unique_rules: Sequence[TableRule]) -> list[CheckPlan]:
    target, asset_key, table_wide_keys = site.target, site.asset_key, site.table_wide_keys
    sample_size = site.sample_size
    scope = "the whole table" if table_wide_keys else "each partition"

    @site.plan(
        name=CHECK_UNIQUE,
        description=f"{site.label}: no two rows share a key in {scope} "
        f"({', '.join('(' + ', '.join(r.columns) + ')' for r in unique_rules)}).",
        blocking=blocking(r.severity for r in unique_rules),
        partitions_def=None if table_wide_keys else site.partitions_def,
        metadata=rules_metadata(unique_rules),
    )
    def unique_check(context: Any, ref: str | None) -> dg.AssetCheckResult:
        name = target.table_name(context, asset_key)
        iceberg = target.table(context, asset_key, ref)
        window = None if table_wide_keys else target.window(context)
        wanted = [c for r in unique_rules for c in r.columns]
        selected = _existing(iceberg, wanted)
        data = iceberg.scan(
            row_filter=target.row_filter(iceberg, window, name),
            selected_fields=selected or ("*",),
        ).to_arrow()
        outcomes = []
        for rule in unique_rules:
            if not set(rule.columns) <= set(data.schema.names):
                # Missing key columns: the schema check fails; nothing to compare here.
                outcomes.append(RuleOutcome(rule.id, rule.severity, rule.description, 0))
                continue
            duplicated = duplicate_keys(data, rule.columns)
            outcomes.append(
                RuleOutcome(
                    rule.id,
                    rule.severity,
                    rule.description,
                    duplicated.num_rows,
                    _keys_of(duplicated.slice(0, sample_size), rule.columns),
                    unit="duplicated keys",
                )
            )
        return check_result(
            outcomes,
            {
                "dagster/table_name": name,
                "rows_checked": data.num_rows,
                **_window_metadata(window),
            },
        )

    return [unique_check]


def _row_count_checks(site: CheckSite, count_rules: Sequence[TableRule]) -> list[CheckPlan]:
    target, asset_key, sample_size = site.target, site.asset_key, site.sample_size

    @site.plan(
        name=CHECK_ROW_COUNT,
        description=f"{site.label}: rows per partition within bounds ("
        + "; ".join(f"{r.id}: {r.minimum}..{r.maximum}" for r in count_rules)
        + ").",
        blocking=blocking(r.severity for r in count_rules),
        partitions_def=site.partitions_def,
        metadata=rules_metadata(count_rules),
    )
    def row_count_check(context: Any, ref: str | None) -> dg.AssetCheckResult:
        name = target.table_name(context, asset_key)
        iceberg = target.table(context, asset_key, ref)
        window = target.window(context)
        rows_by_partition = _rows_by_partition(iceberg, target, window, name)
        out_of_bounds = evaluate_row_counts(rows_by_partition, count_rules)
        outcomes = [
            RuleOutcome(
                r.id,
                r.severity,
                r.description,
                len(out_of_bounds[r.id]),
                [{p: rows_by_partition[p]} for p in out_of_bounds[r.id][:sample_size]],
                unit="partitions",
            )
            for r in count_rules
        ]
        return check_result(
            outcomes,
            {
                "dagster/table_name": name,
                "dagster/row_count": sum(rows_by_partition.values()),
                "rows_by_partition": dg.MetadataValue.json(rows_by_partition),
                **_window_metadata(window),
            },
        )

    return [row_count_check]


def _freshness_checks(site: CheckSite, fresh_rules: Sequence[TableRule]) -> list[CheckPlan]:
    target, asset_key, now = site.target, site.asset_key, site.clock
    fresh = fresh_rules[0]
    fresh_column = fresh.columns[0]
    max_delay = cast(timedelta, fresh.max_delay)

    current_days = site.current_days

    def judges(context: Any) -> str | None:
        if current_days is None:
            return None
        return not_judged_reason(context.run.tags, now().astimezone(UTC).date(), current_days)

    @site.plan(
        judges,
        name=CHECK_FRESHNESS,
        description=f"{site.label}: the newest {fresh_column} is at most {max_delay} old "
        "when the check runs (the whole table, whatever partition the run wrote; skipped in "
        "runs that only rebuilt older days).",
        blocking=blocking([fresh.severity]),
        metadata=rules_metadata(fresh_rules),
    )
    def freshness_check(context: Any, ref: str | None) -> dg.AssetCheckResult:
        name = target.table_name(context, asset_key)
        # A table never written yet (a dataset just added) has no fresh data: it warns
        # like a stale one instead of failing the check's run.
        iceberg = target.find(context, asset_key, ref)
        checked_at = now()
        newest = (
            None
            if iceberg is None
            else _newest(iceberg, fresh_column, checked_at - max_delay, name)
        )
        is_fresh, lag = evaluate_freshness(newest, checked_at, max_delay)
        outcome = RuleOutcome(
            fresh.id,
            fresh.severity,
            fresh.description,
            0 if is_fresh else 1,
            () if is_fresh else (f"newest {fresh_column}: {newest}",),
            unit="stale table",
        )
        return check_result(
            [outcome],
            {
                "dagster/table_name": name,
                "checked_at": checked_at.isoformat(),
                "newest": str(newest) if newest is not None else "none",
                "table_exists": iceberg is not None,
                "lag_seconds": lag.total_seconds() if lag is not None else -1.0,
                "max_delay_seconds": max_delay.total_seconds(),
            },
        )

    return [freshness_check]


def _child_lines_checks(site: CheckSite, rules: Sequence[TableRule]) -> list[CheckPlan]:
    return [_child_lines_check(site, rule) for rule in rules]


def _child_lines_check(site: CheckSite, rule: TableRule) -> CheckPlan:
    target, asset_key, keys, sample_size = site.target, site.asset_key, site.keys, site.sample_size
    arguments = rule.arguments
    assert isinstance(arguments, ChildLinesSumTo), rule
    lines_key = site.related_assets.get(
        arguments.lines_table, dg.AssetKey([*asset_key.path[:-1], arguments.lines_table])
    )
    line_columns = [
        *arguments.key,
        arguments.quantity,
        arguments.unit_price,
        *([arguments.discount] if arguments.discount else []),
    ]

    # The lines are an extra dependency: in a run writing both tables, the check
    # waits for the lines of the same partitions.
    @site.plan(
        name=builtin_check_name(rule.id),
        description=f"{site.label}: {rule.description}",
        blocking=blocking([rule.severity]),
        partitions_def=site.partitions_def,
        additional_deps=[lines_key],
        metadata={"contract_rules": [rule.id], "lines_asset": lines_key.to_user_string()},
    )
    def builtin_check(context: Any, ref: str | None) -> dg.AssetCheckResult:
        window = target.window(context)
        name = target.table_name(context, asset_key)
        parents_table = target.table(context, asset_key, ref)
        lines_name = target.table_name(context, lines_key)
        lines_table = target.table(context, lines_key, ref)
        parents = parents_table.scan(
            row_filter=target.row_filter(parents_table, window, name),
            selected_fields=tuple(dict.fromkeys((*arguments.key, *keys, arguments.equals))),
        ).to_arrow()
        lines = lines_table.scan(
            row_filter=target.row_filter(lines_table, window, lines_name),
            selected_fields=tuple(dict.fromkeys(line_columns)),
        ).to_arrow()
        mismatches = child_lines_mismatches(parents, lines, arguments)
        samples = mismatches.slice(0, sample_size).to_pylist()
        orphans = (
            lines.num_rows
            - lines.join(
                parents.select(list(arguments.key)), keys=list(arguments.key), join_type="left semi"
            ).num_rows
        )
        outcome = RuleOutcome(
            rule.id,
            rule.severity,
            rule.description,
            mismatches.num_rows,
            samples,
            unit="rows",
        )
        return check_result(
            [outcome],
            {
                "dagster/table_name": name,
                "lines_table": lines_name,
                "rows_checked": parents.num_rows,
                "lines_checked": lines.num_rows,
                "lines_without_parent": orphans,
                **_window_metadata(window),
            },
        )

    return builtin_check


#: The asset checks of every table-level rule kind (checked against the registry): each
#: builds the checks of all rules of its kind on one table.
TABLE_CHECKS: Mapping[str, Callable[[CheckSite, Sequence[TableRule]], list[CheckPlan]]] = implement(
    "asset-check builders",
    "table",
    {
        "unique": _unique_checks,
        "row_count": _row_count_checks,
        "freshness": _freshness_checks,
        "child_lines_sum_to": _child_lines_checks,
    },
)
