"""Errors of the bronze store and the Kafka resource name the service, the key and the fix.

No service runs here: an "unreachable" endpoint is a loopback port with nothing
listening, and the SASL checks must fail before any connection is attempted.
"""

from __future__ import annotations

import select
import socket
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from resources.environments import MissingSecretWarning, build_resources, kafka_resource
from resources.errors import (
    CredentialsError,
    ServiceUnreachableError,
    override_variable,
    setting_reference,
)
from resources.kafka.client import KafkaResource, TopicReader, stalled_read_error
from resources.s3.client import S3Resource
from resources.s3.parquet_store import ParquetStore
from resources.settings import LakehouseSettings, load_settings
from tests.conftest import _free_port


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused at once)."""
    return _free_port()


@pytest.fixture
def no_aws_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt per request, so that a refused connection fails in about a second."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture
def listening_port() -> Iterator[socket.socket]:
    """A loopback socket that listens but never accepts: a connection attempt is visible."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


def _store(port: int, **s3: Any) -> ParquetStore:
    options: dict[str, Any] = {"access_key_id": "test-key-id", "secret_access_key": "test-secret"}
    options.update(s3)
    return ParquetStore(
        s3=S3Resource(endpoint_url=f"http://127.0.0.1:{port}", bucket="lakehouse", **options)
    )


def _write(store: ParquetStore) -> None:
    table = pa.table({"offset": pa.array([1, 2], pa.int64())})
    path = f"{store.partition_dir('plain', '2026-11-01')}/plain-events+0+1-2.parquet"
    store.write_file(store.filesystem(), path, table.schema, [table])


_STORE_OPERATIONS = {
    "landed (arrivals sensor, landing plan)": lambda store: store.landed("plain", "2026-11-01"),
    "read_batches (IO manager loads)": lambda store: list(
        store.read_batches("plain", ["2026-11-01"])
    ),
    "count_rows (checks)": lambda store: store.count_rows("plain", ["2026-11-01"]),
    "write_file (IO manager stores)": _write,
}


# S3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", list(_STORE_OPERATIONS))
@pytest.mark.usefixtures("no_aws_retries")
def test_unreachable_s3_in_the_bronze_store_names_endpoint_key_and_fix(
    operation: str, closed_port: int
) -> None:
    store = _store(closed_port)

    with pytest.raises(ServiceUnreachableError) as raised:
        _STORE_OPERATIONS[operation](store)

    message = str(raised.value)
    assert message.startswith(f"S3 at http://127.0.0.1:{closed_port} is unreachable (")
    assert "`s3.endpoint_url` (or LAKEHOUSE__S3__ENDPOINT_URL)" in message
    assert "make stack-start" in message
    assert "s3://lakehouse/bronze/plain/date=2026-11-01" in message  # what was being done
    assert "test-secret" not in message


@pytest.mark.usefixtures("no_aws_retries")
def test_s3_without_any_credentials_names_the_variables_not_their_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, closed_port: int
) -> None:
    # Nothing for boto3's default chain to find: no variables, files or instance role.
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("LH_TEST_SECRET_KEY", "")
    store = _store(
        closed_port,
        access_key_id=None,
        secret_access_key=None,
        access_key_id_env="LH_TEST_KEY_ID",
        secret_access_key_env="LH_TEST_SECRET_KEY",
    )

    with pytest.raises(CredentialsError) as raised:
        store.landed("plain", "2026-11-01")

    message = str(raised.value)
    assert message.startswith(f"S3 at http://127.0.0.1:{closed_port} got no credentials")
    assert "LH_TEST_KEY_ID (named by `s3.access_key_id_env`)" in message
    assert "LH_TEST_SECRET_KEY (named by `s3.secret_access_key_env`)" in message
    assert "LH_TEST_KEY_ID is unset, LH_TEST_SECRET_KEY is empty" in message
    assert "default credential chain" in message


def test_errors_that_are_not_the_stores_pass_through_unchanged(closed_port: int) -> None:
    s3 = _store(closed_port).s3
    failure = TimeoutError("no record of t[0] at offset 5")

    with pytest.raises(TimeoutError) as raised, s3.named_errors("writing s3://x"):
        raise failure

    assert raised.value is failure


# Kafka: SASL credentials ---------------------------------------------------------------


