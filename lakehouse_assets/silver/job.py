"""Silver of one dataset and day range as a Spark application that reports to Dagster
through Pipes: the entry point of every launcher but ``session``.

    spark-submit [--master ...] lakehouse_assets/silver/job.py \\
        --dataset purchase_orders --start 2026-11-01 --end 2026-11-03

It runs exactly the silver work of the ``session`` launcher: the dataset's silver
multi-asset (:func:`~lakehouse_assets.silver.assets.build_silver_asset`) executes in
this process over the range, so bronze is read, validated and quarantined, every table
is written through the Iceberg IO manager (same write modes, snapshot properties, run
branch and publish) and every check runs, by the same code. The run has the launching
Dagster run's id, so its branch and snapshots name that run. Then:

* each table's materialisation is reported (``report_asset_materialization``) with the
  metadata all days of the range share; what differs per day (the data-quality
  figures) travels in a custom message that the launching asset adds to each day's
  materialisation, as the ``session`` launcher does with ``add_asset_metadata``;
* each check result is reported (``report_asset_check``), its description in the same
  custom message (Pipes carries none);
* the run's log lines are forwarded to Dagster's log.

A run whose only failures are failed blocking checks reports everything and ends
normally: Dagster then fails the launching step for those checks, exactly as in a
``session`` run (the tables' main stays as it was: write-audit-publish). Any other
failure ends the application with the run's error, so the Dagster run fails with it.

Without Pipes parameters (run by hand) it runs the range and prints a summary.
The quarantine-rate anomaly check reads its history from the launching instance: the
launcher passes the rates in the Pipes extras (``anomaly_history``), and this process
records them in its own in-memory instance before the run.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a file (spark-submit): not this directory's modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import argparse
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg
    from dagster_pipes import PipesContext, PipesParamsLoader

    from resources.settings import LakehouseSettings

#: The custom message's keys (see the module docstring).
PARTITION_METADATA = "partition_metadata"
CHECK_DESCRIPTIONS = "check_descriptions"
#: Pipes extras: ``{asset key: {day: quarantine rate}}`` recorded before the run.
ANOMALY_HISTORY = "anomaly_history"
#: The step failure of a run whose blocking checks failed (and nothing else).
_BLOCKING_CHECKS_FAILED = "DagsterAssetCheckFailedError"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The entry point's own arguments; others (Glue's ``--JOB_ID``…, Pipes') are left."""
    parser = argparse.ArgumentParser(
        prog="lakehouse_assets/silver/job.py",
        description="Silver of one dataset and day range, as a Spark application.",
    )
    parser.add_argument("--dataset", required=True, help="a dataset of config/lakehouse.yaml")
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="last day")
    args, _ = parser.parse_known_args(list(argv))
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    return args


@dataclass
class SilverRun:
    """What a silver run in this process did, in the form Pipes reports it."""

    success: bool
    error: str | None
    #: asset key -> (metadata every day shares, {day: the rest})
    materializations: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]]
    #: (asset key, check name, passed, severity, description, metadata)
    checks: list[tuple[str, str, bool, str, str | None, dict[str, Any]]]
    logs: list[tuple[str, str]] = field(default_factory=list)


def job_settings(environ: Mapping[str, str] | None = None) -> LakehouseSettings:
    """The environment's settings for this process: its own JVM, never the local shared
    driver (a job is a Spark application of its own)."""
    from resources.settings import load_settings

    environ = dict(os.environ if environ is None else environ)
    environ["LAKEHOUSE__SPARK__SHARED_DRIVER"] = "false"
    return load_settings(environ=environ)


