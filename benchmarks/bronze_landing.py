"""Bronze landing benchmark: throughput against a plain consume loop, and memory against volume.

For each size (default 1,000,000 and 4,000,000 purchase-order messages) the
benchmark produces the generator's events once into a fresh 3-partition topic of an
isolated local stack (own data dir, own free ports), then alternates

* ``consume``: a tight confluent-kafka loop over the same topic in its own process,
  the practical limit of any Kafka reader in Python, and
* ``land``: the bronze asset materialised for all the topic's days in one run
  (a single-run backfill in replace mode) in its own process,

``--repeat`` times each, and reports medians: messages/s and MB/s (Kafka value
bytes, 10^6 bytes per MB), the ratio landing/consume, and the landing process's
peak RSS. After the runs the landed rows are read back from S3 (streamed) and
checked: rows == messages produced, no (topic, partition, offset) twice, none missing.

Targets (from the issue): landing >= 50% of the consume loop at the reference
(smallest) size; peak RSS at the largest size within 1.2x of the reference size;
zero duplicates and gaps. Results go to ``benchmarks/results.json`` and a table on
stdout; the exit status is 0 when every target is met, 1 when one is missed and 2
when the benchmark could not run. The stack's processes are always stopped and its
temporary data dir deleted, also on error or Ctrl-C.

Run: ``make bench`` or ``python -m benchmarks bronze [--quick] [--sizes 1000000,4000000]``.
"""

from __future__ import annotations

import argparse
import signal
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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

#: This benchmark's section of results.json.
SECTION = "bronze_landing"
DEFAULT_SIZES = (1_000_000, 4_000_000)
QUICK_SIZES = (100_000, 400_000)

#: Landing throughput must reach this share of the plain consume loop's.
TARGET_RATIO = 0.5
#: Peak RSS of the largest size over the reference size must stay within this.
TARGET_RSS_GROWTH = 1.2


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Options:
    """What to measure."""

    sizes: tuple[int, ...]
    repeat: int
    events: EventSpec
    output: Path


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of counts: {text!r}"
        ) from None
    if not sizes or any(size < PARTITIONS for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be counts >= {PARTITIONS}, got {text!r}")
    return tuple(sorted(set(sizes)))


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks bronze",
        description="Bronze landing throughput (vs a plain consume loop) and memory (vs volume).",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="comma-separated message counts; the smallest is the reference size "
        f"(default: {','.join(map(str, DEFAULT_SIZES))})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {','.join(map(str, QUICK_SIZES))} for fast iteration",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=2,
        help="consume and landing runs per size, alternating; medians are reported "
        "(default: %(default)s)",
    )
    add_event_arguments(parser)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON file")
    args = parser.parse_args(argv)
    if args.quick and args.sizes:
        parser.error("--quick and --sizes exclude each other")
    return Options(
        sizes=QUICK_SIZES if args.quick else (args.sizes or DEFAULT_SIZES),
        repeat=args.repeat,
        events=event_spec(args),
        output=args.output,
    )


# --------------------------------------------------------------------------- workers


def consume_run(stack: IsolatedStack, produced: ProducedTopic, run: int) -> dict[str, Any]:
    outcome = run_worker(
        stack,
        f"consume-{produced.size}-{run}",
        ["consume", "--topic", produced.topic],
        produced.environ,
    )
    if outcome["messages"] != produced.messages:
        raise BenchmarkError(
            f"consume loop read {outcome['messages']} of {produced.messages} messages"
        )
    outcome["rss_samples"] = _downsample(outcome.get("rss_samples", []), 120)
    return outcome


