"""Helpers for integration tests: a fresh dataset and topic per test, landing, reading back."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from confluent_kafka.admin import NewTopic

from lakehouse_assets.bronze.assets import build_bronze_asset, landing_run_config
from lakehouse_dev.stack import LocalStack
from resources.environments import build_resources
from resources.iceberg.io_manager import IcebergIOManager
from resources.s3.parquet_store import ParquetStore
from resources.settings import PROJECT_ROOT, LakehouseSettings, load_settings

#: Kafka record as the tests produce it: key, value, timestamp, headers.
Record = tuple[bytes | None, bytes | None, datetime, list[tuple[str, bytes]] | None]


@dataclass
class BronzeDataset:
    """A dataset of its own (own topic, own bronze prefix) for one test."""

    name: str
    topic: str
    settings: LakehouseSettings
    partitions: int

    @property
    def resources(self) -> dict[str, Any]:
        return build_resources(self.settings)

    @property
    def store(self) -> ParquetStore:
        return self.resources["bronze_store"]

    def produce(self, records: Iterable[Record], partition: int | None = None) -> None:
        producer = self.resources["kafka"].producer(**{"message.max.bytes": 16 * 1024 * 1024})
        for key, value, stamp, headers in records:
            kwargs: dict[str, Any] = {"timestamp": int(stamp.timestamp() * 1000)}
            if partition is not None:
                kwargs["partition"] = partition
            producer.produce(self.topic, key=key, value=value, headers=headers, **kwargs)
        assert producer.flush(60) == 0

    def asset(self) -> dg.AssetsDefinition:
        return build_bronze_asset(self.settings, self.name)

    def land(
        self, days: Sequence[str], mode: str = "replace", raise_on_error: bool = True
    ) -> dg.ExecuteInProcessResult:
        """Materialise the bronze asset for ``days`` in one run (a single-run backfill)."""
        # A range runs as one run, as a single-run backfill launched from the UI does.
        return dg.materialize(
            [self.asset()],
            resources=self.resources,
            run_config=landing_run_config(self.name, mode),  # type: ignore[arg-type]
            raise_on_error=raise_on_error,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )

    def read(self, days: Sequence[str]) -> pa.Table:
        batches = list(self.store.read_batches(self.name, days))
        return pa.Table.from_batches(batches) if batches else pa.table({})

    def files(self, day: str) -> list[str]:
        return sorted(r.file_name for r in self.store.landed(self.name, day))


def plain_contract_for(name: str, directory: Path) -> Path:
    """A copy of ``contracts/plain.yaml`` for dataset ``name``, as a user starts a new one.

    The dataset and its silver table take the new name, so the copy's assets do not
    collide with the ``plain`` dataset's in the project's definitions.
    """
    text = (PROJECT_ROOT / "contracts" / "plain.yaml").read_text()
    text = re.sub(
        r"^(id: urn:lakehouse:contract:|name: )plain\b", rf"\g<1>{name}", text, flags=re.M
    )
    text = re.sub(r"^(  - name: )plain$", rf"\g<1>{name}", text, flags=re.M)
    text = re.sub(r"^(    element: )plain\.", rf"\g<1>{name}.", text, flags=re.M)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def workspace_environment(dataset: BronzeDataset, directory: Path) -> dict[str, str]:
    """The environment under which the project's workspace also holds ``dataset``.

    Settings and a contract, exactly what a user adds for a new dataset (see the
    README's "Adding a dataset"), given as variable overrides instead of file edits.
    """
    prefix = f"LAKEHOUSE__DATASETS__{dataset.name.upper()}"
    env = dict(os.environ)
    env[f"{prefix}__TOPIC"] = dataset.topic
    env[f"{prefix}__CONTRACT"] = str(plain_contract_for(dataset.name, directory))
    return env


def dataset_settings(name: str, topic: str) -> LakehouseSettings:
    environ = dict(os.environ)
    environ[f"LAKEHOUSE__DATASETS__{name.upper()}__TOPIC"] = topic
    return load_settings("local", environ=environ)


@pytest.fixture
def bronze_dataset(stack: LocalStack) -> BronzeDataset:
    """A new dataset with a 3-partition topic, configured the way a user would add one."""
    suffix = uuid.uuid4().hex[:8]
    name, topic = f"t_{suffix}", f"test-{suffix}"
    settings = dataset_settings(name, topic)
    admin = build_resources(settings)["kafka"].admin()
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    return BronzeDataset(name=name, topic=topic, settings=settings, partitions=3)


@pytest.fixture
def io_manager(resources: Any, settings: LakehouseSettings) -> IcebergIOManager:
    """The Iceberg IO manager on the session's catalog, retrying conflicts without delay."""
    return IcebergIOManager(
        catalog=resources.iceberg,
        namespaces={str(k): v for k, v in settings.catalog.namespaces.items()},
        retry_base_seconds=0.01,
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The failed step's error with its causes, as a person reads it in the run's logs."""
    events = result.get_step_failure_events()
    assert events, "the run did not fail in a step"
    error = events[0].step_failure_data.error
    assert error is not None
    return error.to_string()


def metadata_value(result: dg.ExecuteInProcessResult, node: str, key: str) -> Any:
    """A metadata value of the run's (first) materialisation of ``node``."""
    return result.asset_materializations_for_node(node)[0].metadata[key].value
