"""The gold benchmark's lakehouses and their data: the processes it starts and stops, one
lakehouse per variant on the shared stack, and the purchase orders produced for them."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.common import (
    PROJECT_ROOT,
    BenchmarkError,
    EventSpec,
)
from benchmarks.isolated import IsolatedStack

if TYPE_CHECKING:
    from lakehouse_dev.generator.spec import GeneratedRecord
    from resources.settings import LakehouseSettings


#: The workspace's own dataset: the daemon loads the project's Definitions, whose
#: purchase-order tables are the only ones with this contract.
DATASET = "purchase_orders"

#: A stopped daemon gets this long to end its runs before it is killed.
STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class Options:
    """What to measure."""

    orders_per_day: int
    repeat: int
    latency_probes: int
    backfill: bool
    latency: bool
    events: EventSpec
    output: Path


#: Not part of a backfill: the seeds (reference data, unpartitioned) that gold needs,
#: loaded before the clock starts, in one run, as automation loads them when missing.
SETUP = "seeds"

LAYERS = ("bronze", "silver", "gold")


def _processes_with(marker: str) -> list[int]:
    """Pids of processes whose environment holds ``marker`` (``NAME=value``).

    The marker is a ``DAGSTER_HOME`` under this benchmark's temporary directory, so it
    names exactly the processes this benchmark started (and theirs), also those that
    left the process group or lost their parent.
    """
    needle = b"\0" + marker.encode() + b"\0"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + environ:
            pids.append(int(entry.name))
    return pids


def _signal_group(pgid: int, signum: int) -> bool:
    """Signal a process group; False when no process is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def stop_processes(process: subprocess.Popen[bytes], marker: str, grace_s: float) -> None:
    """Stop ``process`` (leader of its own session), its group and every process of ``marker``.

    SIGTERM first, so the daemon can end its runs; SIGKILL for whatever is left after
    ``grace_s``.
    """
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        alive = _signal_group(process.pid, 0) or _processes_with(marker)
        if not alive:
            break
        time.sleep(0.5)
    _signal_group(process.pid, signal.SIGKILL)
    for pid in _processes_with(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


#: What the measured runs execute: a change while the benchmark runs makes variants differ.
_CODE_PATHS = ("lakehouse_assets", "resources", "contracts", "config", "dbt")


def code_fingerprint() -> str:
    """A digest of the project's code, dbt project and configuration (files and mtimes).

    The runs load whatever is in the working copy when they start; on a shared working
    copy an edit during the benchmark would make the variants run different code, so
    the digest is taken before and after and a difference is reported.
    """
    import hashlib

    digest = hashlib.sha256()
    for top in _CODE_PATHS:
        for path in sorted((PROJECT_ROOT / top).rglob("*")):
            relative = path.relative_to(PROJECT_ROOT)
            if not path.is_file() or relative.parts[:2] in (("dbt", "target"), ("dbt", "logs")):
                continue
            if "__pycache__" in relative.parts:
                continue
            digest.update(f"{relative}\0{path.stat().st_mtime_ns}\0".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Lakehouse:
    """One variant's own bronze prefix, silver and gold namespaces and Dagster instance."""

    label: str
    environ: dict[str, str] = field(repr=False)
    home: Path

    @property
    def marker(self) -> str:
        return f"DAGSTER_HOME={self.home}"

    def settings(self) -> LakehouseSettings:
        from resources.settings import load_settings

        return load_settings("local", environ=self.environ)


def new_lakehouse(stack: IsolatedStack, base: dict[str, str], label: str) -> Lakehouse:
    """Fresh names for every layer, so the variant writes empty tables, and its namespaces."""
    from resources.environments import build_resources

    suffix = f"{label}_{uuid.uuid4().hex[:6]}"
    home = stack.data_dir / f"home_{suffix}"
    home.mkdir()
    # The project's instance settings (pools), as `make install` puts them in DAGSTER_HOME.
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    (stack.data_dir / "logs").mkdir(exist_ok=True)
    environ = {
        **base,
        "DAGSTER_HOME": str(home),
        "LAKEHOUSE__STORAGE__BRONZE_PREFIX": f"bronze_{suffix}",
        "LAKEHOUSE__CATALOG__NAMESPACES__SILVER": f"silver_{suffix}",
        "LAKEHOUSE__CATALOG__NAMESPACES__GOLD": f"gold_{suffix}",
    }
    lakehouse = Lakehouse(label=suffix, environ=environ, home=home)
    settings = lakehouse.settings()
    build_resources(settings)["iceberg"].ensure_namespaces(
        [settings.namespace("silver"), settings.namespace("gold")]
    )
    return lakehouse


@dataclass(frozen=True)
class Selection:
    """The assets of each layer, as ``dg launch --assets`` takes them."""

    bronze: str
    silver: str
    seeds: str
    gold: str
    gold_keys: list[str]


def selection(settings: LakehouseSettings) -> Selection:
    """Bronze and silver of the dataset, the dbt seeds, and the gold models fed by silver.

    Gold is what reads the purchase-order silver tables (directly or not), as in
    tests/integration/test_gold.py: the other dataset's gold models have no silver
    input in this stack.
    """
    import dagster as dg

    from lakehouse_assets.bronze.assets import bronze_key
    from lakehouse_assets.gold.assets import build_gold_assets
    from lakehouse_assets.silver.assets import build_silver_asset
    from resources.dbt.project import dbt_project
    from resources.environments import build_resources

    silver = build_silver_asset(settings, DATASET)
    gold = build_gold_assets(settings, dbt_project(settings))
    models = [a for a in gold if a.partitions_def is not None]
    seeds = [a for a in gold if a.partitions_def is None]
    defs = dg.Definitions(assets=[silver, *gold], resources=build_resources(settings))
    graph = defs.resolve_asset_graph()
    downstream = dg.AssetSelection.assets(*silver.keys).downstream().resolve(graph)
    gold_keys = sorted(
        key.to_user_string() for model in models for key in model.keys if key in downstream
    )
    if "gold/fct_daily_sales" not in gold_keys:
        raise BenchmarkError(
            "no gold model fct_daily_sales reads the purchase-order silver tables "
            f"(gold models fed by silver: {gold_keys or 'none'}); is dbt/models complete?"
        )
    seed_keys = sorted(key.to_user_string() for seed in seeds for key in seed.keys)
    return Selection(
        bronze=bronze_key(DATASET).to_user_string(),
        silver=",".join(sorted(key.to_user_string() for key in silver.keys)),
        seeds=",".join(seed_keys),
        gold=",".join(gold_keys),
        gold_keys=gold_keys,
    )


@dataclass
class Produced:
    messages: int
    value_bytes: int
    orders: int
    days: list[str]
    produce_seconds: float
    events_per_order: float


class _OrderCount:
    """Passes records through and remembers the highest order number (orders are numbered)."""

    def __init__(self, records: Iterable[GeneratedRecord]) -> None:
        self._records = records
        self.orders = 0

    def __iter__(self) -> Iterator[GeneratedRecord]:
        for record in self._records:
            key = record.key or b""
            if key.startswith(b"PO-") and key[3:].isdigit():
                self.orders = max(self.orders, int(key[3:]))
            yield record


def events_per_order(spec: EventSpec) -> float:
    """The generator's logical events per order (its lifecycle mix), from a sample."""
    from lakehouse_dev.generator.records import generate
    from lakehouse_dev.generator.spec import GeneratorSpec

    sample = GeneratorSpec(
        count=30_000,
        days=1,
        end_date=spec.end_date,
        late_share=0.0,
        out_of_order_share=0.0,
        duplicate_share=0.0,
        malformed_share=0.0,
        seed=spec.seed,
    )
    counter = _OrderCount(generate(DATASET, sample))
    events = sum(1 for _ in counter)
    return events / max(1, counter.orders)


def produce_orders(stack: IsolatedStack, orders_per_day: int, spec: EventSpec) -> Produced:
    """Produce ``orders_per_day`` orders a day over the spec's days into the dataset's topic."""
    from lakehouse_dev.generator.kafka import CLIENT_LOG, produce
    from lakehouse_dev.generator.records import generate

    CLIENT_LOG.setLevel(logging.CRITICAL)
    ratio = events_per_order(spec)
    generator_spec = spec.generator_spec(round(orders_per_day * spec.days * ratio))
    topic = stack.settings().dataset(DATASET).kafka_topic
    counter = _OrderCount(generate(DATASET, generator_spec))
    started = time.perf_counter()
    result = produce(counter, topic, stack.bootstrap_servers)
    first = generator_spec.first_day
    return Produced(
        messages=result.records,
        value_bytes=result.value_bytes,
        orders=counter.orders,
        days=[(first + timedelta(days=i)).isoformat() for i in range(spec.days)],
        produce_seconds=time.perf_counter() - started,
        events_per_order=ratio,
    )
