"""Silver benchmark: bronze → silver through Dagster against a hand-written PySpark job.

On an isolated local stack the benchmark produces the generator's purchase-order
events (default 1,000,000 over 3 days) into a fresh topic, lands them in bronze once
(the bronze asset, all days in one run), then alternates, ``--repeat`` times each,

* ``plain``: :mod:`benchmarks.silver_plain`, a standalone PySpark job as one would
  write it for Glue (read the bronze Parquet, ``from_json``, dedupe by ``event_id``,
  overwrite ``order_events``' days, MERGE ``orders``, ``order_lines``, ``customers``);
* ``ours``: the silver multi-asset of the dataset materialised for the 3 days in one
  run (contract validation, quarantine, the same tables, reconciliation and contract
  checks on the run's branch, then the publish of main);
* ``direct``: the same with ``catalog.write_audit_publish: false`` (commits to main,
  the same checks after), for ``wap_vs_direct``: the cost of write-audit-publish,

each in a fresh process writing to fresh tables (a namespace per run), and reports
medians of the transformation's wall time (Spark session start excluded in both, see
:mod:`benchmarks.silver_workers`) and the ratio ours/plain. The Dagster per-run
overhead comes from a separate small dataset (``--overhead-size`` events): in one
process, Dagster runs of one silver day alternate with the same asset function and
IO manager called without Dagster; the overhead is the median of the pairs'
differences (run minus the direct call after it).

Both variants must write the same number of rows to each table. For that the data
holds, besides valid events, re-sends, late and out-of-order events, only the
malformed records that no JSON reader can parse (not JSON, truncated JSON): the
generator's other malformations break rules of the contract, which ours quarantines
and the plain job, by definition, does not check.

Targets (from the issues): ours within 1.3x of the plain job; write-audit-publish
within 1.1x of direct commits (``wap_vs_direct``). Results go to the
``silver`` section of ``benchmarks/results.json`` and a table on stdout; exit status
0 when every target is met, 1 when one is missed, 2 when the benchmark could not run.

Run: ``make bench`` (all benchmarks) or ``python -m benchmarks silver [--quick]``.
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
    MIB,
    PARTITIONS,
    BenchmarkError,
    EventSpec,
    ProducedTopic,
    add_event_arguments,
    drop_topic,
    event_spec,
    log,
    median_services_cpu,
    positive_int,
    produce_topic,
    raise_interrupt,
    render_targets,
    run_section,
    run_worker,
)
from benchmarks.isolated import IsolatedStack

if TYPE_CHECKING:
    from lakehouse_dev.generator.spec import GeneratedRecord

#: This benchmark's section of results.json.
SECTION = "silver"
WORKERS = "benchmarks.silver_workers"
DEFAULT_SIZE = 1_000_000
QUICK_SIZE = 100_000
DEFAULT_OVERHEAD_SIZE = 10_000
QUICK_OVERHEAD_SIZE = 5_000
#: Dagster runs (and as many direct calls) of the overhead measurement.
OVERHEAD_RUNS = 3

#: Ours must take at most this multiple of the plain job's time.
TARGET_RATIO = 1.3
#: Write-audit-publish (branch, in-step checks on it, fast-forward) vs direct commits.
TARGET_WAP_RATIO = 1.1
#: The setting that turns write-audit-publish on or off for one worker.
WAP_VARIABLE = "LAKEHOUSE__CATALOG__WRITE_AUDIT_PUBLISH"

#: The benchmark's datasets are purchase orders under generated names: their contract.
CONTRACT = {"CONTRACT": "contracts/purchase_orders.yaml"}

#: Malformed records every reader drops; the others break contract rules only ours checks.
UNPARSEABLE = frozenset({"malformed:not_json", "malformed:truncated_json"})


@dataclass(frozen=True)
class Options:
    """What to measure."""

    size: int
    overhead_size: int
    repeat: int
    events: EventSpec
    output: Path


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if value < 1000:
        raise argparse.ArgumentTypeError(f"counts must be >= 1000, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks silver",
        description="Silver through Dagster vs a hand-written PySpark job; Dagster's per-run "
        "overhead.",
    )
    parser.add_argument(
        "--size",
        type=_count,
        default=None,
        help=f"purchase-order messages (default: {DEFAULT_SIZE:,})",
    )
    parser.add_argument(
        "--overhead-size",
        type=_count,
        default=None,
        help=f"messages of the one-partition overhead dataset (default: {DEFAULT_OVERHEAD_SIZE:,})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_SIZE:,} messages (overhead: {QUICK_OVERHEAD_SIZE:,}) for fast iteration",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=2,
        help="plain and ours runs, alternating; medians are reported (default: %(default)s)",
    )
    add_event_arguments(parser)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON file")
    args = parser.parse_args(argv)
    if args.quick and args.size:
        parser.error("--quick and --size exclude each other")
    return Options(
        size=args.size or (QUICK_SIZE if args.quick else DEFAULT_SIZE),
        overhead_size=args.overhead_size
        or (QUICK_OVERHEAD_SIZE if args.quick else DEFAULT_OVERHEAD_SIZE),
        repeat=args.repeat,
        events=event_spec(args),
        output=args.output,
    )


# --------------------------------------------------------------------------- data


def comparable(record: GeneratedRecord) -> bool:
    """Records both variants treat alike: all but the contract-breaking malformations."""
    return not record.is_malformed or record.kind in UNPARSEABLE


def land(stack: IsolatedStack, produced: ProducedTopic) -> dict[str, Any]:
    """Land the topic's days in bronze (one run), the input of every silver run."""
    outcome = run_worker(
        stack,
        f"land-{produced.dataset}",
        [
            "land",
            "--dataset",
            produced.dataset,
            "--first-day",
            produced.days[0],
            "--last-day",
            produced.days[-1],
        ],
        produced.environ,
    )
    if outcome["messages"] != produced.messages:
        raise BenchmarkError(
            f"bronze landing wrote {outcome['messages']:,} rows, "
            f"{produced.messages:,} messages were produced"
        )
    return outcome


