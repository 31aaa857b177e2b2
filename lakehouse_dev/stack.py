"""The local stack: a Kafka broker, an S3 API server and the Iceberg catalog, on loopback.

``lakehouse-stack start`` starts what is not running yet (a second start is a
no-op), creates the bucket, the dataset topics and the Iceberg namespaces, and
prints where everything is. ``lakehouse-stack stop`` stops both services and
leaves no process behind. Data survives a stop/start, and a kill: Kafka's log
directories, the S3 objects (written to disk before each write is acknowledged)
and the catalog file live under ``stack.data_dir``.

With ``serving.postgres.enabled`` the stack also runs a PostgreSQL server (Debian's
binaries, :mod:`lakehouse_dev.postgres_server`) on ``127.0.0.1:<stack.postgres_port>``,
its cluster in ``<stack.data_dir>/postgres``: the serving store of the star schema.
``stop`` stops it whatever the setting says now.

With ``stack.spark_cluster`` (or ``LAKEHOUSE__STACK__SPARK_CLUSTER=true``) the stack
also runs a Spark standalone cluster on loopback, a master and
``stack.spark_workers`` workers (:mod:`lakehouse_dev.spark_cluster`); runs use it
with ``spark.master`` set to its URL. ``stop`` stops it whatever the setting says now.

Ports and paths derive from the settings (``kafka.bootstrap_servers``,
``s3.endpoint_url``, ``stack.data_dir``); the stack refuses to run for an
environment whose endpoints are not on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlparse

from lakehouse_dev.kafka_broker import KafkaBroker
from lakehouse_dev.postgres_server import PostgresServer
from lakehouse_dev.s3_server import S3Server
from lakehouse_dev.spark_cluster import SparkCluster
from lakehouse_dev.weather_api import WeatherApiServer
from resources.environments import (
    iceberg_resource,
    postgres_password,
    postgres_port,
    s3_resource,
)
from resources.settings import ConfigError, LakehouseSettings, load_settings
from resources.spark.driver import stop_drivers
from resources.spark.resource import shared_drivers_dir

#: Largest record the local broker accepts (Kafka's default is 1 MB).
MAX_RECORD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class LocalStack:
    """The services of one environment's settings."""

    settings: LakehouseSettings

    @classmethod
    def from_settings(cls, settings: LakehouseSettings) -> LocalStack:
        problems = []
        if not settings.kafka_is_local:
            problems.append(f"kafka.bootstrap_servers={settings.kafka.bootstrap_servers}")
        if not settings.s3_is_local:
            problems.append(f"s3.endpoint_url={settings.s3.endpoint_url}")
        if settings.catalog.type != "sql":
            problems.append(f"catalog.type={settings.catalog.type}")
        postgres = settings.serving.postgres
        if postgres.enabled and postgres.host not in ("127.0.0.1", "localhost"):
            problems.append(f"serving.postgres.host={postgres.host}")
        if problems:
            raise ConfigError(
                f"environment {settings.environment!r} does not use local services "
                f"({'; '.join(problems)}): the local stack runs only for loopback endpoints "
                "and the embedded catalog"
            )
        return cls(settings)

    @cached_property
    def kafka(self) -> KafkaBroker:
        first = self.settings.kafka.bootstrap_servers.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        return KafkaBroker(
            data_dir=self.settings.data_dir / "kafka",
            port=int(port),
            controller_port=int(port) + 1,
            host=host,
            heap=self.settings.stack.kafka_heap,
            # Bronze lands whatever arrives, so the broker must accept large records too.
            extra_properties={
                "message.max.bytes": str(MAX_RECORD_BYTES),
                "replica.fetch.max.bytes": str(MAX_RECORD_BYTES),
            },
        )

    @cached_property
    def s3(self) -> S3Server:
        url = urlparse(self.settings.s3.endpoint_url or "")
        return S3Server(
            data_dir=self.settings.data_dir / "s3",
            port=url.port or 80,
            host=url.hostname or "127.0.0.1",
            buckets=[self.settings.storage.bucket],
        )

    @cached_property
    def postgres(self) -> PostgresServer:
        postgres = self.settings.serving.postgres
        return PostgresServer(
            data_dir=self.settings.data_dir / "postgres",
            port=postgres_port(self.settings),
            password=postgres_password(self.settings) or "",
            host="127.0.0.1",
            user=postgres.user,
            database=postgres.database,
        )

    @cached_property
    def spark_cluster(self) -> SparkCluster:
        return SparkCluster.from_settings(self.settings)

    @cached_property
    def weather_api(self) -> WeatherApiServer:
        return WeatherApiServer(self.settings.data_dir, self.settings.stack.weather_port)

    @property
    def serves_weather(self) -> bool:
        """Whether a dataset's HTTP source is the local weather API (``stack.weather_port``)."""
        prefix = f"http://127.0.0.1:{self.settings.stack.weather_port}/"
        return any(
            ds.http is not None and ds.http.url.startswith(prefix)
            for ds in self.settings.datasets.values()
        )

    def start(self) -> None:
        """Start what is not running, then create topics and namespaces (all idempotent)."""
        self.s3.start()
        broker = self.kafka
        broker.start()
        broker.create_topics(
            {ds.topic: ds.topic_partitions for ds in self.settings.datasets.values() if ds.topic}
        )
        if self.serves_weather:
            self.weather_api.start()
        catalog = iceberg_resource(self.settings, s3_resource(self.settings))
        catalog.ensure_namespaces(self.settings.catalog.namespaces.values())
        if self.settings.serving.postgres.enabled:
            self.postgres.start()
        if self.settings.stack.spark_cluster:
            self.spark_cluster.start()

    def stop(self) -> None:
        """Stop the shared Spark drivers, the Spark cluster and PostgreSQL (if running), then
        Kafka and S3."""
        stop_drivers(shared_drivers_dir(self.settings))
        self.spark_cluster.stop()
        self.postgres.stop()
        self.kafka.stop()
        self.s3.stop()
        self.weather_api.stop()

    def status(self) -> dict[str, bool]:
        state = {"kafka": self.kafka.is_running(), "s3": self.s3.is_running()}
        if self.settings.serving.postgres.enabled or self.postgres.is_running():
            state["postgres"] = self.postgres.is_running()
        if self.settings.stack.spark_cluster or self.spark_cluster.is_running():
            state["spark_cluster"] = self.spark_cluster.is_running()
        return state

    def describe(self) -> str:
        settings = self.settings
        state = self.status()
        lines = [
            f"environment      {settings.environment} ({settings.config_path})",
            f"kafka            {settings.kafka.bootstrap_servers}  "
            f"[{'running' if state['kafka'] else 'stopped'}]",
            f"s3               {settings.s3.endpoint_url}  bucket {settings.storage.bucket}  "
            f"[{'running' if state['s3'] else 'stopped'}]",
            f"iceberg catalog  {settings.catalog.name}: {settings.catalog_uri}",
            *([self.postgres.describe()] if "postgres" in state else []),
            f"warehouse        {settings.warehouse}",
            f"topics           {', '.join(d.topic for d in settings.datasets.values() if d.topic)}",
            *(
                [
                    f"weather API      {self.weather_api.url}  "
                    f"[{'running' if self.weather_api.is_running() else 'stopped'}]"
                ]
                if self.serves_weather
                else []
            ),
            f"data dir         {settings.data_dir}",
        ]
        if "spark_cluster" in state:
            lines += self.spark_cluster.describe()
            if state["spark_cluster"] and settings.spark.master != self.spark_cluster.master_url:
                lines.append(
                    f"                 runs use spark.master={settings.spark.master}; for the "
                    f"cluster: LAKEHOUSE__SPARK__MASTER={self.spark_cluster.master_url}"
                )
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lakehouse-stack", description="Start, stop or inspect the local lakehouse stack."
    )
    parser.add_argument("command", choices=["start", "stop", "status", "restart"])
    parser.add_argument(
        "--env", default=None, help="environment (default: $LAKEHOUSE_ENV or local)"
    )
    args = parser.parse_args(argv)
    try:
        stack = LocalStack.from_settings(load_settings(args.env))
        started = time.monotonic()
        if args.command in ("stop", "restart"):
            stack.stop()
            print("stack stopped")
        if args.command in ("start", "restart"):
            stack.start()
            print(f"stack ready in {time.monotonic() - started:.1f}s")
        print(stack.describe())
    except (ConfigError, RuntimeError, ConnectionError, LookupError) as exc:
        print(f"lakehouse-stack {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
