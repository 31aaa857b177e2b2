"""OpenLineage without services: dataset names, transports, the adapter's events."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.transport.file import FileTransport
from openlineage.client.transport.http import HttpTransport
from openlineage.client.transport.transport import Config, Transport

from resources.lineage.adapter import LakehouseLineageAdapter
from resources.lineage.datasets import Dataset, lakehouse_datasets, uri_dataset
from resources.lineage.transport import (
    OPENLINEAGE_SPARK_LISTENER,
    LineageConfigError,
    lineage_client,
    lineage_transport,
    spark_listener_conf,
    spark_listener_secrets,
)
from resources.settings import load_settings
from resources.spark.conf import is_secret, launch_conf

KAFKA = dg.AssetKey(["kafka", "plain-events"])
BRONZE = dg.AssetKey(["bronze", "plain"])
SILVER = dg.AssetKey(["silver", "plain"])
GOLD = dg.AssetKey(["gold", "plain_daily_totals"])
RUN_ID = "0b9c4f5e-7d1a-4a57-9a3e-2f1d7c6b8e90"  # Dagster run ids are UUIDs, as OpenLineage's


class _Collected(Transport):
    """Keeps the events it is given."""

    kind = "collected"
    config_class = Config

    def __init__(self) -> None:
        self.events: list[Any] = []

    def emit(self, event: Any) -> None:
        self.events.append(event)


def _specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(KAFKA, metadata={"dagster/uri": "kafka://127.0.0.1:19092/plain-events"}),
        dg.AssetSpec(BRONZE, deps=[KAFKA], metadata={"dagster/uri": "s3://lakehouse/bronze/plain"}),
        dg.AssetSpec(SILVER, deps=[BRONZE]),
        dg.AssetSpec(GOLD, deps=[SILVER]),
    ]


def _datasets(locations: dict[tuple[str, str], str] | None = None) -> Any:
    return lakehouse_datasets(
        _specs(),
        job_namespace="lakehouse",
        iceberg_namespaces={"silver": "silver", "gold": "gold"},
        catalog_name="lakehouse",
        warehouse="s3://lakehouse/warehouse",
        table_location=lambda ns, table: (locations or {}).get((ns, table)),
    )


def test_storage_uris_are_named_as_openlineage_names_them() -> None:
    assert uri_dataset("kafka://broker:9092/orders") == Dataset("kafka://broker:9092", "orders")
    assert uri_dataset("s3a://bucket/bronze/plain/") == Dataset("s3://bucket", "bronze/plain")
    assert uri_dataset("file:/tmp/x/") == Dataset("file", "/tmp/x")


def test_iceberg_tables_are_named_by_their_catalog_location_with_a_table_symlink() -> None:
    datasets = _datasets({("silver", "plain"): "s3://lakehouse/warehouse/silver.db/plain"})
    assert datasets.dataset(SILVER) == Dataset(
        "s3://lakehouse", "warehouse/silver.db/plain", ("iceberg://lakehouse", "silver.plain")
    )
    # A table not created yet: where Iceberg's Spark catalogs put it.
    assert datasets.dataset(GOLD).name == "warehouse/gold/plain_daily_totals"
    # What a materialisation reports wins, and is kept.
    reported = "s3://lakehouse/warehouse/gold/plain_daily_totals-1a2b"
    assert datasets.dataset(GOLD, reported).name.endswith("-1a2b")
    assert datasets.dataset(GOLD).name.endswith("-1a2b")
    assert datasets.dataset(dg.AssetKey(["maintenance", "silver", "plain"])) == Dataset(
        "lakehouse", "maintenance/silver/plain"
    )


def test_a_materialisation_event_names_its_inputs_and_carries_schema_and_column_lineage() -> None:
    transport = _Collected()
    adapter = LakehouseLineageAdapter(
        _datasets(), OpenLineageClient(transport=transport), timeout=1.0
    )
    schema = dg.TableSchema(columns=[dg.TableColumn("total_amount", "decimal(28,2)")])
    lineage = dg.TableColumnLineage(
        deps_by_column={"total_amount": [dg.TableColumnDep(SILVER, "amount")]}
    )
    adapter.asset_materialization(
        GOLD,
        RUN_ID,
        1_700_000_000.0,
        metadata={
            "dagster/column_schema": dg.MetadataValue.table_schema(schema),
            "dagster/column_lineage": dg.MetadataValue.column_lineage(lineage),
            "dagster/row_count": dg.MetadataValue.int(3),
        },
        partition_key="2026-11-10",
    )
    (event,) = transport.events
    assert event.eventType.value == "COMPLETE"
    assert event.job.name == "gold/plain_daily_totals"
    assert [(d.namespace, d.name) for d in event.inputs] == [
        ("s3://lakehouse", "warehouse/silver/plain")
    ]
    (output,) = event.outputs
    assert output.name == "warehouse/gold/plain_daily_totals"
    assert [f.name for f in output.facets["schema"].fields] == ["total_amount"]
    (source,) = output.facets["columnLineage"].fields["total_amount"].inputFields
    assert (source.name, source.field) == ("warehouse/silver/plain", "amount")
    assert output.outputFacets["outputStatistics"].rowCount == 3
    assert event.run.facets["nominalTime"].nominalStartTime.startswith("2026-11-10T00:00")


def test_check_results_become_data_quality_assertions_on_the_checked_dataset() -> None:
    transport = _Collected()
    adapter = LakehouseLineageAdapter(
        _datasets(), OpenLineageClient(transport=transport), timeout=1.0
    )
    evaluation = dg.AssetCheckEvaluation(asset_key=BRONZE, check_name="not_empty", passed=False)
    adapter.asset_check_evaluation(BRONZE, [evaluation], RUN_ID, 1_700_000_000.0)
    (event,) = transport.events
    (checked,) = event.inputs
    assert (checked.namespace, checked.name) == ("s3://lakehouse", "bronze/plain")
    (assertion,) = checked.inputFacets["dataQualityAssertions"].assertions
    assert (assertion.assertion, assertion.success) == ("not_empty", False)


def test_the_file_transport_writes_under_the_lineage_directory(tmp_path: Path) -> None:
    settings = load_settings(
        "local", environ={"LAKEHOUSE__LINEAGE__FILE_DIR": str(tmp_path / "events")}
    )
    transport = lineage_transport(settings)
    assert isinstance(transport, FileTransport)
    assert transport.config.log_file_path == str(tmp_path / "events" / "dagster.jsonl")
    conf = spark_listener_conf(settings)
    assert conf["spark.extraListeners"] == OPENLINEAGE_SPARK_LISTENER
    assert conf["spark.openlineage.transport.location"] == str(tmp_path / "events" / "spark.jsonl")


def test_an_http_receiver_gets_the_api_key_from_its_variable_and_never_a_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OL_KEY", "s3cr3t")
    settings = load_settings(
        "local",
        environ={
            "LAKEHOUSE__LINEAGE__TRANSPORT": "http",
            "LAKEHOUSE__LINEAGE__URL": "http://127.0.0.1:5000",
            "LAKEHOUSE__LINEAGE__API_KEY_ENV": "OL_KEY",
        },
    )
    transport = lineage_transport(settings)
    assert isinstance(transport, HttpTransport)
    assert transport.url == "http://127.0.0.1:5000"
    conf = {**spark_listener_conf(settings), **spark_listener_secrets("OL_KEY")}
    assert conf["spark.openlineage.transport.url"] == "http://127.0.0.1:5000"
    assert conf["spark.openlineage.transport.auth.apiKey"] == "s3cr3t"
    assert is_secret("spark.openlineage.transport.auth.apiKey")
    assert "s3cr3t" not in launch_conf(conf).values()
    assert "s3cr3t" not in str(settings.lineage)


def test_http_without_a_url_names_the_key_to_set() -> None:
    settings = load_settings("local", environ={"LAKEHOUSE__LINEAGE__TRANSPORT": "http"})
    with pytest.raises(LineageConfigError, match="LAKEHOUSE__LINEAGE__URL"):
        lineage_transport(settings)
    assert spark_listener_conf(settings) == {}


def test_lineage_off_attaches_no_listener() -> None:
    settings = load_settings("local", environ={"LAKEHOUSE__LINEAGE__ENABLED": "false"})
    assert spark_listener_conf(settings) == {}


def test_events_reach_an_http_receiver_with_the_api_key_as_bearer_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[tuple[str, str | None, dict[str, Any]]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("Authorization"), json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OL_KEY", "s3cr3t")
        settings = load_settings(
            "local",
            environ={
                "LAKEHOUSE__LINEAGE__TRANSPORT": "http",
                "LAKEHOUSE__LINEAGE__URL": f"http://127.0.0.1:{server.server_port}",
                "LAKEHOUSE__LINEAGE__API_KEY_ENV": "OL_KEY",
            },
        )
        adapter = LakehouseLineageAdapter(_datasets(), lineage_client(settings), timeout=5.0)
        adapter.asset_materialization(BRONZE, RUN_ID, 1_700_000_000.0)
    finally:
        server.shutdown()
    ((path, auth, event),) = received
    assert (path, auth) == ("/api/v1/lineage", "Bearer s3cr3t")
    assert event["outputs"][0]["name"] == "bronze/plain"
    assert event["inputs"][0]["namespace"] == "kafka://127.0.0.1:19092"
