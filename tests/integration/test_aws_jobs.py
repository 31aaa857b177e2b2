"""The Glue and EMR Serverless launchers against the local stack's AWS API server (moto).

moto runs no job: these tests check what the launchers SEND (the job definition, each
run's arguments with the Pipes bootstrap parameters, the Pipes context on S3), and that
the bootstrap script reaches the entry point from the code archive alone. Nothing here
ran on AWS.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_pipes import decode_param

from lakehouse_dev.stack import LocalStack
from resources.config_sections import SilverLauncherSettings
from resources.settings import LakehouseSettings
from resources.spark.aws_jobs import (
    BOOTSTRAP_SCRIPT,
    CODE_ARCHIVE,
    aws_client,
    emr_serverless_application_params,
    emr_serverless_pipes_client,
    emr_serverless_start_job_run_params,
    ensure_glue_job,
    glue_job_definition,
    glue_pipes_client,
    glue_start_job_run_params,
    write_job_artefacts,
)

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/lakehouse-silver"
ARTEFACTS = "s3://lakehouse/artifacts/silver"
JOB_ARGS = ["--dataset", "plain", "--start", "2026-11-01", "--end", "2026-11-02"]


def _with_launcher(settings: LakehouseSettings, **launcher: Any) -> LakehouseSettings:
    return settings.model_copy(
        update={"silver_launcher": SilverLauncherSettings.model_validate(launcher)}
    )


@pytest.fixture
def glue_settings(settings: LakehouseSettings, stack: LocalStack) -> LakehouseSettings:
    return _with_launcher(
        settings,
        kind="pipes_glue",
        glue={
            "job_name": "lakehouse-silver-test",
            "role_arn": ROLE,
            "script_location": f"{ARTEFACTS}/{BOOTSTRAP_SCRIPT}",
            "extra_py_files": [f"{ARTEFACTS}/{CODE_ARCHIVE}"],
        },
    )


def _run_in_asset(launch: Any) -> dg.ExecuteInProcessResult:
    @dg.asset
    def silver_job(context) -> dg.MaterializeResult:
        launch(context)
        # moto ran nothing, so no materialisation came back through Pipes.
        return dg.MaterializeResult()

    return dg.materialize([silver_job], raise_on_error=False)


def test_ensure_glue_job_creates_the_job_then_leaves_it_alone(
    glue_settings: LakehouseSettings,
) -> None:
    glue = aws_client(glue_settings, "glue")
    assert ensure_glue_job(glue, glue_settings) == "created"
    job = glue.get_job(JobName="lakehouse-silver-test")["Job"]
    definition = glue_job_definition(glue_settings)
    assert {key: job.get(key) for key in definition} == definition
    # Same definition: no UpdateJob (which moto does not implement; the update path is
    # tested with botocore's Stubber in tests/unit/test_aws_jobs.py).
    assert ensure_glue_job(glue, glue_settings) == "unchanged"


def test_a_glue_run_sends_the_job_arguments_and_the_pipes_parameters(
    glue_settings: LakehouseSettings,
) -> None:
    glue = aws_client(glue_settings, "glue")
    s3 = aws_client(glue_settings, "s3")
    ensure_glue_job(glue, glue_settings)
    client = glue_pipes_client(glue_settings)
    result = _run_in_asset(
        lambda context: client.run(
            context=context,
            start_job_run_params=glue_start_job_run_params(glue_settings, JOB_ARGS),
        )
    )
    assert result.success

    (run,) = glue.get_job_runs(JobName="lakehouse-silver-test")["JobRuns"]
    arguments = run["Arguments"]
    # moto merges the job's DefaultArguments into the run's, as Glue hands both to the script.
    expected = {
        **glue_job_definition(glue_settings)["DefaultArguments"],
        "--dataset": "plain",
        "--start": "2026-11-01",
        "--end": "2026-11-02",
    }
    assert {key: arguments[key] for key in expected} == expected
    assert set(arguments) - set(expected) == {"--dagster-pipes-context", "--dagster-pipes-messages"}
    context = decode_param(arguments["--dagster-pipes-context"])
    messages = decode_param(arguments["--dagster-pipes-messages"])
    bucket = glue_settings.storage.bucket
    assert context["bucket"] == bucket
    assert context["key"].startswith("pipes/context/")
    assert messages["bucket"] == bucket
    assert messages["key_prefix"].startswith("pipes/messages/")
    assert messages["include_stdio_in_messages"] is True
    # The injected context was on S3 for the run and is removed once the session ends.
    assert s3.list_objects_v2(Bucket=bucket, Prefix=context["key"])["KeyCount"] == 0


def test_an_emr_serverless_run_sends_the_job_driver_and_the_pipes_parameters(
    settings: LakehouseSettings, stack: LocalStack
) -> None:
    emr = aws_client(settings, "emr-serverless")
    application = emr.create_application(**emr_serverless_application_params(settings))
    emr_settings = _with_launcher(
        settings,
        kind="pipes_emr_serverless",
        emr_serverless={
            "application_id": application["applicationId"],
            "execution_role_arn": ROLE,
            "entry_point": f"{ARTEFACTS}/{BOOTSTRAP_SCRIPT}",
            "py_files": [f"{ARTEFACTS}/{CODE_ARCHIVE}"],
            "log_uri": "s3://lakehouse/logs/emr-serverless/",
        },
    )
    params = emr_serverless_start_job_run_params(emr_settings, JOB_ARGS)
    client = emr_serverless_pipes_client(emr_settings, emr_client=emr)
    result = _run_in_asset(
        lambda context: client.run(context=context, start_job_run_params=copy.deepcopy(params))
    )
    assert result.success

    (summary,) = emr.list_job_runs(applicationId=application["applicationId"])["jobRuns"]
    run = emr.get_job_run(applicationId=application["applicationId"], jobRunId=summary["id"])
    job_run = run["jobRun"]
    assert job_run["executionRole"] == ROLE
    driver = job_run["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == f"{ARTEFACTS}/{BOOTSTRAP_SCRIPT}"
    assert driver["entryPointArguments"] == JOB_ARGS
    sent = driver["sparkSubmitParameters"]
    base = params["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    assert sent.startswith(base + " ")
    pipes = dict(
        pair.removeprefix("spark.emr-serverless.driverEnv.").split("=", 1)
        for pair in sent[len(base) :].split(" --conf ")
        if pair.strip()
    )
    assert set(pipes) == {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"}
    assert decode_param(pipes["DAGSTER_PIPES_CONTEXT"])["key"].startswith("pipes/context/")
    assert decode_param(pipes["DAGSTER_PIPES_MESSAGES"])["key_prefix"].startswith("pipes/messages/")
    assert job_run["configurationOverrides"] == params["configurationOverrides"]


def _run_bootstrap(
    out: Path, *python_flags: str, args: list[str]
) -> subprocess.CompletedProcess[str]:
    workdir = out / "work"
    workdir.mkdir()
    return subprocess.run(
        [sys.executable, *python_flags, str(out / BOOTSTRAP_SCRIPT), *args],
        check=False,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        # As Glue's --extra-py-files and Spark's --py-files do: the archive on the path.
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(out / CODE_ARCHIVE)},
    )


def test_the_bootstrap_reaches_a_main_from_the_archive_alone(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    write_job_artefacts(out)
    # A stub entry point replaces the real one in this archive only: it shows that the
    # archive was extracted (config and contracts as files beside the packages) and that
    # `main` got the arguments, with no site-packages (-S) and not the checkout.
    stub = (
        "import sys\nfrom pathlib import Path\n"
        "def main(argv):\n"
        "    root = Path(__file__).resolve().parents[2]\n"
        "    assert (root / 'config' / 'lakehouse.yaml').is_file()\n"
        "    assert (root / 'contracts' / 'purchase_orders.yaml').is_file()\n"
        "    print('stub main', root, argv)\n"
        "    return 0\n"
    )
    archive = out / CODE_ARCHIVE
    with zipfile.ZipFile(archive) as opened:
        members = {name: opened.read(name) for name in opened.namelist()}
    members["lakehouse_assets/silver/job.py"] = stub.encode()
    with zipfile.ZipFile(archive, "w") as rewritten:
        for name, data in members.items():
            rewritten.writestr(name, data)

    result = _run_bootstrap(out, "-S", args=["--dataset", "plain", "--JOB_RUN_ID", "jr_1"])
    assert result.returncode == 0, result.stderr
    assert "stub main" in result.stdout
    assert "['--dataset', 'plain', '--JOB_RUN_ID', 'jr_1']" in result.stdout
    assert "/work/main" not in result.stdout.split("stub main", 1)[1].split("[")[0]


def test_the_bootstrap_runs_the_real_entry_point(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    write_job_artefacts(out)
    with zipfile.ZipFile(out / CODE_ARCHIVE) as opened:
        names = set(opened.namelist())
    assert {"config/lakehouse.yaml", "contracts/purchase_orders.yaml"} <= names
    if "lakehouse_assets/silver/job.py" not in names:
        pytest.skip("lakehouse_assets/silver/job.py does not exist yet")
    result = _run_bootstrap(out, args=["--help"])
    assert result.returncode == 0, result.stderr
    assert "--dataset" in result.stdout
    assert "code from" in result.stderr
