"""Lineage end to end: a day of Kafka records through every layer, read back as OpenLineage.

Bronze, silver and gold of the ``plain`` dataset run (on its own topic, bronze prefix
and silver and gold namespaces) into a Dagster instance of the test's own; then the
``openlineage`` sensor is evaluated as the daemon evaluates it (``dagster sensor
preview`` loads the code location and evaluates the sensor in a code server) and
writes its events with the file transport. The graph rebuilt from those events alone
must hold every edge of the asset graph, named as OpenLineage names the datasets.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from confluent_kafka.admin import NewTopic

from lakehouse_assets.bronze.assets import (
    build_bronze_asset,
    build_kafka_topic_spec,
    landing_run_config,
)
from lakehouse_assets.gold.assets import build_gold_assets
from lakehouse_assets.silver.assets import build_silver_asset
from lakehouse_dev.stack import LocalStack
from resources.config_sections import Layer
from resources.dbt.project import dbt_project
from resources.environments import build_resources
from resources.lineage.sensor import SENSOR_NAME
from resources.lineage.transport import DAGSTER_EVENTS_FILE, SPARK_EVENTS_FILE
from resources.settings import PROJECT_ROOT, LakehouseSettings, load_settings
from tests.integration.test_silver import _at, _day, plain_event

DATASET = "plain"


@pytest.fixture
def lineage_env(
    stack: LocalStack, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The ``plain`` dataset on a topic, bronze prefix and namespaces of this test only.

    The dataset keeps its name, so gold's ``plain_daily_totals`` reads it, in this process
    and in the sensor's. Runs go to an instance of the test's own, whose event log the
    sensor reads from the start.
    """
    suffix = uuid.uuid4().hex[:8]
    overrides = {
        "LAKEHOUSE__DATASETS__PLAIN__TOPIC": f"lineage-{suffix}",
        "LAKEHOUSE__STORAGE__BRONZE_PREFIX": f"bronze_{suffix}",
        "LAKEHOUSE__CATALOG__NAMESPACES__SILVER": f"silver_{suffix}",
        "LAKEHOUSE__CATALOG__NAMESPACES__GOLD": f"gold_{suffix}",
        # Gold's days start with the dataset's, so both run over the same partitions.
        "LAKEHOUSE__PARTITIONS__START_DATE": _day(-5),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", tmp_path / "dagster_home")
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    settings = load_settings("local")
    admin = build_resources(settings)["kafka"].admin()
    topic = settings.dataset(DATASET).kafka_topic
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    return dict(os.environ)


def _run_every_layer(settings: LakehouseSettings, instance: dg.DagsterInstance) -> None:
    """Bronze, silver, then gold's models over silver, for one day, as single runs."""
    resources = build_resources(settings)
    producer = resources["kafka"].producer()
    topic = settings.dataset(DATASET).kafka_topic
    for i in range(5):
        event = plain_event(f"e{i}", _at(0, 10, i), amount=f"{i + 1}.25")
        producer.produce(topic, value=json.dumps(event).encode(), timestamp=_ms(_at(0, 11)))
    assert producer.flush(60) == 0
    day = {
        "dagster/asset_partition_range_start": _day(0),
        "dagster/asset_partition_range_end": _day(0),
    }
    bronze = build_bronze_asset(settings, DATASET)
    silver = build_silver_asset(settings, DATASET)
    gold = [a for a in build_gold_assets(settings, dbt_project(settings)) if a.partitions_def]
    below = dg.AssetSelection.assets(*silver.keys)
    for assets, selection, config in (
        ([bronze], None, landing_run_config(DATASET, "replace")),
        ([silver], None, None),
        ([*gold, silver], below.downstream() - below, None),
    ):
        result = dg.materialize(
            assets,
            selection=selection,
            resources=resources,
            run_config=config,
            tags=day,
            instance=instance,
        )
        assert result.success


def _ms(when: Any) -> int:
    return int(when.timestamp() * 1000)


def _preview_sensor(environ: dict[str, str], events_dir: Path) -> str:
    """Evaluate the ``openlineage`` sensor once, as the daemon does, in a new process."""
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "sensor",
        "preview",
        SENSOR_NAME,
        "-m",
        "lakehouse_assets.definitions",
    ]
    env = {**environ, "LAKEHOUSE__LINEAGE__FILE_DIR": str(events_dir)}
    done = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _edges(events: list[dict[str, Any]]) -> set[tuple[tuple[str, str], tuple[str, str]]]:
    """(input, output) dataset identities of every completed asset event."""
    return {
        ((source["namespace"], source["name"]), (target["namespace"], target["name"]))
        for event in events
        if event["eventType"] == "COMPLETE"
        for source in event.get("inputs", [])
        for target in event.get("outputs", [])
    }


