"""No S3 credential on any process's command line, in dbt's profile or in redacted logs.

``ps`` and ``/proc/PID/cmdline`` show every user's command lines, and PySpark starts
its JVM as ``spark-submit --conf k=v ...``. Each Spark session here runs in a child
process of its own with marker strings as its S3 credentials (the local S3 server
accepts any), does real ``s3a://`` and Iceberg ``S3FileIO`` I/O, and then waits while
the test searches every process's command line for the markers. The test process's
own session (the ``spark`` fixture) is never touched.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.settings import LakehouseSettings, load_settings
from resources.spark.conf import launch_conf, redact
from resources.spark.driver import stop_drivers

pytestmark = pytest.mark.integration

#: A process that starts a Spark session the way :class:`SparkResource` does, with the
#: credentials its environment names, and reports what it read and where it ran.
HELPER = textwrap.dedent(
    """
    import json, sys
    import dagster as dg
    import pyspark.java_gateway as java_gateway

    # Record the command line of every JVM this process launches (spark-submit): the
    # launcher processes it runs through exit too soon for a search of /proc.
    launched = []
    popen = java_gateway.Popen

    def recording_popen(command, *args, **kwargs):
        launched.append(list(command))
        return popen(command, *args, **kwargs)

    java_gateway.Popen = recording_popen

    from resources.environments import iceberg_resource, s3_resource
    from resources.s3.client import S3Resource
    from resources.settings import load_settings
    from resources.spark.resource import spark_resource

    request = json.loads(sys.stdin.readline())
    settings = load_settings()
    if request["credentials"]:
        s3 = s3_resource(settings)  # dg.EnvVar of the variables the settings name
    else:
        s3 = S3Resource(
            endpoint_url=settings.s3.endpoint_url,
            region=settings.s3.region,
            bucket=settings.storage.bucket,
        )
    configured = spark_resource(settings, iceberg_resource(settings, s3))
    fields = {name: getattr(configured, name) for name in type(configured).model_fields}
    spark_def = type(configured)(**{**fields, "shared_driver_dir": request["driver_dir"]})
    out = {}

    def attempt(name, action):
        try:
            out[name] = action()
        except Exception as exc:
            out[name + "_error"] = f"{type(exc).__name__}: {exc}"[:3000]

    with dg.build_resources({"spark": spark_def}) as built:
        spark = built.spark.spark_session
        jvm = spark.sparkContext._jvm
        out["jvm_pid"] = jvm.java.lang.ProcessHandle.current().pid()
        out["shared_driver_dir"] = built.spark.shared_driver_dir
        effective = spark.sparkContext.getConf()
        out["s3a_provider"] = effective.get("spark.hadoop.fs.s3a.aws.credentials.provider")
        out["s3a_secret_is_marker"] = (
            effective.get("spark.hadoop.fs.s3a.secret.key") == request["marker_secret"]
        )
        out["iceberg_secret_is_marker"] = (
            spark.conf.get(request["iceberg_secret_key"], None) == request["marker_secret"]
        )
        attempt("s3a_rows", lambda: spark.read.parquet(request["parquet"]).count())
        table = request["table"]

        def write_iceberg():
            spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {table.rsplit('.', 1)[0]}")
            spark.sql(f"CREATE TABLE {table} (id BIGINT) USING iceberg")
            spark.sql(f"INSERT INTO {table} VALUES (1), (2), (3)")
            return spark.table(table).count()

        if request["write"]:
            attempt("iceberg_rows", write_iceberg)
        else:
            attempt("iceberg_rows", lambda: spark.table(table).count())
        out["launched"] = launched
        print("REPORT", json.dumps(out), flush=True)
        sys.stdin.read()  # hold the session until the test has searched /proc
    """
)


def marker(kind: str) -> str:
    return f"LH{kind}MARKER{uuid.uuid4().hex.upper()}"


def found_in(text: str, *secrets: str) -> list[str]:
    return [secret for secret in secrets if secret in text]


def command_lines() -> dict[int, bytes]:
    """Every process's command line that this user can read."""
    lines = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return lines


