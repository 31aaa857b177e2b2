"""The gold benchmark's latency: probe orders stamped now, through the real daemon
(arrivals sensor, automation), timed until ``fct_daily_sales`` counts them."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    PROJECT_ROOT,
    BenchmarkError,
    log,
)
from benchmarks.gold_setup import (
    DATASET,
    STOP_GRACE_S,
    Lakehouse,
    Options,
    _tail,
    new_lakehouse,
    stop_processes,
)
from benchmarks.isolated import IsolatedStack, free_port
from lakehouse_dev.instance import instance_at
from lakehouse_dev.processes import port_is_open

if TYPE_CHECKING:
    from lakehouse_dev.generator.spec import GeneratedRecord


#: Orders per latency probe.
PROBE_ORDERS = 5

#: The daemon's default intervals (config landing.sensor_interval_seconds, definitions.py).
SENSOR_INTERVAL_S = 30

AUTOMATION_INTERVAL_S = 30

POLL_INTERVAL_S = 2.0

#: A probe not in gold after this long has failed (the target is 120 s; a loaded 2-core
#: machine has been seen to take 10+ minutes, which should still be measured).
PROBE_TIMEOUT_S = 1800.0

#: Time for the daemon to load the code, tick and load the seeds.
SETTLE_TIMEOUT_S = 900.0

#: How long the code server may take to listen (it loads the definitions first).
SERVER_START_TIMEOUT_S = 300.0

_ACTIVE_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def probe_records(number: int, now: datetime, seed: int) -> list[GeneratedRecord]:
    """``PROBE_ORDERS`` valid new orders (version 1) stamped ``now``, numbered apart.

    The generator's valid order-created events, with a fresh event id, an order id no
    generated order has, and event time and Kafka timestamp ``now``: customers,
    currencies, lines and totals are as valid as the generator's.
    """
    from lakehouse_dev.generator.records import generate
    from lakehouse_dev.generator.spec import GeneratedRecord, GeneratorSpec

    spec = GeneratorSpec(
        count=200,
        days=1,
        end_date=now.date() - timedelta(days=1),
        late_share=0.0,
        out_of_order_share=0.0,
        duplicate_share=0.0,
        malformed_share=0.0,
        seed=seed + number,
    )
    stamp_ms = int(now.timestamp() * 1000)
    records = []
    created = (
        r for r in generate(DATASET, spec) if json.loads(r.value)["event_type"] == "order_created"
    )
    for index, record in enumerate(itertools.islice(created, PROBE_ORDERS)):
        document = json.loads(record.value)
        order_id = f"PO-{900_000_000 + number * 1000 + index}"
        document.update(
            event_id=str(uuid.uuid4()),
            order_id=order_id,
            event_time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        records.append(
            GeneratedRecord(
                key=order_id.encode(),
                value=json.dumps(document, separators=(",", ":")).encode(),
                timestamp_ms=stamp_ms,
                headers=record.headers,
                kind="valid",
                event_time_ms=stamp_ms - stamp_ms % 1000,
            )
        )
    return records


class Daemon:
    """``dagster-daemon run`` with a lakehouse's environment, deployed as the README says.

    The code location runs as a gRPC server of its own (``dagster code-server
    start``) and the daemon's workspace points at it. With a ``python_module``
    workspace the daemon would start a fresh code server, loading every definition,
    every minute (its workspace refresh), which costs seconds of CPU that the runs
    being timed share on a small machine. Both stay ``dagster`` commands: Dagster
    supersedes neither, and ``dg`` (1.13) has no code server or daemon command.
    """

    def __init__(self, stack: IsolatedStack, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse
        self.log_file = stack.data_dir / "logs" / "daemon.log"
        self.server_log_file = stack.data_dir / "logs" / "code-server.log"
        self.workspace = stack.data_dir / "workspace-grpc.yaml"
        self._server: subprocess.Popen[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self, command: list[str], log_file: Path) -> subprocess.Popen[bytes]:
        with log_file.open("wb") as output:
            return subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=self.lakehouse.environ,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def __enter__(self) -> Daemon:
        bin_dir = Path(sys.executable).parent
        port = free_port()
        self._server = self._start(
            [
                str(bin_dir / "dagster"),
                "code-server",
                "start",
                "-m",
                "lakehouse_assets.definitions",
                "-a",
                "defs",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--location-name",
                "lakehouse",
            ],
            self.server_log_file,
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not port_is_open("127.0.0.1", port):
            if self._server.poll() is not None or time.monotonic() > deadline:
                # __exit__ does not run when __enter__ raises: stop the server here.
                stop_processes(self._server, self.lakehouse.marker, STOP_GRACE_S)
                self._server = None
                raise BenchmarkError(
                    f"the code server did not start:\n{_tail(self.server_log_file)}"
                )
            time.sleep(0.5)
        self.workspace.write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {port}\n      location_name: lakehouse\n"
        )
        self._process = self._start(
            [str(bin_dir / "dagster-daemon"), "run", "-w", str(self.workspace)], self.log_file
        )
        return self

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise BenchmarkError(
                f"dagster-daemon exited with status {self._process.returncode}:\n"
                f"{_tail(self.log_file)}"
            )

    def tail(self) -> str:
        return _tail(self.log_file, 60)

    def keep_log(self) -> Path:
        """A copy of the daemon's log outside the stack's directory, which is deleted."""
        handle, name = tempfile.mkstemp(prefix="gold-bench-daemon-", suffix=".log")
        os.close(handle)
        shutil.copy(self.log_file, name)
        return Path(name)

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            log("stopping the daemon and its runs ...")
            stop_processes(self._process, self.lakehouse.marker, STOP_GRACE_S)
            self._process = None
        if self._server is not None:
            stop_processes(self._server, self.lakehouse.marker, STOP_GRACE_S)
            self._server = None


def _runs(home: Path, since: float) -> list[dict[str, Any]]:
    """The daemon instance's runs created since ``since`` (epoch s): layers and times."""
    import dagster as dg

    with instance_at(home) as instance:
        records = instance.get_run_records(
            filters=dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC))
        )
    runs = []
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run = record.dagster_run
        # Sensor-requested landings run a named job (no asset selection): its name says.
        layers = sorted({key.path[0] for key in run.asset_selection or ()}) or [run.job_name]
        runs.append(
            {
                "layers": layers,
                "partition": run.tags.get("dagster/partition")
                or run.tags.get("dagster/asset_partition_range_start"),
                "status": run.status.value,
                "created_s": round(record.create_timestamp.timestamp() - since, 1),
                "started_s": None
                if record.start_time is None
                else round(record.start_time - since, 1),
                "ended_s": None if record.end_time is None else round(record.end_time - since, 1),
            }
        )
    return runs


