"""Kafka clients (confluent-kafka / librdkafka) configured from the project settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from resources.errors import ServiceUnreachableError

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer
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
