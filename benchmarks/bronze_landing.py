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

Run: ``make bench`` or ``python -m benchmarks [--quick] [--sizes 1000000,4000000]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from benchmarks.isolated import IsolatedStack, dataset_environ, process_cpu_seconds

if TYPE_CHECKING:
    from lakehouse_dev.generator import GeneratedRecord

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"

DEFAULT_SIZES = (1_000_000, 4_000_000)
QUICK_SIZES = (100_000, 400_000)
DEFAULT_END_DATE = date(2026, 11, 10)
DEFAULT_DAYS = 3
PARTITIONS = 3

#: Landing throughput must reach this share of the plain consume loop's.
TARGET_RATIO = 0.5
#: Peak RSS of the largest size over the reference size must stay within this.
TARGET_RSS_GROWTH = 1.2

#: A worker that runs longer than this has hung.
WORKER_TIMEOUT_S = 3600.0
MB = 1_000_000
MIB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """The benchmark could not measure (a worker failed, the data did not arrive)."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Options:
    """What to measure."""

    sizes: tuple[int, ...]
    repeat: int
    days: int
    end_date: date
    late_share: float
    out_of_order_share: float
    duplicate_share: float
    malformed_share: float
    seed: int
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


def _past_date(text: str) -> date:
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    if value >= datetime.now(UTC).date():
        # Kafka rejects timestamps more than an hour ahead; the last day must be over.
        raise argparse.ArgumentTypeError(f"--end-date must be before today (UTC), got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
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
        type=int,
        default=2,
        help="consume and landing runs per size, alternating; medians are reported "
        "(default: %(default)s)",
    )
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="UTC days of events")
    parser.add_argument(
        "--end-date",
        type=_past_date,
        default=DEFAULT_END_DATE,
        help="last UTC day of events, before today (default: %(default)s)",
    )
    parser.add_argument("--late-share", type=float, default=0.02)
    parser.add_argument("--out-of-order-share", type=float, default=0.02)
    parser.add_argument("--duplicate-share", type=float, default=0.01)
    parser.add_argument("--malformed-share", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON file")
    args = parser.parse_args(argv)
    if args.quick and args.sizes:
        parser.error("--quick and --sizes exclude each other")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.days < 1:
        parser.error("--days must be >= 1")
    return Options(
        sizes=QUICK_SIZES if args.quick else (args.sizes or DEFAULT_SIZES),
        repeat=args.repeat,
        days=args.days,
        end_date=args.end_date,
        late_share=args.late_share,
        out_of_order_share=args.out_of_order_share,
        duplicate_share=args.duplicate_share,
        malformed_share=args.malformed_share,
        seed=args.seed,
        output=args.output,
    )


# --------------------------------------------------------------------------- producing


@dataclass
class ProducedTopic:
    """A topic filled with one size's messages, and the dataset that lands it."""

    size: int
    dataset: str
    topic: str
    messages: int
    value_bytes: int
    days: list[str]
    produce_seconds: float
    environ: dict[str, str] = field(repr=False)


