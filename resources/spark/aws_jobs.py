"""Silver as a Spark job on AWS Glue 5 or EMR Serverless, launched through Dagster Pipes.

Everything a launch sends derives from the settings (``silver_launcher`` plus the
catalog, storage, S3 and Spark sections), so the parameters can be checked exactly
without AWS:

* :func:`glue_job_definition` / :func:`ensure_glue_job`: the Glue job (CreateJob,
  UpdateJob), with the Iceberg catalog's Spark settings in its ``--conf`` argument.
* :func:`glue_start_job_run_params` and :func:`emr_serverless_start_job_run_params`:
  one run of the silver job entry point (``--dataset D --start D1 --end D2``).
* :func:`glue_pipes_client` and :func:`emr_serverless_pipes_client`: dagster-aws Pipes
  clients whose context and messages go through S3 under ``silver_launcher.pipes_prefix``.
* :func:`write_job_artefacts` (``python -m resources.spark.aws_jobs package --out DIR``):
  the bootstrap script and the code archive to upload.

The job itself never gets credentials from here: it runs as its IAM role.
"""

from __future__ import annotations

import argparse
import random
import shutil
import string
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resources.settings import PROJECT_ROOT, LakehouseSettings, cache_dir
from resources.spark.conf import PYTHON_ARCHIVE_ALIAS, build_spark_conf

if TYPE_CHECKING:
    from dagster_aws.pipes import PipesEMRServerlessClient, PipesGlueClient

#: What the package command writes, and what the settings' S3 URIs point at.
BOOTSTRAP_SCRIPT = "lakehouse_silver_job.py"
CODE_ARCHIVE = "lakehouse-silver.zip"
#: Packages and data directories in the code archive (the data read as files at run time).
ARCHIVE_PACKAGES = ("lakehouse_assets", "resources")
ARCHIVE_DATA_DIRS = ("config", "contracts")

GLUE_CATALOG_IMPL = "org.apache.iceberg.aws.glue.GlueCatalog"

# Session settings of build_spark_conf that a job takes as they are; the catalog's own
# keys are added by prefix. Master, memory, UI, Python, jars and driver address are the
# service's to decide (worker type, release, its Iceberg runtime).
_JOB_SQL_KEYS = (
    "spark.sql.extensions",
    "spark.sql.defaultCatalog",
    "spark.sql.session.timeZone",
    "spark.sql.shuffle.partitions",
    "spark.sql.sources.partitionOverwriteMode",
)
_ENVIRONMENT_PYTHON = f"./{PYTHON_ARCHIVE_ALIAS}/bin/python"
# A fixed timestamp for the archive's data files: the same files give the same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# The local S3 server accepts any credentials (as resources.environments does for S3).
_LOCAL_PLACEHOLDER = "lakehouse-local"


# Spark settings ---------------------------------------------------------------------------


def job_spark_conf(settings: LakehouseSettings) -> dict[str, str]:
    """The Spark settings a Glue or EMR Serverless job needs for the Iceberg catalog.

    Derived from :func:`~resources.spark.conf.build_spark_conf` with the catalog of the
    settings (Glue catalog, REST or JDBC), keeping only the SQL extension, the catalog
    and the session settings; S3A endpoint settings only for an S3 endpoint other than
    AWS's (the services read ``s3://`` with their own file system). No credentials:
    the job runs as its role.
    """
    catalog = settings.catalog
    conf = build_spark_conf(
        catalog_name=catalog.name,
        # Only the JDBC catalog's URI is a SQLite one; the others' keys are replaced below.
        catalog_uri=settings.catalog_uri if catalog.type == "sql" else "sqlite:////unused",
        warehouse=settings.warehouse,
        s3_endpoint=settings.s3.endpoint_url,
        s3_region=settings.s3.region,
        access_key_id=None,
        secret_access_key=None,
        shuffle_partitions=settings.spark.shuffle_partitions,
    )
    prefix = f"spark.sql.catalog.{catalog.name}"
    job: dict[str, str] = {}
    for key, value in conf.items():
        s3a_endpoint = key.startswith("spark.hadoop.fs.s3a.") and not key.endswith(".impl")
        if (
            key in _JOB_SQL_KEYS
            or key == prefix
            or key.startswith(prefix + ".")
            or (s3a_endpoint and settings.s3.endpoint_url is not None)
        ):
            job[key] = value
    if catalog.type != "sql":
        for key in [k for k in job if k.startswith(f"{prefix}.jdbc.")]:
            del job[key]
        del job[f"{prefix}.catalog-impl"]
        if catalog.type == "rest":
            job[f"{prefix}.type"] = "rest"
            job[f"{prefix}.uri"] = catalog.uri or ""
        else:
            del job[f"{prefix}.uri"]
            job[f"{prefix}.catalog-impl"] = GLUE_CATALOG_IMPL
    for key, value in catalog.properties.items():
        job[f"{prefix}.{key}"] = value
    return job


