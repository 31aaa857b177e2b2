"""Spark on the same Iceberg catalog as pyiceberg: local mode by default, or client mode.

With a ``local[N]`` master the whole of Spark runs in the run's process (or in the
shared warm driver, ``spark.shared_driver``). With a cluster master (``spark://``,
``k8s://``, ``yarn``) the run's process is the driver and executors run elsewhere:
the session then ships what they need through Spark itself
(:func:`resources.spark.conf.client_mode_conf`), the project's Python packages as a
zip in ``spark.submit.pyFiles`` (:func:`python_package_zip`). The shared driver
serves local masters only: a warm driver would hold a cluster application (and its
cores) for as long as it idles, and its JVM-wide settings would be the first run's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from resources.iceberg.catalog import IcebergCatalogResource
from resources.iceberg.catalog_conf import bootstrap_sqlite_catalog
from resources.lineage.transport import (
    OPENLINEAGE_SPARK,
    spark_listener_conf,
    spark_listener_secrets,
)
from resources.locks import file_lock
from resources.settings import LakehouseSettings, cache_dir
from resources.spark.conf import (
    build_spark_conf,
    client_mode_conf,
    is_local_master,
)
from resources.spark.driver import (
    attach,
    retrieved_jars_checked,
    start_session,
)
from resources.spark.udfs import udf_jar

_GLUE_CATALOG = "org.apache.iceberg.aws.glue.GlueCatalog"


class SparkResource(LazyPySparkResource):
    """A Spark session whose default catalog is the lakehouse's Iceberg catalog.

    The session is created on first use, so runs that never touch Spark never pay
    for a JVM. Credentials come from the nested catalog's S3 resource at session
    creation and are never part of this resource's displayed config, nor of any
    command line: the JVM gets them over Py4J once it runs (see
    :func:`resources.spark.driver.start_session`).
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
    lineage_conf: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "The openlineage-spark listener's settings (`spark.extraListeners`, "
            "`spark.openlineage.*`; from the `lineage` section); empty: no listener. Its jar "
            "joins `spark.jars.packages`."
        ),
    )
    lineage_api_key_env: str | None = Field(
        default=None,
        description=(
            "NAME of the variable holding the lineage receiver's API key, read at session "
            "start (`lineage.api_key_env`); never shown."
        ),
    )
    shared_driver_dir: str | None = Field(
        default=None,
        description=(
            "Attach to a warm Spark driver shared by this machine's processes, published in "
            "this directory and started on first use (`spark.shared_driver`; see "
            "`resources.spark.driver`). Null: the process starts a JVM of its own."
        ),
    )
    udf_cache_dir: str | None = Field(
        default=None,
        description=(
            "Where the project's Java UDFs (`resources/spark/java`, e.g. the contract certifier) are "
            "compiled with the JDK's javac and cached; their jar joins `spark.jars`. Null: "
            "they are left out, and silver checks every payload in Python (correct, slower)."
        ),
    )
    shared_driver_idle_seconds: int = Field(
        default=900, description="A shared driver with no attached process stops after this."
    )
    executor_memory: str | None = Field(
        default=None, description="Cluster masters: `spark.executor.memory`."
    )
    executor_cores: int | None = Field(
        default=None, description="Cluster masters: `spark.executor.cores`."
    )
    executor_instances: int | None = Field(
        default=None,
        description="Cluster masters: executors (standalone: `spark.cores.max` = this x cores).",
    )
    driver_host: str | None = Field(
        default=None,
        description="Cluster masters: `spark.driver.host`; null: 127.0.0.1 for a loopback master.",
    )
    ship_packages: list[str] = Field(
        default_factory=list,
        description=(
            "Cluster masters: top-level Python packages zipped into `pyfiles_cache_dir` and "
            "shipped to executors in `spark.submit.pyFiles`."
        ),
    )
    pyfiles_cache_dir: str | None = Field(
        default=None, description="Where the zip of `ship_packages` is built (content-named)."
    )
    py_files: list[str] = Field(
        default_factory=list, description="Cluster masters: further `spark.submit.pyFiles`."
    )
    python_archive: str | None = Field(
        default=None,
        description="Cluster masters: a packed Python environment for `spark.archives`.",
    )
    executor_python: str | None = Field(
        default=None,
        description=(
            "Cluster masters: the executors' Python; null: ./environment/bin/python with "
            "`python_archive`, else this interpreter's path."
        ),
    )
    executor_image: str | None = Field(
        default=None,
        description=(
            "Kubernetes masters: the executor pods' image (`spark.kubernetes.container.image`)."
        ),
    )
    executor_env: list[str] = Field(
        default_factory=list,
        description=(
            "Cluster masters: names of this process's environment variables that executors "
            "get (`spark.executorEnv.*`); read at session start, never shown."
        ),
    )

    @property
    def is_local(self) -> bool:
        """Whether Spark runs inside the driver's process (a ``local`` master)."""
        return is_local_master(self.master)

    def session_conf(self) -> dict[str, str]:
        """The full Spark configuration, credentials included.

        Log it only through :func:`~resources.spark.conf.redact`; start a JVM with it only through
        :func:`~resources.spark.driver.start_session` (never on a command line).
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
        if self.lineage_conf:
            listeners = conf.get("spark.extraListeners")
            conf["spark.jars.packages"] = f"{conf['spark.jars.packages']},{OPENLINEAGE_SPARK}"
            conf.update(self.lineage_conf)
            if listeners:  # a listener of `spark.conf` stays, beside OpenLineage's
                conf["spark.extraListeners"] = f"{listeners},{conf['spark.extraListeners']}"
            conf.update(spark_listener_secrets(self.lineage_api_key_env))
        if self.udf_cache_dir is not None:
            jar = str(udf_jar(Path(self.udf_cache_dir)))
            conf["spark.jars"] = ",".join(filter(None, [conf.get("spark.jars"), jar]))
        if not self.is_local:
            # What executors elsewhere need; explicit `spark_config` entries still win.
            for key, value in self._client_mode_conf().items():
                if key not in self.spark_config:
                    conf[key] = value
        return conf

    def _client_mode_conf(self) -> dict[str, str]:
        s3 = self.catalog.s3
        py_files = list(self.py_files)
        if self.ship_packages:
            if self.pyfiles_cache_dir is None:
                raise ValueError("ship_packages needs pyfiles_cache_dir (where the zip is built)")
            zipped = python_package_zip(self.ship_packages, Path(self.pyfiles_cache_dir))
            py_files.insert(0, str(zipped))
        images = ("spark.kubernetes.container.image", "spark.kubernetes.executor.container.image")
        if (
            self.master.startswith("k8s://")
            and self.executor_image is None
            and not any(key in self.spark_config for key in images)
        ):
            raise ValueError(
                f"Spark master {self.master} starts executors as pods, and no image is "
                "configured for them: set spark.executor_image (LAKEHOUSE__SPARK__EXECUTOR_IMAGE)"
            )
        missing = [name for name in self.executor_env if name not in os.environ]
        if missing:
            raise ValueError(
                f"spark.executor_env names {', '.join(missing)}, not set in this process's "
                "environment (executors get the values of the driver's variables)"
            )
        executor_python = self.executor_python
        if executor_python is None and self.python_archive is None:
            executor_python = sys.executable
        return client_mode_conf(
            master=self.master,
            s3_region=s3.region,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
            driver_host=self.driver_host,
            executor_memory=self.executor_memory,
            executor_cores=self.executor_cores,
            executor_instances=self.executor_instances,
            py_files=py_files,
            python_archive=self.python_archive,
            executor_python=executor_python,
            executor_image=self.executor_image,
            executor_env={name: os.environ[name] for name in self.executor_env},
        )

    def _init_session(self) -> None:
        if self._spark_session is None:
            if self.catalog.type == "sql" and self.catalog.uri:
                # Spark is configured not to create the catalog tables (it would hold a
                # lock on the SQLite file for the whole session); pyiceberg creates them.
                bootstrap_sqlite_catalog(self.catalog.name, self.catalog.uri)
            if self.shared_driver_dir is not None and not self.is_local:
                raise ValueError(
                    f"the shared Spark driver serves local masters only, not {self.master!r}: "
                    "with a cluster master every run's process is its own driver "
                    "(leave shared_driver_dir unset; spark.shared_driver is ignored there)"
                )
            conf = self.session_conf()
            # PySpark's SparkContext starts Python workers (UDFs) with $PYSPARK_PYTHON,
            # not with the spark.pyspark.python setting; both name this interpreter (on
            # a cluster: the executors' one, which runs every Python worker there).
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


def spark_resource(settings: LakehouseSettings, catalog: IcebergCatalogResource) -> SparkResource:
    """The Spark resource of an environment, from its settings.

    ``spark.shared_driver`` applies to local masters only; with a cluster master it is
    ignored (see the module docstring).
    """
    spark = settings.spark
    return SparkResource(
        catalog=catalog,
        master=spark.master,
        driver_memory=spark.driver_memory,
        shuffle_partitions=spark.shuffle_partitions,
        ivy_dir=str(cache_dir() / "ivy"),
        udf_cache_dir=str(cache_dir() / "udfs"),
        spark_config=dict(spark.conf),
        lineage_conf=spark_listener_conf(settings),
        lineage_api_key_env=settings.lineage.api_key_env,
        shared_driver_dir=str(shared_drivers_dir(settings))
        if spark.shared_driver and spark.is_local
        else None,
        executor_memory=spark.executor_memory,
        executor_cores=spark.executor_cores,
        executor_instances=spark.executor_instances,
        driver_host=spark.driver_host,
        ship_packages=list(spark.ship_packages),
        pyfiles_cache_dir=str(cache_dir() / "pyfiles"),
        py_files=list(spark.py_files),
        python_archive=spark.python_archive,
        executor_python=spark.executor_python,
        executor_image=spark.executor_image,
        executor_env=list(spark.executor_env),
    )


#: Name prefix of the zips :func:`python_package_zip` builds.
PACKAGE_ZIP_PREFIX = "lakehouse-py-"
# A fixed timestamp for every entry: the same sources give the same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def package_sources(packages: Sequence[str]) -> list[tuple[str, Path]]:
    """``(name in the zip, file)`` of every Python source of the top-level ``packages``.

    Found where Python imports them from (without importing them): the checkout, or
    site-packages in an image. Only ``*.py`` files (and ``py.typed``) go in: executors
    import code, nothing else; caches and compiled files stay out.
    """
    files: list[tuple[str, Path]] = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if spec is None or not locations:
            raise ValueError(f"{package!r} is not an importable top-level package")
        root = Path(locations[0])
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if "__pycache__" in relative.parts or not path.is_file():
                continue
            if path.suffix == ".py" or path.name == "py.typed":
                files.append((f"{package}/{relative.as_posix()}", path))
    return files


def python_package_zip(packages: Sequence[str], cache: Path) -> Path:
    """A zip of the ``packages`` in ``cache`` for ``spark.submit.pyFiles``, built once.

    Named by a hash of the file names and contents (``lakehouse-py-<hash>.zip``), so a
    changed source gets a new zip, and with it a new name that executors cannot
    confuse with an older one (Spark refuses to fetch a different file under a name it
    already has). Built under a file lock in a temporary file and moved into place,
    like the UDF jar (:func:`resources.spark.udfs.udf_jar`): processes starting at the
    same time build it once, and none ever sees half a zip.
    """
    sources = package_sources(packages)
    digest = hashlib.sha256()
    for name, path in sources:
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    target = cache / f"{PACKAGE_ZIP_PREFIX}{digest.hexdigest()[:16]}.zip"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with file_lock(cache / ".lock"):
        if target.is_file():
            return target
        with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as work:
            staged = Path(work) / target.name
            with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as archive:
                for name, path in sources:
                    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, path.read_bytes())
            os.replace(staged, target)
    return target


def shared_drivers_dir(settings: LakehouseSettings) -> Path:
    """Where the shared Spark drivers of an environment publish themselves."""
    return settings.data_dir / "spark-drivers"
