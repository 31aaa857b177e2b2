"""Kafka clients (confluent-kafka / librdkafka) configured from the project settings.

Failures name the broker address, the configuration key and the fix
(:mod:`resources.errors`): an unreachable broker, SASL credentials whose variables
are unset (checked before any connection), a read that stalls mid-range.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import dagster as dg
from pydantic import Field

from resources.errors import (
    START_LOCAL_STACK,
    CredentialsError,
    ReadStalledError,
    RecordsDeletedError,
    ServiceUnreachableError,
)

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, Producer
    from confluent_kafka.admin import AdminClient, ClusterMetadata

#: SASL mechanisms that authenticate with a user name and a password (GSSAPI and
#: OAUTHBEARER bring their own credentials).
PASSWORD_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})

#: What a failed landing leaves behind, and what to do: said by every read error.
RERUN_IS_SAFE = (
    "Nothing of this range was landed (a bronze file becomes visible only once complete); "
    "re-running the partition is safe, landing is idempotent."
)


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
    sasl_username_env: str | None = Field(
        default=None,
        description="Name of the variable holding the SASL user (`kafka.sasl_username_env`); "
        "errors name it, never its value.",
    )
    sasl_password_env: str | None = Field(
        default=None,
        description="Name of the variable holding the SASL password (`kafka.sasl_password_env`); "
        "errors name it, never its value.",
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
    read_stall_seconds: float = Field(
        default=30.0,
        description=(
            "How long a read waits for the next record of its range (at least 3x "
            "timeout_seconds) before it stops and says why: broker down, or records gone."
        ),
    )

    def sasl_credentials_missing(self) -> CredentialsError | None:
        """The error to raise when SASL needs a user and password that are not there.

        SASL needs them when the mechanism is PLAIN or SCRAM, or when the protocol is
        SASL_* and the configuration names variables for them. The resource gets the
        values through ``dg.EnvVar`` only when the variables are set and non-empty
        (:func:`resources.environments.kafka_resource`), so a missing value means an
        unset or empty variable.
        """
        mechanism = (self.sasl_mechanism or "").upper()
        uses_sasl = bool(mechanism) or self.security_protocol.upper().startswith("SASL_")
        named = bool(self.sasl_username_env or self.sasl_password_env)
        if not uses_sasl or not (mechanism in PASSWORD_MECHANISMS or named):
            return None
        if self.sasl_username and self.sasl_password:
            return None
        needs = (
            f"`kafka.sasl_mechanism` is {self.sasl_mechanism}"
            if mechanism
            else f"`kafka.security_protocol` is {self.security_protocol}"
        )
        if named:
            fix = (
                "set them in the environment of the code location and of its runs "
                "(for `make dev`, the shell that starts it), or name other variables in "
                "those keys. Nothing was sent to the broker."
            )
        else:
            fix = (
                "set `kafka.sasl_username_env` and `kafka.sasl_password_env` to the names of "
                "the environment variables that hold the SASL user and password. Nothing was "
                "sent to the broker."
            )
        return CredentialsError(
            "Kafka",
            self.bootstrap_servers,
            {
                "kafka.sasl_username_env": self.sasl_username_env,
                "kafka.sasl_password_env": self.sasl_password_env,
            },
            f"{needs}, which authenticates with a user name and a password",
            fix,
            problem="needs SASL credentials that are not set",
        )

    def client_config(self) -> dict[str, Any]:
        """Settings common to every client.

        Raises:
            CredentialsError: SASL needs a user and password whose variables are unset
                or empty (before any client exists, so nothing connects).
        """
        missing = self.sasl_credentials_missing()
        if missing is not None:
            raise missing
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
        self._stall = max(kafka.read_stall_seconds, 3 * kafka.timeout_seconds)
        self._address = kafka.bootstrap_servers
        self._consumer = kafka.consumer(
            group_id=group_id,
            # A planned offset that retention deleted before the read must fail the read:
            # "earliest" would skip to the log start, and the file named by the range
            # would claim offsets it does not hold.
            **{
                "enable.partition.eof": False,
                "fetch.max.bytes": 64 * 1024 * 1024,
                # Reads are bounded by offsets that exist: never long-poll for more. With
                # the default 500 ms, every range of a tiny day waited out the fetch still
                # in flight for the previous range (measured: 0.47 s per bronze file).
                "fetch.wait.max.ms": 10,
                "auto.offset.reset": "error",
            },
        )

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def _fail(
        self, what: str, exc: Exception, fix: str = START_LOCAL_STACK
    ) -> ServiceUnreachableError:
        return ServiceUnreachableError(
            "Kafka",
            self._address,
            "kafka.bootstrap_servers",
            f"{what} of {self.topic!r}: {exc}",
            fix,
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
                        if error.code() == KafkaError._AUTO_OFFSET_RESET:
                            raise RecordsDeletedError(self.topic, partition, position, last)
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
                    waited = time.monotonic() - idle_since
                    if waited > self._stall:
                        raise stalled_read_error(
                            self._consumer,
                            address=self._address,
                            timeout=self._timeout,
                            topic=self.topic,
                            partition=partition,
                            position=position,
                            last=last,
                            waited=waited,
                        )
        except KafkaException as exc:
            raise self._fail(
                f"reading partition {partition} at offset {position} (up to {last})",
                exc,
                f"is the broker running and reachable from this process? {RERUN_IS_SAFE}",
            ) from None
        finally:
            self._consumer.unassign()


def stalled_read_error(
    consumer: Consumer,
    *,
    address: str,
    timeout: float,
    topic: str,
    partition: int,
    position: int,
    last: int,
    waited: float,
) -> ServiceUnreachableError | ReadStalledError:
    """Why no record of ``topic[partition]`` at ``position`` arrived in ``waited`` seconds.

    librdkafka reconnects quietly, so a broker that died mid-read looks like a read
    that waits. One request to the broker tells the cases apart: no answer is an
    unreachable broker; an answer (the partition's watermarks) says whether the
    records still exist.
    """
    from confluent_kafka import KafkaException, TopicPartition

    where = f"{topic}[{partition}] at offset {position} (reading up to {last})"
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout, cached=False
        )
    except KafkaException as exc:
        return ServiceUnreachableError(
            "Kafka",
            address,
            "kafka.bootstrap_servers",
            f"it stopped answering while {where} was read: {exc.args[0].str()}",
            "is the broker running (`make stack-start` starts the local stack) and reachable "
            f"from this process? {RERUN_IS_SAFE}",
        )
    if high <= position:
        # For a read_committed consumer (librdkafka's default) the end it is told is the
        # last stable offset: the first record of a transaction still open.
        state = (
            f"the partition's readable end is offset {high}, so nothing from {position} on "
            "can be read now: a producer transaction still open holds the records back (the "
            "reader reads committed records only), or the records were removed after the "
            "landing planned them (the topic deleted and re-created, or the log truncated "
            "by an unclean leader election)"
        )
    elif low > position:
        state = (
            f"retention deleted it meanwhile (the earliest retained offset is {low}); "
            "raise the topic's retention.ms to keep a day until it is landed"
        )
    else:
        state = (
            f"it lies within the readable offsets {low}-{high - 1} but was not delivered: "
            "a record larger than the fetch limits (`kafka.consumer`: fetch.max.bytes, "
            "max.partition.fetch.bytes) or an overloaded broker"
        )
    return ReadStalledError(
        topic,
        partition,
        position,
        f"no record of {where} arrived within {waited:.0f}s, though Kafka at {address} "
        f"answers: {state}. Check the topic's retention (retention.ms, retention.bytes) "
        f"and compaction (cleanup.policy) and its producers' transactions. {RERUN_IS_SAFE}",
    )
