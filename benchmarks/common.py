"""What the benchmarks share: the generated topic, the worker processes, the results file.

Every benchmark runs on an :class:`~benchmarks.isolated.IsolatedStack`, fills a fresh
topic with the generator's purchase-order events (:func:`produce_topic`), measures
each variant in a process of its own (:func:`run_worker`), and writes its section of
``benchmarks/results.json`` (:func:`write_section`) and a table whose last lines are
the targets (:func:`render_targets`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from benchmarks.isolated import IsolatedStack, dataset_environ, process_cpu_seconds

if TYPE_CHECKING:
    from lakehouse_dev.generator.spec import GeneratedRecord, GeneratorSpec

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
PARTITIONS = 3
DEFAULT_END_DATE = date(2026, 11, 10)
DEFAULT_DAYS = 3

#: A worker that runs longer than this has hung.
WORKER_TIMEOUT_S = 3600.0
MB = 1_000_000
MIB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """The benchmark could not measure (a worker failed, the data did not arrive)."""


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so workers are killed and the stack is stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def past_date(text: str) -> date:
    """An ``argparse`` type: a day before today (UTC)."""
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    if value >= datetime.now(UTC).date():
        # Kafka rejects timestamps more than an hour ahead; the last day must be over.
        raise argparse.ArgumentTypeError(f"--end-date must be before today (UTC), got {value}")
    return value


# --------------------------------------------------------------------------- producing


@dataclass(frozen=True)
class EventSpec:
    """The generator's settings shared by every size of a benchmark."""

    days: int
    end_date: date
    late_share: float
    out_of_order_share: float
    duplicate_share: float
    malformed_share: float
    seed: int

    def generator_spec(self, count: int) -> GeneratorSpec:
        """The generator's spec of ``count`` events with these settings."""
        from lakehouse_dev.generator.spec import GeneratorSpec

        return GeneratorSpec(count=count, **asdict(self))


def add_event_arguments(parser: argparse.ArgumentParser) -> None:
    """The generator options (``--days``, ``--end-date``, the shares, ``--seed``)."""
    parser.add_argument(
        "--days", type=positive_int, default=DEFAULT_DAYS, help="UTC days of events"
    )
    parser.add_argument(
        "--end-date",
        type=past_date,
        default=DEFAULT_END_DATE,
        help="last UTC day of events, before today (default: %(default)s)",
    )
    parser.add_argument("--late-share", type=float, default=0.02)
    parser.add_argument("--out-of-order-share", type=float, default=0.02)
    parser.add_argument("--duplicate-share", type=float, default=0.01)
    parser.add_argument("--malformed-share", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=42)


def event_spec(args: argparse.Namespace) -> EventSpec:
    return EventSpec(
        days=args.days,
        end_date=args.end_date,
        late_share=args.late_share,
        out_of_order_share=args.out_of_order_share,
        duplicate_share=args.duplicate_share,
        malformed_share=args.malformed_share,
        seed=args.seed,
    )


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


def produce_topic(
    stack: IsolatedStack,
    size: int,
    spec: EventSpec,
    *,
    keep: Callable[[GeneratedRecord], bool] | None = None,
    dataset_settings: dict[str, str] | None = None,
) -> ProducedTopic:
    """Create a fresh 3-partition topic (and dataset) and produce ``size`` messages into it.

    ``keep`` filters the generated records; then the generator is asked for more events
    than needed and exactly ``size`` records (the earliest) are produced.
    ``dataset_settings`` adds settings of the dataset (``{"CONTRACT": ...}`` becomes
    ``LAKEHOUSE__DATASETS__<NAME>__CONTRACT``).
    """
    from confluent_kafka.admin import NewTopic

    from lakehouse_dev.generator.kafka import CLIENT_LOG, produce
    from lakehouse_dev.generator.records import generate
    from resources.environments import kafka_resource

    # librdkafka logs transient retries (a fresh broker's coordinator loading) as
    # warnings; produce() raises ProduceError with what matters, as the CLI relies on.
    CLIENT_LOG.setLevel(logging.CRITICAL)

    suffix = uuid.uuid4().hex[:8]
    dataset, topic = f"bench_{size}_{suffix}", f"bench-{size}-{suffix}"
    first_day = spec.end_date - timedelta(days=spec.days - 1)
    environ = dataset_environ(stack.environ, dataset, topic, first_day.isoformat())
    for key, value in (dataset_settings or {}).items():
        environ[f"LAKEHOUSE__DATASETS__{dataset.upper()}__{key}"] = value
    settings = stack.settings(environ)
    admin = kafka_resource(settings).admin()
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[
        topic
    ].result(30)
    # Duplicates come on top of the logical events: aim at `size` messages in all.
    count = size / (1 + spec.duplicate_share)
    if keep is not None:
        # Room for the records the filter drops; the surplus is cut off below.
        count = count * (1 + 2 * spec.malformed_share) + 100
    generator_spec = spec.generator_spec(math.ceil(count) if keep is not None else round(count))
    records: Iterable[GeneratedRecord] = generate("purchase_orders", generator_spec)
    if keep is not None:
        records = itertools.islice(filter(keep, records), size)
    span = _TimeSpan(records)
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


