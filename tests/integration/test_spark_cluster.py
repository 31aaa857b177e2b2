"""Silver on a real Spark standalone cluster: a master and 2 workers (1 core each) on loopback.

The cluster is the local stack's own (``LAKEHOUSE__STACK__SPARK_CLUSTER=true``, started by
``LocalStack.start()`` beside the session's Kafka and S3 server, which that start finds
running), on free ports. The silver asset of a ``plain`` dataset of its own runs once in
local mode (the suite's session) and once on the cluster, in a process of its own (a
process holds one SparkContext) whose driver is a client of the master. The tables must
be equal, and the work must have run on executors of both workers: their ids (never
``driver``) in the workers' JSON endpoints, and Python tasks that ran inside those
executors' directories and imported the project from the zip the session shipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse_dev.spark_cluster import SparkCluster
from lakehouse_dev.stack import LocalStack
from resources.settings import LakehouseSettings, load_settings
from tests.conftest import _free_port, _free_port_pair
from tests.integration.test_silver import SilverDataset, _at, _day, _make_dataset, plain_event

pytestmark = pytest.mark.integration

#: Runs silver on the cluster in a process of its own; prints what it saw as JSON.
CLUSTER_RUN = textwrap.dedent(
    """
    import json, os, sys, urllib.request
    import dagster as dg
    from pyspark.sql import SparkSession
    from lakehouse_assets.silver.assets import build_silver_asset
    from resources.environments import build_resources
    from resources.settings import load_settings

    request = json.loads(sys.stdin.read())
    settings = load_settings()
    result = dg.materialize(
        [build_silver_asset(settings, request["dataset"])],
        resources=build_resources(settings),
        tags={
            "dagster/asset_partition_range_start": request["first"],
            "dagster/asset_partition_range_end": request["last"],
        },
        raise_on_error=False,
    )
    out = {"success": result.success}
    if not result.success:
        out["failure"] = [
            e.step_failure_data.error.to_string() for e in result.get_step_failure_events()
        ]
    spark = SparkSession.builder.getOrCreate()
    context = spark.sparkContext
    out["master"] = context.master
    out["app_id"] = context.applicationId
    out["conf"] = {k: v for k, v in context.getConf().getAll() if not k.startswith("spark.executorEnv.")}

    def probe(_):
        import hashlib, os
        import lakehouse_assets.silver.validation as validation
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        yield {
            "cwd": os.getcwd(),
            "module": validation.__file__,
            "secret_sha": hashlib.sha256(secret.encode()).hexdigest(),
            "lakehouse_env": sorted(k for k in os.environ if k.startswith("LAKEHOUSE__")),
            "python": os.environ.get("PYSPARK_PYTHON"),
        }

    out["tasks"] = context.parallelize(range(8), 8).mapPartitions(probe).collect()
    executors = []
    for port in request["worker_ports"]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/", timeout=5) as reply:
            state = json.loads(reply.read())
        for executor in state.get("executors", []):
            if executor.get("appid") == out["app_id"]:
                executors.append({"worker_port": port, "id": str(executor.get("id"))})
    out["executors"] = executors
    # No process of the machine (driver, workers, executors) has the secret on its
    # command line while the application runs.
    secret = os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    exposed = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if secret in handle.read():
                        exposed.append(int(entry))
            except OSError:
                pass
    out["secret_on_command_lines"] = exposed
    spark.stop()
    print(json.dumps(out), flush=True)
    """
)


def _pids_of(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def cluster_environment(stack: LocalStack) -> dict[str, str]:
    """The test environment plus a 2-worker, 1-core cluster on free loopback ports."""
    environ = dict(os.environ)
    environ.update(
        {
            "LAKEHOUSE__STACK__SPARK_CLUSTER": "true",
            "LAKEHOUSE__STACK__SPARK_WORKERS": "2",
            "LAKEHOUSE__STACK__SPARK_WORKER_CORES": "1",
            "LAKEHOUSE__STACK__SPARK_WORKER_MEMORY": "1g",
            "LAKEHOUSE__STACK__SPARK_MASTER_PORT": str(_free_port()),
            "LAKEHOUSE__STACK__SPARK_MASTER_WEBUI_PORT": str(_free_port()),
            "LAKEHOUSE__STACK__SPARK_WORKER_WEBUI_PORT": str(_free_port_pair()),
        }
    )
    return environ


@pytest.fixture(scope="module")
def cluster(cluster_environment: dict[str, str]) -> Iterator[SparkCluster]:
    """The stack's cluster, started by ``LocalStack.start()`` and stopped after the module."""
    settings = load_settings("local", environ=cluster_environment)
    stack = LocalStack.from_settings(settings)
    try:
        stack.start()  # Kafka and S3 are the session's, already running: only the cluster starts
        yield stack.spark_cluster
    finally:
        stack.spark_cluster.stop()
    # (The trailing slash: the suite's shared driver lives in <data dir>/spark-drivers.)
    assert _pids_of(f"{stack.spark_cluster.data_dir}/") == [], "a cluster process survived stop"
    assert not stack.spark_cluster.is_running()


