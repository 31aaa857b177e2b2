"""The measured processes of the silver benchmark, one per run::

    python -m benchmarks.silver_workers plain --namespace NS --first-day D0 --last-day DN \\
        --path s3a://... [--path ...] --result R
    python -m benchmarks.silver_workers ours --dataset NAME --namespace NS \\
        --first-day D0 --last-day DN --result R
    python -m benchmarks.silver_workers overhead --dataset NAME --day D --runs N --result R

``plain`` runs the hand-written job (:mod:`benchmarks.silver_plain`), ``ours``
materialises the dataset's silver multi-asset for the days in one run (a single-run
backfill), as ``dagster.materialize`` runs it from a test or the UI. Both write to a
namespace of their own (``--namespace``) that the parent makes fresh for every run,
so both create their tables and write the same rows into empty tables.

The clock of ``plain`` and ``ours`` starts after the imports *and after the Spark
session is up* (JVM start, jars, catalog): that costs both the same and is reported
apart (``session_seconds``); ``seconds`` is the transformation alone, from reading
bronze to the last commit. Row counts of the written tables are taken after the clock.

``overhead`` measures what a Dagster run adds to one silver partition: in one process
with a warm Spark session, it alternates a ``dagster.materialize`` of the partition
with the same asset function called directly (``build_asset_context``) whose outputs
go straight to the same IO manager's ``handle_output``; each call writes to a fresh
namespace. The per-run overhead is the median, over the pairs (a run and the direct
call after it), of run minus direct call: run and step orchestration, resource set-up,
the event log, output and check bookkeeping.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from benchmarks.workers import RssSampler, cpu_seconds, current_rss_bytes, peak_rss_bytes
from resources.private_apis import jvm

if TYPE_CHECKING:
    import dagster as dg
    from pyspark.sql import SparkSession

    from resources.settings import LakehouseSettings

_STARTED = time.perf_counter()

#: The setting that names the silver namespace (the IO manager's and the check's).
SILVER_NAMESPACE_VARIABLE = "LAKEHOUSE__CATALOG__NAMESPACES__SILVER"
#: Tables both variants write, compared after the runs.
COMPARED_TABLES = ("order_events", "orders", "order_lines", "customers")


def _settings(namespace: str | None = None) -> LakehouseSettings:
    from resources.settings import load_settings

    environ = dict(os.environ)
    if namespace is not None:
        environ[SILVER_NAMESPACE_VARIABLE] = namespace
    return load_settings(environ=environ)


def _session(settings: LakehouseSettings) -> tuple[SparkSession, float]:
    """The Spark session of the settings' ``spark`` resource, and how long it took to start."""
    from resources.environments import build_resources

    started = time.perf_counter()
    session = build_resources(settings)["spark"].spark_session
    # The first action loads the catalog and the Iceberg classes; not the job's work.
    session.sql("SHOW NAMESPACES").collect()
    return session, time.perf_counter() - started


def _counts(spark: SparkSession, namespace: str, tables: Sequence[str]) -> dict[str, int]:
    return {table: spark.table(f"`{namespace}`.`{table}`").count() for table in tables}


class _Measure:
    """Wall clock, CPU and memory of one measured section."""

    def __enter__(self) -> _Measure:
        self.rss_before = current_rss_bytes()
        self.sampler = RssSampler()
        self.sampler.start()
        self.cpu_before = cpu_seconds()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu = cpu_seconds() - self.cpu_before
        self.sampler.stop()

    def figures(self) -> dict[str, Any]:
        # CPU of this process only: the JVM is a child of the Python driver (local mode),
        # whose CPU is in `jvm_cpu_seconds`.
        return {
            "seconds": self.seconds,
            "python_cpu_seconds": self.cpu,
            "rss_before_bytes": self.rss_before,
            "peak_rss_bytes": peak_rss_bytes(),
        }


def _jvm_cpu_seconds(spark: SparkSession) -> float | None:
    """CPU seconds the driver JVM has used (it runs every Spark task in local mode)."""
    from benchmarks.isolated import process_cpu_seconds

    try:
        pid = int(jvm(spark).java.lang.ProcessHandle.current().pid())
    except Exception:
        return None
    return process_cpu_seconds(pid)


