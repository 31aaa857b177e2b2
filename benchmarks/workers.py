"""The measured processes of the bronze landing benchmark, one per run.

Each run is a fresh interpreter, so its peak RSS is its own and nothing one run
allocated (or imported) flatters the next::

    python -m benchmarks.workers consume --topic T --result R
    python -m benchmarks.workers land --dataset NAME --first-day D0 --last-day DN --result R

``consume`` is the practical limit: a tight confluent-kafka loop that reads every
record of the topic (all partitions at once) and touches each value, with the
landing reader's client settings. ``land`` materialises the dataset's bronze asset
for all the days in one run (a single-run backfill, replace mode), exactly as
``dagster.materialize`` runs it from a test or the UI. Both take their settings
(endpoints, topic, data dir) from the ``LAKEHOUSE__...`` environment that the parent
sets and write a JSON object to ``--result``. The clock starts after imports, so
interpreter start and imports are reported apart (``import_seconds``) from the
measured work (``seconds``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_STARTED = time.perf_counter()

#: Records per ``Consumer.consume`` call in the baseline loop (TopicReader.read's default).
CONSUME_BATCH = 10_000
#: The consumer settings that resources.kafka.client.TopicReader adds to the configured ones,
#: so the baseline differs from the landing only by the landing's own work.
READER_OVERRIDES: dict[str, Any] = {
    "enable.partition.eof": False,
    "fetch.max.bytes": 64 * 1024 * 1024,
}
#: A consume loop that receives nothing for this long has stalled.
IDLE_TIMEOUT_S = 60.0


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``), or None where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far.

    ``VmHWM`` (the high-water mark of this process's own address space), not
    ``getrusage().ru_maxrss``: Linux carries ``ru_maxrss`` over ``execve`` from the
    address space being replaced, and ``subprocess`` starts children with vfork, so
    a worker's ``ru_maxrss`` starts at the *parent's* peak (the benchmark process
    that generated millions of events), not at its own.
    """
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all threads (librdkafka's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def current_rss_bytes() -> int:
    """Resident set size of this process now (``VmRSS``), or 0 where /proc is missing."""
    rss = _status_kib("VmRSS")
    return 0 if rss is None else rss * 1024


class RssSampler(threading.Thread):
    """Samples this process's RSS at a fixed interval, to show whether memory grows."""

    def __init__(self, interval_s: float = 0.5) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()
        self._origin = time.perf_counter()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter() - self._origin, current_rss_bytes()))
            self._stop_event.wait(self.interval_s)

    def stop(self) -> list[tuple[float, int]]:
        """Stop sampling; returns (seconds since start, RSS bytes) pairs."""
        self._stop_event.set()
        self.join()
        self.samples.append((time.perf_counter() - self._origin, current_rss_bytes()))
        return self.samples


def consume(topic: str) -> dict[str, Any]:
    """Read every record of ``topic`` (all partitions, from the low watermark) once.

    The consumer is configured exactly as the landing's reader is (the settings'
    ``kafka`` section, then :data:`READER_OVERRIDES`), so the two differ only in what
    they do with the records.
    """
    from confluent_kafka import KafkaException, TopicPartition

    from resources.environments import kafka_resource
    from resources.settings import load_settings

    kafka = kafka_resource(load_settings())
    imported = time.perf_counter()
    sampler = RssSampler()
    sampler.start()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    consumer = kafka.consumer(group_id="lakehouse-bench-consume", **READER_OVERRIDES)
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        bounds = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            for p in partitions
        }
        last = {p: high - 1 for p, (low, high) in bounds.items() if high > low}
        consumer.assign([TopicPartition(topic, p, bounds[p][0]) for p in last])
        remaining = set(last)
        messages = value_bytes = 0
        idle_since = time.monotonic()
        while remaining:
            batch = consumer.consume(num_messages=CONSUME_BATCH, timeout=1.0)
            if batch:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                raise TimeoutError(f"no record of {topic} for {IDLE_TIMEOUT_S:.0f}s")
            for message in batch:
                error = message.error()
                if error is not None:
                    raise KafkaException(error)
                value = message.value()
                value_bytes += len(value) if value is not None else 0
                messages += 1
                partition = message.partition()
                offset = message.offset()
                if partition in remaining and offset is not None and offset >= last[partition]:
                    remaining.discard(partition)
    finally:
        consumer.close()
        samples = sampler.stop()
    seconds = time.perf_counter() - started
    return {
        "kind": "consume",
        "messages": messages,
        "value_bytes": value_bytes,
        "seconds": seconds,
        "import_seconds": imported - _STARTED,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "peak_rss_bytes": peak_rss_bytes(),
        "watermarks": {str(p): list(b) for p, b in bounds.items()},
        "rss_samples": [[round(t, 2), rss] for t, rss in samples],
    }


def _import_lazy_dependencies() -> None:
    """Import what the landing imports on first use, so the clock measures landing only.

    ``ParquetStore.filesystem`` imports s3fs (and aiobotocore) at its first call, and
    pyarrow imports pandas the first time it converts a timezone-aware datetime
    (``loaded_at``). Both cost seconds once per process; they count in the worker's
    ``import_seconds`` (and in the process total) instead.
    """
    import pandas
    import s3fs

    del pandas, s3fs


def land(dataset: str, first_day: str, last_day: str) -> dict[str, Any]:
    """Materialise the bronze asset of ``dataset`` for ``first_day..last_day`` in one run."""
    import dagster as dg

    from lakehouse_assets.bronze.assets import bronze_key, build_bronze_asset, landing_run_config
    from resources.environments import build_resources
    from resources.settings import load_settings

    settings = load_settings()
    asset = build_bronze_asset(settings, dataset)
    resources = build_resources(settings)
    run_config: Any = landing_run_config(dataset, "replace")
    _import_lazy_dependencies()
    # The run's instance (in-memory storage, as materialize() makes by default): creating
    # it imports Dagster's storage layer (SQLAlchemy), which is start-up, not landing.
    instance = dg.DagsterInstance.ephemeral()
    imported = time.perf_counter()
    rss_before = current_rss_bytes()
    sampler = RssSampler()
    sampler.start()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    try:
        result = dg.materialize(
            [asset],
            instance=instance,
            resources=resources,
            run_config=run_config,
            tags={
                "dagster/asset_partition_range_start": first_day,
                "dagster/asset_partition_range_end": last_day,
            },
            raise_on_error=True,
        )
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
    finally:
        samples = sampler.stop()
    node = bronze_key(dataset).to_python_identifier()
    metadata = result.asset_materializations_for_node(node)[0].metadata
    return {
        "kind": "land",
        "messages": int(metadata["dagster/row_count"].value),  # type: ignore[arg-type]
        "parquet_bytes": int(metadata["bytes_written"].value),  # type: ignore[arg-type]
        "files": int(metadata["files_written"].value),  # type: ignore[arg-type]
        "seconds": seconds,
        "import_seconds": imported - _STARTED,
        "cpu_seconds": cpu,
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_samples": [[round(t, 2), rss] for t, rss in samples],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    plain = commands.add_parser("consume", help="plain confluent-kafka consume loop")
    plain.add_argument("--topic", required=True)
    plain.add_argument("--result", type=Path, required=True)
    landing = commands.add_parser("land", help="bronze landing of all days in one run")
    landing.add_argument("--dataset", required=True)
    landing.add_argument("--first-day", required=True)
    landing.add_argument("--last-day", required=True)
    landing.add_argument("--result", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "consume":
        outcome = consume(args.topic)
    else:
        outcome = land(args.dataset, args.first_day, args.last_day)
    args.result.write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