def _conf_pairs(conf: Mapping[str, str], where: str) -> list[str]:
    for key, value in conf.items():
        if not key or any(c.isspace() for c in key + value):
            raise ValueError(
                f"{where}: Spark setting {key!r} has whitespace in its name or value, which "
                "the service's single --conf string cannot carry"
            )
    return [f"{key}={value}" for key, value in conf.items()]


def _required(value: Any, key: str) -> Any:
    if not value:
        variable = "LAKEHOUSE__" + key.upper().replace(".", "__")
        raise ValueError(f"{key} is not set (set it in config/lakehouse.yaml or {variable})")
    return value


# Glue ---------------------------------------------------------------------------------------


def glue_job_definition(settings: LakehouseSettings) -> dict[str, Any]:
    """The Glue job's definition: CreateJob's parameters without ``Name``, UpdateJob's
    ``JobUpdate``.

    ``--conf`` holds the catalog's Spark settings (:func:`job_spark_conf`, then
    ``silver_launcher.glue.conf``) as Glue takes them: one value, ``k=v --conf k=v ...``.

    Raises:
        ValueError: naming the missing key (``silver_launcher.glue.role_arn``, ...).
    """
    glue = settings.silver_launcher.glue
    role = _required(glue.role_arn, "silver_launcher.glue.role_arn")
    script = _required(glue.script_location, "silver_launcher.glue.script_location")
    py_files = _required(glue.extra_py_files, "silver_launcher.glue.extra_py_files")
    conf = {**job_spark_conf(settings), **glue.conf}
    arguments = {
        "--job-language": "python",
        "--datalake-formats": glue.datalake_formats,
        "--conf": " --conf ".join(_conf_pairs(conf, "silver_launcher.glue")),
        "--extra-py-files": ",".join(py_files),
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
    }
    if glue.extra_jars:
        arguments["--extra-jars"] = ",".join(glue.extra_jars)
    if glue.additional_python_modules:
        arguments["--additional-python-modules"] = ",".join(glue.additional_python_modules)
    arguments.update(glue.default_arguments)
    return {
        "Description": "Silver layer of the lakehouse: lakehouse_assets.silver.job via Dagster Pipes",
        "Role": role,
        "ExecutionProperty": {"MaxConcurrentRuns": glue.max_concurrent_runs},
        "Command": {"Name": "glueetl", "ScriptLocation": script, "PythonVersion": "3"},
        "DefaultArguments": arguments,
        # Dagster retries runs; a Glue retry would run the same partitions behind its back.
        "MaxRetries": 0,
        "Timeout": glue.timeout_minutes,
        "GlueVersion": glue.glue_version,
        "WorkerType": glue.worker_type,
        "NumberOfWorkers": glue.number_of_workers,
    }


def ensure_glue_job(glue_client: Any, settings: LakehouseSettings) -> str:
    """Create the Glue job, or update it when its definition differs; idempotent.

    Returns ``"created"``, ``"updated"`` or ``"unchanged"``.
    """
    name = settings.silver_launcher.glue.job_name
    definition = glue_job_definition(settings)
    try:
        job = glue_client.get_job(JobName=name)["Job"]
    except glue_client.exceptions.EntityNotFoundException:
        glue_client.create_job(Name=name, **definition)
        return "created"
    if {key: job.get(key) for key in definition} == definition:
        return "unchanged"
    glue_client.update_job(JobName=name, JobUpdate=definition)
    return "updated"


def glue_job_arguments(job_args: Sequence[str]) -> dict[str, str]:
    """The entry point's ``--name value`` (or ``--name=value``) arguments as Glue takes
    them: ``{"--name": "value"}``; Glue hands them to the script as ``--name value``."""
    arguments: dict[str, str] = {}
    items = list(job_args)
    index = 0
    while index < len(items):
        name = items[index]
        if not name.startswith("--") or len(name) == 2:
            raise ValueError(f"job argument {name!r} is not an option (--name value)")
        if "=" in name:
            name, _, value = name.partition("=")
            index += 1
        elif index + 1 < len(items) and not items[index + 1].startswith("--"):
            value = items[index + 1]
            index += 2
        else:
            raise ValueError(f"job argument {name} has no value (Glue arguments are name-value)")
        if name in arguments:
            raise ValueError(f"job argument {name} is given twice")
        arguments[name] = value
    return arguments


