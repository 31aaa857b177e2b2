"""Gold benchmark: a 30-day backfill bronze → silver → gold, and produce-to-gold latency.

On an isolated local stack the benchmark produces the generator's purchase-order
events once (default 100,000 orders a day for 30 days, about 2.9 events per order)
into the ``purchase-orders`` topic and measures two things.

**Backfill.** The 30 days go through bronze, silver and gold twice, on the same
topic, each variant into empty tables of its own (its own bronze prefix, silver and
gold namespaces and Dagster instance):

* ``single_run``: the single-run backfill (``BackfillPolicy.single_run``): one run per
  layer over the whole range — bronze, silver, gold — 3 runs;
* ``per_partition``: one run per partition and layer — 30 bronze runs, 30 silver runs,
  30 gold runs — 90 runs, layer after layer (every silver day then finds all the
  bronze days its late window reads, as a dependency-ordered backfill would).

Before either, one run loads the dbt seeds (reference data, unpartitioned, which
automation loads when missing): set-up, timed apart, not part of the backfill.

Every run is a fresh ``dg launch -m lakehouse_assets.definitions --assets ...``
process, as the daemon launches every run of a backfill in a process of its own: it
pays what a run really costs besides its data — interpreter start, imports, loading
the definitions, the Spark session of a silver run, the dbt process and its Spark JVM
of a gold run. A variant's time is the wall time of its runs back to back (each
process launch to exit; the start-up before a run starts is reported apart), and the
figure is the ratio per_partition / single_run. The daemon's own launch pace (about
1 run/s) is not included, which favours per_partition. Both variants must end with the same
``fct_daily_sales`` (every row and column but load metadata; row count and sum of
``net_revenue`` are printed), and bronze must hold every produced message.

**Latency.** ``dagster-daemon run`` on the project's workspace against the stack
(own instance, fresh namespaces, default intervals: the arrivals sensor every 30 s,
declarative automation every 30 s). Once it has settled (the seeds it loads on its
own are in, no run in flight), each probe produces a few valid purchase orders
stamped now and polls ``gold.fct_daily_sales`` (pyiceberg) until the day counts them;
the probe's latency is produce → seen. Probes start at a random phase of the sensor
ticks; the median is reported with the runs each probe caused. The daemon and
everything it started are stopped at the end.

Targets (from the issue): single-run backfill at least 3x faster than one run per
partition, in the same run; median produce-to-gold latency under 120 s. Results go to
the ``gold`` section of ``benchmarks/results.json`` and a table on stdout; exit status
0 when every target is met, 1 when one is missed, 2 when the benchmark could not run,
130 when interrupted.

Run: ``make bench`` (all benchmarks) or ``python -m benchmarks gold [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    DEFAULT_OUTPUT,
    MB,
    PROJECT_ROOT,
    WORKER_TIMEOUT_S,
    BenchmarkError,
    add_event_arguments,
    event_spec,
    log,
    positive_int,
    raise_interrupt,
    run_section,
)
from benchmarks.gold_latency import (
    _runs,
    measure_latency,
)
from benchmarks.gold_results import (
    evaluate_targets,
    render_table,
)
from benchmarks.gold_setup import (
    DATASET,
    LAYERS,
    SETUP,
    Lakehouse,
    Options,
    Selection,
    _tail,
    code_fingerprint,
    new_lakehouse,
    produce_orders,
    selection,
    stop_processes,
)
from benchmarks.isolated import IsolatedStack

if TYPE_CHECKING:
    pass

#: This benchmark's section of results.json.
SECTION = "gold"
DEFINITIONS_MODULE = "lakehouse_assets.definitions"
DEFAULT_ORDERS_PER_DAY = 100_000
QUICK_ORDERS_PER_DAY = 1_000
DEFAULT_GOLD_DAYS = 30
DEFAULT_PROBES = 5
QUICK_PROBES = 3


#: fct_daily_sales columns left out of the comparison: load metadata, not figures.
_VOLATILE_SUFFIXES = ("_at", "_run_id", "_loaded")


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks gold",
        description="A 30-day backfill bronze → silver → gold as one single-run backfill and "
        "as one run per partition; produce-to-gold latency with the daemon running.",
    )
    parser.add_argument(
        "--orders-per-day",
        type=positive_int,
        default=None,
        help=f"purchase orders per day (default: {DEFAULT_ORDERS_PER_DAY:,})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_ORDERS_PER_DAY:,} orders a day (still 30 days) and {QUICK_PROBES} "
        "latency probes, for fast iteration",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="backfills of each variant, alternating; medians are reported (default: 1)",
    )
    parser.add_argument(
        "--latency-probes",
        type=positive_int,
        default=None,
        help=f"produce-to-gold probes with the daemon running (default: {DEFAULT_PROBES}, "
        f"--quick: {QUICK_PROBES})",
    )
    parser.add_argument("--skip-backfill", action="store_true", help="measure the latency only")
    parser.add_argument("--skip-latency", action="store_true", help="measure the backfill only")
    add_event_arguments(parser)
    parser.set_defaults(days=DEFAULT_GOLD_DAYS)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON file")
    args = parser.parse_args(argv)
    if args.quick and args.orders_per_day:
        parser.error("--quick and --orders-per-day exclude each other")
    if args.skip_backfill and args.skip_latency:
        parser.error("--skip-backfill and --skip-latency leave nothing to measure")
    return Options(
        orders_per_day=args.orders_per_day
        or (QUICK_ORDERS_PER_DAY if args.quick else DEFAULT_ORDERS_PER_DAY),
        repeat=args.repeat,
        latency_probes=args.latency_probes or (QUICK_PROBES if args.quick else DEFAULT_PROBES),
        backfill=not args.skip_backfill,
        latency=not args.skip_latency,
        events=event_spec(args),
        output=args.output,
    )


# --------------------------------------------------------------------------- backfill


def dagster_run(
    stack: IsolatedStack, lakehouse: Lakehouse, name: str, arguments: Sequence[str]
) -> dict[str, float | None]:
    """One run as a fresh ``dg launch`` process (its exit status is 1 when the run fails).

    Returns its wall time (launch to exit) and, from the run's record, the part before
    the run started (interpreter, imports, loading the definitions: ``startup_seconds``)
    and the run itself (``run_seconds``: resources, Spark or dbt start, the work).
    """
    log_file = stack.data_dir / "logs" / f"{lakehouse.label}-{name}.log"
    command = [
        str(Path(sys.executable).parent / "dg"),
        "launch",
        "-m",
        DEFINITIONS_MODULE,
        *arguments,
    ]
    launched = time.time()
    started = time.perf_counter()
    with log_file.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=lakehouse.environ,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(WORKER_TIMEOUT_S)
        except BaseException:
            # Timeout, Ctrl-C or SIGTERM: the run (and its Spark, its dbt) must not outlive us.
            stop_processes(process, lakehouse.marker, grace_s=5.0)
            raise
    seconds = time.perf_counter() - started
    # Nothing of a finished run may linger (a JVM still exiting, say) into the next one.
    stop_processes(process, lakehouse.marker, grace_s=10.0)
    if code != 0:
        raise BenchmarkError(f"run {name} exited with status {code}:\n{_tail(log_file)}")
    startup = execution = None
    latest = _runs(lakehouse.home, launched)
    if latest and latest[-1]["started_s"] is not None:
        startup = latest[-1]["started_s"]
        if latest[-1]["ended_s"] is not None:
            execution = round(latest[-1]["ended_s"] - latest[-1]["started_s"], 2)
    return {"seconds": seconds, "startup_seconds": startup, "run_seconds": execution}


def _landing_config() -> str:
    from lakehouse_assets.bronze.assets import landing_run_config

    return json.dumps(landing_run_config(DATASET, "replace"))


def backfill_runs(
    selected: Selection, days: list[str], single_run: bool
) -> list[tuple[str, str | None, list[str]]]:
    """The runs of one variant, in order: (layer, partition or range, CLI arguments).

    The first loads the seeds (:data:`SETUP`, not timed as part of the backfill).
    """
    config = ["--config-json", _landing_config()]
    runs: list[tuple[str, str | None, list[str]]] = [(SETUP, None, ["--assets", selected.seeds])]
    if single_run:
        window = f"{days[0]}...{days[-1]}"
        ranged = ["--partition-range", window]
        return [
            *runs,
            ("bronze", window, ["--assets", selected.bronze, *ranged, *config]),
            ("silver", window, ["--assets", selected.silver, *ranged]),
            ("gold", window, ["--assets", selected.gold, *ranged]),
        ]
    return [
        *runs,
        *(("bronze", d, ["--assets", selected.bronze, "--partition", d, *config]) for d in days),
        *(("silver", d, ["--assets", selected.silver, "--partition", d]) for d in days),
        *(("gold", d, ["--assets", selected.gold, "--partition", d]) for d in days),
    ]


def _is_compared(column: str) -> bool:
    return not (column.startswith(("_", "dbt_")) or column.endswith(_VOLATILE_SUFFIXES))


def read_outcome(lakehouse: Lakehouse, days: list[str], gold_keys: list[str]) -> dict[str, Any]:
    """What a variant wrote: bronze rows, table sizes, and fct_daily_sales in full."""
    from resources.environments import build_resources

    settings = lakehouse.settings()
    resources = build_resources(settings)
    catalog = resources["iceberg"].load()

    def records(namespace: str, name: str) -> int | None:
        try:
            snapshot = catalog.load_table((namespace, name)).current_snapshot()
        except Exception:
            return None  # not written
        summary = snapshot.summary if snapshot is not None else None
        total = summary.get("total-records") if summary is not None else None
        return int(total) if total is not None else None

    silver_ns, gold_ns = settings.namespace("silver"), settings.namespace("gold")
    sales = catalog.load_table((gold_ns, "fct_daily_sales")).scan().to_arrow()
    columns = [c for c in sales.column_names if _is_compared(c)]
    rows = sorted(sales.select(columns).to_pylist(), key=lambda r: [str(r[c]) for c in columns])
    net_revenue = sum((r["net_revenue"] or Decimal(0) for r in rows), Decimal(0))
    orders = sum(r["orders"] or 0 for r in rows) if "orders" in columns else None
    # Staging models are ephemeral (CTEs), not assets: every gold asset is a table.
    gold_tables = [k.split("/")[-1] for k in gold_keys]
    return {
        "bronze_rows": resources["bronze_store"].count_rows(DATASET, days),
        "silver_records": {
            t: records(silver_ns, t) for t in ("order_events", "orders", "order_lines")
        },
        "gold_records": {t: records(gold_ns, t) for t in gold_tables},
        "fct_daily_sales": {
            "rows": len(rows),
            "net_revenue": str(net_revenue) if "net_revenue" in columns else None,
            "orders": orders,
            "compared_columns": columns,
        },
        "_sales_rows": rows,
    }


def backfill(
    stack: IsolatedStack,
    base: dict[str, str],
    selected: Selection,
    days: list[str],
    single_run: bool,
) -> dict[str, Any]:
    """One variant from empty tables: every run in order, timed; then what it wrote."""
    kind = "single_run" if single_run else "per_partition"
    lakehouse = new_lakehouse(stack, base, kind)
    plan = backfill_runs(selected, days, single_run)
    runs: list[dict[str, Any]] = []
    for index, (layer, partition, arguments) in enumerate(plan, start=1):
        timing = dagster_run(stack, lakehouse, f"{index:03d}-{layer}", arguments)
        runs.append(
            {
                "layer": layer,
                "partition": partition,
                "seconds": round(timing["seconds"] or 0.0, 2),
                "startup_seconds": timing["startup_seconds"],
                "run_seconds": timing["run_seconds"],
            }
        )
        if single_run or index == len(plan) or plan[index][0] != layer:
            layer_runs = [r["seconds"] for r in runs if r["layer"] == layer]
            log(
                f"{kind}: {layer} done, {len(layer_runs)} run(s) in {sum(layer_runs):.1f}s "
                f"(median {statistics.median(layer_runs):.1f}s a run)"
            )
    # The backfill's runs back to back: neither the seeds (set-up) nor the bookkeeping
    # between runs (reading each run's record) is part of a backfill.
    wall = sum(r["seconds"] for r in runs if r["layer"] != SETUP)
    outcome = read_outcome(lakehouse, days, selected.gold_keys)
    layers: dict[str, dict[str, float | int | None]] = {}
    for layer in (SETUP, *LAYERS):
        mine = [r for r in runs if r["layer"] == layer]
        startups = [r["startup_seconds"] for r in mine if r["startup_seconds"] is not None]
        layers[layer] = {
            "runs": len(mine),
            "seconds": round(sum(r["seconds"] for r in mine), 2),
            "median_run_seconds": round(statistics.median(r["seconds"] for r in mine), 2),
            "median_startup_seconds": round(statistics.median(startups), 2) if startups else None,
        }
    return {
        "variant": kind,
        "namespaces": lakehouse.label,
        "seconds": wall,
        "runs": len([r for r in runs if r["layer"] != SETUP]),
        "layers": layers,
        "run_seconds": runs,
        **outcome,
    }


def summarise_backfills(results: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = statistics.median(r["seconds"] for r in results)
    last = results[-1]
    return {
        "median_seconds": seconds,
        "seconds": [round(r["seconds"], 2) for r in results],
        "runs": last["runs"],
        "layers": last["layers"],
        "bronze_rows": last["bronze_rows"],
        "silver_records": last["silver_records"],
        "gold_records": last["gold_records"],
        "fct_daily_sales": last["fct_daily_sales"],
        "backfills": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
    }


def measure_backfill(
    stack: IsolatedStack, base: dict[str, str], options: Options
) -> dict[str, Any]:
    """Produce once; alternate the two variants ``repeat`` times; compare what they wrote."""
    per_day = options.orders_per_day
    log(f"producing {per_day:,} orders a day over {options.events.days} days ...")
    produced = produce_orders(stack, per_day, options.events)
    log(
        f"produced {produced.messages:,} messages ({produced.value_bytes / MB:,.1f} MB, "
        f"{produced.orders:,} orders) in {produced.produce_seconds:.0f}s"
    )
    selected = selection(stack.settings(base))
    log(f"gold models fed by silver: {', '.join(selected.gold_keys)}; seeds: {selected.seeds}")
    singles: list[dict[str, Any]] = []
    partitioned: list[dict[str, Any]] = []
    for repetition in range(1, options.repeat + 1):
        log(f"backfill {repetition}/{options.repeat}: single-run backfill (3 runs) ...")
        singles.append(backfill(stack, base, selected, produced.days, single_run=True))
        log(f"single_run: {singles[-1]['seconds']:.1f}s, {singles[-1]['fct_daily_sales']}")
        runs = 3 * len(produced.days)
        log(f"backfill {repetition}/{options.repeat}: one run per partition ({runs} runs) ...")
        partitioned.append(backfill(stack, base, selected, produced.days, single_run=False))
        log(
            f"per_partition: {partitioned[-1]['seconds']:.1f}s, "
            f"{partitioned[-1]['fct_daily_sales']}"
        )
    every = [r["_sales_rows"] for r in (*singles, *partitioned)]
    equal = all(rows == every[0] for rows in every)
    bronze_complete = all(r["bronze_rows"] == produced.messages for r in (*singles, *partitioned))
    single = summarise_backfills(singles)
    per_partition = summarise_backfills(partitioned)
    return {
        "messages": produced.messages,
        "value_bytes": produced.value_bytes,
        "orders": produced.orders,
        "events_per_order": round(produced.events_per_order, 3),
        "days": produced.days,
        "produce_seconds": round(produced.produce_seconds, 2),
        "gold_models": selected.gold_keys,
        "single_run": single,
        "per_partition": per_partition,
        "ratio_per_partition_to_single_run": per_partition["median_seconds"]
        / single["median_seconds"],
        "fct_daily_sales_equal": equal,
        "bronze_complete": bronze_complete,
    }


# --------------------------------------------------------------------------- main


def measure(stack: IsolatedStack, options: Options) -> dict[str, Any]:
    first = options.events.end_date - timedelta(days=options.events.days - 1)
    # Every daily partition (bronze, silver, gold) starts with the first produced day.
    base = {**stack.environ, "LAKEHOUSE__PARTITIONS__START_DATE": first.isoformat()}
    result: dict[str, Any] = {}
    if options.backfill:
        result["backfill"] = measure_backfill(stack, base, options)
    if options.latency:
        seeds = selection(stack.settings(base)).seeds
        result["latency"] = measure_latency(stack, base, options, seeds)
    return result


def run(options: Options) -> tuple[dict[str, Any] | None, int]:
    """Measure; returns the results section (None when it could not run) and the exit code."""
    parts = []
    if options.backfill:
        parts.append(
            f"{options.orders_per_day:,} orders/day over {options.events.days} days, "
            f"{options.repeat} backfill(s) of each variant"
        )
    if options.latency:
        parts.append(f"{options.latency_probes} latency probe(s)")
    code_before = code_fingerprint()

    def measured(stack: IsolatedStack) -> dict[str, Any]:
        figures = measure(stack, options)
        code_after = code_fingerprint()
        if code_after != code_before:
            log(
                "warning: the project's code, dbt project or configuration changed while the "
                "benchmark ran; the variants may have run different code"
            )
        return {
            "code_fingerprint": {"before": code_before, "after": code_after},
            "code_changed_during_run": code_after != code_before,
            **figures,
        }

    return run_section(
        SECTION,
        announce=f"gold: {'; '.join(parts)}",
        measure=measured,
        config={
            "orders_per_day": options.orders_per_day,
            "repeat": options.repeat,
            "latency_probes": options.latency_probes if options.latency else 0,
            **asdict(options.events),
            "end_date": options.events.end_date.isoformat(),
            "clock": "wall time of every run's process, launch to exit (interpreter, imports, "
            "definitions, Spark session, dbt and its JVM included); daemon launch pace excluded",
            "single_run": "one run per layer over the range: bronze, silver, gold",
            "per_partition": "one run per day and layer (bronze, then silver, then gold)",
            "setup": "one run loading the dbt seeds before each variant, not in its time",
            "latency": "dagster-daemon with default intervals; produce -> order counted in "
            "gold.fct_daily_sales (pyiceberg poll every 2 s)",
        },
        output=options.output,
        evaluate_targets=evaluate_targets,
        render_table=render_table,
        dataset=DATASET,
        stopped="the runs, the daemon and the stack were stopped",
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    return run(options)[1]
