"""The dashboard (``make dashboard``) in headless Chromium: it starts on loopback, draws
its charts, and the figures it shows are gold's, exported to the stack's PostgreSQL.

Gold is written to Iceberg tables of the test's own namespace and exported with the
export assets, and the silver quality export copies the quarantine rates that the
test records as silver materialisations; then the app is started as ``make
dashboard`` starts it, against that schema.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.serving.assets import build_postgres_quality_export, silver_events_keys
from lakehouse_dev.dashboard.__main__ import streamlit_command
from lakehouse_dev.dashboard.screenshot import screenshot_dashboard
from lakehouse_dev.processes import port_is_open, wait_until
from lakehouse_dev.stack import LocalStack
from tests.integration.test_serving_postgres import StarSchema

pytestmark = pytest.mark.integration

PORT = 18501
DAYS = [date(2026, 11, 8) + timedelta(days=i) for i in range(3)]
DAILY_SALES = pa.schema(
    [
        pa.field("sales_date", pa.date32()),
        pa.field("country", pa.string()),
        pa.field("reporting_currency", pa.string()),
        pa.field("orders", pa.int64()),
        pa.field("net_revenue", pa.decimal128(18, 2)),
        pa.field("revenue_7d", pa.decimal128(18, 2)),
    ]
)
CUSTOMER_SALES = pa.schema(
    [
        pa.field("customer_id", pa.string()),
        pa.field("reporting_currency", pa.string()),
        pa.field("orders", pa.int64()),
        pa.field("net_sales", pa.decimal128(18, 2)),
        pa.field("refunds", pa.decimal128(18, 2)),
        pa.field("net_revenue", pa.decimal128(18, 2)),
        pa.field("first_order_date", pa.date32()),
        pa.field("last_order_date", pa.date32()),
    ]
)
CUSTOMERS = pa.schema(
    [
        pa.field("customer_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("country", pa.string()),
        pa.field("tier", pa.string()),
        pa.field("valid_from", pa.timestamp("us", tz="UTC")),
        pa.field("valid_to", pa.timestamp("us", tz="UTC")),
        pa.field("is_current", pa.bool_()),
    ]
)


def _daily_sales() -> list[dict[str, Any]]:
    rows = []
    for country, base in (("DE", 100), ("FR", 60), ("GB", 35)):
        rolling = Decimal(0)
        for offset, day in enumerate(DAYS):
            net = Decimal(f"{base + 17 * offset}.{offset}5")
            rolling += net
            rows.append(
                {
                    "sales_date": day,
                    "country": country,
                    "reporting_currency": "EUR",
                    "orders": 3 + offset,
                    "net_revenue": net,
                    "revenue_7d": rolling,
                }
            )
    return rows


def _customer_sales() -> list[dict[str, Any]]:
    return [
        {
            "customer_id": f"C-{n}",
            "reporting_currency": "EUR",
            "orders": n,
            "net_sales": Decimal(f"{40 * n + n}.10"),
            "refunds": Decimal("0.00"),
            "net_revenue": Decimal(f"{40 * n + n}.10"),
            "first_order_date": DAYS[0],
            "last_order_date": DAYS[-1],
        }
        for n in range(1, 14)
    ]


def _customers() -> list[dict[str, Any]]:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {
            "customer_id": f"C-{n}",
            "name": f"Customer {n}",
            "country": ("DE", "FR", "GB")[n % 3],
            "tier": "gold" if n > 10 else "silver",
            "valid_from": since,
            "valid_to": None,
            "is_current": True,
        }
        for n in range(1, 14)
    ]


@pytest.fixture
def star(stack: LocalStack) -> StarSchema:
    suffix = uuid.uuid4().hex[:8]
    return StarSchema(
        {
            **os.environ,
            "LAKEHOUSE__CATALOG__NAMESPACES__GOLD": f"gold_{suffix}",
            "LAKEHOUSE__SERVING__POSTGRES__SCHEMA_NAME": f"dash_{suffix}",
        }
    )


@pytest.fixture
def dashboard(star: StarSchema, tmp_path: Path) -> Iterator[str]:
    """The app, started as ``make dashboard`` starts it, on the test's schema."""
    env = {
        **os.environ,
        "LAKEHOUSE__SERVING__POSTGRES__SCHEMA_NAME": star.schema_name,
        "HOME": str(tmp_path),  # Streamlit's own state (~/.streamlit) stays in the test
    }
    log = (tmp_path / "dashboard.log").open("wb")
    process = subprocess.Popen(
        streamlit_command("127.0.0.1", PORT),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = wait_until(lambda: port_is_open("127.0.0.1", PORT), 60, interval=0.2)
        assert started, (tmp_path / "dashboard.log").read_text()
        yield f"http://127.0.0.1:{PORT}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def _export_gold(star: StarSchema) -> None:
    star.write_gold("fct_daily_sales", DAILY_SALES, _daily_sales())
    star.write_gold("fct_customer_sales", CUSTOMER_SALES, _customer_sales())
    star.write_gold("dim_customers", CUSTOMERS, _customers())
    for day in DAYS:
        assert star.run("fct_daily_sales", day).success
    assert star.run("fct_customer_sales").success
    assert star.run("dim_customers").success


def _export_quality(star: StarSchema) -> dict[tuple[date, str], dict[str, Any]]:
    """Silver materialisations with each day's figures, then the quality export."""
    instance = dg.DagsterInstance.ephemeral()
    recorded = {}
    for number, (dataset, key) in enumerate(silver_events_keys(star.settings).items()):
        for offset, day in enumerate(DAYS):
            rows_in, quarantined = 200 + offset, (number + 1) * offset + 1
            figures: dict[str, Any] = {
                "rows_in": rows_in,
                "rows_quarantined": quarantined,
                "quarantine_rate": quarantined / rows_in,
            }
            recorded[(day, dataset)] = figures
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=key, partition=day.isoformat(), metadata=figures)
            )
    export = build_postgres_quality_export(star.settings)
    for day in DAYS:
        result = dg.materialize(
            [export], resources=star.resources, instance=instance, partition_key=day.isoformat()
        )
        assert result.success
    return recorded