def test_stack_starts_the_cluster_idempotently_and_shows_it(
    cluster: SparkCluster, cluster_environment: dict[str, str]
) -> None:
    settings = load_settings("local", environ=cluster_environment)
    stack = LocalStack.from_settings(settings)
    pids = [cluster.master.pid(), *(cluster.worker(i).pid() for i in range(2))]
    stack.spark_cluster.start()  # a second start finds every daemon running
    assert [cluster.master.pid(), *(cluster.worker(i).pid() for i in range(2))] == pids
    assert stack.status()["spark_cluster"] is True
    workers = cluster.alive_workers()
    assert len(workers) == 2
    assert all(w["cores"] == 1 and w["host"] == "127.0.0.1" for w in workers)
    shown = stack.describe()
    assert f"spark master     {settings.spark_cluster_url}" in shown
    assert "2/2 alive" in shown
    for port in cluster.worker_webui_ports():
        assert f"http://127.0.0.1:{port}" in shown


def _sorted(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    return sorted(rows, key=lambda row: json.dumps(row, default=str, sort_keys=True))


def _cluster_settings(
    plain: SilverDataset, cluster_environment: dict[str, str], namespace: str
) -> tuple[LakehouseSettings, dict[str, str]]:
    prefix = f"LAKEHOUSE__DATASETS__{plain.name.upper()}"
    environ = dict(cluster_environment)
    environ.update(
        {
            f"{prefix}__TOPIC": plain.topic,
            f"{prefix}__CONTRACT": "contracts/plain.yaml",
            f"{prefix}__START_DATE": _day(-5),
            f"{prefix}__LATE_WINDOW_DAYS": "3",
            "LAKEHOUSE__CATALOG__NAMESPACES__SILVER": namespace,
            "LAKEHOUSE__SPARK__MASTER": load_settings(
                "local", environ=cluster_environment
            ).spark_cluster_url,
            "LAKEHOUSE__SPARK__EXECUTOR_MEMORY": "1g",
            "LAKEHOUSE__SPARK__EXECUTOR_CORES": "1",
            # Marker credentials (the local S3 server takes any): they must reach the
            # executors' environment and no command line.
            "AWS_ACCESS_KEY_ID": f"cluster-key-{uuid.uuid4().hex}",
            "AWS_SECRET_ACCESS_KEY": f"cluster-secret-{uuid.uuid4().hex}",
        }
    )
    return load_settings("local", environ=environ), environ


@pytest.fixture
def plain(stack: LocalStack, spark: Any) -> SilverDataset:
    return _make_dataset("contracts/plain.yaml")


def test_silver_on_the_cluster_equals_local_mode_and_runs_on_the_workers(
    plain: SilverDataset, cluster: SparkCluster, cluster_environment: dict[str, str]
) -> None:
    records: list[tuple[Any, Any]] = [
        (plain_event(f"id-{i}", _at(i % 2, 8 + i % 10), amount=f"{i}.25"), _at(i % 2, 9 + i % 10))
        for i in range(40)
    ]
    records.append((plain_event("id-3", _at(0, 9), amount="3.25"), _at(0, 20)))  # a re-send
    records.append((b"{not json", _at(1, 21)))  # quarantined
    plain.produce(records)
    plain.land(_day(0), _day(1))

    local = plain.silver(_day(0), _day(1))
    assert local.success, local.all_events

    namespace = f"silver_c_{uuid.uuid4().hex[:8]}"
    cluster_settings, environ = _cluster_settings(plain, cluster_environment, namespace)
    done = subprocess.run(
        [sys.executable, "-c", CLUSTER_RUN],
        input=json.dumps(
            {
                "dataset": plain.name,
                "first": _day(0),
                "last": _day(1),
                "worker_ports": cluster.worker_webui_ports(),
            }
        ),
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if not out["success"]:
        pytest.fail("silver failed on the cluster:\n" + "\n".join(out["failure"]))
    assert out["master"] == cluster.master_url

    # Executors of this application ran on both workers; none of them is the driver.
    executors = out["executors"]
    assert {e["worker_port"] for e in executors} == set(cluster.worker_webui_ports())
    assert executors
    assert all(e["id"] != "driver" for e in executors)
    # Python tasks ran in those executors' directories, on the project's code from the
    # shipped zip, with the credentials in their environment and nothing of ours else.
    work = cluster.data_dir / "work"
    secret = environ["AWS_SECRET_ACCESS_KEY"]
    for task in out["tasks"]:
        cwd = Path(task["cwd"])
        assert cwd.parent.name == out["app_id"], task
        assert cwd.is_relative_to(work), task
        assert cwd.name in {e["id"] for e in executors}
        assert "/lakehouse-py-" in task["module"], task
        assert ".zip/lakehouse_assets/" in task["module"], task
        assert task["secret_sha"] == hashlib.sha256(secret.encode()).hexdigest()
        assert task["lakehouse_env"] == []
        assert task["python"] == sys.executable
    assert len({t["cwd"] for t in out["tasks"]}) == 2
    assert out["secret_on_command_lines"] == []
    logs = [*cluster.data_dir.glob("logs/*.log"), *work.glob("*/*/std*")]
    assert logs
    assert not [log for log in logs if secret.encode() in log.read_bytes()]
    conf = out["conf"]
    assert "lakehouse-py-" in conf["spark.submit.pyFiles"]
    assert conf["spark.driver.host"] == "127.0.0.1"

    # The same tables as in local mode.
    catalog = plain.resources["iceberg"].load()
    for table in ("plain", "plain_quarantine"):
        here = catalog.load_table((plain.settings.namespace("silver"), table)).scan().to_arrow()
        there = catalog.load_table((namespace, table)).scan().to_arrow()
        assert here.num_rows > 0 or table == "plain_quarantine"
        assert here.schema == there.schema, table
        assert _sorted(here) == _sorted(there), table
    assert cluster_settings.spark.master == cluster.master_url
