"""The gold benchmark's targets and its table on stdout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    render_targets,
)
from benchmarks.gold_latency import (
    _describe_runs,
)
from benchmarks.gold_setup import LAYERS, SETUP

if TYPE_CHECKING:
    pass


#: Single-run backfill must be at least this many times faster than one run per partition.
TARGET_RATIO = 3.0

#: Median produce-to-gold latency must stay under this (seconds).
TARGET_LATENCY_S = 120.0


def evaluate_targets(section: dict[str, Any]) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    backfill = section.get("backfill")
    if backfill is not None:
        ratio = backfill["ratio_per_partition_to_single_run"]
        targets["ratio"] = {
            "description": f"per-partition / single-run backfill, {len(backfill['days'])} days",
            "value": ratio,
            "limit": f">= {TARGET_RATIO:g}",
            "pass": ratio >= TARGET_RATIO,
        }
        same = backfill["fct_daily_sales_equal"] and backfill["bronze_complete"]
        targets["equal"] = {
            "description": "fct_daily_sales equal in both variants, bronze complete",
            "value": "equal" if same else "differ",
            "limit": "equal",
            "pass": same,
        }
    latency = section.get("latency")
    if latency is not None:
        median = latency["median_seconds"]
        targets["latency"] = {
            "description": "median produce-to-gold latency s (daemon)",
            "value": "timeout" if median is None else float(median),
            "limit": f"< {TARGET_LATENCY_S:g}",
            "pass": median is not None and median < TARGET_LATENCY_S,
        }
    return targets


def render_table(section: dict[str, Any]) -> str:
    def row(label: str, a: str, b: str) -> str:
        return f"{label:<40}{a:>16}{b:>16}"

    lines: list[str] = []
    backfill = section.get("backfill")
    if backfill is not None:
        single, split = backfill["single_run"], backfill["per_partition"]
        days = backfill["days"]
        lines += [
            f"Gold benchmark: purchase_orders, {len(days)} days {days[0]}..{days[-1]}, "
            f"{section['config']['orders_per_day']:,} orders/day ({backfill['orders']:,} orders, "
            f"{backfill['messages']:,} messages)",
            "Backfill bronze -> silver -> gold, every run a fresh `dg launch` "
            f"process, median of {section['config']['repeat']}:",
            row("", "single run", "per partition"),
            row("runs", str(single["runs"]), str(split["runs"])),
        ]
        for layer in LAYERS:
            a, b = single["layers"][layer], split["layers"][layer]
            lines.append(
                row(
                    f"{layer} s (runs)",
                    f"{a['seconds']:.1f} ({a['runs']})",
                    f"{b['seconds']:.1f} ({b['runs']})",
                )
            )

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        for layer in ("bronze", "silver", "gold"):
            a, b = single["layers"][layer], split["layers"][layer]
            lines += [
                row(
                    f"{layer}: median s per run",
                    fmt(a["median_run_seconds"]),
                    fmt(b["median_run_seconds"]),
                ),
                row(
                    "  of which start-up (to run start)",
                    fmt(a["median_startup_seconds"]),
                    fmt(b["median_startup_seconds"]),
                ),
            ]
        lines += [
            row(
                "backfill wall time s (runs back to back)",
                f"{single['median_seconds']:.1f}",
                f"{split['median_seconds']:.1f}",
            ),
            row(
                "set-up: seeds run s (not included)",
                f"{single['layers'][SETUP]['seconds']:.1f}",
                f"{split['layers'][SETUP]['seconds']:.1f}",
            ),
            row("bronze rows", f"{single['bronze_rows']:,}", f"{split['bronze_rows']:,}"),
            row(
                "fct_daily_sales rows",
                f"{single['fct_daily_sales']['rows']:,}",
                f"{split['fct_daily_sales']['rows']:,}",
            ),
            row(
                "fct_daily_sales sum(net_revenue)",
                str(single["fct_daily_sales"]["net_revenue"]),
                str(split["fct_daily_sales"]["net_revenue"]),
            ),
            row(
                "fct_daily_sales sum(orders)",
                str(single["fct_daily_sales"]["orders"]),
                str(split["fct_daily_sales"]["orders"]),
            ),
            row(
                "per partition / single run",
                "",
                f"{backfill['ratio_per_partition_to_single_run']:.2f}",
            ),
            "",
        ]
    latency = section.get("latency")
    if latency is not None:
        lines.append(
            f"Produce-to-gold latency, dagster-daemon running (arrivals sensor "
            f"{latency['sensor_interval_seconds']} s, automation "
            f"{latency['automation_interval_seconds']} s), {latency['probe_orders']} orders a "
            f"probe, daemon settled in {latency['settle_seconds']:.0f} s:"
        )
        for probe in latency["probes"]:
            value = "timeout" if probe["seconds"] is None else f"{probe['seconds']:.1f}"
            lines.append(row(f"probe {probe['probe']} s", "", value))
            lines.append(
                f"    runs (created..ended, s after produce): {_describe_runs(probe['runs'])}"
            )
        median = latency["median_seconds"]
        lines += [row("median s", "", "-" if median is None else f"{median:.1f}"), ""]
    if section.get("code_changed_during_run"):
        lines += [
            "warning: the working copy's code, dbt project or config changed during the run",
            "",
        ]
    lines += render_targets(section["targets"])
    return "\n".join(lines)
