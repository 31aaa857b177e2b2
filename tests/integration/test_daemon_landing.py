"""With the Dagster daemon running, new Kafka records land with no manual step."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from resources.settings import PROJECT_ROOT, LakehouseSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def daemon(settings: LakehouseSettings, stack: Any, tmp_path: Path) -> Iterator[Path]:
    """``dagster-daemon run`` on the project's workspace, against the test stack."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "LAKEHOUSE__LANDING__SENSOR_INTERVAL_SECONDS": "5",
        }
    )
    log = (tmp_path / "daemon.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-daemon"),
            "run",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield tmp_path / "daemon.log"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        log.close()


def test_new_records_land_while_the_daemon_runs(resources: Any, daemon: Path) -> None:
    topic = "plain-events"
    now = datetime.now(UTC)
    stamp = now - timedelta(minutes=1)  # Kafka refuses records stamped in the future
    producer = resources.kafka.producer()
    for i in range(250):
        producer.produce(
            topic,
            key=f"d{i}".encode(),
            value=b'{"id": %d}' % i,
            timestamp=int(stamp.timestamp() * 1000),
        )
    assert producer.flush(30) == 0
    day = stamp.date().isoformat()

    deadline = time.monotonic() + 240
    landed = 0
    while time.monotonic() < deadline:
        landed = sum(r.count for r in resources.bronze_store.landed("plain", day))
        if landed >= 250:
            break
        time.sleep(2)

    assert landed == 250, (
        f"only {landed} of 250 records landed; daemon log:\n"
        + daemon.read_text(errors="replace")[-4000:]
    )
    table_rows = sum(b.num_rows for b in resources.bronze_store.read_batches("plain", [day]))
    assert table_rows == 250


@pytest.mark.timeout(1500)
def test_new_orders_reach_gold_while_the_daemon_runs(
    resources: Any, settings: LakehouseSettings, daemon: Path
) -> None:
    """Kafka → bronze (arrivals sensor) → silver and gold (declarative automation), no
    manual step: the day's daily sales count the new orders."""
    from tests.integration.test_silver import order_event

    stamp = datetime.now(UTC) - timedelta(minutes=1)
    orders = 5
    producer = resources.kafka.producer()
    for number in range(orders):
        event = order_event(900_000 + number, 1, stamp, status="paid")
        producer.produce(
            "purchase-orders",
            key=event["order_id"].encode(),
            value=json.dumps(event).encode(),
            timestamp=int(stamp.timestamp() * 1000),
        )
    assert producer.flush(30) == 0

    catalog = resources.iceberg.load()
    table = (settings.namespace("gold"), "fct_daily_sales")
    # Correctness, not speed (the gold benchmark measures latency): a fresh daemon loads
    # the seeds, lands, then runs silver and gold, each a run of a few minutes on 2 cores.
    deadline = time.monotonic() + 1080
    sold = 0
    while time.monotonic() < deadline and sold < orders:
        time.sleep(5)
        if catalog.table_exists(table):
            rows = catalog.load_table(table).scan().to_arrow().to_pylist()
            sold = sum(
                r["orders"]
                for r in rows
                if r["sales_date"] == stamp.date() and r["country"] == "DE"
            )
    assert sold == orders, (
        f"gold counts {sold} of {orders} orders; daemon log:\n"
        + daemon.read_text(errors="replace")[-6000:]
    )
