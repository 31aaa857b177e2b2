"""``make demo``: the local stack, a few days of events, the pipeline, and a summary.

1. starts the local stack (Kafka, S3 server, Iceberg catalog), idempotently;
2. generates a few days of events for every dataset, with late, out-of-order,
   duplicate and malformed ones (only into empty topics, so a second demo does
   not double the data);
3. runs the pipeline: every dataset's bronze days, then its silver tables with
   their contract checks, each as one single-run backfill recorded in the Dagster
   instance the UI shows;
4. builds gold with dbt (seeds, then every model, snapshot and dbt test for the
   same days, as one single-run backfill);
5. prints what landed per day next to what Kafka holds, the silver tables, the
   quarantine by rule and the reconciliation, the daily sales of gold, and how
   to open the UI.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from lakehouse_assets.bronze.assets import build_bronze_asset, landing_run_config
from lakehouse_assets.bronze.http_assets import build_http_bronze_asset
from lakehouse_assets.bronze.landing import day_ranges
from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.gold.assets import build_gold_assets
from lakehouse_assets.partitions import range_tags
from lakehouse_assets.silver.assets import RECONCILIATION_CHECK, build_silver_asset
from lakehouse_dev.generator import cli as events_cli
from lakehouse_dev.stack import LocalStack
from resources.dbt.project import dbt_project
from resources.environments import build_resources
from resources.kafka.client import TopicReader
from resources.settings import LakehouseSettings, get_settings

DEMO_DAYS = 5
DEMO_EVENTS = {"plain": 5_000, "purchase_orders": 20_000}


def _days(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _generate(settings: LakehouseSettings, resources: dict[str, object]) -> None:
    kafka = resources["kafka"]
    for dataset, spec in settings.datasets.items():
        if spec.kind == "http":
            # Its source is an API (locally the stack's weather API, serving generated data).
            continue
        with TopicReader(kafka, spec.topic) as reader:  # type: ignore[arg-type]
            held = sum(high - low for low, high in reader.watermarks().values())
        if held:
            print(f"{spec.topic}: already holds {held} records, not generating more")
            continue
        count = DEMO_EVENTS.get(dataset, 5_000)
        events_cli.main(
            ["--dataset", dataset, "--count", str(count), "--days", str(DEMO_DAYS), "--seed", "7"]
        )


def _land(settings: LakehouseSettings, resources: dict[str, object], days: list[str]) -> None:
    instance = dg.DagsterInstance.get()
    for dataset, spec in settings.datasets.items():
        started = time.monotonic()
        http = spec.kind == "http"
        result = dg.materialize(
            [
                build_http_bronze_asset(settings, dataset)
                if http
                else build_bronze_asset(settings, dataset)
            ],
            instance=instance,
            resources=resources,
            run_config={
                **({} if http else landing_run_config(dataset, "replace")),
                "loggers": {"console": {"config": {"log_level": "INFO"}}},
            },
            tags=range_tags(days[0], days[-1]),
        )
        print(
            f"bronze/{dataset}: landed {days[0]}..{days[-1]} in one run "
            f"({time.monotonic() - started:.1f}s, run {result.run_id[:8]})"
        )


def _silver(
    settings: LakehouseSettings, resources: dict[str, object], days: list[str]
) -> dict[str, str]:
    """Every dataset's silver tables and checks for ``days`` in one run; the reconciliation."""
    instance = dg.DagsterInstance.get()
    outcomes = {}
    for dataset in settings.datasets:
        started = time.monotonic()
        asset = build_silver_asset(settings, dataset)
        result = dg.materialize(
            [asset],
            instance=instance,
            resources=resources,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            tags=range_tags(days[0], days[-1]),
            raise_on_error=False,
        )
        evaluations = [
            e.asset_check_evaluation_data
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ]
        failed = sorted(
            {
                e.check_name
                for e in evaluations
                if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
            }
        )
        warned = sorted(
            {
                e.check_name
                for e in evaluations
                if not e.passed and e.severity == dg.AssetCheckSeverity.WARN
            }
        )
        reconciliation = next(
            (e.description for e in evaluations if e.check_name == RECONCILIATION_CHECK), None
        )
        outcomes[dataset] = reconciliation or "not evaluated (the run failed)"
        print(
            f"silver/{dataset}: {days[0]}..{days[-1]} in one run "
            f"({time.monotonic() - started:.1f}s, run {result.run_id[:8]}, "
            f"{len(evaluations)} checks: "
            + (f"FAILED {', '.join(failed)}" if failed else "no blocking failure")
            + (f"; warnings {', '.join(warned)}" if warned else "")
            + ")"
        )
    return outcomes