def run_silver(
    settings: LakehouseSettings,
    dataset: str,
    start: date,
    end: date,
    *,
    run_id: str | None = None,
    history: Mapping[str, Mapping[str, float]] | None = None,
) -> SilverRun:
    """The dataset's silver multi-asset over ``start``..``end`` in this process, on an
    in-memory instance holding ``history`` (quarantine rates of earlier days)."""
    import dagster as dg

    from lakehouse_assets.partitions import range_tags
    from lakehouse_assets.silver.assets import build_silver_asset
    from lakehouse_assets.silver.quality import QUARANTINE_RATE
    from resources.environments import build_resources

    asset = build_silver_asset(settings, dataset)
    instance = dg.DagsterInstance.ephemeral()
    for key, rates in (history or {}).items():
        for day, rate in rates.items():
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey.from_user_string(key),
                    partition=day,
                    metadata={QUARANTINE_RATE: float(rate)},
                )
            )
    defs = dg.Definitions(assets=[asset], resources=build_resources(settings))
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        run_id=run_id,
        tags=range_tags(start.isoformat(), end.isoformat()),
        raise_on_error=False,
    )
    return _outcome(result, instance)


def _outcome(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> SilverRun:

    by_key: dict[str, dict[str, dict[str, Any]]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        by_key.setdefault(materialization.asset_key.to_user_string(), {})[
            materialization.partition or ""
        ] = dict(materialization.metadata)
    materializations = {key: split_shared(days) for key, days in by_key.items()}
    checks = [
        (
            check.asset_key.to_user_string(),
            check.check_name,
            check.passed,
            check.severity.value,
            check.description,
            dict(check.metadata),
        )
        for check in result.get_asset_check_evaluations()
    ]
    failures = [
        e.step_failure_data.error
        for e in result.get_step_failure_events()
        if e.step_failure_data.error is not None
    ]
    only_checks = bool(failures) and all(e.cls_name == _BLOCKING_CHECKS_FAILED for e in failures)
    error = None
    if not result.success and not only_checks:
        error = "\n".join(e.to_string() for e in failures) or "the silver run failed"
    logs = [
        (logging.getLevelName(entry.level) if isinstance(entry.level, int) else "INFO", message)
        for entry in instance.all_logs(result.run_id)
        if entry.dagster_event is None and (message := entry.user_message)
    ]
    return SilverRun(result.success or only_checks, error, materializations, checks, logs)


def split_shared(
    days: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The metadata entries equal on every day, and each day's others."""
    first = next(iter(days.values()), {})
    shared = {k: v for k, v in first.items() if all(k in md and md[k] == v for md in days.values())}
    rest = {day: {k: v for k, v in md.items() if k not in shared} for day, md in days.items()}
    return shared, rest


def to_pipes(metadata: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Dagster metadata values as Pipes' typed values (``{"type", "raw_value"}``)."""
    return {key: pipes_value(value) for key, value in metadata.items()}


def pipes_value(value: Any) -> dict[str, Any]:
    """One Dagster metadata value as Pipes' ``{"type", "raw_value"}``; a kind Pipes has
    no type for travels as its text."""
    import dagster as dg

    plain = (
        (dg.BoolMetadataValue, "bool"),
        (dg.IntMetadataValue, "int"),
        (dg.FloatMetadataValue, "float"),
        (dg.TextMetadataValue, "text"),
        (dg.JsonMetadataValue, "json"),
        (dg.MarkdownMetadataValue, "md"),
        (dg.UrlMetadataValue, "url"),
        (dg.PathMetadataValue, "path"),
        (dg.TimestampMetadataValue, "timestamp"),
        (dg.NullMetadataValue, "null"),
    )
    for kind, name in plain:
        if isinstance(value, kind):
            return {"type": name, "raw_value": value.value}
    if isinstance(value, dg.TableSchemaMetadataValue):
        return {"type": "table_schema", "raw_value": {"columns": _columns(value.schema)}}
    if isinstance(value, dg.TableColumnLineageMetadataValue):
        deps = {
            column: [
                {"asset_key": d.asset_key.to_user_string(), "column_name": d.column_name}
                for d in found
            ]
            for column, found in value.column_lineage.deps_by_column.items()
        }
        return {"type": "table_column_lineage", "raw_value": {"deps_by_column": deps}}
    return {"type": "text", "raw_value": str(getattr(value, "value", value))}


def _columns(schema: dg.TableSchema) -> list[dict[str, Any]]:
    columns = []
    for column in schema.columns:
        entry: dict[str, Any] = {"name": column.name, "type": column.type}
        if column.description:
            entry["description"] = column.description
        if column.tags:
            entry["tags"] = dict(column.tags)
        constraints = column.constraints
        if constraints.nullable is not True or constraints.unique or constraints.other:
            entry["constraints"] = {
                "nullable": constraints.nullable,
                "unique": constraints.unique,
                "other": list(constraints.other),
            }
        columns.append(entry)
    return columns


def report(pipes: PipesContext, run: SilverRun) -> None:
    """Everything ``run`` did, to Dagster through ``pipes``."""
    level_methods = {"DEBUG": pipes.log.debug, "WARNING": pipes.log.warning}
    level_methods.update(ERROR=pipes.log.error, CRITICAL=pipes.log.critical)
    for level, message in run.logs:
        level_methods.get(level, pipes.log.info)(message)
    per_day: dict[str, dict[str, Any]] = {}
    for key, (shared, days) in run.materializations.items():
        pipes.report_asset_materialization(metadata=to_pipes(shared), asset_key=key)
        per_day[key] = {day: to_pipes(md) for day, md in days.items() if day and md}
    descriptions: dict[str, str] = {}
    for key, name, passed, severity, description, metadata in run.checks:
        pipes.report_asset_check(
            name,
            passed,
            severity="WARN" if severity == "WARN" else "ERROR",
            metadata=to_pipes(metadata),
            asset_key=key,
        )
        if description:
            descriptions[f"{key}:{name}"] = description
    pipes.report_custom_message({PARTITION_METADATA: per_day, CHECK_DESCRIPTIONS: descriptions})


class SilverJobError(RuntimeError):
    """The silver run of the job failed (its error is the message)."""


def _pipes_io(loader: PipesParamsLoader, settings: LakehouseSettings) -> dict[str, Any]:
    """Context loader and message writer for the parameters: files and stdout locally
    (PipesSubprocessClient), S3 objects when they name a bucket (Glue, EMR Serverless)."""
    from dagster_pipes import PipesS3ContextLoader, PipesS3MessageWriter

    io: dict[str, Any] = {"params_loader": loader}
    context_params, message_params = loader.load_context_params(), loader.load_messages_params()
    if "bucket" in context_params or "bucket" in message_params:
        from resources.environments import s3_resource

        client = s3_resource(settings).client()
        if "bucket" in context_params:
            io["context_loader"] = PipesS3ContextLoader(client=client)
        if "bucket" in message_params:
            io["message_writer"] = PipesS3MessageWriter(client=client)
    return io


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; 0 when the run completed (failed blocking checks included)."""
    from dagster_pipes import (
        PipesCliArgsParamsLoader,
        PipesEnvVarParamsLoader,
        open_dagster_pipes,
    )

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    settings = job_settings()
    cli = any(a.startswith("--dagster-pipes-") for a in argv)
    loader: PipesParamsLoader = PipesCliArgsParamsLoader() if cli else PipesEnvVarParamsLoader()
    if not loader.is_dagster_pipes_process():
        run = run_silver(settings, args.dataset, args.start, args.end)
        summary = {
            "success": run.success,
            "error": run.error,
            "checks": {f"{k}:{n}": p for k, n, p, *_ in run.checks},
        }
        print(json.dumps(summary, indent=1))
        return 0 if run.success else 1
    with open_dagster_pipes(**_pipes_io(loader, settings)) as pipes:
        pipes.log.info(
            f"silver of {args.dataset} {args.start}..{args.end} in Spark application "
            f"process {os.getpid()}"
        )
        history = pipes.get_extra(ANOMALY_HISTORY) if ANOMALY_HISTORY in pipes.extras else {}
        run = run_silver(
            settings, args.dataset, args.start, args.end, run_id=pipes.run_id, history=history
        )
        report(pipes, run)
        if run.error is not None:
            raise SilverJobError(run.error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