def _active_runs(home: Path) -> int:
    import dagster as dg

    statuses = [dg.DagsterRunStatus(s) for s in _ACTIVE_STATUSES]
    with instance_at(home) as instance:
        return len(instance.get_run_records(filters=dg.RunsFilter(statuses=statuses)))


def settle(daemon: Daemon, lakehouse: Lakehouse, seeds: list[str]) -> float:
    """Wait until automation has loaded the seeds and no run is in flight; seconds waited."""
    from resources.environments import build_resources

    settings = lakehouse.settings()
    catalog = build_resources(settings)["iceberg"].load()
    tables = [(settings.namespace("gold"), key.split("/")[-1]) for key in seeds]
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_TIMEOUT_S:
        daemon.check_alive()
        storage = lakehouse.home / "storage"
        if (
            storage.exists()
            and all(catalog.table_exists(t) for t in tables)
            and _active_runs(lakehouse.home) == 0
        ):
            return time.monotonic() - started
        time.sleep(POLL_INTERVAL_S)
    raise BenchmarkError(
        f"the daemon did not settle in {SETTLE_TIMEOUT_S:.0f}s (seeds {seeds} loaded, no run "
        f"in flight); daemon log:\n{daemon.tail()}"
    )


def _orders_by_day(catalog: Any, table: tuple[str, str]) -> dict[date, int]:
    if not catalog.table_exists(table):
        return {}
    sales = catalog.load_table(table).scan(selected_fields=("sales_date", "orders")).to_arrow()
    counts: dict[date, int] = defaultdict(int)
    for row in sales.to_pylist():
        counts[row["sales_date"]] += row["orders"] or 0
    return counts