def services_cpu(stack: IsolatedStack) -> dict[str, float]:
    pids = stack.service_pids()
    seconds = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
    return {name: value for name, value in seconds.items() if value is not None}


def run_worker(
    stack: IsolatedStack,
    name: str,
    arguments: Sequence[str],
    environ: dict[str, str],
    module: str = "benchmarks.workers",
) -> dict[str, Any]:
    """Run one worker process (``python -m <module> ...``) to completion.

    Returns the worker's JSON result plus the process's total wall time and the CPU
    seconds the services (broker, S3 server) spent meanwhile: on a small machine they
    compete with the worker for the same cores.
    """
    result_file = stack.data_dir / f"{name}.json"
    log_file = stack.data_dir / f"{name}.log"
    services_before = services_cpu(stack)
    command = [sys.executable, "-m", module, *arguments, "--result", str(result_file)]
    started = time.perf_counter()
    with log_file.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=output,
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
    services_after = services_cpu(stack)
    if code != 0 or not result_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        raise BenchmarkError(f"worker {name} exited with status {code}:\n{tail}")
    outcome: dict[str, Any] = json.loads(result_file.read_text())
    outcome["total_seconds"] = total
    outcome["services_cpu_seconds"] = {
        service: round(services_after[service] - before, 2)
        for service, before in services_before.items()
        if service in services_after
    }
    return outcome


def median_services_cpu(runs: list[dict[str, Any]]) -> dict[str, float]:
    names = sorted({name for run in runs for name in run.get("services_cpu_seconds", {})})
    return {
        name: statistics.median(run["services_cpu_seconds"].get(name, 0.0) for run in runs)
        for name in names
    }


# --------------------------------------------------------------------------- results


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
        import pyspark

        info["pyspark"] = pyspark.__version__
    except ImportError:
        pass
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


def render_targets(targets: dict[str, Any], width: int = 58) -> list[str]:
    """The targets as table lines: description, value, limit, PASS / FAIL / n/a."""
    lines = [f"{'target':<{width}}{'value':>10}{'limit':>10}  result"]
    for target in targets.values():
        value = target["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target["pass"]]
        lines.append(f"{target['description']:<{width}}{shown:>10}{target['limit']:>10}  {verdict}")
    return lines


def write_section(output: Path, name: str, section: dict[str, Any]) -> None:
    """Put one benchmark's results into ``output`` (one JSON object, a key per benchmark).

    Sections of other benchmarks already in the file are kept, so running one benchmark
    does not erase the other's last figures. A file in the older one-benchmark layout
    (``{"benchmark": "bronze_landing", ...}``) becomes that benchmark's section.
    """
    results: dict[str, Any] = {}
    if output.exists():
        try:
            loaded = json.loads(output.read_text())
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            if isinstance(loaded.get("benchmark"), str):
                results = {loaded["benchmark"]: loaded}
            else:
                results = loaded
    results[name] = section
    output.write_text(json.dumps(results, indent=2) + "\n")


def publish_section(
    output: Path,
    name: str,
    section: dict[str, Any],
    evaluate_targets: Callable[[dict[str, Any]], dict[str, Any]],
    render_table: Callable[[dict[str, Any]], str],
) -> int:
    """Judge the section against its targets, write it, print its table; the exit code.

    A target whose verdict is ``None`` (not measured) does not fail the benchmark.
    """
    section["targets"] = evaluate_targets(section)
    section["passed"] = all(t["pass"] is not False for t in section["targets"].values())
    write_section(output, name, section)
    print()
    print(render_table(section))
    print(f"\nresults: {output}")
    return 0 if section["passed"] else 1


def run_section(
    name: str,
    *,
    announce: str,
    measure: Callable[[IsolatedStack], dict[str, Any]],
    config: dict[str, Any],
    output: Path,
    evaluate_targets: Callable[[dict[str, Any]], dict[str, Any]],
    render_table: Callable[[dict[str, Any]], str],
    dataset: str = "purchase_orders",
    stopped: str = "the stack was stopped",
) -> tuple[dict[str, Any] | None, int]:
    """One benchmark on a fresh :class:`IsolatedStack`: the section and the exit code.

    Logs ``announce``, runs ``measure`` on the stack and publishes the section
    (:func:`publish_section`): name, dataset, start time, duration, the machine and its
    load at the start, ``config``, then what ``measure`` returned. Exit code 2 (and no
    section) when the benchmark could not run, 130 when interrupted (``stopped`` says
    what was cleaned up), else 0 when every target is met and 1 when one is missed.
    """
    started = datetime.now(UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    log(f"{announce}; starting an isolated local stack ...")
    try:
        with IsolatedStack() as stack:
            log(f"stack up in {stack.data_dir} (Kafka {stack.bootstrap_servers})")
            measured = measure(stack)
            log("stopping the stack ...")
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return None, 2
    except KeyboardInterrupt:
        print(f"benchmark interrupted; {stopped}", file=sys.stderr)
        return None, 130
    section = {
        "benchmark": name,
        "dataset": dataset,
        "timestamp": started.isoformat(timespec="seconds"),
        "duration_seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": {**machine_info(), "load_average_at_start": load_at_start},
        "config": config,
        **measured,
    }
    return section, publish_section(output, name, section, evaluate_targets, render_table)