def landing_run(stack: IsolatedStack, produced: ProducedTopic, run: int) -> dict[str, Any]:
    outcome = run_worker(
        stack,
        f"land-{produced.size}-{run}",
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
    outcome["rss_samples"] = _downsample(outcome.get("rss_samples", []), 120)
    return outcome


def _downsample(samples: list[list[float]], limit: int) -> list[list[float]]:
    """At most ``limit`` (seconds, RSS MiB) points, evenly spaced, always with the peak."""
    if not samples:
        return []
    step = max(1, len(samples) // limit)
    kept = samples[::step]
    peak = max(samples, key=lambda s: s[1])
    if peak not in kept:
        kept.append(peak)
        kept.sort()
    return [[t, round(rss / MIB, 1)] for t, rss in kept]


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verification:
    """What the bronze copy of a topic holds, against the topic's offsets."""

    rows: int
    expected: int
    duplicates: int
    gaps: int
    foreign: int

    @property
    def ok(self) -> bool:
        return (
            self.rows == self.expected
            and self.duplicates == 0
            and self.gaps == 0
            and self.foreign == 0
        )


def verify(stack: IsolatedStack, produced: ProducedTopic) -> Verification:
    """Stream the landed rows back and count each (partition, offset) of the topic.

    Memory: one 32-bit counter per offset (16 MB for 4 million records), never the
    rows themselves. ``foreign`` counts rows of another topic or outside the
    topic's watermarks.
    """
    import numpy as np
    import pyarrow.compute as pc
    from confluent_kafka import TopicPartition

    from resources.environments import build_resources

    settings = stack.settings(produced.environ)
    resources = build_resources(settings)
    consumer = resources["kafka"].consumer(group_id="lakehouse-bench-verify")
    try:
        bounds = {
            p: consumer.get_watermark_offsets(
                TopicPartition(produced.topic, p), timeout=10, cached=False
            )
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()
    counts = {p: np.zeros(high - low, dtype=np.int32) for p, (low, high) in bounds.items()}
    rows = foreign = 0
    for batch in resources["bronze_store"].read_batches(produced.dataset, produced.days):
        rows += batch.num_rows
        own_topic = pc.equal(batch.column("topic"), produced.topic)
        foreign += batch.num_rows - int(pc.sum(own_topic).as_py() or 0)
        partitions = batch.column("partition").to_numpy(zero_copy_only=False)
        offsets = batch.column("offset").to_numpy(zero_copy_only=False)
        for partition in np.unique(partitions):
            p = int(partition)
            if p not in bounds:
                foreign += int(np.count_nonzero(partitions == partition))
                continue
            low, high = bounds[p]
            mine = offsets[partitions == partition]
            inside = (mine >= low) & (mine < high)
            foreign += int(np.count_nonzero(~inside))
            np.add.at(counts[p], mine[inside] - low, 1)
    duplicates = sum(int(np.maximum(c - 1, 0).sum()) for c in counts.values())
    gaps = sum(int(np.count_nonzero(c == 0)) for c in counts.values())
    expected = sum(high - low for low, high in bounds.values())
    if expected != produced.messages:
        raise BenchmarkError(f"topic holds {expected} offsets, {produced.messages} were produced")
    return Verification(rows, expected, duplicates, gaps, foreign)


# --------------------------------------------------------------------------- results


def _rate(amount: float, seconds: float) -> float:
    return amount / seconds if seconds > 0 else float("nan")


def summarise_size(
    produced: ProducedTopic,
    consumes: list[dict[str, Any]],
    landings: list[dict[str, Any]],
    verification: Verification,
) -> dict[str, Any]:
    """One size's medians, rates, ratio, memory and verification, as results.json holds them."""
    consume_s = statistics.median(r["seconds"] for r in consumes)
    land_s = statistics.median(r["seconds"] for r in landings)
    peak_rss = max(r["peak_rss_bytes"] for r in landings)
    return {
        "size": produced.size,
        "messages": produced.messages,
        "value_bytes": produced.value_bytes,
        "days": produced.days,
        "topic": produced.topic,
        "produce_seconds": round(produced.produce_seconds, 2),
        "consume": {
            "median_seconds": consume_s,
            "msgs_per_s": _rate(produced.messages, consume_s),
            "mb_per_s": _rate(produced.value_bytes / MB, consume_s),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in consumes),
            "median_services_cpu_seconds": median_services_cpu(consumes),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in consumes),
            "runs": consumes,
        },
        "landing": {
            "median_seconds": land_s,
            "median_total_seconds": statistics.median(r["total_seconds"] for r in landings),
            "msgs_per_s": _rate(produced.messages, land_s),
            "mb_per_s": _rate(produced.value_bytes / MB, land_s),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in landings),
            "median_services_cpu_seconds": median_services_cpu(landings),
            "peak_rss_bytes": peak_rss,
            "peak_rss_mib": peak_rss / MIB,
            "rss_before_bytes": max(r["rss_before_bytes"] for r in landings),
            "parquet_bytes": landings[-1]["parquet_bytes"],
            "files": landings[-1]["files"],
            "runs": landings,
        },
        "ratio_landing_to_consume": consume_s / land_s if land_s > 0 else float("nan"),
        "verification": {**asdict(verification), "ok": verification.ok},
    }