def glue_start_job_run_params(
    settings: LakehouseSettings, job_args: Sequence[str]
) -> dict[str, Any]:
    """StartJobRun parameters of one silver run on Glue (PipesGlueClient adds the Pipes
    ``--dagster-pipes-context`` / ``--dagster-pipes-messages`` arguments)."""
    return {
        "JobName": settings.silver_launcher.glue.job_name,
        "Arguments": glue_job_arguments(job_args),
    }


# EMR Serverless ------------------------------------------------------------------------------


def emr_serverless_application_params(settings: LakehouseSettings) -> dict[str, Any]:
    """CreateApplication parameters of an application for the silver job (Spark, the
    configured release label), for setting one up; runs only need its id."""
    return {
        "name": "lakehouse-silver",
        "releaseLabel": settings.silver_launcher.emr_serverless.release_label,
        "type": "SPARK",
    }


def emr_serverless_spark_conf(settings: LakehouseSettings) -> dict[str, str]:
    """The job's Spark settings on EMR Serverless: the catalog (:func:`job_spark_conf`),
    sizing from ``spark``, the code archive, jars and packed Python, then
    ``silver_launcher.emr_serverless.conf``."""
    emr = settings.silver_launcher.emr_serverless
    spark = settings.spark
    conf = job_spark_conf(settings)
    conf["spark.driver.memory"] = spark.driver_memory
    if spark.executor_memory is not None:
        conf["spark.executor.memory"] = spark.executor_memory
    if spark.executor_cores is not None:
        conf["spark.executor.cores"] = str(spark.executor_cores)
    if spark.executor_instances is not None:
        conf["spark.executor.instances"] = str(spark.executor_instances)
    if emr.jars:
        conf["spark.jars"] = ",".join(emr.jars)
    if emr.py_files:
        conf["spark.submit.pyFiles"] = ",".join(emr.py_files)
    if emr.python_archive is not None:
        conf["spark.archives"] = f"{emr.python_archive}#{PYTHON_ARCHIVE_ALIAS}"
        conf["spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON"] = _ENVIRONMENT_PYTHON
        conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] = _ENVIRONMENT_PYTHON
        conf["spark.executorEnv.PYSPARK_PYTHON"] = _ENVIRONMENT_PYTHON
    conf.update(emr.conf)
    return conf


def emr_serverless_start_job_run_params(
    settings: LakehouseSettings, job_args: Sequence[str]
) -> dict[str, Any]:
    """StartJobRun parameters of one silver run on EMR Serverless.

    PipesEMRServerlessClient adds the Pipes parameters as driver environment variables
    (``--conf spark.emr-serverless.driverEnv.DAGSTER_PIPES_*``) and Dagster's tags.

    Raises:
        ValueError: naming the missing key (``silver_launcher.emr_serverless.application_id``, ...).
    """
    emr = settings.silver_launcher.emr_serverless
    application = _required(emr.application_id, "silver_launcher.emr_serverless.application_id")
    role = _required(emr.execution_role_arn, "silver_launcher.emr_serverless.execution_role_arn")
    entry_point = _required(emr.entry_point, "silver_launcher.emr_serverless.entry_point")
    _required(emr.py_files, "silver_launcher.emr_serverless.py_files")
    pairs = _conf_pairs(emr_serverless_spark_conf(settings), "silver_launcher.emr_serverless")
    params: dict[str, Any] = {
        "applicationId": application,
        "executionRoleArn": role,
        "name": " ".join(["lakehouse-silver", *job_args])[:256],
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": entry_point,
                "entryPointArguments": list(job_args),
                "sparkSubmitParameters": " ".join(f"--conf {pair}" for pair in pairs),
            }
        },
        "executionTimeoutMinutes": emr.execution_timeout_minutes,
    }
    if emr.log_uri is not None:
        params["configurationOverrides"] = {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": emr.log_uri}}
        }
    return params


# Pipes clients ------------------------------------------------------------------------------


def pipes_location(settings: LakehouseSettings) -> tuple[str, str]:
    """Bucket and key prefix of the Pipes context and messages of Glue and EMR runs."""
    launcher = settings.silver_launcher
    return launcher.pipes_bucket or settings.storage.bucket, launcher.pipes_prefix


def aws_client(settings: LakehouseSettings, service: str) -> Any:
    """A boto3 client of ``service`` at the project's AWS endpoint and region.

    As for S3 (``s3.endpoint_url``, ``s3.region``, the variables that
    ``s3.access_key_id_env`` / ``s3.secret_access_key_env`` name, else boto3's default
    chain): AWS itself in production, the local stack's server (which also answers Glue
    and EMR Serverless) on loopback, with its placeholder credentials when none are set.
    """
    import os

    import boto3
    from botocore.config import Config

    s3 = settings.s3
    key_id = os.environ.get(s3.access_key_id_env) or None
    secret = os.environ.get(s3.secret_access_key_env) or None
    if settings.s3_is_local and (key_id is None or secret is None):
        key_id = secret = _LOCAL_PLACEHOLDER
    options: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "standard"}}
    if service == "s3":
        options["s3"] = {"addressing_style": "path" if s3.endpoint_url else "auto"}
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(**options),
    )