def _rows(table: list[list[str]]) -> list[list[str]]:
    """The data rows (the first row is the header)."""
    return table[1:]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def test_the_dashboard_shows_golds_figures_and_draws_its_charts(
    star: StarSchema, dashboard: str, tmp_path: Path
) -> None:
    _export_gold(star)
    recorded = _export_quality(star)

    view = screenshot_dashboard(dashboard, tmp_path / "dashboard.png")
    assert view.path.stat().st_size > 20_000
    if os.environ.get("LAKEHOUSE_DASHBOARD_SCREENSHOT"):
        shutil.copy(view.path, os.environ["LAKEHOUSE_DASHBOARD_SCREENSHOT"])

    # Every figure as the gold table holds it (read back from Iceberg, not from the test).
    gold = {m: star.tables[m].scan().to_arrow().to_pylist() for m in star.tables}
    newest = max(r["sales_date"] for r in gold["fct_daily_sales"])
    latest = sorted(
        (r for r in gold["fct_daily_sales"] if r["sales_date"] == newest),
        key=lambda r: r["country"],
    )
    assert _rows(view.tables["latest_day"]) == [
        [
            _text(r[c])
            for c in ("sales_date", "country", "reporting_currency", "net_revenue", "revenue_7d")
        ]
        for r in latest
    ]

    names = {r["customer_id"]: r for r in gold["dim_customers"] if r["is_current"]}
    top = sorted(gold["fct_customer_sales"], key=lambda r: (-r["net_revenue"], r["customer_id"]))[
        :10
    ]
    assert _rows(view.tables["top_customers"]) == [
        [
            r["customer_id"],
            names[r["customer_id"]]["name"],
            names[r["customer_id"]]["country"],
            names[r["customer_id"]]["tier"],
            _text(r["orders"]),
            r["reporting_currency"],
            _text(r["net_revenue"]),
        ]
        for r in top
    ]

    assert _rows(view.tables["quarantine_rates"]) == [
        [
            day.isoformat(),
            dataset,
            _text(figures["rows_in"]),
            _text(figures["rows_quarantined"]),
            f"{figures['quarantine_rate']:.2%}",
        ]
        for (day, dataset), figures in sorted(recorded.items())
    ]

    freshness = {row[0]: row for row in _rows(view.tables["freshness"])}
    assert set(freshness) == {
        "fct_daily_sales",
        "fct_customer_sales",
        "dim_customers",
        "silver_quality_daily",
    }
    assert freshness["fct_daily_sales"][2] == DAYS[-1].isoformat()
    assert freshness["dim_customers"][2] == ""  # replaced whole: no day


def test_the_dashboard_command_serves_on_loopback_without_usage_statistics() -> None:
    command = streamlit_command("127.0.0.1", PORT)
    assert command[1:4] == ["-m", "streamlit", "run"]
    assert "--server.address=127.0.0.1" in command
    assert "--browser.gatherUsageStats=false" in command
    assert command[0] == sys.executable