def bronze_paths(stack: IsolatedStack, produced: ProducedTopic) -> list[str]:
    """The bronze day directories, as the plain job names its input."""
    from resources.environments import build_resources

    store = build_resources(stack.settings(produced.environ))["bronze_store"]
    return [f"s3a://{store.partition_dir(produced.dataset, day)}" for day in produced.days]


# --------------------------------------------------------------------------- runs


def own_jvm(produced: ProducedTopic) -> dict[str, str]:
    """The workers' environment, each with a JVM of its own: the comparison holds only
    if neither variant inherits the other's warm JIT from a shared driver."""
    return {**produced.environ, "LAKEHOUSE__SPARK__SHARED_DRIVER": "false"}


def plain_run(
    stack: IsolatedStack, produced: ProducedTopic, paths: list[str], run: int
) -> dict[str, Any]:
    namespace = f"silver_plain_{run}_{uuid.uuid4().hex[:6]}"
    arguments = ["plain", "--namespace", namespace]
    arguments += ["--first-day", produced.days[0], "--last-day", produced.days[-1]]
    for path in paths:
        arguments += ["--path", path]
    outcome = run_worker(stack, f"silver-plain-{run}", arguments, own_jvm(produced), WORKERS)
    outcome["namespace"] = namespace
    return outcome


def ours_run(
    stack: IsolatedStack, produced: ProducedTopic, run: int, audit: bool = True
) -> dict[str, Any]:
    """Our silver run; ``audit=False`` commits to main directly (no write-audit-publish)."""
    label = "ours" if audit else "direct"
    namespace = f"silver_{label}_{run}_{uuid.uuid4().hex[:6]}"
    arguments = ["ours", "--dataset", produced.dataset, "--namespace", namespace]
    arguments += ["--first-day", produced.days[0], "--last-day", produced.days[-1]]
    environ = {**own_jvm(produced), WAP_VARIABLE: "true" if audit else "false"}
    outcome = run_worker(stack, f"silver-{label}-{run}", arguments, environ, WORKERS)
    outcome["namespace"] = namespace
    if not outcome["reconciliation_passed"]:
        raise BenchmarkError(f"ours run {run}: reconciliation failed: {outcome['reconciliation']}")
    return outcome


def overhead_run(stack: IsolatedStack, produced: ProducedTopic) -> dict[str, Any]:
    day = produced.days[len(produced.days) // 2]
    arguments = ["overhead", "--dataset", produced.dataset, "--day", day]
    arguments += ["--runs", str(OVERHEAD_RUNS)]
    return run_worker(stack, "silver-overhead", arguments, own_jvm(produced), WORKERS)


# --------------------------------------------------------------------------- results


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise_variant(runs: list[dict[str, Any]], messages: int) -> dict[str, Any]:
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        "median_seconds": seconds,
        "msgs_per_s": messages / seconds if seconds > 0 else float("nan"),
        "median_total_seconds": statistics.median(r["total_seconds"] for r in runs),
        "median_session_seconds": statistics.median(r["session_seconds"] for r in runs),
        "median_import_seconds": statistics.median(r["import_seconds"] for r in runs),
        "median_jvm_cpu_seconds": _median(runs, "jvm_cpu_seconds"),
        "median_python_cpu_seconds": _median(runs, "python_cpu_seconds"),
        "median_services_cpu_seconds": median_services_cpu(runs),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "rows": runs[-1]["rows"],
        "runs": [{k: v for k, v in r.items() if k != "rss_samples"} for r in runs],
    }