def _message_reader(settings: LakehouseSettings, s3_client: Any) -> Any:
    from dagster_aws.pipes import PipesS3MessageReader

    bucket, prefix = pipes_location(settings)

    class PrefixedS3MessageReader(PipesS3MessageReader):
        """Messages under the pipes prefix (dagster-aws puts them at the bucket's top),
        so the job role's S3 permissions can be limited to that prefix."""

        @contextmanager
        def get_params(self) -> Iterator[dict[str, Any]]:
            with super().get_params() as params:
                suffix = "".join(random.choices(string.ascii_letters, k=30))
                yield {**params, "key_prefix": f"{prefix}/messages/{suffix}"}

    # The job's stdout and stderr reach the run's logs as Pipes messages (Glue's and EMR's
    # own logs stay in CloudWatch / the log URI).
    return PrefixedS3MessageReader(bucket=bucket, client=s3_client, include_stdio_in_messages=True)


def _context_injector(settings: LakehouseSettings, s3_client: Any) -> Any:
    from dagster_aws.pipes import PipesS3ContextInjector

    bucket, prefix = pipes_location(settings)
    return PipesS3ContextInjector(bucket=bucket, client=s3_client, key_prefix=f"{prefix}/context/")


def glue_pipes_client(
    settings: LakehouseSettings, *, glue_client: Any = None, s3_client: Any = None
) -> PipesGlueClient:
    """A PipesGlueClient: context and messages through S3 under the pipes prefix.

    Use with ``glue_start_job_run_params``; the job must exist (:func:`ensure_glue_job`).
    """
    from dagster_aws.pipes import PipesGlueClient

    s3 = s3_client or aws_client(settings, "s3")
    return PipesGlueClient(
        client=glue_client or aws_client(settings, "glue"),
        context_injector=_context_injector(settings, s3),
        message_reader=_message_reader(settings, s3),
    )


def emr_serverless_pipes_client(
    settings: LakehouseSettings, *, emr_client: Any = None, s3_client: Any = None
) -> PipesEMRServerlessClient:
    """A PipesEMRServerlessClient: context and messages through S3 under the pipes prefix.

    Use with ``emr_serverless_start_job_run_params``.
    """
    from dagster_aws.pipes import PipesEMRServerlessClient

    s3 = s3_client or aws_client(settings, "s3")
    return PipesEMRServerlessClient(
        client=emr_client or aws_client(settings, "emr-serverless"),
        context_injector=_context_injector(settings, s3),
        message_reader=_message_reader(settings, s3),
    )


# Artefacts ---------------------------------------------------------------------------------


def write_job_artefacts(out_dir: Path) -> tuple[Path, Path]:
    """Write the bootstrap script and the code archive to upload; returns their paths.

    The archive is the zip of ``spark.ship_packages``'s builder
    (:func:`resources.spark.resource.python_package_zip`, named by the sources' hash in
    the cache) plus ``config/`` and ``contracts/``, which the settings read as files.
    """
    from resources.spark.resource import python_package_zip

    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / CODE_ARCHIVE
    shutil.copyfile(python_package_zip(ARCHIVE_PACKAGES, cache_dir() / "pyfiles"), archive)
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as opened:
        for directory in ARCHIVE_DATA_DIRS:
            for path in sorted((PROJECT_ROOT / directory).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    name = path.relative_to(PROJECT_ROOT).as_posix()
                    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    opened.writestr(info, path.read_bytes())
    script = out_dir / BOOTSTRAP_SCRIPT
    shutil.copyfile(Path(__file__).with_name("job_bootstrap.py"), script)
    return script, archive


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m resources.spark.aws_jobs package --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m resources.spark.aws_jobs",
        description="Artefacts of the silver job for AWS Glue and EMR Serverless.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    package = commands.add_parser(
        "package", help=f"write {BOOTSTRAP_SCRIPT} and {CODE_ARCHIVE} to upload to S3"
    )
    package.add_argument("--out", type=Path, default=PROJECT_ROOT / "dist" / "silver-job")
    arguments = parser.parse_args(argv)
    script, archive = write_job_artefacts(arguments.out)
    print(f"{script}\n{archive}")


if __name__ == "__main__":
    main()