def _prod(port: int) -> LakehouseSettings:
    return load_settings(
        "prod", environ={"LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    )


def _pending_connection(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0.5)
    return bool(readable)


def test_prod_without_sasl_variables_fails_before_connecting_naming_them(
    monkeypatch: pytest.MonkeyPatch, listening_port: socket.socket
) -> None:
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    settings = _prod(listening_port.getsockname()[1])

    with pytest.warns(MissingSecretWarning, match="KAFKA_SASL_USERNAME"):
        kafka = kafka_resource(settings)

    started = time.monotonic()
    for use in (
        kafka.check_reachable,
        lambda: TopicReader(kafka, "purchase-orders"),
        lambda: kafka.consumer(group_id="g"),
        kafka.producer,
    ):
        with pytest.raises(CredentialsError) as raised:
            use()
        message = str(raised.value)
        assert "needs SASL credentials that are not set" in message
        assert "`kafka.sasl_mechanism` is SCRAM-SHA-512" in message
        assert "KAFKA_SASL_USERNAME (named by `kafka.sasl_username_env`)" in message
        assert "KAFKA_SASL_PASSWORD (named by `kafka.sasl_password_env`)" in message
        assert "KAFKA_SASL_USERNAME is unset, KAFKA_SASL_PASSWORD is unset" in message
        assert "unreachable" not in message
    # Nothing waited for a broker, and nothing connected to it.
    assert time.monotonic() - started < 2
    assert not _pending_connection(listening_port)
    # The arrivals sensor skips a tick on ServiceUnreachableError, naming the reason.
    assert isinstance(raised.value, ServiceUnreachableError)


def test_sasl_message_names_an_empty_variable_and_never_a_value(
    monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "ada-the-user")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "")

    with pytest.warns(MissingSecretWarning):
        kafka = kafka_resource(_prod(closed_port))
    with pytest.raises(CredentialsError) as raised:
        kafka.check_reachable()

    message = str(raised.value)
    assert "KAFKA_SASL_USERNAME is set, KAFKA_SASL_PASSWORD is empty" in message
    assert "ada-the-user" not in message


def test_sasl_mechanism_without_variable_names_says_which_keys_to_set(closed_port: int) -> None:
    kafka = KafkaResource(
        bootstrap_servers=f"127.0.0.1:{closed_port}",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
    )

    with pytest.raises(CredentialsError) as raised:
        kafka.client_config()

    message = str(raised.value)
    assert "`kafka.sasl_username_env` and `kafka.sasl_password_env` name no environment" in message


def test_sasl_with_its_variables_set_or_without_passwords_passes(
    monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "user")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "password")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingSecretWarning)
        kafka = kafka_resource(_prod(closed_port))
    assert kafka.sasl_credentials_missing() is None
    # Kerberos and OAUTHBEARER bring their own credentials.
    for mechanism in ("GSSAPI", "OAUTHBEARER"):
        other = KafkaResource(
            bootstrap_servers="127.0.0.1:1", security_protocol="SASL_SSL", sasl_mechanism=mechanism
        )
        assert other.sasl_credentials_missing() is None
    assert KafkaResource(bootstrap_servers="127.0.0.1:1").sasl_credentials_missing() is None


def test_definitions_resources_build_in_prod_without_sasl_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading must succeed (the UI shows everything); the warning names the variables."""
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)

    with pytest.warns(MissingSecretWarning, match="KAFKA_SASL_PASSWORD"):
        resources = build_resources(_prod(_free_port()))

    assert resources["kafka"].sasl_username_env == "KAFKA_SASL_USERNAME"


# Kafka: a read that stalls -------------------------------------------------------------


def test_stalled_read_with_the_broker_gone_is_named_unreachable(closed_port: int) -> None:
    address = f"127.0.0.1:{closed_port}"
    consumer = KafkaResource(bootstrap_servers=address, timeout_seconds=1.0).consumer("g")
    try:
        error = stalled_read_error(
            consumer,
            address=address,
            timeout=1.0,
            topic="purchase-orders",
            partition=0,
            position=5382,
            last=6000,
            waited=31.0,
        )
    finally:
        consumer.close()

    assert isinstance(error, ServiceUnreachableError)
    message = str(error)
    assert message.startswith(f"Kafka at {address} is unreachable (it stopped answering")
    assert "purchase-orders[0] at offset 5382 (reading up to 6000)" in message
    assert "`kafka.bootstrap_servers` (or LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS)" in message
    assert "re-running the partition is safe" in message


def test_setting_references_name_the_override_variable() -> None:
    assert override_variable("storage.bucket") == "LAKEHOUSE__STORAGE__BUCKET"
    assert setting_reference("kafka.bootstrap_servers") == (
        "`kafka.bootstrap_servers` (or LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS)"
    )
    assert setting_reference("not a key") == "`not a key`"
