"""Bronze -> silver -> gold on a real Spark standalone cluster: a master and 2 workers (1 core each).

The cluster is the local stack's own (``LAKEHOUSE__STACK__SPARK_CLUSTER=true``, started by
``LocalStack.start()`` beside the session's Kafka and S3 server, which that start finds
running), on free ports. A purchase-orders dataset of its own (5 days of generated events
with late, out-of-order, duplicate and malformed records) is landed once; silver and gold
are built from it once in local mode (the suite's session) and once on the cluster, in a
process of its own (a process holds one SparkContext) whose driver is a client of the
master. Every silver and gold table, the quarantine and every check's result must be
equal, row for row, and the work must have run on executors of both workers: their ids
(never ``driver``) in the workers' JSON endpoints, and Python tasks that ran inside those
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse_dev.generator.records import generate
from lakehouse_dev.generator.spec import KIND_DUPLICATE, KIND_LATE, KIND_OUT_OF_ORDER, GeneratorSpec
from lakehouse_dev.processes import pids_running
from lakehouse_dev.spark_cluster import SparkCluster
from lakehouse_dev.stack import LocalStack
from resources.settings import LakehouseSettings, load_settings
from tests.conftest import _free_port, _free_port_pair
from tests.integration.layers import build_layers
from tests.integration.test_silver import DAY, SilverDataset, _day, _make_dataset

pytestmark = pytest.mark.integration


#: Builds silver and gold on the cluster in a process of its own; prints what it saw as JSON.
CLUSTER_RUN = textwrap.dedent(
    """
    import json, os, sys, urllib.request
    from pyspark.sql import SparkSession
    from resources.settings import load_settings
    from tests.integration.layers import build_layers

    request = json.loads(sys.stdin.read())
    out = build_layers(load_settings(), request["dataset"], request["first"], request["last"])
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
    assert pids_running(f"{stack.spark_cluster.data_dir}/") == [], "a cluster process survived stop"
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


def _cluster_environment(
    orders: SilverDataset, cluster_environment: dict[str, str], suffix: str
) -> dict[str, str]:
    """The environment of the cluster's run: the same dataset, new silver and gold namespaces."""
    prefix = f"LAKEHOUSE__DATASETS__{orders.name.upper()}"
    environ = dict(cluster_environment)
    environ.update(
        {
            f"{prefix}__TOPIC": orders.topic,
            f"{prefix}__CONTRACT": "contracts/purchase_orders.yaml",
            f"{prefix}__START_DATE": _day(-5),
            f"{prefix}__LATE_WINDOW_DAYS": "3",
            "LAKEHOUSE__PARTITIONS__START_DATE": _day(-5),
            "LAKEHOUSE__CATALOG__NAMESPACES__SILVER": f"silver_c_{suffix}",
            "LAKEHOUSE__CATALOG__NAMESPACES__GOLD": f"gold_c_{suffix}",
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
    return environ


@pytest.fixture
def orders(stack: LocalStack, spark: Any, monkeypatch: pytest.MonkeyPatch) -> SilverDataset:
    """A purchase-orders dataset of its own, with gold in a namespace of its own."""
    monkeypatch.setenv("LAKEHOUSE__CATALOG__NAMESPACES__GOLD", f"gold_{uuid.uuid4().hex[:8]}")
    # Gold's days start with the dataset's, so silver and gold share a partitions definition.
    monkeypatch.setenv("LAKEHOUSE__PARTITIONS__START_DATE", _day(-5))
    return _make_dataset("contracts/purchase_orders.yaml")


def _tables(orders: SilverDataset, settings: LakehouseSettings) -> dict[str, pa.Table]:
    """Every table of ``settings``' silver and gold namespaces, by layer and name."""
    catalog = orders.resources["iceberg"].load()
    tables = {}
    for layer, namespace in (
        ("silver", settings.namespace("silver")),
        ("gold", settings.namespace("gold")),
    ):
        for identifier in catalog.list_tables(namespace):
            name = identifier[-1]
            tables[f"{layer}.{name}"] = catalog.load_table((namespace, name)).scan().to_arrow()
    return tables


def test_purchase_orders_on_the_cluster_equal_local_mode_and_run_on_the_workers(  # noqa: PLR0915 (one scenario)
    orders: SilverDataset, cluster: SparkCluster, cluster_environment: dict[str, str]
) -> None:
    spec = GeneratorSpec(count=1_500, days=5, end_date=DAY, seed=16)
    records = list(generate("purchase_orders", spec))
    kinds = {record.kind for record in records}
    assert {KIND_LATE, KIND_DUPLICATE, KIND_OUT_OF_ORDER} <= kinds
    assert any(record.is_malformed for record in records)
    orders.produce([(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)) for r in records])
    first, last = spec.first_day.isoformat(), DAY.isoformat()
    orders.land(first, last)

    local = build_layers(orders.settings, orders.name, first, last)
    assert local["failures"] == {}, local["failures"]

    environ = _cluster_environment(orders, cluster_environment, uuid.uuid4().hex[:8])
    done = subprocess.run(
        [sys.executable, "-c", CLUSTER_RUN],
        input=json.dumps(
            {
                "dataset": orders.name,
                "first": first,
                "last": last,
                "worker_ports": cluster.worker_webui_ports(),
            }
        ),
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if out["failures"]:
        pytest.fail(f"a run failed on the cluster: {json.dumps(out['failures'], indent=1)}")
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
    # The jars spark-submit resolved (Iceberg, S3A) are served to the executors.
    assert "iceberg-spark-runtime" in conf["spark.jars"]
    assert "hadoop-aws" in conf["spark.jars"]

    # Every check, the reconciliation included, gave the same result with the same figures
    # (tables named in metadata are in each run's own namespaces).
    cluster_settings = load_settings("local", environ=environ)
    renamed = {
        cluster_settings.namespace("silver"): orders.settings.namespace("silver"),
        cluster_settings.namespace("gold"): orders.settings.namespace("gold"),
    }

    def by_check(checks: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
        shown = []
        for check in checks:
            text = json.dumps(check, sort_keys=True)
            for theirs, ours in names.items():
                text = text.replace(f".{theirs}.", f".{ours}.")
            shown.append(text)
        return sorted(shown)

    reconciliation = [c for c in local["checks"] if c["name"] == "reconciliation"]
    assert reconciliation
    assert reconciliation[0]["passed"]
    assert reconciliation[0]["metadata"]["duplicates_removed"] > 0
    assert reconciliation[0]["metadata"]["quarantined"] > 0
    assert {"contract_schema", "contract_row_rules"} <= {c["name"] for c in local["checks"]}
    assert by_check(out["checks"], renamed) == by_check(local["checks"], {})

    # Every silver and gold table, the quarantine included, is equal row for row.
    here = _tables(orders, orders.settings)
    there = _tables(orders, cluster_settings)
    assert set(here) == set(there)
    assert {"silver.orders", "gold.fct_daily_sales", "gold.dim_customers"} <= set(here)
    quarantine = [name for name in here if name.endswith("_quarantine")]
    assert len(quarantine) == 1
    assert here[quarantine[0]].num_rows > 0
    for name, table in here.items():
        assert table.schema == there[name].schema, name
        assert table.num_rows == there[name].num_rows, name
        assert _sorted(table) == _sorted(there[name]), name
    assert here["gold.fct_daily_sales"].num_rows > 0