def row_comparison(plains: list[dict[str, Any]], ours: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows per table of every run; equal when all runs of both variants agree."""
    every = [r["rows"] for r in (*plains, *ours)]
    tables = sorted(every[0])
    return {
        "plain": plains[-1]["rows"],
        "ours": ours[-1]["rows"],
        "ours_quarantined": ours[-1].get("quarantined"),
        "equal": all(rows == every[0] for rows in every),
        "differences": {
            table: sorted({rows[table] for rows in every})
            for table in tables
            if len({rows[table] for rows in every}) > 1
        },
    }


def evaluate_targets(section: dict[str, Any]) -> dict[str, Any]:
    ratio = section["ratio_ours_to_plain"]
    rows = section["rows"]
    return {
        "ratio": {
            "description": f"ours / plain wall time at {section['messages']:,} messages",
            "value": ratio,
            "limit": f"<= {TARGET_RATIO}",
            "pass": ratio <= TARGET_RATIO,
        },
        "wap": {
            "description": "ours with write-audit-publish / ours committing to main directly",
            "value": section["wap_vs_direct"],
            "limit": f"<= {TARGET_WAP_RATIO}",
            "pass": section["wap_vs_direct"] <= TARGET_WAP_RATIO,
        },
        "rows": {
            "description": "rows per table equal (events, orders, lines, customers)",
            "value": "equal" if rows["equal"] else "differ",
            "limit": "equal",
            "pass": rows["equal"],
        },
    }


def render_table(section: dict[str, Any]) -> str:
    plain, ours = section["plain"], section["ours"]
    overhead = section["dagster_overhead"]

    def row(label: str, a: str, b: str) -> str:
        return f"{label:<40}{a:>16}{b:>16}"

    def fmt(value: float | None, pattern: str = "{:.1f}") -> str:
        return "-" if value is None else pattern.format(value)

    days = section["days"]
    lines = [
        f"Silver benchmark: purchase_orders, {section['messages']:,} messages, "
        f"days {days[0]}..{days[-1]}, median of {section['config']['repeat']} alternating runs",
        row("", "plain", "ours"),
        row(
            "transformation s",
            fmt(plain["median_seconds"], "{:.2f}"),
            fmt(ours["median_seconds"], "{:.2f}"),
        ),
        row("messages/s", f"{plain['msgs_per_s']:,.0f}", f"{ours['msgs_per_s']:,.0f}"),
        row(
            "Spark session start s (excluded)",
            fmt(plain["median_session_seconds"]),
            fmt(ours["median_session_seconds"]),
        ),
        row(
            "imports s (excluded)",
            fmt(plain["median_import_seconds"]),
            fmt(ours["median_import_seconds"]),
        ),
        row(
            "process total s", fmt(plain["median_total_seconds"]), fmt(ours["median_total_seconds"])
        ),
        row("JVM CPU s", fmt(plain["median_jvm_cpu_seconds"]), fmt(ours["median_jvm_cpu_seconds"])),
        row(
            "Python driver CPU s",
            fmt(plain["median_python_cpu_seconds"]),
            fmt(ours["median_python_cpu_seconds"]),
        ),
        row(
            "driver peak RSS MiB (Python)",
            f"{plain['peak_rss_bytes'] / MIB:,.0f}",
            f"{ours['peak_rss_bytes'] / MIB:,.0f}",
        ),
    ]
    for table in sorted(section["rows"]["plain"]):
        lines.append(
            row(
                f"rows {table}",
                f"{section['rows']['plain'][table]:,}",
                f"{section['rows']['ours'][table]:,}",
            )
        )
    lines += [
        row("rows quarantined", "-", f"{section['rows']['ours_quarantined'] or 0:,}"),
        row("ours / plain", "", f"{section['ratio_ours_to_plain']:.2f}"),
        row(
            "ours without write-audit-publish s",
            "",
            fmt(section["direct"]["median_seconds"], "{:.2f}"),
        ),
        row("write-audit-publish / direct", "", f"{section['wap_vs_direct']:.2f}"),
        "",
        f"Dagster per-run overhead, one partition ({overhead['day']}) of "
        f"{overhead['messages']:,} messages, {OVERHEAD_RUNS} pairs:",
        row("Dagster run s", "", f"{overhead['median_dagster_seconds']:.2f}"),
        row("direct call (no Dagster) s", "", f"{overhead['median_direct_seconds']:.2f}"),
        row("overhead s (median of pair differences)", "", f"{overhead['overhead_seconds']:.2f}"),
        "",
        *render_targets(section["targets"]),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def measure(stack: IsolatedStack, options: Options) -> dict[str, Any]:
    """Produce and land both datasets, alternate the variants, measure the overhead."""
    size = options.size
    log(f"{size:,}: producing purchase-order events ...")
    produced = produce_topic(
        stack, size, options.events, keep=comparable, dataset_settings=CONTRACT
    )
    log(
        f"{size:,}: produced {produced.messages:,} messages ({produced.value_bytes / MB:,.1f} MB) "
        f"over {len(produced.days)} day(s) in {produced.produce_seconds:.0f}s; landing bronze ..."
    )
    pending = [produced]  # topics (and bronze files) to delete, also after an error
    try:
        landing = land(stack, produced)
        log(f"{size:,}: bronze landed in {landing['seconds']:.1f}s")
        paths = bronze_paths(stack, produced)
        plains: list[dict[str, Any]] = []
        ours: list[dict[str, Any]] = []
        direct: list[dict[str, Any]] = []
        for run in range(1, options.repeat + 1):
            plains.append(plain_run(stack, produced, paths, run))
            log(f"{size:,}: plain run {run}: {plains[-1]['seconds']:.2f}s {plains[-1]['rows']}")
            ours.append(ours_run(stack, produced, run))
            log(f"{size:,}: ours run {run}: {ours[-1]['seconds']:.2f}s {ours[-1]['rows']}")
            direct.append(ours_run(stack, produced, run, audit=False))
            log(f"{size:,}: direct run {run}: {direct[-1]['seconds']:.2f}s {direct[-1]['rows']}")
        drop_topic(stack, pending.pop())
        log(f"overhead: producing {options.overhead_size:,} events ...")
        small = produce_topic(
            stack, options.overhead_size, options.events, keep=comparable, dataset_settings=CONTRACT
        )
        pending.append(small)
        land(stack, small)
        log("overhead: Dagster runs vs direct calls of one partition ...")
        overhead = overhead_run(stack, small)
        log(
            f"overhead: run {overhead['median_dagster_seconds']:.2f}s, direct "
            f"{overhead['median_direct_seconds']:.2f}s"
        )
    finally:
        for topic in pending:
            drop_topic(stack, topic)
    plain_summary = summarise_variant(plains, produced.messages)
    ours_summary = summarise_variant(ours, produced.messages)
    direct_summary = summarise_variant(direct, produced.messages)
    return {
        "messages": produced.messages,
        "value_bytes": produced.value_bytes,
        "days": produced.days,
        "topic": produced.topic,
        "produce_seconds": round(produced.produce_seconds, 2),
        "bronze_landing_seconds": round(landing["seconds"], 2),
        "plain": plain_summary,
        "ours": ours_summary,
        "ratio_ours_to_plain": ours_summary["median_seconds"] / plain_summary["median_seconds"],
        "direct": direct_summary,
        "wap_vs_direct": ours_summary["median_seconds"] / direct_summary["median_seconds"],
        "rows": row_comparison(plains, [*ours, *direct]),
        "dagster_overhead": {**overhead, "messages": small.messages},
    }


def run(options: Options) -> tuple[dict[str, Any] | None, int]:
    """Measure; returns the results section (None when it could not run) and the exit code."""
    return run_section(
        SECTION,
        announce=f"silver: {options.size:,} messages, {options.repeat} run(s) of each variant",
        measure=lambda stack: measure(stack, options),
        config={
            "size": options.size,
            "overhead_size": options.overhead_size,
            "overhead_runs": OVERHEAD_RUNS,
            "repeat": options.repeat,
            **asdict(options.events),
            "end_date": options.events.end_date.isoformat(),
            "partitions": PARTITIONS,
            "malformed_kept": sorted(UNPARSEABLE),
            "clock": "transformation only: after imports and Spark session start (both variants)",
            "ours": "silver multi-asset, all days in one run (single-run backfill)",
            "plain": "benchmarks/silver_plain.py, same Spark configuration",
            "dagster_overhead": "median over pairs of (Dagster run - direct call of the asset "
            "function and IO manager), one partition, warm Spark session, same process",
        },
        output=options.output,
        evaluate_targets=evaluate_targets,
        render_table=render_table,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    return run(options)[1]
