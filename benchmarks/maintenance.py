"""``python -m benchmarks maintenance``: a silver table after 200 sensor-sized commits,
before and after Iceberg maintenance.

One real silver run of generated purchase orders (the silver worker, as the silver
benchmark runs it) gives ``order_events`` its rows and layout. A fresh
``silver.order_events`` with the same schema, partitioning and properties then gets
those rows as ``--commits`` commits in event-time order, a few rows each, as the
arrivals sensor commits every 30 s. Measured before and after
:func:`resources.iceberg.maintenance.maintain` with the configured thresholds, in
this process, on the same Spark session and catalog:

* ``files_reduction``: data files before / after (target >= 10);
* ``scan_speedup``: a full scan before / after, through Spark (every column read) and
  through pyiceberg to Arrow; the key is the smaller of the two (target >= 2), both are
  reported (``scan_speedup_spark``, ``scan_speedup_arrow``);
* ``planning_speedup``: planning a one-day read (pyiceberg ``plan_files`` with the day's
  filter) before / after.

Every timing is the median of ``--repeat`` runs; the before and after rows must be equal.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    DEFAULT_OUTPUT,
    EventSpec,
    add_event_arguments,
    drop_topic,
    event_spec,
    log,
    positive_int,
    produce_topic,
    raise_interrupt,
    render_targets,
    run_section,
)
from benchmarks.silver import CONTRACT, comparable, land, ours_run

if TYPE_CHECKING:
    import pyarrow as pa

    from benchmarks.isolated import IsolatedStack

SECTION = "maintenance"
DEFAULT_SIZE = 4_000
QUICK_SIZE = 2_000
DEFAULT_COMMITS = 200
TARGET_FILES = 10.0
TARGET_SCAN = 2.0


@dataclass(frozen=True)
class Options:
    size: int
    commits: int
    repeat: int
    events: EventSpec
    output: Path


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks maintenance",
        description="A silver table after many small commits, before and after maintenance.",
    )
    parser.add_argument(
        "--size", type=positive_int, default=None, help=f"messages (default {DEFAULT_SIZE:,})"
    )
    parser.add_argument(
        "--commits", type=positive_int, default=DEFAULT_COMMITS, help="sensor-sized commits"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SIZE:,} messages (the same commits)"
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=5, help="timings per measurement (median)"
    )
    add_event_arguments(parser)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON file")
    args = parser.parse_args(argv)
    size = args.size or (QUICK_SIZE if args.quick else DEFAULT_SIZE)
    return Options(size, args.commits, args.repeat, event_spec(args), args.output)


def _median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _commit_in_small_batches(table: Any, rows: pa.Table, commits: int) -> None:
    ordered = rows.sort_by("event_time")
    bounds = [round(i * ordered.num_rows / commits) for i in range(commits + 1)]
    for start, end in itertools.pairwise(bounds):
        table.append(ordered.slice(start, end - start))


def _timings(spark: Any, table: Any, day: Any, repeat: int) -> dict[str, Any]:
    name = f"lakehouse.`{table.name()[-2]}`.`{table.name()[-1]}`"
    frame = spark.table(name)
    table = table.refresh()
    every_column = f"sum(hash({', '.join(f'`{c}`' for c in frame.columns)}))"
    return {
        "spark_scan_seconds": _median_seconds(
            lambda: spark.table(name).selectExpr(every_column).collect(), repeat
        ),
        "arrow_scan_seconds": _median_seconds(lambda: table.scan().to_arrow(), repeat),
        "plan_seconds": _median_seconds(
            lambda: list(table.scan(row_filter=f"event_date = '{day}'").plan_files()), repeat
        ),
    }


def measure(stack: IsolatedStack, options: Options) -> dict[str, Any]:
    from resources.environments import build_resources
    from resources.iceberg.maintenance import MaintenancePolicy, maintain
    from resources.iceberg.maintenance import measure as health_of

    log(f"producing {options.size:,} purchase-order events ...")
    produced = produce_topic(
        stack, options.size, options.events, keep=comparable, dataset_settings=CONTRACT
    )
    try:
        land(stack, produced)
        log("silver run for the table's rows and layout ...")
        source_namespace = ours_run(stack, produced, 1)["namespace"]
    finally:
        drop_topic(stack, produced)
    settings = stack.settings({**produced.environ, "LAKEHOUSE__SPARK__SHARED_DRIVER": "false"})
    resources = build_resources(settings)
    catalog = resources["iceberg"].load()
    source = catalog.load_table((source_namespace, "order_events"))
    rows = source.scan().to_arrow()
    namespace = f"silver_maintenance_{uuid.uuid4().hex[:6]}"
    catalog.create_namespace(namespace)
    table = catalog.create_table(
        (namespace, "order_events"),
        schema=source.schema(),
        partition_spec=source.spec(),
        properties=dict(source.properties),
    )
    log(f"{options.commits} commits of {rows.num_rows:,} rows to {namespace}.order_events ...")
    _commit_in_small_batches(table, rows, options.commits)
    table = table.refresh()
    policy = MaintenancePolicy.from_settings(settings.maintenance)
    spark = resources["spark"].spark_session
    day = rows.column("event_date")[rows.num_rows // 2].as_py()
    measured = health_of(table, policy)
    before = measured.health
    content = sorted(map(repr, table.scan().to_arrow().to_pylist()))
    log(f"before: {before.data_files} data files, {before.snapshots} snapshots; timing ...")
    timed_before = _timings(spark, table, day, options.repeat)
    log("maintenance ...")
    started = time.perf_counter()
    result = maintain(spark, settings.catalog.name, table, policy, measured=measured)
    maintenance_seconds = time.perf_counter() - started
    table = table.refresh()
    after = health_of(table, policy).health
    if sorted(map(repr, table.scan().to_arrow().to_pylist())) != content:
        raise RuntimeError("maintenance changed the table's rows")
    log(f"after: {after.data_files} data files, {after.snapshots} snapshots; timing ...")
    timed_after = _timings(spark, table, day, options.repeat)
    spark_speedup = timed_before["spark_scan_seconds"] / timed_after["spark_scan_seconds"]
    arrow_speedup = timed_before["arrow_scan_seconds"] / timed_after["arrow_scan_seconds"]
    return {
        "rows": rows.num_rows,
        "commits": options.commits,
        "table": f"{namespace}.order_events",
        "before": {**asdict(before), **timed_before},
        "after": {**asdict(after), **timed_after},
        "maintenance": {**result.metadata(), "seconds": round(maintenance_seconds, 2)},
        "rows_equal": True,
        "files_reduction": before.data_files / max(after.data_files, 1),
        "scan_speedup": min(spark_speedup, arrow_speedup),
        "scan_speedup_spark": spark_speedup,
        "scan_speedup_arrow": arrow_speedup,
        "planning_speedup": timed_before["plan_seconds"] / timed_after["plan_seconds"],
    }


def evaluate_targets(section: dict[str, Any]) -> dict[str, Any]:
    return {
        "files": {
            "description": "data files before / after maintenance",
            "value": section["files_reduction"],
            "limit": f">= {TARGET_FILES:g}",
            "pass": section["files_reduction"] >= TARGET_FILES,
        },
        "scan": {
            "description": "full scan before / after (slower of Spark, Arrow)",
            "value": section["scan_speedup"],
            "limit": f">= {TARGET_SCAN:g}",
            "pass": section["scan_speedup"] >= TARGET_SCAN,
        },
        "planning": {
            "description": "planning a one-day read before / after",
            "value": section["planning_speedup"],
            "limit": "report",
            "pass": None,
        },
    }


def render_table(section: dict[str, Any]) -> str:
    before, after = section["before"], section["after"]

    def row(label: str, a: Any, b: Any) -> str:
        shown = [f"{v:.3f}" if isinstance(v, float) else f"{v:,}" for v in (a, b)]
        return f"{label:<28}{shown[0]:>14}{shown[1]:>14}"

    lines = [
        f"Maintenance benchmark: {section['table']}, {section['rows']:,} rows in "
        f"{section['commits']} commits; medians of {section['config']['repeat']} timings",
        f"{'':<28}{'before':>14}{'after':>14}",
    ]
    for key in ("data_files", "small_files", "average_file_bytes", "snapshots", "manifests"):
        lines.append(row(key, before[key], after[key]))
    lines.append(
        row("metadata.json bytes", before["metadata_json_bytes"], after["metadata_json_bytes"])
    )
    for key in ("spark_scan_seconds", "arrow_scan_seconds", "plan_seconds"):
        lines.append(row(key, before[key], after[key]))
    lines += [
        f"maintenance took {section['maintenance']['seconds']:.1f}s: "
        f"{section['maintenance']['files_rewritten']} files rewritten into "
        f"{section['maintenance']['files_added']}",
        f"scan speedup: Spark {section['scan_speedup_spark']:.2f}, "
        f"Arrow {section['scan_speedup_arrow']:.2f}",
        "",
        *render_targets(section["targets"]),
    ]
    return "\n".join(lines)


def run(options: Options) -> tuple[dict[str, Any] | None, int]:
    return run_section(
        SECTION,
        announce=f"maintenance: {options.commits} commits of {options.size:,} messages' rows",
        measure=lambda stack: measure(stack, options),
        config={
            "size": options.size,
            "commits": options.commits,
            "repeat": options.repeat,
            **asdict(options.events),
            "end_date": options.events.end_date.isoformat(),
            "writes": "pyiceberg appends in event-time order, as sensor ticks commit",
            "maintenance": "resources.iceberg.maintenance.maintain, configured thresholds",
        },
        output=options.output,
        evaluate_targets=evaluate_targets,
        render_table=render_table,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    return run(options)[1]
