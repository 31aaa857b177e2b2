"""Spark in local mode (by default) on the same Iceberg catalog as pyiceberg."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from resources.iceberg import IcebergCatalogResource
from resources.locks import file_lock
from resources.settings import LakehouseSettings, cache_dir
from resources.spark_conf import bootstrap_sqlite_catalog, build_spark_conf, redact
from resources.spark_driver import attach, start_session
from resources.spark_udfs import udf_jar

_GLUE_CATALOG = "org.apache.iceberg.aws.glue.GlueCatalog"


class SparkResource(LazyPySparkResource):
    """A Spark session whose default catalog is the lakehouse's Iceberg catalog.

    The session is created on first use, so runs that never touch Spark never pay
    for a JVM. Credentials come from the nested catalog's S3 resource at session
    creation and are never part of this resource's displayed config, nor of any
    command line: the JVM gets them over Py4J once it runs (see
    :func:`resources.spark_driver.start_session`).
    """

    catalog: IcebergCatalogResource = Field(description="The Iceberg catalog Spark shares.")
    master: str = Field(default="local[2]", description="Spark master URL (`spark.master`).")
    driver_memory: str = Field(default="2g", description="Driver JVM heap (`spark.driver.memory`).")
    shuffle_partitions: int = Field(
        default=4, description="`spark.sql.shuffle.partitions`; keep small for local data."
    )
    ivy_dir: str | None = Field(
        default=None, description="Where Spark caches the JVM packages it resolves."
    )
    spark_config: dict[str, Any] = Field(
        default_factory=dict, description="Extra spark.* settings (`spark.conf`); no secrets."
    )
    shared_driver_dir: str | None = Field(
        default=None,
        description=(
            "Attach to a warm Spark driver shared by this machine's processes, published in "
            "this directory and started on first use (`spark.shared_driver`; see "
            "`resources.spark_driver`). Null: the process starts a JVM of its own."
        ),
    )
    udf_cache_dir: str | None = Field(
        default=None,
        description=(
            "Where the project's Java UDFs (`resources/java`, e.g. the contract certifier) are "
            "compiled with the JDK's javac and cached; their jar joins `spark.jars`. Null: "
            "they are left out, and silver checks every payload in Python (correct, slower)."
        ),
    )
    shared_driver_idle_seconds: int = Field(
        default=900, description="A shared driver with no attached process stops after this."
    )

    def session_conf(self) -> dict[str, str]:
        """The full Spark configuration, credentials included.

        Log it only as :meth:`redacted_conf`; start a JVM with it only through
        :func:`~resources.spark_driver.start_session` (never on a command line).
        """
        s3 = self.catalog.s3
        conf = build_spark_conf(
            catalog_name=self.catalog.name,
            catalog_uri=self.catalog.uri or "sqlite:////unused",
            warehouse=self.catalog.warehouse,
            s3_endpoint=s3.endpoint_url,
            s3_region=s3.region,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
            master=self.master,
            driver_memory=self.driver_memory,
            shuffle_partitions=self.shuffle_partitions,
            ivy_dir=self.ivy_dir,
            extra={k: str(v) for k, v in self.spark_config.items()},
        )
        prefix = f"spark.sql.catalog.{self.catalog.name}"
        if self.catalog.type != "sql":
            for key in [k for k in conf if k.startswith(f"{prefix}.jdbc.")]:
                del conf[key]
            del conf[f"{prefix}.catalog-impl"]
            if self.catalog.type == "rest":
                conf[f"{prefix}.type"] = "rest"
                conf[f"{prefix}.uri"] = self.catalog.uri or ""
            else:
                del conf[f"{prefix}.uri"]
                conf[f"{prefix}.catalog-impl"] = _GLUE_CATALOG
        for key, value in self.catalog.properties.items():
            conf[f"{prefix}.{key}"] = value
        if self.udf_cache_dir is not None:
            jar = str(udf_jar(Path(self.udf_cache_dir)))
            conf["spark.jars"] = ",".join(filter(None, [conf.get("spark.jars"), jar]))
        return conf

    def redacted_conf(self) -> dict[str, str]:
        """The configuration with secrets masked, for logs and metadata."""
        return redact(self.session_conf())

    def _init_session(self) -> None:
        if self._spark_session is None:
            if self.catalog.type == "sql" and self.catalog.uri:
                # Spark is configured not to create the catalog tables (it would hold a
                # lock on the SQLite file for the whole session); pyiceberg creates them.
                bootstrap_sqlite_catalog(self.catalog.name, self.catalog.uri)
            conf = self.session_conf()
            # PySpark's SparkContext starts Python workers (UDFs) with $PYSPARK_PYTHON,
            # not with the spark.pyspark.python setting; both name this interpreter.
            os.environ.setdefault("PYSPARK_PYTHON", conf["spark.pyspark.python"])
            if self.shared_driver_dir is not None:
                session: Any = attach(
                    conf,
                    Path(self.shared_driver_dir),
                    ivy_dir=self.ivy_dir,
                    idle_seconds=self.shared_driver_idle_seconds,
                )
                self._spark_session = session
                return
            # Not dagster-pyspark's spark_session_from_config(conf): it would put the
            # credentials on the JVM's command line (see start_session).
            with retrieved_jars_checked(self.ivy_dir):
                own: Any = start_session(conf)
            self._spark_session = own


@contextmanager
def retrieved_jars_checked(ivy_dir: str | None) -> Iterator[None]:
    """Start sessions on one Ivy directory one at a time, never on a truncated jar.

    Every session start resolves ``spark.jars.packages`` and copies ("retrieves") the
    jars from Ivy's cache into ``<ivy_dir>/jars``; that copy is not atomic. A process
    killed during it (a run stopped while it starts, on a fresh cache) leaves a
    truncated jar that every later start takes as already retrieved, and each of them
    then fails on the classes it lacks (``NoClassDefFoundError:
    com/amazonaws/auth/AWSCredentialsProvider`` for the AWS SDK bundle). Under an
    exclusive lock on the directory, jars that are not readable zip files are removed
    (Ivy copies them again from its cache) before the session starts; the lock, held
    until the session is up, keeps a second process from checking a jar that the first
    one is still copying. ``flock`` locks die with their process.

    A truncated copy lacks the zip's end record, the last bytes of the file, so only
    that record is read (``is_zipfile``): opening each jar's whole directory (the AWS
    SDK bundle lists over 100,000 entries) cost 2.8 s of CPU per session start.
    """
    if ivy_dir is None:
        yield
        return
    root = Path(ivy_dir)
    with file_lock(root / ".session-start.lock"):
        for jar in (root / "jars").glob("*.jar"):
            try:
                complete = zipfile.is_zipfile(jar)
            except OSError:
                complete = False
            if not complete:
                jar.unlink(missing_ok=True)
        yield


def spark_resource(settings: LakehouseSettings, catalog: IcebergCatalogResource) -> SparkResource:
    """The Spark resource of an environment, from its settings."""
    return SparkResource(
        catalog=catalog,
        master=settings.spark.master,
        driver_memory=settings.spark.driver_memory,
        shuffle_partitions=settings.spark.shuffle_partitions,
        ivy_dir=str(cache_dir() / "ivy"),
        udf_cache_dir=str(cache_dir() / "udfs"),
        spark_config=dict(settings.spark.conf),
        shared_driver_dir=str(shared_drivers_dir(settings))
        if settings.spark.shared_driver
        else None,
    )


def shared_drivers_dir(settings: LakehouseSettings) -> Path:
    """Where the shared Spark drivers of an environment publish themselves."""
    return settings.data_dir / "spark-drivers"