def _check_outcome(result: dg.ExecuteInProcessResult) -> str:
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    failed = sorted({e.check_name for e in evaluations if not e.passed})
    return f"{len(evaluations)} checks, " + (
        f"FAILED {', '.join(failed)}" if failed else "all passed"
    )


def _gold(settings: LakehouseSettings, resources: dict[str, object], days: list[str]) -> bool:
    """The seeds, then every gold model, snapshot and dbt test for ``days`` in one run."""
    instance = dg.DagsterInstance.get()
    gold = build_gold_assets(settings, dbt_project(settings))
    seeds = [a for a in gold if a.partitions_def is None]
    models = [a for a in gold if a.partitions_def is not None]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    started = time.monotonic()
    seeded = dg.materialize(
        seeds, instance=instance, resources=resources, run_config=quiet, raise_on_error=False
    )
    print(
        f"gold seeds: {time.monotonic() - started:.1f}s, run {seeded.run_id[:8]}, "
        + _check_outcome(seeded)
    )
    if not seeded.success:
        return False
    started = time.monotonic()
    silver = [build_silver_asset(settings, dataset) for dataset in settings.datasets]
    result = dg.materialize(
        [*models, *seeds, *silver],
        selection=dg.AssetSelection.assets(*models),
        instance=instance,
        resources=resources,
        run_config=quiet,
        tags=range_tags(days[0], days[-1]),
        raise_on_error=False,
    )
    print(
        f"gold (dbt): {days[0]}..{days[-1]} in one run ({time.monotonic() - started:.1f}s, "
        f"run {result.run_id[:8]}, " + _check_outcome(result) + ")"
    )
    if not result.success:
        failures = result.get_step_failure_events()
        error = failures[0].step_failure_data.error if failures else None
        print(error.message if error else "the gold run failed")
    return result.success


def _gold_summary(settings: LakehouseSettings, resources: dict[str, object]) -> str:
    catalog = resources["iceberg"].load()  # type: ignore[attr-defined]
    namespace = settings.namespace("gold")
    sales = catalog.load_table((namespace, "fct_daily_sales")).scan().to_arrow().to_pylist()
    currency = settings.dbt.reporting_currency
    rows = [("day", "country", "orders", "items", f"net sales {currency}", "refunds", "7-day")]
    last_days = sorted({row["sales_date"] for row in sales})[-3:]
    for row in sorted(sales, key=lambda r: (r["sales_date"], r["country"])):
        if row["sales_date"] in last_days:
            rows.append(
                (
                    row["sales_date"].isoformat(),
                    row["country"],
                    str(row["orders"]),
                    str(row["items"]),
                    str(row["net_sales"]),
                    str(row["refunds"]),
                    str(row["revenue_7d"]),
                )
            )
    history = catalog.load_table((namespace, "dim_customers")).scan().to_arrow().to_pylist()
    changed = len(history) - len({row["customer_id"] for row in history})
    orders = catalog.load_table((namespace, "fct_orders")).scan().count()
    return (
        _table(rows) + f"\nfct_orders {orders} orders; dim_customers {len(history)} rows, "
        f"{changed} of them history from tier changes"
    )


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def _silver_summary(
    settings: LakehouseSettings, resources: dict[str, object], outcomes: dict[str, str]
) -> str:
    import pyarrow.compute as pc

    catalog = resources["iceberg"].load()  # type: ignore[attr-defined]
    namespace = settings.namespace("silver")
    lines = []
    for dataset, reconciliation in outcomes.items():
        contract = load_contract(settings.contract_path(dataset))
        sizes = []
        for table in contract.tables:
            rows = catalog.load_table((namespace, table)).scan().count()
            sizes.append(f"{table} {rows}")
        lines.append(f"{dataset}: " + ", ".join(sizes))
        quarantine = catalog.load_table((namespace, contract.quarantine_table))
        rules = quarantine.scan(selected_fields=("rule_id",)).to_arrow().column("rule_id")
        counts = pc.value_counts(rules).to_pylist() if len(rules) else []
        by_rule = ", ".join(
            f"{c['values']} {c['counts']}" for c in sorted(counts, key=lambda c: -c["counts"])
        )
        lines.append(f"  quarantined {len(rules)}" + (f": {by_rule}" if by_rule else ""))
        lines.append(f"  reconciliation: {reconciliation}")
    return "\n".join(lines)


