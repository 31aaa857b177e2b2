"""The exact parameters the Glue and EMR Serverless launchers send, from one config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from resources.settings import ConfigError, LakehouseSettings, load_settings
from resources.spark.aws_jobs import (
    emr_serverless_start_job_run_params,
    ensure_glue_job,
    glue_job_arguments,
    glue_job_definition,
    glue_start_job_run_params,
    job_spark_conf,
)

ROLE = "arn:aws:iam::123456789012:role/lakehouse-silver"
ARTEFACTS = "s3://lakehouse-prod/artifacts/silver"
JOB_ARGS = ["--dataset", "purchase_orders", "--start", "2026-11-01", "--end", "2026-11-03"]

CATALOG_CONF = {
    "spark.sql.shuffle.partitions": "64",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
    "spark.sql.defaultCatalog": "lakehouse",
    "spark.sql.catalog.lakehouse": "org.apache.iceberg.spark.SparkCatalog",
    "spark.sql.catalog.lakehouse.warehouse": "s3://lakehouse-prod/warehouse",
    "spark.sql.catalog.lakehouse.cache-enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.catalog.lakehouse.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
    "spark.sql.catalog.lakehouse.client.region": "eu-west-1",
    "spark.sql.catalog.lakehouse.catalog-impl": "org.apache.iceberg.aws.glue.GlueCatalog",
}


def _settings(tmp_path: Path, launcher: dict[str, Any], **sections: Any) -> LakehouseSettings:
    document = {
        "defaults": {
            "storage": {"bucket": "lakehouse-prod"},
            "s3": {"region": "eu-west-1"},
            "catalog": {"type": "glue"},
            "kafka": {"bootstrap_servers": "broker:9092"},
            "partitions": {"start_date": "2026-11-01"},
            "spark": {
                "master": "yarn",
                "driver_memory": "8g",
                "shuffle_partitions": 64,
                "executor_memory": "12g",
                "executor_cores": 4,
                "executor_instances": 8,
            },
            "datasets": {"purchase_orders": {"topic": "purchase-orders"}},
            "silver_launcher": launcher,
            **sections,
        },
        "environments": {"prod": {}},
    }
    path = tmp_path / "lakehouse.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_settings("prod", path, environ={})


GLUE = {
    "kind": "pipes_glue",
    "glue": {
        "role_arn": ROLE,
        "script_location": f"{ARTEFACTS}/lakehouse_silver_job.py",
        "extra_py_files": [f"{ARTEFACTS}/lakehouse-silver.zip"],
        "extra_jars": [f"{ARTEFACTS}/lakehouse-udfs.jar"],
        "additional_python_modules": ["dagster-pipes==1.13.27", "pydantic-settings==2.16.3"],
        "default_arguments": {"--TempDir": "s3://lakehouse-prod/tmp/glue/"},
    },
}
EMR = {
    "kind": "pipes_emr_serverless",
    "emr_serverless": {
        "application_id": "00fm4oe0607u5a1d",
        "execution_role_arn": ROLE,
        "entry_point": f"{ARTEFACTS}/lakehouse_silver_job.py",
        "py_files": [f"{ARTEFACTS}/lakehouse-silver.zip"],
        "python_archive": "s3://lakehouse-prod/artifacts/lakehouse-executor-py311.tar.gz",
        "log_uri": "s3://lakehouse-prod/logs/emr-serverless/",
    },
}


def test_job_spark_conf_is_the_glue_catalog_without_local_or_secret_settings(
    tmp_path: Path,
) -> None:
    assert job_spark_conf(_settings(tmp_path, GLUE)) == CATALOG_CONF


def test_glue_job_definition_is_exact(tmp_path: Path) -> None:
    conf = " --conf ".join(f"{key}={value}" for key, value in CATALOG_CONF.items())
    assert glue_job_definition(_settings(tmp_path, GLUE)) == {
        "Description": "Silver layer of the lakehouse: lakehouse_assets.silver.job via Dagster Pipes",
        "Role": ROLE,
        "ExecutionProperty": {"MaxConcurrentRuns": 8},
        "Command": {
            "Name": "glueetl",
            "ScriptLocation": f"{ARTEFACTS}/lakehouse_silver_job.py",
            "PythonVersion": "3",
        },
        "DefaultArguments": {
            "--job-language": "python",
            "--datalake-formats": "iceberg",
            "--conf": conf,
            "--extra-py-files": f"{ARTEFACTS}/lakehouse-silver.zip",
            "--enable-metrics": "true",
            "--enable-continuous-cloudwatch-log": "true",
            "--extra-jars": f"{ARTEFACTS}/lakehouse-udfs.jar",
            "--additional-python-modules": "dagster-pipes==1.13.27,pydantic-settings==2.16.3",
            "--TempDir": "s3://lakehouse-prod/tmp/glue/",
        },
        "MaxRetries": 0,
        "Timeout": 120,
        "GlueVersion": "5.0",
        "WorkerType": "G.1X",
        "NumberOfWorkers": 2,
    }


def test_glue_conf_starts_with_the_first_setting_and_joins_with_conf(tmp_path: Path) -> None:
    arguments = glue_job_definition(_settings(tmp_path, GLUE))["DefaultArguments"]
    assert arguments["--conf"].startswith("spark.sql.shuffle.partitions=64 --conf ")
    assert arguments["--conf"].count(" --conf ") == len(CATALOG_CONF) - 1


def test_glue_start_job_run_params_turn_options_into_arguments(tmp_path: Path) -> None:
    assert glue_start_job_run_params(_settings(tmp_path, GLUE), JOB_ARGS) == {
        "JobName": "lakehouse-silver",
        "Arguments": {
            "--dataset": "purchase_orders",
            "--start": "2026-11-01",
            "--end": "2026-11-03",
        },
    }


def test_glue_job_arguments_take_name_equals_value() -> None:
    assert glue_job_arguments(["--dataset=plain", "--start", "2026-11-01"]) == {
        "--dataset": "plain",
        "--start": "2026-11-01",
    }


@pytest.mark.parametrize(
    ("job_args", "message"),
    [
        (["plain"], "'plain' is not an option"),
        (["--dataset"], "--dataset has no value"),
        (["--dataset", "a", "--dataset", "b"], "--dataset is given twice"),
    ],
)
def test_glue_job_arguments_reject_what_glue_cannot_carry(
    job_args: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        glue_job_arguments(job_args)


def test_emr_serverless_start_job_run_params_are_exact(tmp_path: Path) -> None:
    python = "./environment/bin/python"
    conf = {
        **CATALOG_CONF,
        "spark.driver.memory": "8g",
        "spark.executor.memory": "12g",
        "spark.executor.cores": "4",
        "spark.executor.instances": "8",
        "spark.jars": "/usr/share/aws/iceberg/lib/iceberg-spark3-runtime.jar",
        "spark.submit.pyFiles": f"{ARTEFACTS}/lakehouse-silver.zip",
        "spark.archives": "s3://lakehouse-prod/artifacts/lakehouse-executor-py311.tar.gz#environment",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": python,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": python,
        "spark.executorEnv.PYSPARK_PYTHON": python,
    }
    assert emr_serverless_start_job_run_params(_settings(tmp_path, EMR), JOB_ARGS) == {
        "applicationId": "00fm4oe0607u5a1d",
        "executionRoleArn": ROLE,
        "name": "lakehouse-silver --dataset purchase_orders --start 2026-11-01 --end 2026-11-03",
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": f"{ARTEFACTS}/lakehouse_silver_job.py",
                "entryPointArguments": JOB_ARGS,
                "sparkSubmitParameters": " ".join(f"--conf {k}={v}" for k, v in conf.items()),
            }
        },
        "executionTimeoutMinutes": 120,
        "configurationOverrides": {
            "monitoringConfiguration": {
                "s3MonitoringConfiguration": {"logUri": "s3://lakehouse-prod/logs/emr-serverless/"}
            }
        },
    }


def test_a_rest_catalog_reaches_the_job_as_a_rest_catalog(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, GLUE, catalog={"type": "rest", "uri": "https://catalog.internal/api"}
    )
    conf = job_spark_conf(settings)
    assert conf["spark.sql.catalog.lakehouse.type"] == "rest"
    assert conf["spark.sql.catalog.lakehouse.uri"] == "https://catalog.internal/api"
    assert "spark.sql.catalog.lakehouse.catalog-impl" not in conf


def test_a_local_s3_endpoint_reaches_the_job_without_credentials(tmp_path: Path) -> None:
    settings = _settings(tmp_path, GLUE, s3={"endpoint_url": "http://127.0.0.1:19000"})
    conf = job_spark_conf(settings)
    assert conf["spark.sql.catalog.lakehouse.s3.endpoint"] == "http://127.0.0.1:19000"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:19000"
    assert not any("key" in key or "secret" in key for key in conf)
    assert "spark.hadoop.fs.s3.impl" not in conf


@pytest.mark.parametrize(
    ("launcher", "missing"),
    [
        ({"kind": "pipes_glue"}, "silver_launcher.glue.role_arn"),
        (
            {"kind": "pipes_glue", "glue": {"role_arn": ROLE}},
            "silver_launcher.glue.script_location",
        ),
        (
            {"kind": "pipes_emr_serverless", "emr_serverless": {"execution_role_arn": ROLE}},
            "silver_launcher.emr_serverless.application_id",
        ),
    ],
)
def test_a_pipes_kind_without_its_keys_fails_naming_them(
    tmp_path: Path, launcher: dict[str, Any], missing: str
) -> None:
    with pytest.raises(ConfigError, match=rf"silver_launcher: .*{missing} \(") as raised:
        _settings(tmp_path, launcher)
    assert f"LAKEHOUSE__{missing.upper().replace('.', '__')}" in str(raised.value)


def test_the_session_kind_needs_no_aws_keys(tmp_path: Path) -> None:
    assert _settings(tmp_path, {}).silver_launcher.kind == "session"


def test_building_glue_parameters_without_a_role_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"silver_launcher.glue.role_arn is not set"):
        glue_job_definition(_settings(tmp_path, {}))


def test_artefact_uris_must_be_on_s3(tmp_path: Path) -> None:
    launcher = {"glue": {"extra_py_files": ["/tmp/lakehouse-silver.zip"]}}
    with pytest.raises(ConfigError, match="is not an s3://bucket/key URI"):
        _settings(tmp_path, launcher)


def test_ensure_glue_job_updates_a_job_whose_definition_changed(tmp_path: Path) -> None:
    settings = _settings(tmp_path, GLUE)
    definition = glue_job_definition(settings)
    glue = boto3.client(
        "glue", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(glue) as stub:
        stub.add_response(
            "get_job",
            {"Job": {"Name": "lakehouse-silver", **definition, "NumberOfWorkers": 5}},
            {"JobName": "lakehouse-silver"},
        )
        stub.add_response(
            "update_job",
            {"JobName": "lakehouse-silver"},
            {"JobName": "lakehouse-silver", "JobUpdate": definition},
        )
        assert ensure_glue_job(glue, settings) == "updated"
        stub.assert_no_pending_responses()