class _TimeSpan:
    """Passes records through and remembers their earliest and latest Kafka timestamp."""

    def __init__(self, records: Iterable[GeneratedRecord]) -> None:
        self._records = records
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def __iter__(self) -> Iterator[GeneratedRecord]:
        for record in self._records:
            stamp = record.timestamp_ms
            if self.first_ms is None or stamp < self.first_ms:
                self.first_ms = stamp
            if self.last_ms is None or stamp > self.last_ms:
                self.last_ms = stamp
            yield record

    def days(self) -> list[str]:
        if self.first_ms is None or self.last_ms is None:
            return []
        first = datetime.fromtimestamp(self.first_ms / 1000, UTC).date()
        last = datetime.fromtimestamp(self.last_ms / 1000, UTC).date()
        return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def produce_topic(stack: IsolatedStack, size: int, options: Options) -> ProducedTopic:
    """Create a fresh 3-partition topic (and dataset) and produce ``size`` messages into it."""
    from confluent_kafka.admin import NewTopic

    from lakehouse_dev.generator import CLIENT_LOG, GeneratorSpec, generate, produce
    from resources.environments import kafka_resource

    # librdkafka logs transient retries (a fresh broker's coordinator loading) as
    # warnings; produce() raises ProduceError with what matters, as the CLI relies on.
    CLIENT_LOG.setLevel(logging.CRITICAL)

    suffix = uuid.uuid4().hex[:8]
    dataset, topic = f"bench_{size}_{suffix}", f"bench-{size}-{suffix}"
    first_day = options.end_date - timedelta(days=options.days - 1)
    environ = dataset_environ(stack.environ, dataset, topic, first_day.isoformat())
    settings = stack.settings(environ)
    admin = kafka_resource(settings).admin()
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[
        topic
    ].result(30)
    # Duplicates come on top of the logical events: aim at `size` messages in all.
    spec = GeneratorSpec(
        count=round(size / (1 + options.duplicate_share)),
        days=options.days,
        end_date=options.end_date,
        late_share=options.late_share,
        out_of_order_share=options.out_of_order_share,
        duplicate_share=options.duplicate_share,
        malformed_share=options.malformed_share,
        seed=options.seed,
    )
    span = _TimeSpan(generate("purchase_orders", spec))
    started = time.perf_counter()
    result = produce(span, topic, stack.bootstrap_servers)
    return ProducedTopic(
        size=size,
        dataset=dataset,
        topic=topic,
        messages=result.records,
        value_bytes=result.value_bytes,
        days=span.days(),
        produce_seconds=time.perf_counter() - started,
        environ=environ,
    )


def drop_topic(stack: IsolatedStack, produced: ProducedTopic) -> None:
    """Delete the size's bronze files and topic: frees disk and keeps the S3 save at stop short."""
    from resources.environments import build_resources

    settings = stack.settings(produced.environ)
    resources = build_resources(settings)
    store = resources["bronze_store"]
    fs = store.filesystem()
    prefix = f"{store.s3.bucket}/{store.prefix}/{produced.dataset}"
    if fs.exists(prefix):
        fs.rm(prefix, recursive=True)
    admin = resources["kafka"].admin()
    admin.delete_topics([produced.topic])[produced.topic].result(60)


# --------------------------------------------------------------------------- workers


def _services_cpu(stack: IsolatedStack) -> dict[str, float]:
    pids = stack.service_pids()
    seconds = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    return {name: value for name, value in seconds.items() if value is not None}


def run_worker(
    stack: IsolatedStack, name: str, arguments: Sequence[str], environ: dict[str, str]
) -> dict[str, Any]:
    """Run one ``benchmarks.workers`` process to completion.

    Returns the worker's JSON result plus the process's total wall time and the CPU
    seconds the services (broker, S3 server) spent meanwhile: on a small machine they
    compete with the worker for the same cores.
    """
    result_file = stack.data_dir / f"{name}.json"
    log_file = stack.data_dir / f"{name}.log"
    services_before = _services_cpu(stack)
    command = [sys.executable, "-m", "benchmarks.workers", *arguments, "--result", str(result_file)]
    started = time.perf_counter()
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            code = process.wait(WORKER_TIMEOUT_S)
        except BaseException:
            # Timeout, Ctrl-C or SIGTERM: the worker must not outlive the benchmark.
            process.kill()
            process.wait()
            raise
    total = time.perf_counter() - started
    services_after = _services_cpu(stack)
    if code != 0 or not result_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        raise BenchmarkError(f"worker {name} exited with status {code}:\n{tail}")
    outcome: dict[str, Any] = json.loads(result_file.read_text())
    outcome["total_seconds"] = total
    outcome["services_cpu_seconds"] = {
        name: round(services_after[name] - before, 2)
        for name, before in services_before.items()
        if name in services_after
    }
    return outcome


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


def _median_services_cpu(runs: list[dict[str, Any]]) -> dict[str, float]:
    names = sorted({name for run in runs for name in run.get("services_cpu_seconds", {})})
    return {
        name: statistics.median(run["services_cpu_seconds"].get(name, 0.0) for run in runs)
        for name in names
    }


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
            "median_services_cpu_seconds": _median_services_cpu(consumes),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in consumes),
            "runs": consumes,
        },
        "landing": {
            "median_seconds": land_s,
            "median_total_seconds": statistics.median(r["total_seconds"] for r in landings),
            "msgs_per_s": _rate(produced.messages, land_s),
            "mb_per_s": _rate(produced.value_bytes / MB, land_s),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in landings),
            "median_services_cpu_seconds": _median_services_cpu(landings),
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


