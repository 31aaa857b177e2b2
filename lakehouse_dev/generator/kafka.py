"""Producing generated records to Kafka, with delivery reports checked."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lakehouse_dev.generator.spec import (
    GeneratedRecord,
)

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message, Producer


CLIENT_LOG: Final = logging.getLogger("lakehouse_dev.generator.kafka_client")
"""librdkafka's own log lines (a refused connection is logged every few
milliseconds); :class:`ProduceError` carries what matters."""


class ProduceError(RuntimeError):
    """Records could not be delivered; the message names the topic and the broker."""


@dataclass(frozen=True)
class ProduceResult:
    """What :func:`produce` delivered (acknowledged by all in-sync replicas)."""

    topic: str
    bootstrap_servers: str
    records: int
    value_bytes: int
    elapsed_s: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def _producer_config(bootstrap_servers: str, delivery_timeout_ms: int) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers,
        "client.id": "lakehouse-events",
        "acks": "all",
        "enable.idempotence": True,
        # Batching for throughput: a million small records in large compressed batches.
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.kbytes": 128 * 1024,
        # librdkafka retries a message until this expires; bound it so a dead
        # broker becomes an error instead of a hang.
        "message.timeout.ms": delivery_timeout_ms,
        # The Java clients' partitioner: a key lands where a JVM producer would put it.
        "partitioner": "murmur2_random",
        # Only failures call back into Python: no per-message callback cost.
        "delivery.report.only.error": True,
    }


class _DeliveryFailures:
    """Collects delivery and fatal client errors reported by librdkafka's threads."""

    def __init__(self, topic: str, bootstrap_servers: str) -> None:
        self._where = f"topic {topic!r} on Kafka at {bootstrap_servers}"
        self.failed = 0
        self.first: str | None = None

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            if self.first is None:
                self.first = str(error)

    def on_error(self, error: KafkaError) -> None:
        # Transient errors (a broker restarting) are retried by librdkafka and end
        # as delivery failures if they last; only fatal ones stop the run here.
        if error.fatal() and self.first is None:
            self.first = f"fatal client error: {error}"
            self.failed += 1

    def raise_if_failed(self) -> None:
        if self.first is not None:
            raise ProduceError(
                f"delivery to {self._where} failed for {self.failed} record(s); "
                f"first error: {self.first}"
            )


def produce(
    records: Iterable[GeneratedRecord],
    topic: str,
    bootstrap_servers: str,
    *,
    config: Mapping[str, Any] | None = None,
    connect_timeout_s: float = 10.0,
    delivery_timeout_ms: int = 60_000,
    flush_timeout_s: float = 120.0,
) -> ProduceResult:
    """Produce records to ``topic`` with their timestamps, keys and headers.

    Idempotent, ``acks=all``, batched. The broker is asked for the topic's
    metadata first, so an unreachable broker or a missing topic fails in
    ``connect_timeout_s`` with nothing sent. Delivery errors stop the run at
    the next check; every record must be acknowledged within
    ``flush_timeout_s`` of the last send. Raises :class:`ProduceError`.
    ``config`` overrides librdkafka settings.
    """
    from confluent_kafka import Producer

    failures = _DeliveryFailures(topic, bootstrap_servers)
    producer = Producer(
        {
            **_producer_config(bootstrap_servers, delivery_timeout_ms),
            "on_delivery": failures.on_delivery,
            "error_cb": failures.on_error,
            "logger": CLIENT_LOG,
            **(config or {}),
        }
    )
    try:
        _check_topic(producer, topic, bootstrap_servers, connect_timeout_s)
        started = time.perf_counter()
        sent, value_bytes = _send_all(producer, topic, records, failures)
        undelivered = producer.flush(flush_timeout_s)
        failures.raise_if_failed()
        if undelivered:
            raise ProduceError(
                f"{undelivered} of {sent} record(s) to topic {topic!r} on Kafka at "
                f"{bootstrap_servers} were not acknowledged within {flush_timeout_s:g}s"
            )
        return ProduceResult(
            topic, bootstrap_servers, sent, value_bytes, time.perf_counter() - started
        )
    except BaseException:
        # Drop what is still queued so the client shuts down now instead of retrying.
        producer.purge()
        producer.flush(0)
        raise


def _check_topic(producer: Producer, topic: str, bootstrap_servers: str, timeout_s: float) -> None:
    from confluent_kafka import KafkaError, KafkaException

    try:
        metadata = producer.list_topics(topic=topic, timeout=timeout_s)
    except KafkaException as exc:
        raise ProduceError(
            f"cannot reach Kafka at {bootstrap_servers} to produce to topic {topic!r} "
            f"(waited {timeout_s:g}s): {exc.args[0] if exc.args else exc}"
        ) from exc
    topic_metadata = metadata.topics.get(topic)
    error = topic_metadata.error if topic_metadata is not None else None
    missing = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    if topic_metadata is None or (error is not None and error.code() in missing):
        raise ProduceError(
            f"topic {topic!r} is not available on Kafka at {bootstrap_servers}: "
            f"{error if error is not None else 'no metadata returned'}"
        )


_POLL_EVERY: Final = 10_000


def _send_all(
    producer: Producer,
    topic: str,
    records: Iterable[GeneratedRecord],
    failures: _DeliveryFailures,
) -> tuple[int, int]:
    sent = 0
    value_bytes = 0
    for record in records:
        while True:
            try:
                producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=[*record.headers],
                    timestamp=record.timestamp_ms,
                )
                break
            except BufferError:
                # The local queue is full: let librdkafka send a batch, then retry.
                producer.poll(0.1)
                failures.raise_if_failed()
        sent += 1
        value_bytes += len(record.value)
        if sent % _POLL_EVERY == 0:
            producer.poll(0)
            failures.raise_if_failed()
    return sent, value_bytes