def plain(namespace: str, first_day: str, last_day: str, paths: Sequence[str]) -> dict[str, Any]:
    """The hand-written job on the bronze ``paths``, writing to ``namespace``."""
    from datetime import date

    from benchmarks import silver_plain

    settings = _settings()
    imported = time.perf_counter()
    spark, session_seconds = _session(settings)
    jvm_before = _jvm_cpu_seconds(spark)
    with _Measure() as measure:
        steps = silver_plain.run(
            spark, paths, date.fromisoformat(first_day), date.fromisoformat(last_day), namespace
        )
    jvm_after = _jvm_cpu_seconds(spark)
    return {
        "kind": "plain",
        **measure.figures(),
        "steps": steps,
        "import_seconds": imported - _STARTED,
        "session_seconds": session_seconds,
        "jvm_cpu_seconds": _difference(jvm_before, jvm_after),
        "rows": _counts(spark, namespace, COMPARED_TABLES),
    }


def _difference(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _range_tags(first_day: str, last_day: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first_day,
        "dagster/asset_partition_range_end": last_day,
    }


def _import_lazy_dependencies() -> None:
    """What the silver asset and its run import on first use: start-up, not transformation.

    ``upath.core`` is what Dagster's default IO manager (which every run initialises,
    for the check's output) imports lazily; its import scans the installed packages'
    entry points, 2.4 s of CPU on this project's environment.
    """
    import pandas
    import s3fs
    import upath.core

    import lakehouse_assets.silver.validation
    import resources.iceberg.io_manager

    del pandas, s3fs, upath.core, lakehouse_assets.silver.validation
    del resources.iceberg.io_manager


def ours(dataset: str, namespace: str, first_day: str, last_day: str) -> dict[str, Any]:
    """Materialise the silver multi-asset of ``dataset`` for ``first_day..last_day``."""
    import dagster as dg

    from lakehouse_assets.silver.assets import RECONCILIATION_CHECK, build_silver_asset
    from resources.environments import build_resources

    settings = _settings(namespace)
    asset = build_silver_asset(settings, dataset)
    resources = build_resources(settings)
    _import_lazy_dependencies()
    instance = dg.DagsterInstance.ephemeral()
    imported = time.perf_counter()
    spark, session_seconds = _session(settings)
    jvm_before = _jvm_cpu_seconds(spark)
    with _Measure() as measure:
        result = dg.materialize(
            [asset],
            instance=instance,
            resources=resources,
            tags=_range_tags(first_day, last_day),
            raise_on_error=True,
        )
    jvm_after = _jvm_cpu_seconds(spark)
    checks = [
        evaluation
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == RECONCILIATION_CHECK
    ]
    quarantine = next(k.path[-1] for k in asset.keys if k.path[-1].endswith("_quarantine"))
    return {
        "kind": "ours",
        **measure.figures(),
        "import_seconds": imported - _STARTED,
        "session_seconds": session_seconds,
        "jvm_cpu_seconds": _difference(jvm_before, jvm_after),
        "rows": _counts(spark, namespace, COMPARED_TABLES),
        "quarantined": _counts(spark, namespace, [quarantine])[quarantine],
        "reconciliation_passed": bool(checks) and all(c.passed for c in checks),
        "reconciliation": checks[0].description if checks else None,
    }


# --------------------------------------------------------------------------- overhead


def _direct(asset: dg.AssetsDefinition, resources: dict[str, Any], day: str) -> None:
    """The asset function and its IO manager writes, without a Dagster run."""
    import dagster as dg

    io_manager = resources["iceberg_io_manager"]
    run_id = str(uuid.uuid4())
    specs = {asset.get_output_name_for_asset_key(spec.key): spec for spec in asset.specs}
    # The contract checks, run in the asset's step, read through the IO manager.
    needed = ("spark", "bronze_store", "iceberg", "iceberg_io_manager")
    with dg.build_asset_context(
        partition_key=day, resources={key: resources[key] for key in needed}
    ) as context:
        for item in cast("Iterable[Any]", asset(context=context)):
            if not isinstance(item, dg.Output):
                continue  # a check's result: computed, nothing to store
            spec = specs[item.output_name]
            output_context = dg.build_output_context(
                name=item.output_name,
                asset_key=spec.key,
                partition_key=day,
                asset_partitions_def=asset.partitions_def,
                definition_metadata=dict(spec.metadata),
                output_metadata=dict(item.metadata),
                run_id=run_id,
            )
            io_manager.handle_output(output_context, item.value)


def overhead(dataset: str, day: str, runs: int) -> dict[str, Any]:
    """Alternate a Dagster run and a direct call of one partition; per-run overhead."""
    import dagster as dg

    from lakehouse_assets.silver.assets import build_silver_asset
    from resources.environments import build_resources

    settings = _settings()
    _import_lazy_dependencies()
    instance = dg.DagsterInstance.ephemeral()
    imported = time.perf_counter()
    spark, session_seconds = _session(settings)

    def variant(kind: str) -> float:
        namespace = f"silver_overhead_{kind}_{uuid.uuid4().hex[:8]}"
        settings = _settings(namespace)
        asset = build_silver_asset(settings, dataset)
        resources = build_resources(settings)
        started = time.perf_counter()
        if kind == "dagster":
            dg.materialize(
                [asset],
                instance=instance,
                resources=resources,
                tags=_range_tags(day, day),
                raise_on_error=True,
            )
        else:
            _direct(asset, resources, day)
        seconds = time.perf_counter() - started
        rows = _counts(spark, namespace, COMPARED_TABLES)
        if not rows["order_events"]:
            raise RuntimeError(f"{kind} call of {day} wrote no order_events")
        return seconds

    # One untimed round: the first call of each pays class loading and JIT compilation.
    warm_up = {kind: variant(kind) for kind in ("direct", "dagster")}
    timings: dict[str, list[float]] = {"dagster": [], "direct": []}
    for _ in range(runs):
        for kind in ("dagster", "direct"):
            timings[kind].append(variant(kind))
    dagster_s = statistics.median(timings["dagster"])
    direct_s = statistics.median(timings["direct"])
    # Each run is paired with the direct call right after it: on a machine whose load
    # drifts, the median of the pairs' differences is steadier than the medians' one.
    paired = [a - b for a, b in zip(timings["dagster"], timings["direct"], strict=True)]
    return {
        "kind": "overhead",
        "day": day,
        "import_seconds": imported - _STARTED,
        "session_seconds": session_seconds,
        "warm_up_seconds": warm_up,
        "dagster_seconds": timings["dagster"],
        "direct_seconds": timings["direct"],
        "median_dagster_seconds": dagster_s,
        "median_direct_seconds": direct_s,
        "overhead_seconds": statistics.median(paired),
        "paired_differences_seconds": paired,
        "difference_of_medians_seconds": dagster_s - direct_s,
        "peak_rss_bytes": peak_rss_bytes(),
    }


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.silver_workers", description=__doc__
    )
    commands = parser.add_subparsers(dest="command", required=True)
    baseline = commands.add_parser("plain", help="the hand-written PySpark job")
    baseline.add_argument("--namespace", required=True)
    baseline.add_argument("--first-day", required=True)
    baseline.add_argument("--last-day", required=True)
    baseline.add_argument("--path", action="append", required=True, help="bronze s3a:// path")
    asset = commands.add_parser("ours", help="the silver multi-asset, all days in one run")
    asset.add_argument("--dataset", required=True)
    asset.add_argument("--namespace", required=True)
    asset.add_argument("--first-day", required=True)
    asset.add_argument("--last-day", required=True)
    runs = commands.add_parser("overhead", help="Dagster run vs direct call, one partition")
    runs.add_argument("--dataset", required=True)
    runs.add_argument("--day", required=True)
    runs.add_argument("--runs", type=int, default=3)
    for command in (baseline, asset, runs):
        command.add_argument("--result", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plain":
        outcome = plain(args.namespace, args.first_day, args.last_day, args.path)
    elif args.command == "ours":
        outcome = ours(args.dataset, args.namespace, args.first_day, args.last_day)
    else:
        outcome = overhead(args.dataset, args.day, args.runs)
    args.result.write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
