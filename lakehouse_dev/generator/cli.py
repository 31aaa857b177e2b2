"""The ``lakehouse-events`` command line: generate a dataset's events and produce them."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse_dev.generator.kafka import (
    CLIENT_LOG,
    ProduceError,
    ProduceResult,
    produce,
)
from lakehouse_dev.generator.records import (
    GenerationSummary,
    _ExpectedAggregates,
    generate,
)
from lakehouse_dev.generator.spec import (
    _HOUR_MS,
    DATASETS,
    KIND_DUPLICATE,
    KIND_LATE,
    KIND_OUT_OF_ORDER,
    KIND_VALID,
    LATE_WINDOW_DAYS,
    GeneratedRecord,
    GeneratorSpec,
)

if TYPE_CHECKING:
    pass


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share is between 0 and 1, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    defaults = GeneratorSpec.__dataclass_fields__
    parser = argparse.ArgumentParser(
        prog="lakehouse-events",
        description=(
            "Produce realistic events for the lakehouse's Kafka topics: late, out-of-order, "
            "duplicate and malformed records included, in Kafka-timestamp order."
        ),
    )
    parser.add_argument("--dataset", choices=(*DATASETS, "all"), default="all")
    parser.add_argument(
        "--count",
        type=int,
        default=defaults["count"].default,
        help="logical events per dataset, duplicates not included (default: %(default)s)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=defaults["days"].default,
        help="UTC days the events spread over (default: %(default)s)",
    )
    parser.add_argument(
        "--end-date",
        type=_parse_date,
        default=None,
        help="last day, YYYY-MM-DD (default: yesterday UTC, the last complete day)",
    )
    for name in ("late_share", "out_of_order_share", "duplicate_share", "malformed_share"):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=_share,
            default=defaults[name].default,
            help="(default: %(default)s)",
        )
    parser.add_argument("--seed", type=int, default=defaults["seed"].default)
    parser.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (default: project settings)"
    )
    parser.add_argument(
        "--topic", help="topic to produce to (default: the dataset's topic in project settings)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="generate and summarise only, no Kafka"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the Kafka client's own log lines"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        help="write a JSON summary with the expected clean results to this path",
    )
    return parser


def _spec_from_args(args: argparse.Namespace) -> GeneratorSpec:
    extra = {"end_date": args.end_date} if args.end_date is not None else {}
    return GeneratorSpec(
        count=args.count,
        days=args.days,
        late_share=args.late_share,
        out_of_order_share=args.out_of_order_share,
        duplicate_share=args.duplicate_share,
        malformed_share=args.malformed_share,
        seed=args.seed,
        **extra,
    )


def _kafka_targets(
    args: argparse.Namespace, datasets: Sequence[str]
) -> tuple[str | None, dict[str, str | None], dict[str, Any]]:
    """Bootstrap servers, topics and security settings: options first, the project's
    settings for the rest.

    With the project's brokers the producer also gets the project's security settings
    (``kafka.security_protocol``, SASL with the credentials from the variables that
    ``kafka.sasl_*_env`` name), exactly as the pipeline's own clients
    (:meth:`resources.kafka.client.KafkaResource.client_config`), so the generator
    produces to a SASL cluster too. Settings are imported only when an option is
    missing, so the generator works without them; a dry run tolerates settings that
    cannot load.
    """
    topics: dict[str, str | None] = {name: args.topic for name in datasets}
    bootstrap: str | None = args.bootstrap_servers
    if args.topic is not None and (bootstrap is not None or args.dry_run):
        return bootstrap, topics, {}
    security: dict[str, Any] = {}
    try:
        # Imported by name: the settings module is optional for the generator.
        settings = importlib.import_module("resources.settings").load_settings()
        if args.topic is None:
            topics = {name: settings.datasets[name].kafka_topic for name in datasets}
        if bootstrap is None:
            bootstrap = settings.kafka.bootstrap_servers
            if not args.dry_run:
                import dagster as dg

                environments = importlib.import_module("resources.environments")
                # Initialised as a run initialises it: credential variables resolved.
                resource = environments.kafka_resource(settings)
                with dg.build_resources({"kafka": resource}) as initialised:
                    client = initialised.kafka.client_config()
                security = {
                    key: value
                    for key, value in client.items()
                    if key not in ("bootstrap.servers", "client.id")
                }
    except Exception as exc:
        if not args.dry_run:
            raise ProduceError(
                f"cannot read Kafka settings from the project settings ({exc}); "
                "pass --bootstrap-servers and --topic"
            ) from exc
    return bootstrap, topics, security


def _observed(
    records: Iterable[GeneratedRecord], observers: Sequence[Callable[[GeneratedRecord], None]]
) -> Iterator[GeneratedRecord]:
    for record in records:
        for observe in observers:
            observe(record)
        yield record


def _run_dataset(
    dataset: str,
    spec: GeneratorSpec,
    topic: str | None,
    bootstrap: str | None,
    args: argparse.Namespace,
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    summary = GenerationSummary(dataset)
    expected = _ExpectedAggregates(dataset) if args.manifest is not None else None
    observers = [summary.add] if expected is None else [summary.add, expected.add]
    stream = _observed(generate(dataset, spec), observers)
    result: ProduceResult | None = None
    if args.dry_run:
        for _ in stream:
            pass
    else:
        assert topic is not None, "resolved by _kafka_targets"
        assert bootstrap is not None, "resolved by _kafka_targets"
        print(f"producing {dataset} to {topic} at {bootstrap} ...", file=sys.stderr)
        result = produce(stream, topic, bootstrap, config=security)
    return {
        "topic": topic,
        "summary": summary,
        "result": result,
        "expected": None if expected is None else expected.to_dict(),
    }


def _format_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    header = (
        "dataset",
        "topic",
        "records",
        "valid",
        "late (in/beyond window)",
        "out-of-order",
        "duplicates",
        "malformed",
        "event days",
        "sent",
    )
    rows = [header]
    notes = []
    for dataset, report in reports.items():
        summary: GenerationSummary = report["summary"]
        result: ProduceResult | None = report["result"]
        days = sorted(summary.by_event_day)
        rows.append(
            (
                dataset,
                report["topic"] or "-",
                f"{summary.records:,}",
                f"{summary.by_kind[KIND_VALID]:,}",
                f"{summary.by_kind[KIND_LATE]:,} ({summary.late_within_window:,}/"
                f"{summary.late_beyond_window:,})",
                f"{summary.by_kind[KIND_OUT_OF_ORDER]:,}",
                f"{summary.by_kind[KIND_DUPLICATE]:,}",
                f"{summary.malformed:,}",
                f"{days[0]}..{days[-1]}" if days else "-",
                "dry run"
                if result is None
                else f"{result.elapsed_s:.1f}s ({result.records_per_s:,.0f}/s)",
            )
        )
        if summary.malformed:
            reasons = ", ".join(f"{r} {n:,}" for r, n in summary.malformed_by_reason.items())
            notes.append(f"{dataset} malformed: {reasons}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in [*lines, *notes])


def _write_manifest(
    path: Path, spec: GeneratorSpec, reports: Mapping[str, Mapping[str, Any]]
) -> None:
    document = {
        "spec": {
            "count": spec.count,
            "days": spec.days,
            "first_day": spec.first_day.isoformat(),
            "end_date": spec.end_date.isoformat(),
            "late_share": spec.late_share,
            "out_of_order_share": spec.out_of_order_share,
            "duplicate_share": spec.duplicate_share,
            "malformed_share": spec.malformed_share,
            "seed": spec.seed,
            "late_window_days": LATE_WINDOW_DAYS,
        },
        "datasets": {
            dataset: {
                "topic": report["topic"],
                "summary": report["summary"].to_dict(),
                "expected": report["expected"],
                "produced": None
                if report["result"] is None
                else {
                    "records": report["result"].records,
                    "elapsed_s": round(report["result"].elapsed_s, 3),
                },
            }
            for dataset, report in reports.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``lakehouse-events``: generate, produce, print what was made; 0 on success."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    else:
        CLIENT_LOG.setLevel(logging.CRITICAL)
    try:
        spec = _spec_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    datasets = DATASETS if args.dataset == "all" else (args.dataset,)
    if args.topic is not None and len(datasets) > 1:
        parser.error("--topic needs a single --dataset")
    if not args.dry_run and spec.end_ms - 1 > time.time() * 1000 + _HOUR_MS:
        print(
            f"error: --end-date {spec.end_date} stamps records up to its midnight, more than an "
            "hour ahead of now; Kafka brokers refuse records from the future "
            "(message.timestamp.after.max.ms, 1 h by default). Use an earlier --end-date.",
            file=sys.stderr,
        )
        return 2
    try:
        bootstrap, topics, security = _kafka_targets(args, datasets)
        reports = {
            dataset: _run_dataset(dataset, spec, topics[dataset], bootstrap, args, security)
            for dataset in datasets
        }
    except ProduceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"seed {spec.seed}, {spec.count:,} events per dataset over {spec.days} day(s) "
        f"{spec.first_day}..{spec.end_date}"
    )
    print(_format_table(reports))
    if args.manifest is not None:
        _write_manifest(args.manifest, spec, reports)
        print(f"manifest: {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