@contextmanager
def session_process(
    environ: Mapping[str, str], request: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """A helper process that holds its Spark session while the block runs; its report."""
    # Spark's and Ivy's logging goes to a file: a full stderr pipe would block the JVM.
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-c", HELPER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=dict(environ),
        )
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            # A JVM that the helper starts writes to the same stdout (Ivy's resolution).
            for line in process.stdout:
                if line.startswith("REPORT "):
                    break
            else:
                process.wait(60)
                errors.seek(0)
                raise AssertionError(f"the helper failed:\n{errors.read()[-6000:]}")
            yield json.loads(line.removeprefix("REPORT "))
        finally:
            process.stdin.close()
            process.stdout.read()  # until the helper and its JVM have closed it
            process.wait(120)


def assert_no_command_line_holds(secrets: list[str], jvm_pid: int) -> None:
    lines = command_lines()
    # The search sees the session's JVM (a spark-submit process of this user).
    assert b"org.apache.spark.deploy.SparkSubmit" in lines[jvm_pid]
    for secret in secrets:
        leaking = {
            pid: line.replace(b"\0", b" ")[:300]
            for pid, line in lines.items()
            if secret.encode() in line
        }
        assert not leaking, f"a command line holds a credential: {leaking}"


def base_environment(**values: str) -> dict[str, str]:
    """This process's environment without any AWS credential source, plus ``values``."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AWS_")
        and not name.startswith("LAKEHOUSE__S3__ACCESS")
        and not name.startswith("LAKEHOUSE__S3__SECRET")
    }
    environ.update(
        {
            # No instance role, no profile files: only what the session is given counts.
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
            "AWS_CONFIG_FILE": "/nonexistent/config",
            "AWS_CREDENTIAL_PROFILES_FILE": "/nonexistent/credentials",
        }
    )
    environ.update(values)
    return environ


@pytest.fixture(scope="module")
def bronze_object(resources: Any, settings: LakehouseSettings) -> str:
    """An s3a:// Parquet object of 5 rows, as bronze files are."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(5))}), buffer)
    key = f"secrets-test/{uuid.uuid4().hex}/part-0.parquet"
    resources.s3.client().put_object(
        Bucket=settings.storage.bucket, Key=key, Body=buffer.getvalue()
    )
    return f"s3a://{settings.storage.bucket}/{key}"


def request(
    settings: LakehouseSettings,
    parquet: str,
    table: str,
    secret: str,
    *,
    driver_dir: Path | None = None,
    write: bool = True,
    credentials: bool = True,
) -> dict[str, Any]:
    return {
        "credentials": credentials,
        "driver_dir": str(driver_dir) if driver_dir else None,
        "parquet": parquet,
        "table": table,
        "write": write,
        "marker_secret": secret,
        "iceberg_secret_key": f"spark.sql.catalog.{settings.catalog.name}.s3.secret-access-key",
    }


def table_name(settings: LakehouseSettings) -> str:
    return f"{settings.catalog.name}.secrets_test.t_{uuid.uuid4().hex[:10]}"


def test_without_credentials_the_same_reads_fail(
    settings: LakehouseSettings, bronze_object: str
) -> None:
    """The control: nothing in the test's environment hands the JVM credentials."""
    with session_process(
        base_environment(),
        request(settings, bronze_object, table_name(settings), "unused", credentials=False),
    ) as report:
        pass
    assert "s3a_rows" not in report
    assert "credentials" in report["s3a_rows_error"].lower()
    assert "iceberg_rows" not in report
    assert "credentials" in report["iceberg_rows_error"].lower()