def evaluate_targets(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """Pass/fail against the issue's targets; the smallest size is the reference."""
    reference, largest = sizes[0], sizes[-1]
    ratio = reference["ratio_landing_to_consume"]
    growth = largest["landing"]["peak_rss_bytes"] / reference["landing"]["peak_rss_bytes"]
    defects = sum(
        s["verification"]["duplicates"] + s["verification"]["gaps"] + s["verification"]["foreign"]
        for s in sizes
    )
    counts_match = all(s["verification"]["rows"] == s["messages"] for s in sizes)
    targets = {
        "throughput": {
            "description": f"landing/consume msgs/s at {reference['size']:,} messages",
            "value": ratio,
            "limit": f">= {TARGET_RATIO}",
            "pass": ratio >= TARGET_RATIO,
        },
        "memory": {
            "description": (
                f"landing peak RSS at {largest['size']:,} / at {reference['size']:,} messages"
            ),
            "value": growth,
            "limit": f"<= {TARGET_RSS_GROWTH}",
            # One size says nothing about growth with volume.
            "pass": growth <= TARGET_RSS_GROWTH if len(sizes) > 1 else None,
        },
        "integrity": {
            "description": "duplicate + missing + foreign rows, all sizes; rows == messages",
            "value": defects,
            "limit": "== 0",
            "pass": defects == 0 and counts_match,
        },
    }
    return targets


def render_table(results: dict[str, Any]) -> str:
    """The figures as a person reads them: one column per size, then the targets."""
    sizes: list[dict[str, Any]] = results["sizes"]
    config = results["config"]

    def row(label: str, cells: Iterable[str]) -> str:
        return f"{label:<34}" + "".join(f"{cell:>16}" for cell in cells)

    def each(fn: Any) -> list[str]:
        return [fn(s) for s in sizes]

    days = sizes[0]["days"] if sizes else []
    lines = [
        f"Bronze landing benchmark: purchase_orders, {PARTITIONS} partitions, "
        f"days {days[0] if days else '?'}..{days[-1] if days else '?'}, "
        f"median of {config['repeat']} alternating runs",
        row("", each(lambda s: f"{s['size']:,}")),
        row("messages", each(lambda s: f"{s['messages']:,}")),
        row("value MB", each(lambda s: f"{s['value_bytes'] / MB:,.1f}")),
        row("consume loop s", each(lambda s: f"{s['consume']['median_seconds']:.2f}")),
        row("consume loop msgs/s", each(lambda s: f"{s['consume']['msgs_per_s']:,.0f}")),
        row("consume loop MB/s", each(lambda s: f"{s['consume']['mb_per_s']:.1f}")),
        row("landing s (materialise)", each(lambda s: f"{s['landing']['median_seconds']:.2f}")),
        row(
            "landing s (process total)",
            each(lambda s: f"{s['landing']['median_total_seconds']:.2f}"),
        ),
        row("landing msgs/s", each(lambda s: f"{s['landing']['msgs_per_s']:,.0f}")),
        row("landing MB/s", each(lambda s: f"{s['landing']['mb_per_s']:.1f}")),
        row("landing / consume", each(lambda s: f"{s['ratio_landing_to_consume']:.2f}")),
        row("consume loop CPU s", each(lambda s: f"{s['consume']['median_cpu_seconds']:.1f}")),
        row("landing CPU s", each(lambda s: f"{s['landing']['median_cpu_seconds']:.1f}")),
        row(
            "broker + S3 CPU s during landing",
            each(lambda s: f"{sum(s['landing']['median_services_cpu_seconds'].values()):.1f}"),
        ),
        row(
            "landing RSS before run MiB",
            each(lambda s: f"{s['landing']['rss_before_bytes'] / MIB:,.0f}"),
        ),
        row("landing peak RSS MiB", each(lambda s: f"{s['landing']['peak_rss_mib']:,.0f}")),
        row("parquet MB written", each(lambda s: f"{s['landing']['parquet_bytes'] / MB:,.1f}")),
        row("rows landed", each(lambda s: f"{s['verification']['rows']:,}")),
        row(
            "duplicates / gaps / foreign",
            each(
                lambda s: (
                    f"{s['verification']['duplicates']}/{s['verification']['gaps']}"
                    f"/{s['verification']['foreign']}"
                )
            ),
        ),
        "",
        *render_targets(results["targets"]),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def measure_size(stack: IsolatedStack, size: int, options: Options) -> dict[str, Any]:
    """Produce, then alternate consume and landing runs, then verify, for one size."""
    log(f"{size:,}: producing purchase-order events ...")
    produced = produce_topic(stack, size, options.events)
    log(
        f"{size:,}: produced {produced.messages:,} messages "
        f"({produced.value_bytes / MB:,.1f} MB) over {len(produced.days)} day(s) "
        f"in {produced.produce_seconds:.0f}s"
    )
    try:
        consumes: list[dict[str, Any]] = []
        landings: list[dict[str, Any]] = []
        for run in range(1, options.repeat + 1):
            consumes.append(consume_run(stack, produced, run))
            log(
                f"{size:,}: consume run {run}: {consumes[-1]['seconds']:.2f}s "
                f"({_rate(produced.messages, consumes[-1]['seconds']):,.0f} msgs/s)"
            )
            landings.append(landing_run(stack, produced, run))
            if landings[-1]["messages"] != produced.messages:
                raise BenchmarkError(
                    f"landing run {run} reported {landings[-1]['messages']:,} rows, "
                    f"{produced.messages:,} messages were produced"
                )
            log(
                f"{size:,}: landing run {run}: {landings[-1]['seconds']:.2f}s "
                f"({_rate(produced.messages, landings[-1]['seconds']):,.0f} msgs/s), "
                f"peak RSS {landings[-1]['peak_rss_bytes'] / MIB:,.0f} MiB"
            )
        log(f"{size:,}: verifying the bronze copy ...")
        verification = verify(stack, produced)
        log(f"{size:,}: {verification}")
        return summarise_size(produced, consumes, landings, verification)
    finally:
        drop_topic(stack, produced)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    _, code = run_section(
        SECTION,
        announce=f"sizes {', '.join(f'{s:,}' for s in options.sizes)}; "
        f"{options.repeat} run(s) each",
        measure=lambda stack: {"sizes": [measure_size(stack, n, options) for n in options.sizes]},
        config={
            "sizes": list(options.sizes),
            "repeat": options.repeat,
            **asdict(options.events),
            "end_date": options.events.end_date.isoformat(),
            "partitions": PARTITIONS,
            "landing_mode": "replace, all days in one run (single-run backfill)",
            "mb": "10^6 bytes of Kafka record values",
        },
        output=options.output,
        evaluate_targets=lambda section: evaluate_targets(section["sizes"]),
        render_table=render_table,
    )
    return code
