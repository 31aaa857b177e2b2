"""One bronze asset per Kafka-fed dataset, made by a factory from the dataset's config
(HTTP datasets: :mod:`lakehouse_assets.bronze.http_assets`)."""

# No `from __future__ import annotations`: Dagster reads these functions' parameter
# annotations at definition time to find config and resource types.
import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import dagster as dg
from pydantic import Field

from lakehouse_assets.bronze.landing import (
    BRONZE_SCHEMA,
    day_ranges,
    landed_files,
    plan_files,
)
from lakehouse_assets.partitions import daily_partitions
from resources.kafka.client import KafkaResource, TopicReader
from resources.s3.parquet_store import LandedFile, Landing, ParquetStore
from resources.settings import LakehouseSettings

LANDING_TAG = "lakehouse/landing"


class LandingConfig(dg.Config):
    """How a bronze run treats the days it is asked for."""

    mode: Literal["replace", "append"] = Field(
        default="replace",
        description=(
            "replace: re-read each day's offsets from Kafka and make the day exactly that "
            "(backfills, re-materialisations). append: land only offsets of the day not landed "
            "yet (what the Kafka arrivals sensor requests)."
        ),
    )


def bronze_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(["bronze", dataset])


def kafka_topic_key(topic: str) -> dg.AssetKey:
    """The asset key of a Kafka topic, a source that bronze lands (``kafka/<topic>``)."""
    return dg.AssetKey(["kafka", topic])


def build_kafka_topic_spec(settings: LakehouseSettings, dataset: str) -> dg.AssetSpec:
    """The dataset's Kafka topic as an external asset: a node of the lineage, never run.

    Its ``dagster/uri`` (``kafka://<first bootstrap server>/<topic>``) names it as
    OpenLineage does: namespace ``kafka://host:port``, name the topic.
    """
    topic = settings.dataset(dataset).kafka_topic
    broker = settings.kafka.bootstrap_servers.split(",")[0].strip()
    return dg.AssetSpec(
        key=kafka_topic_key(topic),
        group_name="bronze",
        description=f"Kafka topic `{topic}`, the source of `bronze/{dataset}`.",
        kinds={"kafka"},
        metadata={"kafka_topic": topic, "dagster/uri": f"kafka://{broker}/{topic}"},
    )


def landing_run_config(dataset: str, mode: Literal["replace", "append"]) -> dict[str, object]:
    """Run config that sets the landing mode of a dataset's bronze asset."""
    return {"ops": {bronze_key(dataset).to_python_identifier(): {"config": {"mode": mode}}}}


def build_bronze_asset(settings: LakehouseSettings, dataset: str) -> dg.AssetsDefinition:
    """The bronze asset of ``dataset``: its Kafka topic landed byte-for-byte, by day."""
    spec = settings.dataset(dataset)
    topic = spec.kafka_topic

    @dg.asset(
        key=bronze_key(dataset),
        deps=[kafka_topic_key(topic)],
        group_name="bronze",
        description=(
            f"Records of Kafka topic `{topic}` exactly as received (value and key as bytes, "
            "headers, coordinates, load run and time), one daily partition per UTC day of the "
            "Kafka timestamp. " + spec.description
        ),
        partitions_def=daily_partitions(settings, dataset),
        backfill_policy=dg.BackfillPolicy.single_run(),
        io_manager_key="bronze_io_manager",
        kinds={"kafka", "s3", "parquet"},
        pool=f"bronze_{dataset}",
        metadata={"kafka_topic": topic, "dagster/uri": settings.bronze_uri(dataset)},
        op_tags={LANDING_TAG: dataset},
    )
    def _bronze(
        context: dg.AssetExecutionContext,
        config: LandingConfig,
        kafka: KafkaResource,
        bronze_store: ParquetStore,
    ) -> Landing:
        days = context.partition_keys
        reader = TopicReader(kafka, topic, group_id=f"lakehouse-bronze-{dataset}")
        try:
            ranges = day_ranges(reader, days)
            landed = bronze_store.landed_days(dataset, days)
            plans = [
                (r.day, item)
                for r in ranges
                for item in plan_files(r, topic, config.mode, landed[r.day])
            ]
        except BaseException:
            reader.close()
            raise
        context.log.info(
            f"{config.mode} {len(days)} day(s) of {topic}: {len(plans)} range(s), "
            f"{sum(p.count for _, p in plans)} offsets"
        )
        return Landing(
            mode=config.mode,
            partition_keys=list(days),
            schema=BRONZE_SCHEMA,
            files=_closing(
                reader, landed_files(reader, plans, context.run.run_id, datetime.now(UTC))
            ),
            source_metadata={
                "kafka_topic": topic,
                "source_offsets": {
                    r.day: {str(p): [start, end] for p, (start, end) in r.bounds.items()}
                    for r in ranges
                },
            },
        )

    return _bronze


def _closing(reader: TopicReader, files: Iterator[LandedFile]) -> Iterator[LandedFile]:
    """Land the files with the cyclic garbage collector paused, then close the consumer.

    Landing allocates millions of short-lived objects (Kafka messages, their bytes,
    the lists that become Arrow arrays) and none of them form reference cycles, so
    reference counting frees them all; the cyclic collector would only rescan them
    over and over (measured: 1.4x the landing throughput without it).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield from files
    finally:
        reader.close()
        if collecting:
            gc.enable()
