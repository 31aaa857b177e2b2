"""Kafka clients (confluent-kafka / librdkafka) configured from the project settings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
from pydantic import Field

from resources.errors import ServiceUnreachableError

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, Producer
    from confluent_kafka.admin import AdminClient, ClusterMetadata


class KafkaResource(dg.ConfigurableResource):
    """A Kafka cluster: producers, consumers and the admin client share one configuration.

    Consumers are created with auto-commit off: the lakehouse records landed offsets
    in the sink itself, so Kafka's group offsets are informational only.
    """

    bootstrap_servers: str = Field(
        description="Comma-separated host:port list (`kafka.bootstrap_servers`)."
    )
    security_protocol: str = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str | None = Field(default=None, description="e.g. SCRAM-SHA-512.")
    sasl_username: str | None = Field(
        default=None, description="SASL user; set through an environment variable."
    )
    sasl_password: str | None = Field(
        default=None, description="SASL password; set through an environment variable."
    )
    client_id: str = Field(default="lakehouse", description="client.id seen by the brokers.")
    consumer_config: dict[str, Any] = Field(
        default_factory=dict, description="Extra librdkafka consumer settings (`kafka.consumer`)."
    )
    producer_config: dict[str, Any] = Field(
        default_factory=dict, description="Extra librdkafka producer settings (`kafka.producer`)."
    )
    timeout_seconds: float = Field(
        default=10.0,
        description="How long metadata requests wait before the broker counts as down.",
    )

    def client_config(self) -> dict[str, Any]:
        """Settings common to every client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password
        return config

    def producer(self, **overrides: Any) -> Producer:
        """An idempotent producer (acks=all), so retries never duplicate records."""
        from confluent_kafka import Producer

        config = {
            **self.client_config(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "zstd",
            **self.producer_config,
            **overrides,
        }
        return Producer(config)

    def consumer(self, group_id: str, **overrides: Any) -> Consumer:
        """A consumer that never commits offsets by itself."""
        from confluent_kafka import Consumer

        config = {
            **self.client_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            **self.consumer_config,
            **overrides,
        }
        return Consumer(config)

    def admin(self) -> AdminClient:
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.client_config())

    def cluster_metadata(self, topic: str | None = None) -> ClusterMetadata:
        """Broker and topic metadata; raises :class:`ServiceUnreachableError` if no broker answers."""
        from confluent_kafka import KafkaException

        try:
            return self.admin().list_topics(topic=topic, timeout=self.timeout_seconds)
        except KafkaException as exc:
            raise ServiceUnreachableError(
                "Kafka", self.bootstrap_servers, "kafka.bootstrap_servers", str(exc.args[0])
            ) from None

    def check_reachable(self) -> None:
        self.cluster_metadata()

    def partitions_of(self, topic: str) -> list[int]:
        """Partition ids of ``topic``; a missing topic is a named error, not an empty list."""
        metadata = self.cluster_metadata(topic)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            reason = described.error.str() if described is not None and described.error else ""
            raise LookupError(
                f"Kafka topic {topic!r} does not exist on {self.bootstrap_servers}"
                + (f" ({reason})" if reason else "")
            )
        return sorted(described.partitions)


class TopicReader:
    """Reads exact offset ranges of one topic; answers offset questions without consuming.

    Offsets are assigned explicitly (no consumer-group subscription, no commits):
    the lakehouse decides what to read from what has landed, never from Kafka's
    group state.
    """

    def __init__(
        self, kafka: KafkaResource, topic: str, group_id: str = "lakehouse-reader"
    ) -> None:
        self.topic = topic
        self.partitions = kafka.partitions_of(topic)
        self._timeout = kafka.timeout_seconds
        self._address = kafka.bootstrap_servers
        self._consumer = kafka.consumer(
            group_id=group_id,
            **{"enable.partition.eof": False, "fetch.max.bytes": 64 * 1024 * 1024},
        )

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def _fail(self, what: str, exc: Exception) -> ServiceUnreachableError:
        return ServiceUnreachableError(
            "Kafka", self._address, "kafka.bootstrap_servers", f"{what} of {self.topic!r}: {exc}"
        )

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """(low, high) per partition: the first retained offset and one past the last."""
        from confluent_kafka import KafkaException, TopicPartition

        result = {}
        for partition in self.partitions:
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=self._timeout, cached=False
                )
            except KafkaException as exc:
                raise self._fail("watermarks", exc) from None
            result[partition] = (low, high)
        return result

    def offsets_at(self, timestamp_ms: int, highs: dict[int, int]) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is >= ``timestamp_ms``.

        Where no record is that late yet, the partition's high watermark (from
        ``highs``) is returned: the boundary lies beyond what exists.
        """
        from confluent_kafka import KafkaException, TopicPartition

        query = [TopicPartition(self.topic, p, timestamp_ms) for p in self.partitions]
        try:
            answers = self._consumer.offsets_for_times(query, timeout=self._timeout)
        except KafkaException as exc:
            raise self._fail("offsets_for_times", exc) from None
        result = {}
        for answer in answers:
            if answer.error is not None:
                raise self._fail("offsets_for_times", Exception(answer.error))
            result[answer.partition] = (
                answer.offset if answer.offset >= 0 else highs[answer.partition]
            )
        return result

    def read(
        self, partition: int, first: int, last: int, batch_size: int = 10_000
    ) -> Iterator[list[Message]]:
        """Every record with offset ``first..last`` of one partition, in batches.

        Offsets without a record (transaction markers, compacted records) are
        skipped; the read ends once the consumer's position passes ``last``.
        """
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        tp = TopicPartition(self.topic, partition, first)
        self._consumer.assign([tp])
        position = first
        idle_since = time.monotonic()
        try:
            while position <= last:
                # Never ask for more than the range still holds: consume() waits for a
                # full batch (up to its timeout) at the end of the log.
                wanted = max(1, min(batch_size, last - position + 1))
                messages = self._consumer.consume(num_messages=wanted, timeout=1.0)
                batch = []
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(error)
                    offset = cast(int, message.offset())  # set on every record
                    if offset > last:
                        position = offset
                        break
                    batch.append(message)
                    position = offset + 1
                if batch:
                    idle_since = time.monotonic()
                    yield batch
                    continue
                if position <= last:
                    # No record arrived: either control records fill the rest of the
                    # range (the consumer's position moved on) or the broker stalls.
                    current = self._consumer.position([TopicPartition(self.topic, partition)])[0]
                    if current.offset > last:
                        break
                    if time.monotonic() - idle_since > max(30.0, 3 * self._timeout):
                        raise TimeoutError(
                            f"no record of {self.topic}[{partition}] at offset {position} "
                            f"(reading up to {last}) within {time.monotonic() - idle_since:.0f}s "
                            f"from {self._address}"
                        )
        except KafkaException as exc:
            raise self._fail(f"reading partition {partition}", exc) from None
        finally:
            self._consumer.unassign()