def machine_info() -> dict[str, Any]:
    import confluent_kafka
    import dagster
    import pyarrow

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
        "pyarrow": pyarrow.__version__,
        "dagster": dagster.__version__,
        # Other work on the machine skews every figure; this says how busy it was.
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.splitlines()
                if "model name" in line
            ),
            None,
        )
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
        info["memory_gib"] = round(total_kib / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    return info


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
        f"{'target':<58}{'value':>10}{'limit':>10}  result",
    ]
    for target in results["targets"].values():
        value = target["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target["pass"]]
        lines.append(f"{target['description']:<58}{shown:>10}{target['limit']:>10}  {verdict}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def measure_size(stack: IsolatedStack, size: int, options: Options) -> dict[str, Any]:
    """Produce, then alternate consume and landing runs, then verify, for one size."""
    _log(f"{size:,}: producing purchase-order events ...")
    produced = produce_topic(stack, size, options)
    _log(
        f"{size:,}: produced {produced.messages:,} messages "
        f"({produced.value_bytes / MB:,.1f} MB) over {len(produced.days)} day(s) "
        f"in {produced.produce_seconds:.0f}s"
    )
    try:
        consumes: list[dict[str, Any]] = []
        landings: list[dict[str, Any]] = []
        for run in range(1, options.repeat + 1):
            consumes.append(consume_run(stack, produced, run))
            _log(
                f"{size:,}: consume run {run}: {consumes[-1]['seconds']:.2f}s "
                f"({_rate(produced.messages, consumes[-1]['seconds']):,.0f} msgs/s)"
            )
            landings.append(landing_run(stack, produced, run))
            if landings[-1]["messages"] != produced.messages:
                raise BenchmarkError(
                    f"landing run {run} reported {landings[-1]['messages']:,} rows, "
                    f"{produced.messages:,} messages were produced"
                )
            _log(
                f"{size:,}: landing run {run}: {landings[-1]['seconds']:.2f}s "
                f"({_rate(produced.messages, landings[-1]['seconds']):,.0f} msgs/s), "
                f"peak RSS {landings[-1]['peak_rss_bytes'] / MIB:,.0f} MiB"
            )
        _log(f"{size:,}: verifying the bronze copy ...")
        verification = verify(stack, produced)
        _log(f"{size:,}: {verification}")
        return summarise_size(produced, consumes, landings, verification)
    finally:
        drop_topic(stack, produced)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so the workers are killed and the stack is stopped.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    _log(
        f"sizes {', '.join(f'{s:,}' for s in options.sizes)}; {options.repeat} run(s) each; "
        "starting an isolated local stack ..."
    )
    try:
        with IsolatedStack() as stack:
            _log(f"stack up in {stack.data_dir} (Kafka {stack.bootstrap_servers})")
            sizes = [measure_size(stack, size, options) for size in options.sizes]
            _log("stopping the stack ...")
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("benchmark interrupted; the stack was stopped", file=sys.stderr)
        return 130
    targets = evaluate_targets(sizes)
    results: dict[str, Any] = {
        "benchmark": "bronze_landing",
        "dataset": "purchase_orders",
        "timestamp": started.isoformat(timespec="seconds"),
        "duration_seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": {**machine_info(), "load_average_at_start": load_at_start},
        "config": {
            **{k: v for k, v in asdict(options).items() if k != "output"},
            "end_date": options.end_date.isoformat(),
            "partitions": PARTITIONS,
            "landing_mode": "replace, all days in one run (single-run backfill)",
            "mb": "10^6 bytes of Kafka record values",
        },
        "sizes": sizes,
        "targets": targets,
        # A target that one size cannot evaluate (memory growth) is neither pass nor fail.
        "passed": all(t["pass"] is not False for t in targets.values()),
    }
    options.output.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(render_table(results))
    print(f"\nresults: {options.output}")
    return 0 if results["passed"] else 1