def test_an_own_jvm_gets_the_credentials_but_no_command_line_does(
    settings: LakehouseSettings, bronze_object: str
) -> None:
    key_id, secret = marker("KEY"), marker("SECRET")
    environ = base_environment(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    with session_process(
        environ, request(settings, bronze_object, table_name(settings), secret)
    ) as report:
        assert report.get("s3a_rows") == 5, report
        assert report.get("iceberg_rows") == 3, report
        assert_no_command_line_holds([key_id, secret], report["jvm_pid"])
    # The JVM was launched by this process: its spark-submit command line held neither.
    assert report["shared_driver_dir"] is None
    assert len(report["launched"]) == 1
    assert not any(key_id in arg or secret in arg for arg in report["launched"][0])
    # They reached the JVM's configuration, which S3A and S3FileIO read them from.
    assert report["s3a_provider"] == "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    assert report["s3a_secret_is_marker"]
    assert report["iceberg_secret_is_marker"]


def test_the_shared_driver_gets_the_credentials_but_no_command_line_or_file_does(
    settings: LakehouseSettings, bronze_object: str, tmp_path: Path
) -> None:
    # Variables of other names, as `s3.access_key_id_env` allows: no AWS default chain
    # could find them, so the reads below work only if the host hands them to Spark.
    key_id, secret = marker("KEY"), marker("SECRET")
    environ = base_environment(
        LAKEHOUSE__S3__ACCESS_KEY_ID_ENV="LH_TEST_S3_KEY_ID",
        LAKEHOUSE__S3__SECRET_ACCESS_KEY_ENV="LH_TEST_S3_SECRET",
        LH_TEST_S3_KEY_ID=key_id,
        LH_TEST_S3_SECRET=secret,
    )
    table = table_name(settings)
    drivers = tmp_path / "drivers"
    try:
        with session_process(
            environ, request(settings, bronze_object, table, secret, driver_dir=drivers)
        ) as first:
            assert first.get("s3a_rows") == 5, first
            assert first.get("iceberg_rows") == 3, first
            assert first["shared_driver_dir"] == str(drivers)
            assert first["launched"] == [], "the client started a JVM of its own"
            assert_no_command_line_holds([key_id, secret], first["jvm_pid"])
        # A later process with the same configuration attaches to the same host.
        with session_process(
            environ,
            request(settings, bronze_object, table, secret, driver_dir=drivers, write=False),
        ) as second:
            assert second["jvm_pid"] == first["jvm_pid"]
            assert second.get("s3a_rows") == 5, second
            assert second.get("iceberg_rows") == 3, second
            assert_no_command_line_holds([key_id, secret], second["jvm_pid"])
        assert first["s3a_secret_is_marker"]
        assert first["iceberg_secret_is_marker"]
        # The host's address, key, lock, leases and log hold no credential in clear.
        for path in [drivers, *drivers.rglob("*")]:
            assert not found_in(path.name, key_id, secret), path
            if path.is_file():
                assert not found_in(path.read_text(errors="replace"), key_id, secret), path
        assert drivers.stat().st_mode & 0o077 == 0
    finally:
        stop_drivers(drivers)


def test_dbt_profile_launch_conf_and_redacted_conf_hold_no_credentials(
    resources: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resources.dbt.project import profiles_yaml

    key_id, secret = marker("KEY"), marker("SECRET")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    text = profiles_yaml(load_settings("local"))
    assert not found_in(text, key_id, secret)
    # Not even a reference: dbt renders it, and the `dbt` executable's own Spark session
    # would pass it to spark-submit's command line.
    assert "AWS_SECRET_ACCESS_KEY" not in text
    conf = {
        **resources.spark.session_conf(),
        "spark.sql.catalog.lakehouse.s3.secret-access-key": secret,
        "spark.hadoop.fs.s3a.secret.key": secret,
        "spark.executorEnv.AWS_ACCESS_KEY_ID": key_id,
        "spark.executorEnv.AWS_SECRET_ACCESS_KEY": secret,
        "spark.sql.catalog.rest.credential": f"client:{secret}",
        "spark.sql.catalog.jdbc.uri": f"jdbc:postgresql://user:{secret}@db:5432/catalog",
    }
    # What spark-submit gets: what a JVM needs to start, no credential (nor an
    # executor's environment, where a cluster's executors would get theirs).
    launched = launch_conf(conf)
    assert not found_in(json.dumps(launched), key_id, secret)
    assert launched["spark.jars.packages"] == conf["spark.jars.packages"]
    assert launched["spark.driver.memory"] == conf["spark.driver.memory"]
    shown = json.dumps(redact(conf))
    assert not found_in(shown, key_id, secret)
    assert "jdbc:postgresql://user:***@db:5432/catalog" in shown
