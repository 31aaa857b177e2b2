"""``python -m benchmarks bronze_days``: the small-file tax of bronze, a 30-day backfill of
about 3,000 records.

Two topics get the same number of generated purchase-order records (3 Kafka
partitions): one spread over ``--days`` days (30), one within a single day. Each is
landed as one single-run backfill in replace mode (the bronze asset, in this process,
after a warm-up landing), alternating, ``--repeat`` times. The 30-day backfill writes a
file per day and Kafka partition (90), the one-day landing 3, so the difference is
what each extra file costs:

* ``backfill_seconds``: median wall time of the 30-day backfill;
* ``backfill_vs_one_day``: that time / the one-day landing's;
* ``seconds_per_file``: (30-day - one-day) / (files of 30 days - files of one day),
  what each extra file costs (target <= 0.1 s, a fifth of what it cost before).

Measured before the change that removed the tax (Kafka reads long-polling 500 ms per
range, a listing per day, a HEAD per upload): 58.3 s for the 30-day backfill of 2,611
records, 0.5 s a file.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    DEFAULT_OUTPUT,
    EventSpec,
    add_event_arguments,
    event_spec,
    log,
    positive_int,
    produce_topic,
    raise_interrupt,
    render_targets,
    run_section,
)

if TYPE_CHECKING:
    from benchmarks.common import ProducedTopic
    from benchmarks.isolated import IsolatedStack

SECTION = "bronze_days"
DEFAULT_RECORDS = 2_611
DEFAULT_BACKFILL_DAYS = 30
TARGET_SECONDS_PER_FILE = 0.1


@dataclass(frozen=True)
class Options:
    records: int
    repeat: int
    events: EventSpec
    output: Path


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks bronze_days",
        description="A 30-day bronze backfill of about 3,000 records against one day of them.",
    )
    parser.add_argument("--records", type=positive_int, default=DEFAULT_RECORDS)
    parser.add_argument("--quick", action="store_true", help="accepted for `all`; no effect")
    parser.add_argument("--repeat", type=positive_int, default=3, help="landings of each")
    add_event_arguments(parser)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON file")
    args = parser.parse_args(argv)
    if args.days == 3:  # the shared default: this benchmark's is a month
        args.days = DEFAULT_BACKFILL_DAYS
    return Options(args.records, args.repeat, event_spec(args), args.output)


def _landing(stack: IsolatedStack, produced: ProducedTopic) -> Any:
    """A function that lands the topic's days as one run and returns (seconds, files)."""
    import dagster as dg

    from lakehouse_assets.bronze.assets import build_bronze_asset, landing_run_config
    from resources.environments import build_resources

    settings = stack.settings(produced.environ)
    asset = build_bronze_asset(settings, produced.dataset)
    resources = build_resources(settings)

    def land(days: list[str], expected: int | None = produced.messages) -> tuple[float, int]:
        started = time.perf_counter()
        result = dg.materialize(
            [asset],
            resources=resources,
            run_config=landing_run_config(produced.dataset, "replace"),
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )
        seconds = time.perf_counter() - started
        # One materialisation per day, each with the run's output metadata.
        materialization = result.asset_materializations_for_node(asset.op.name)[0]
        rows = int(str(materialization.metadata["dagster/row_count"].value))
        if expected is not None and rows != expected:
            raise RuntimeError(f"landed {rows} rows of {expected} produced")
        return seconds, int(str(materialization.metadata["files_written"].value))

    land(produced.days[:1], expected=None)  # imports, first connections
    return land


def measure(stack: IsolatedStack, options: Options) -> dict[str, Any]:
    log(f"producing {options.records:,} records over {options.events.days} days, and in one ...")
    month = produce_topic(stack, options.records, options.events)
    one_day = produce_topic(stack, options.records, replace(options.events, days=1))
    land_month, land_day = _landing(stack, month), _landing(stack, one_day)
    months, days = [], []
    for run in range(1, options.repeat + 1):
        months.append(land_month(month.days))
        days.append(land_day(one_day.days))
        log(f"run {run}: {months[-1][0]:.2f}s ({months[-1][1]} files), one day {days[-1][0]:.2f}s")
    backfill = statistics.median(s for s, _ in months)
    single = statistics.median(s for s, _ in days)
    files, single_files = months[0][1], days[0][1]
    return {
        "records": month.messages,
        "backfill_days": len(month.days),
        "backfill_seconds": backfill,
        "backfill_files": files,
        "one_day_seconds": single,
        "one_day_files": single_files,
        "backfill_vs_one_day": backfill / single,
        "seconds_per_file": (backfill - single) / max(files - single_files, 1),
        "before_change": {"backfill_seconds": 58.3, "records": 2611, "files": 90},
    }


def evaluate_targets(section: dict[str, Any]) -> dict[str, Any]:
    per_file = section["seconds_per_file"]
    return {
        "per_file": {
            "description": "seconds each extra bronze file costs (30 days vs one)",
            "value": per_file,
            "limit": f"<= {TARGET_SECONDS_PER_FILE:g}",
            "pass": per_file <= TARGET_SECONDS_PER_FILE,
        },
        "ratio": {
            "description": f"{section['backfill_days']}-day backfill / the same records in one day",
            "value": section["backfill_vs_one_day"],
            "limit": "report",
            "pass": None,
        },
    }


def render_table(section: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Bronze days: {section['records']:,} records, medians of "
            f"{section['config']['repeat']} landings each",
            f"{section['backfill_days']}-day backfill   {section['backfill_seconds']:.2f}s "
            f"({section['backfill_files']} files)",
            f"one day             {section['one_day_seconds']:.2f}s "
            f"({section['one_day_files']} files)",
            f"per extra file      {section['seconds_per_file']:.3f}s",
            "",
            *render_targets(section["targets"]),
        ]
    )


def run(options: Options) -> tuple[dict[str, Any] | None, int]:
    return run_section(
        SECTION,
        announce=f"bronze_days: {options.records:,} records over {options.events.days} days",
        measure=lambda stack: measure(stack, options),
        config={
            "records": options.records,
            "repeat": options.repeat,
            **asdict(options.events),
            "end_date": options.events.end_date.isoformat(),
            "landing": "bronze asset, replace mode, one run per backfill, in this process",
        },
        output=options.output,
        evaluate_targets=evaluate_targets,
        render_table=render_table,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    return run(options)[1]