def _summary(settings: LakehouseSettings, resources: dict[str, object], days: list[str]) -> str:
    store = resources["bronze_store"]
    rows = [("dataset", "day", "in kafka", "landed", "files")]
    for dataset, spec in settings.datasets.items():
        if spec.kind == "http":
            for day in days:
                landed = store.landed(dataset, day)  # type: ignore[attr-defined]
                count = str(sum(r.count for r in landed))
                rows.append((dataset, day, "(http)", count, str(len(landed))))
            continue
        with TopicReader(resources["kafka"], spec.topic) as reader:  # type: ignore[arg-type]
            ranges = day_ranges(reader, days)
        for day_range in ranges:
            in_kafka = sum(end - start for start, end in day_range.bounds.values())
            landed = store.landed(dataset, day_range.day)  # type: ignore[attr-defined]
            rows.append(
                (
                    dataset,
                    day_range.day,
                    str(in_kafka),
                    str(sum(r.count for r in landed)),
                    str(len(landed)),
                )
            )
    return _table(rows)


def main() -> int:
    # Single-run backfills are what the demo shows; Dagster still labels the policy beta.
    warnings.filterwarnings("ignore", message="Parameter `backfill_policy`")
    settings = get_settings()
    # The instance the UI reads (`make dev` uses the same DAGSTER_HOME).
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    print(f"== local stack ({settings.environment})")
    stack = LocalStack.from_settings(settings)
    stack.start()
    print(stack.describe())
    resources = build_resources(settings)

    print("\n== events")
    _generate(settings, resources)

    today = datetime.now(UTC).date()
    days = _days(today - timedelta(days=DEMO_DAYS), today)
    print("\n== pipeline")
    _land(settings, resources, days)

    outcomes = _silver(settings, resources, days)
    gold_built = _gold(settings, resources, days)

    print("\n== bronze (landed = in kafka means every record landed exactly once)")
    print(_summary(settings, resources, days))
    print("\n== silver (rows per table; every bronze record accepted, quarantined or a duplicate)")
    print(_silver_summary(settings, resources, outcomes))
    if gold_built:
        print(f"\n== gold: daily sales of the last days ({settings.dbt.reporting_currency})")
        print(_gold_summary(settings, resources))
    print(
        "\nNext:\n"
        "  make dev                      open the Dagster UI on http://127.0.0.1:3000 with the\n"
        "                                daemon. Assets > Global asset lineage shows Kafka to\n"
        "                                gold; each asset's Checks tab shows its contract\n"
        "                                checks and dbt tests; the Kafka arrivals sensors land\n"
        "                                new records and declarative automation updates silver\n"
        "                                and gold (Automation tab)\n"
        "  .venv/bin/lakehouse-events --dataset plain --count 100 --days 1\n"
        "                                produce more events, then watch them land\n"
        "  make stack-stop               stop the local services (data is kept)"
    )
    return 0 if gold_built else 1


if __name__ == "__main__":
    sys.exit(main())
