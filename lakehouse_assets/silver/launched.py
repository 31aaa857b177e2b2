"""Silver run as a Spark job of its own, launched through Dagster Pipes.

``silver_launcher.kind`` chooses where a dataset's silver work runs:

* ``session`` (default): in the Dagster run's process, on its Spark session
  (:func:`~lakehouse_assets.silver.assets.build_silver_asset`).
* ``pipes_subprocess``: ``spark-submit`` of the job entry point
  (:mod:`lakehouse_assets.silver.job`) on this machine, against the configured master
  (local mode or a standalone cluster).
* ``pipes_glue`` / ``pipes_emr_serverless``: the same entry point as an AWS Glue 5 job
  or an EMR Serverless job run (:mod:`resources.spark.aws_jobs` builds the requests).

The launched asset is the session asset's twin: the same keys, specs, check specs,
partitions, backfill policy, pool and automation, so the UI shows and runs it alike.
Its step starts the job, waits for it, and turns what the job reported into the step's
results: one materialisation per table (the metadata all days share), each day's own
figures added to that day's materialisation, and every check result with its
description. A failed blocking check fails the step as in a ``session`` run; a job that
fails or is killed fails the step with the job's error, and the tables' ``main`` is
unchanged (write-audit-publish publishes only at the end of a successful job).
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations.
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from lakehouse_assets.contracts.loading import load_contract
from lakehouse_assets.silver import job
from lakehouse_assets.silver.assets import build_silver_asset, event_table, silver_key
from lakehouse_assets.silver.quality import history_rates
from resources.private_apis import metadata_from_pipes
from resources.settings import PROJECT_ROOT, LakehouseSettings

#: The entry point that ``spark-submit`` runs (``pipes_subprocess``).
JOB_FILE = Path(job.__file__).resolve()


def job_arguments(dataset: str, first: date, last: date) -> list[str]:
    """The entry point's arguments for ``dataset``'s days ``first``..``last``."""
    return ["--dataset", dataset, "--start", first.isoformat(), "--end", last.isoformat()]


def spark_submit_command(
    settings: LakehouseSettings, arguments: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """``spark-submit`` of the entry point, and the environment it adds.

    Only what the JVM needs before it starts goes on the command line (packages, driver
    memory, Java options: :func:`~resources.spark.conf.launch_conf`, never a
    credential); the job creates its SparkContext with the full configuration itself.
    """
    import pyspark

    from resources.environments import iceberg_resource, s3_resource
    from resources.spark.conf import launch_conf
    from resources.spark.resource import spark_resource

    launcher = settings.silver_launcher.subprocess
    spark = spark_resource(settings, iceberg_resource(settings, s3_resource(settings)))
    full = spark.session_conf()
    conf = launch_conf(full)
    submit = launcher.spark_submit or str(Path(pyspark.__file__).parent / "bin" / "spark-submit")
    command = [submit, "--master", spark.master, "--name", f"lakehouse-silver-{arguments[1]}"]
    for key, value in sorted(conf.items()):
        if key != "spark.master":
            command += ["--conf", f"{key}={value}"]
    command += [*launcher.extra_args, str(JOB_FILE), *arguments]
    environ = {
        # The driver's Python (spark-submit runs the file with it) and the workers'.
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYSPARK_PYTHON": full.get("spark.pyspark.python", sys.executable),
        "LAKEHOUSE__SPARK__SHARED_DRIVER": "false",
    }
    return command, environ


def launch_silver_job(
    context: dg.AssetExecutionContext,
    settings: LakehouseSettings,
    arguments: Sequence[str],
    extras: Mapping[str, Any],
) -> dg.PipesClientCompletedInvocation:
    """Run the entry point with ``arguments`` where ``silver_launcher.kind`` says, and
    wait for it."""
    kind = settings.silver_launcher.kind
    if kind == "pipes_subprocess":
        command, environ = spark_submit_command(settings, arguments)
        client = dg.PipesSubprocessClient(cwd=str(PROJECT_ROOT))
        return client.run(context=context, command=command, env=environ, extras=dict(extras))
    if kind == "pipes_glue":
        from resources.spark.aws_jobs import glue_pipes_client, glue_start_job_run_params

        return glue_pipes_client(settings).run(
            context=context,
            start_job_run_params=glue_start_job_run_params(settings, arguments),
            extras=dict(extras),
        )
    if kind == "pipes_emr_serverless":
        from resources.spark.aws_jobs import (
            emr_serverless_pipes_client,
            emr_serverless_start_job_run_params,
        )

        return emr_serverless_pipes_client(settings).run(
            context=context,
            start_job_run_params=emr_serverless_start_job_run_params(settings, arguments),
            extras=dict(extras),
        )
    raise ValueError(f"silver_launcher.kind {kind!r} runs silver in the run's own process")


def reported_results(
    context: dg.AssetExecutionContext, invocation: dg.PipesClientCompletedInvocation
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """What the job reported, as the step's results: each day's own metadata added to its
    materialisation first, then every materialisation and check result (with the
    description that Pipes does not carry)."""
    per_day: dict[str, dict[str, dict[str, Any]]] = {}
    descriptions: dict[str, str] = {}
    for message in invocation.get_custom_messages():
        if isinstance(message, dict):
            per_day.update(message.get(job.PARTITION_METADATA, {}))
            descriptions.update(message.get(job.CHECK_DESCRIPTIONS, {}))
    for key, days in per_day.items():
        for day, metadata in days.items():
            context.add_asset_metadata(
                metadata_from_pipes(metadata),
                asset_key=dg.AssetKey.from_user_string(key),
                partition_key=day,
            )
    for result in invocation.get_results():
        if isinstance(result, dg.AssetCheckResult) and result.asset_key is not None:
            description = descriptions.get(
                f"{result.asset_key.to_user_string()}:{result.check_name}"
            )
            yield dg.AssetCheckResult(
                passed=result.passed,
                asset_key=result.asset_key,
                check_name=result.check_name,
                metadata=result.metadata,
                severity=result.severity,
                description=description or result.description,
            )
        else:
            yield result


def build_launched_silver_asset(settings: LakehouseSettings, dataset: str) -> dg.AssetsDefinition:
    """The silver multi-asset of ``dataset`` whose work runs as a launched job (see the
    module docstring); everything Dagster shows comes from the session asset's definition."""
    session = build_silver_asset(settings, dataset)
    events_key = silver_key(event_table(load_contract(settings.contract_path(dataset))))
    anomaly = settings.quality.quarantine_anomaly
    kind = settings.silver_launcher.kind

    @dg.multi_asset(
        name=session.op.name,
        specs=list(session.specs),
        check_specs=list(session.check_specs),
        partitions_def=session.partitions_def,
        backfill_policy=session.backfill_policy,
        pool=session.op.pool,
        can_subset=False,
        op_tags={"lakehouse/silver_launcher": kind},
    )
    def _silver(context: dg.AssetExecutionContext) -> Iterator[Any]:
        window = context.partition_time_window
        first, last = window.start.date(), (window.end - timedelta(days=1)).date()
        rates = history_rates(
            context.instance, events_key, first, last, anomaly, context.run.run_id
        )
        extras = {
            job.ANOMALY_HISTORY: {
                events_key.to_user_string(): {d.isoformat(): r for d, r in rates.items()}
            }
        }
        context.log.info(f"silver of {dataset} {first}..{last} runs as a {kind} job")
        invocation = launch_silver_job(
            context, settings, job_arguments(dataset, first, last), extras
        )
        yield from reported_results(context, invocation)

    return _silver
