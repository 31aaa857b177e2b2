"""Cluster benchmark: bronze → silver on a Spark standalone cluster against local mode.

On an isolated local stack the benchmark produces the generator's purchase-order
events (default 1,000,000 over 3 days), lands them in bronze once, starts two
standalone clusters from the pyspark wheel (:mod:`lakehouse_dev.spark_cluster`), one
with 1 worker and one with 2 workers (``--worker-cores`` cores each), and then
alternates, ``--repeat`` times each:

* ``local``: the silver multi-asset for all days in one run, Spark in local mode in
  the run's process (``spark.master`` ``local[2]``), as the suite and the demo run it;
* ``cluster_1`` / ``cluster_2``: the same run with ``spark.master`` pointing at the
  cluster of 1 or 2 workers: the run's process is the driver, executors are the
  workers' JVMs, our code reaches them through ``spark.submit.pyFiles``.

Each run is a fresh process with a JVM of its own writing fresh tables (a namespace
per run). Reported: medians of the transformation's wall time (after imports and the
Spark session start) and of the session start itself (the cold JVM and, on a
cluster, the application's registration and executors), ``speedup_2_vs_1_workers`` (cluster_1 / cluster_2) and
``cluster_2_workers_vs_local`` (cluster_2 / local), the CPU the driver and the
executors used, and whether every variant wrote the same rows to every table.

Targets (from the issue): speedup >= 1.5, cluster vs local <= 1.25. On a machine with
2 cores, 2 one-core workers plus a driver share the cores that local mode has to
itself; the CPU split says where the time went.

Run: ``python -m benchmarks cluster [--quick]``; results go to the ``cluster`` section
of ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    DEFAULT_OUTPUT,
    MB,
    PARTITIONS,
    BenchmarkError,
    EventSpec,
    ProducedTopic,
    add_event_arguments,
    drop_topic,
    event_spec,
    log,
    positive_int,
    produce_topic,
    raise_interrupt,
    render_targets,
    run_section,
    run_worker,
)
from benchmarks.isolated import IsolatedStack, _bindable, free_port, process_cpu_seconds
from benchmarks.silver import CONTRACT, WORKERS, comparable, land

if TYPE_CHECKING:
    from lakehouse_dev.spark_cluster import SparkCluster

SECTION = "cluster"
DEFAULT_SIZE = 1_000_000
QUICK_SIZE = 100_000
TARGET_SPEEDUP = 1.5
TARGET_CLUSTER_VS_LOCAL = 1.25
VARIANTS = ("local", "cluster_1", "cluster_2")


@dataclass(frozen=True)
class Options:
    size: int
    repeat: int
    worker_cores: int
    worker_memory: str
    executor_memory: str
    events: EventSpec
    output: Path


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cluster", description=__doc__)
    parser.add_argument("--size", type=positive_int, default=DEFAULT_SIZE)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE:,} events, 1 run")
    parser.add_argument(
        "--repeat", type=positive_int, default=3, help="runs of each variant (medians)"
    )
    parser.add_argument("--worker-cores", type=positive_int, default=1)
    parser.add_argument("--worker-memory", default="3g")
    parser.add_argument("--executor-memory", default="2g")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    add_event_arguments(parser)
    args = parser.parse_args(list(argv or []))
    return Options(
        size=QUICK_SIZE if args.quick else args.size,
        repeat=1 if args.quick else args.repeat,
        worker_cores=args.worker_cores,
        worker_memory=args.worker_memory,
        executor_memory=args.executor_memory,
        events=event_spec(args),
        output=args.output,
    )


def start_cluster(stack: IsolatedStack, workers: int, options: Options) -> SparkCluster:
    """A standalone master and ``workers`` workers on free loopback ports."""
    from lakehouse_dev.spark_cluster import SparkCluster

    first_worker_ui = free_port()
    while not all(_bindable(first_worker_ui + i) for i in range(workers)):
        first_worker_ui = free_port()
    cluster = SparkCluster(
        data_dir=stack.data_dir / f"spark-{workers}",
        master_port=free_port(),
        master_webui_port=free_port(),
        worker_webui_port=first_worker_ui,
        workers=workers,
        worker_cores=options.worker_cores,
        worker_memory=options.worker_memory,
    )
    cluster.start()
    return cluster


def _cluster_jvm_pids(cluster: SparkCluster) -> list[int]:
    """Pids of the workers' processes and their children (the executors' JVMs)."""
    roots = [pid for pid in (cluster.worker(i).pid() for i in range(cluster.workers)) if pid]
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, pending = [], list(roots)
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def _cpu(pids: list[int]) -> float:
    return sum(value for value in map(process_cpu_seconds, pids) if value is not None)


def silver_run(
    stack: IsolatedStack,
    produced: ProducedTopic,
    variant: str,
    run: int,
    *,
    cluster: SparkCluster | None,
    options: Options,
) -> dict[str, Any]:
    """One silver run of the variant in a fresh process; wall time and CPU split."""
    namespace = f"silver_{variant}_{run}_{uuid.uuid4().hex[:6]}"
    environ = {**produced.environ, "LAKEHOUSE__SPARK__SHARED_DRIVER": "false"}
    if cluster is not None:
        environ["LAKEHOUSE__SPARK__MASTER"] = cluster.master_url
        environ["LAKEHOUSE__SPARK__EXECUTOR_MEMORY"] = options.executor_memory
    arguments = ["ours", "--dataset", produced.dataset, "--namespace", namespace]
    arguments += ["--first-day", produced.days[0], "--last-day", produced.days[-1]]
    executors_before = _cpu(_cluster_jvm_pids(cluster)) if cluster is not None else 0.0
    outcome = run_worker(stack, f"cluster-{variant}-{run}", arguments, environ, WORKERS)
    outcome["executors_cpu_seconds"] = (
        round(_cpu(_cluster_jvm_pids(cluster)) - executors_before, 2)
        if cluster is not None
        else None
    )
    outcome["namespace"] = namespace
    if not outcome["reconciliation_passed"]:
        raise BenchmarkError(f"{variant} run {run}: reconciliation failed")
    return outcome


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def measure(stack: IsolatedStack, options: Options) -> dict[str, Any]:
    log(f"{options.size:,}: producing purchase-order events ...")
    produced = produce_topic(
        stack, options.size, options.events, keep=comparable, dataset_settings=CONTRACT
    )
    log(
        f"{options.size:,}: produced {produced.messages:,} messages "
        f"({produced.value_bytes / MB:,.1f} MB); landing bronze ..."
    )
    clusters: dict[str, SparkCluster] = {}
    try:
        land(stack, produced)
        for workers in (1, 2):
            log(f"starting a standalone cluster of {workers} worker(s) ...")
            clusters[f"cluster_{workers}"] = start_cluster(stack, workers, options)
        runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
        for run in range(1, options.repeat + 1):
            for variant in VARIANTS:
                outcome = silver_run(
                    stack, produced, variant, run, cluster=clusters.get(variant), options=options
                )
                runs[variant].append(outcome)
                log(f"{variant} run {run}: {outcome['seconds']:.1f}s {outcome['rows']}")
    finally:
        for cluster in clusters.values():
            cluster.stop()
        drop_topic(stack, produced)
    medians = {variant: _median(runs[variant], "seconds") for variant in VARIANTS}
    rows = {variant: [r["rows"] for r in runs[variant]] for variant in VARIANTS}
    reference = rows["local"][0]
    return {
        "messages": produced.messages,
        "days": produced.days,
        "variants": {
            variant: {
                "median_seconds": medians[variant],
                "seconds": [round(r["seconds"], 2) for r in runs[variant]],
                "median_session_seconds": _median(runs[variant], "session_seconds"),
                "median_driver_jvm_cpu_seconds": _median(runs[variant], "jvm_cpu_seconds"),
                "median_executors_cpu_seconds": _median(runs[variant], "executors_cpu_seconds"),
                "rows": runs[variant][0]["rows"],
                "quarantined": runs[variant][0]["quarantined"],
            }
            for variant in VARIANTS
        },
        "speedup_2_vs_1_workers": _ratio(medians["cluster_1"], medians["cluster_2"]),
        "cluster_2_workers_vs_local": _ratio(medians["cluster_2"], medians["local"]),
        "tables_equal": all(r == reference for variant in VARIANTS for r in rows[variant]),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def evaluate_targets(section: dict[str, Any]) -> dict[str, Any]:
    speedup, versus = section["speedup_2_vs_1_workers"], section["cluster_2_workers_vs_local"]
    return {
        "speedup_2_vs_1_workers": {
            "description": "1-worker / 2-worker wall time (speedup)",
            "value": speedup,
            "limit": f">= {TARGET_SPEEDUP}",
            "pass": None if speedup is None else speedup >= TARGET_SPEEDUP,
        },
        "cluster_2_workers_vs_local": {
            "description": "2-worker cluster / local mode wall time",
            "value": versus,
            "limit": f"<= {TARGET_CLUSTER_VS_LOCAL}",
            "pass": None if versus is None else versus <= TARGET_CLUSTER_VS_LOCAL,
        },
        "tables_equal": {
            "description": "rows per table equal across the variants (reconciled)",
            "value": "equal" if section["tables_equal"] else "differ",
            "limit": "equal",
            "pass": section["tables_equal"],
        },
    }


def render_table(section: dict[str, Any]) -> str:
    lines = [
        f"cluster: {section['messages']:,} messages over {len(section['days'])} day(s)",
        f"{'variant':<11} {'median s':>9} {'session start s':>16} {'driver JVM CPU s':>17} "
        f"{'executors CPU s':>16}",
    ]
    for variant, figures in section["variants"].items():
        executors = figures["median_executors_cpu_seconds"]
        lines.append(
            f"{variant:<11} {figures['median_seconds']:>9} "
            f"{figures['median_session_seconds']!s:>16} "
            f"{figures['median_driver_jvm_cpu_seconds']!s:>17} {executors!s:>16}"
        )
    lines += render_targets(section["targets"])
    return "\n".join(lines)


def run(options: Options) -> tuple[dict[str, Any] | None, int]:
    """Measure; returns the results section (None when it could not run) and the exit code."""
    return run_section(
        SECTION,
        announce=f"cluster: {options.size:,} messages, {options.repeat} run(s) of each variant",
        measure=lambda stack: measure(stack, options),
        config={
            "size": options.size,
            "repeat": options.repeat,
            "worker_cores": options.worker_cores,
            "worker_memory": options.worker_memory,
            "executor_memory": options.executor_memory,
            **asdict(options.events),
            "end_date": options.events.end_date.isoformat(),
            "partitions": PARTITIONS,
            "clock": "transformation only: after imports and Spark session start",
            "local": "spark.master local[2] in the run's process",
        },
        output=options.output,
        evaluate_targets=evaluate_targets,
        render_table=render_table,
        stopped="the stack and clusters were stopped",
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    return run(options)[1]