def measure_latency(
    stack: IsolatedStack, base: dict[str, str], options: Options, seeds: str
) -> dict[str, Any]:
    """Probes through the daemon: produce orders now, poll gold until it counts them."""
    from lakehouse_dev.generator.kafka import CLIENT_LOG, produce
    from resources.environments import build_resources

    # A fresh broker's coordinator loading is logged as a retry; produce() raises on failure.
    CLIENT_LOG.setLevel(logging.CRITICAL)
    lakehouse = new_lakehouse(stack, base, "latency")
    settings = lakehouse.settings()
    catalog = build_resources(settings)["iceberg"].load()
    table = (settings.namespace("gold"), "fct_daily_sales")
    topic = settings.dataset(DATASET).kafka_topic
    rng = random.Random(options.events.seed)
    expected: dict[date, int] = defaultdict(int)
    probes: list[dict[str, Any]] = []
    error = None
    log("latency: starting dagster-daemon (sensor 30 s, automation 30 s) ...")
    with Daemon(stack, lakehouse) as daemon:
        settle_seconds = settle(daemon, lakehouse, seeds.split(",") if seeds else [])
        log(f"latency: daemon settled in {settle_seconds:.0f}s (seeds loaded, no run in flight)")
        for number in range(1, options.latency_probes + 1):
            # A random phase against the 30 s ticks, as real arrivals have.
            time.sleep(rng.uniform(0, SENSOR_INTERVAL_S))
            now = datetime.now(UTC)
            records = probe_records(number, now, options.events.seed)
            expected[now.date()] += len(records)
            produced_at = time.time()
            produce(records, topic, stack.bootstrap_servers)
            seen = None
            while time.time() - produced_at < PROBE_TIMEOUT_S:
                daemon.check_alive()
                counts = _orders_by_day(catalog, table)
                if all(counts.get(day, 0) >= want for day, want in expected.items()):
                    seen = time.time() - produced_at
                    break
                time.sleep(POLL_INTERVAL_S)
            runs = _runs(lakehouse.home, produced_at)
            probes.append(
                {
                    "probe": number,
                    "produced_at": datetime.fromtimestamp(produced_at, UTC).isoformat(),
                    "orders": len(records),
                    "seconds": None if seen is None else round(seen, 1),
                    "runs": runs,
                }
            )
            if seen is None:
                kept = daemon.keep_log()
                error = (
                    f"probe {number}: gold did not count its {len(records)} orders within "
                    f"{PROBE_TIMEOUT_S:.0f}s; daemon log kept in {kept}"
                )
                log(error)
                break
            log(f"latency: probe {number}: {seen:.1f}s; runs {_describe_runs(runs)}")
    latencies = [p["seconds"] for p in probes if p["seconds"] is not None]
    return {
        "probes": probes,
        "probe_orders": PROBE_ORDERS,
        "sensor_interval_seconds": SENSOR_INTERVAL_S,
        "automation_interval_seconds": AUTOMATION_INTERVAL_S,
        "poll_interval_seconds": POLL_INTERVAL_S,
        "settle_seconds": round(settle_seconds, 1),
        "latencies_seconds": latencies,
        "median_seconds": statistics.median(latencies) if latencies and error is None else None,
        "error": error,
    }


def _describe_runs(runs: list[dict[str, Any]]) -> str:
    parts = []
    for run in runs:
        ended = "-" if run["ended_s"] is None else f"{run['ended_s']:.0f}"
        parts.append(f"{'+'.join(run['layers']) or '?'} +{run['created_s']:.0f}..{ended}s")
    return ", ".join(parts) or "none"