def _identity(settings: LakehouseSettings, key: dg.AssetKey) -> tuple[str, str]:
    """The OpenLineage (namespace, name) a lakehouse asset must have, from first principles."""
    bucket = settings.storage.bucket
    if key.path[0] == "kafka":
        return f"kafka://{settings.kafka.bootstrap_servers.split(',')[0]}", key.path[1]
    if key.path[0] == "bronze":
        return f"s3://{bucket}", f"{settings.storage.bronze_prefix}/{key.path[1]}"
    catalog = build_resources(settings)["iceberg"]
    with dg.build_resources({"iceberg": catalog}) as built:
        layer: Layer = "silver" if key.path[0] == "silver" else "gold"
        table = built.iceberg.load().load_table((settings.namespace(layer), key.path[1]))
    location = table.location()
    assert location.startswith(f"s3://{bucket}/")
    return f"s3://{bucket}", location.removeprefix(f"s3://{bucket}/").strip("/")


def test_openlineage_events_rebuild_the_graph_from_topic_to_gold(
    lineage_env: dict[str, str], tmp_path: Path
) -> None:
    settings = load_settings("local")
    with dg.DagsterInstance.get() as instance:
        _run_every_layer(settings, instance)

    events_dir = tmp_path / "lineage"
    output = _preview_sensor(lineage_env, events_dir)
    emitted = events_dir / DAGSTER_EVENTS_FILE
    assert emitted.is_file(), f"the sensor emitted nothing:\n{output}"
    events = _read(emitted)

    # Every edge of the asset graph among what ran, Kafka topic first.
    topic = build_kafka_topic_spec(settings, DATASET).key
    bronze = dg.AssetKey(["bronze", DATASET])
    silver = build_silver_asset(settings, DATASET)
    gold = dg.AssetKey(["gold", "plain_daily_totals"])
    expected = {(topic, bronze)}
    expected |= {(bronze, key) for key in silver.keys}
    expected.add((dg.AssetKey(["silver", "plain"]), gold))
    identities = {key: _identity(settings, key) for pair in expected for key in pair}
    missing = {
        (a.to_user_string(), b.to_user_string())
        for a, b in expected
        if (identities[a], identities[b]) not in _edges(events)
    }
    assert not missing, f"edges missing from the OpenLineage events: {sorted(missing)}"

    # Bronze, silver and gold outputs carry their schema; silver's checks their outcome.
    outputs = {
        (d["namespace"], d["name"]): d
        for e in events
        if e["eventType"] == "COMPLETE"
        for d in e.get("outputs", [])
    }
    for key in (bronze, *silver.keys, gold):
        facets = outputs[identities[key]]["facets"]
        assert facets["schema"]["fields"], f"{key.to_user_string()} has no schema facet"
    assert {"name", "total_amount"} <= {
        f["name"] for f in outputs[identities[gold]]["facets"]["schema"]["fields"]
    }
    # Gold's column lineage (dbt's): each total from silver's column, by its identity.
    lineage = outputs[identities[gold]]["facets"]["columnLineage"]["fields"]
    silver_plain = identities[dg.AssetKey(["silver", "plain"])]
    assert [
        (f["namespace"], f["name"], f["field"]) for f in lineage["total_amount"]["inputFields"]
    ] == [(*silver_plain, "amount")]
    assertions = [
        a
        for e in events
        for d in e.get("inputs", [])
        if d["name"] == identities[dg.AssetKey(["silver", "plain"])][1]
        for a in d.get("inputFacets", {}).get("dataQualityAssertions", {}).get("assertions", [])
    ]
    assert assertions, "no dataQualityAssertions facet for silver/plain's checks"
    assert all(a["success"] for a in assertions)

    # Spark's listener reported the run's Spark jobs; where it names their datasets, they
    # are the very identities above (Iceberg tables by location).
    spark_events = _read(settings.lineage_dir / SPARK_EVENTS_FILE)
    namespace = settings.namespace("silver")
    ours = [e for e in spark_events if namespace in e["job"]["name"]]
    assert any(e["eventType"] == "COMPLETE" for e in ours)
    known = set(identities.values())
    for event in ours:
        for dataset in event.get("outputs", []):
            if dataset["name"].endswith(f"/{namespace}/plain"):
                assert (dataset["namespace"], dataset["name"]) in known
