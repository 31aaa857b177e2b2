"""Resources chosen per environment in one place.

:func:`build_resources` turns the validated settings of an environment into the
resource instances that the Definitions object binds. Asset code asks for a
resource by key and never knows which environment it runs in.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import dagster as dg

from resources.dbt.project import dbt_resource
from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.io_manager import IcebergIOManager
from resources.kafka.client import KafkaResource
from resources.s3.client import S3Resource
from resources.s3.parquet_store import ParquetStore, S3ParquetIOManager
from resources.serving.dynamodb import DynamoDbResource
from resources.serving.postgres import LOCAL_PASSWORD, PostgresResource
from resources.settings import LakehouseSettings, get_settings
from resources.spark.resource import spark_resource

# The local S3 server accepts any credentials; this placeholder is used only when the
# endpoint is on loopback and no credentials are set, so `make dev` works as is.
_LOCAL_S3_PLACEHOLDER = "lakehouse-local"


class MissingSecretWarning(UserWarning):
    """A secret the configuration asks for is not in the environment.

    A warning, not an error, when the definitions load: the code location still loads
    (the UI shows every asset), and the resource fails before connecting when a run
    or a sensor tick uses it, with the same message.
    """


def _secret(variable: str | None) -> Any:
    """``dg.EnvVar`` for a set variable (the UI shows its name, not its value), else None."""
    if variable and os.environ.get(variable):
        return dg.EnvVar(variable)
    return None


def s3_resource(settings: LakehouseSettings) -> S3Resource:
    access_key = _secret(settings.s3.access_key_id_env)
    secret_key = _secret(settings.s3.secret_access_key_env)
    if settings.s3_is_local and (access_key is None or secret_key is None):
        access_key = secret_key = _LOCAL_S3_PLACEHOLDER
    return S3Resource(
        endpoint_url=settings.s3.endpoint_url,
        region=settings.s3.region,
        access_key_id=access_key,
        secret_access_key=secret_key,
        bucket=settings.storage.bucket,
        access_key_id_env=settings.s3.access_key_id_env,
        secret_access_key_env=settings.s3.secret_access_key_env,
    )


def iceberg_resource(settings: LakehouseSettings, s3: S3Resource) -> IcebergCatalogResource:
    return IcebergCatalogResource(
        name=settings.catalog.name,
        type=settings.catalog.type,
        uri=settings.catalog_uri if settings.catalog.type != "glue" else None,
        warehouse=settings.warehouse,
        s3=s3,
        properties=dict(settings.catalog.properties),
    )


def kafka_resource(settings: LakehouseSettings) -> KafkaResource:
    """The Kafka resource; warns (:class:`MissingSecretWarning`) when SASL lacks its secrets."""
    kafka = settings.kafka
    resource = KafkaResource(
        bootstrap_servers=kafka.bootstrap_servers,
        security_protocol=kafka.security_protocol,
        sasl_mechanism=kafka.sasl_mechanism,
        sasl_username=_secret(kafka.sasl_username_env),
        sasl_password=_secret(kafka.sasl_password_env),
        sasl_username_env=kafka.sasl_username_env,
        sasl_password_env=kafka.sasl_password_env,
        client_id=kafka.client_id,
        consumer_config=dict(kafka.consumer),
        producer_config=dict(kafka.producer),
    )
    missing = resource.sasl_credentials_missing()
    if missing is not None:
        warnings.warn(
            f"environment {settings.environment!r}: {missing} Runs and sensor ticks that use "
            "Kafka fail with this message until then.",
            MissingSecretWarning,
            stacklevel=2,
        )
    return resource


def dynamodb_resource(settings: LakehouseSettings, s3: S3Resource) -> DynamoDbResource:
    """DynamoDB with the S3 credentials; at the S3 endpoint unless configured otherwise."""
    dynamodb = settings.serving.dynamodb
    return DynamoDbResource(
        endpoint_url=dynamodb.endpoint_url or settings.s3.endpoint_url,
        region=dynamodb.region or settings.s3.region,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
    )


def _postgres_is_local(settings: LakehouseSettings) -> bool:
    host = settings.serving.postgres.host or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def postgres_port(settings: LakehouseSettings) -> int:
    """``serving.postgres.port``, or the local stack's ``stack.postgres_port``."""
    return settings.serving.postgres.port or settings.stack.postgres_port


def postgres_password(settings: LakehouseSettings) -> str | None:
    """The password's value: from ``password_env``, else the local stack's placeholder for
    a loopback host, else None."""
    variable = settings.serving.postgres.password_env
    value = os.environ.get(variable) if variable else None
    if value:
        return value
    return LOCAL_PASSWORD if _postgres_is_local(settings) else None


def postgres_resource(settings: LakehouseSettings) -> PostgresResource:
    """PostgreSQL of ``serving.postgres``; the password as ``dg.EnvVar`` (never its value)."""
    postgres = settings.serving.postgres
    password = _secret(postgres.password_env)
    if password is None and _postgres_is_local(settings):
        password = LOCAL_PASSWORD
    return PostgresResource(
        host=postgres.host,
        port=postgres_port(settings),
        database=postgres.database,
        user=postgres.user,
        password=password,
        password_env=postgres.password_env,
        sslmode=postgres.sslmode,
    )


def build_resources(settings: LakehouseSettings | None = None) -> dict[str, Any]:
    """Every resource of one environment, keyed as assets and IO managers ask for them."""
    settings = settings or get_settings()
    s3 = s3_resource(settings)
    iceberg = iceberg_resource(settings, s3)
    bronze_store = ParquetStore(s3=s3, prefix=settings.storage.bronze_prefix)
    return {
        "bronze_store": bronze_store,
        "bronze_io_manager": S3ParquetIOManager(store=bronze_store),
        "s3": s3,
        "iceberg": iceberg,
        "iceberg_io_manager": IcebergIOManager(
            catalog=iceberg,
            namespaces={str(k): v for k, v in settings.catalog.namespaces.items()},
        ),
        "kafka": kafka_resource(settings),
        "spark": spark_resource(settings, iceberg),
        "dbt": dbt_resource(settings),
        "dynamodb": dynamodb_resource(settings, s3),
        "postgres": postgres_resource(settings),
    }
