"""Spark and pyiceberg settings for one shared Iceberg catalog, derived from one place.

pyiceberg's ``SqlCatalog`` and Spark's Iceberg ``JdbcCatalog`` share a single SQLite
catalog file and a single warehouse (S3, or a local directory for tests). Both sides
are configured here from the same inputs, so they cannot drift apart:

* :func:`build_spark_conf` returns the complete ``spark.*`` settings of a session
  (jars from Maven Central via ``spark.jars.packages``, the Iceberg catalog as Spark's
  default catalog, Iceberg's ``S3FileIO`` for table data, hadoop-aws for plain
  ``s3a://`` and ``s3://`` Parquet such as bronze).
* :func:`~resources.iceberg.catalog_conf.pyiceberg_catalog_properties` returns the properties for
  ``load_catalog(name, **props)`` or ``SqlCatalog(name, **props)``.
* :func:`~resources.iceberg.catalog_conf.bootstrap_sqlite_catalog` creates the catalog file and its tables; call it
  before the first Spark session (see below).

What makes the two engines agree on one SQLite catalog (verified with pyiceberg 0.12.0,
Iceberg 1.10.1, Spark 3.5.8, sqlite-jdbc 3.51.3.0):

* The catalog *name* is identical on both sides: it is part of the primary key of
  ``iceberg_tables`` and ``iceberg_namespace_properties``.
* Both sides use the V1 table layout (the ``iceberg_type`` column, needed for views):
  pyiceberg 0.12 creates it on a fresh file (``schema_version=v1`` also migrates an
  old V0 file), Spark is told with ``jdbc.schema-version=V1``.
* Spark must not create the catalog tables: ``jdbc.init-catalog-tables=false``. With
  the default (``true``) Iceberg's ``JdbcCatalog`` probes existing tables through
  ``DatabaseMetaData.getTables`` and never closes that result set; with sqlite-jdbc
  the open statement keeps a read transaction on the file for the whole session. In
  SQLite's default journal mode every pyiceberg commit then fails with "database is
  locked"; in WAL mode Spark keeps reading a stale catalog and never sees pyiceberg's
  commits. So the tables come from pyiceberg (:func:`bootstrap_sqlite_catalog`).
* Spark's catalog cache is off (``cache-enabled=false``): with it, a Spark session keeps
  the table snapshot it loaded first and misses pyiceberg's later commits.
* SQLite takes one writer at a time. Both drivers wait up to
  :data:`SQLITE_BUSY_TIMEOUT_MS` for the lock, so short catalog commits from both
  engines serialise; concurrent commits to the *same table* still conflict at the
  Iceberg level (optimistic concurrency) and must be retried or serialised.

Nothing here logs; the returned dicts hold credentials when they are given, so log
them only through :func:`redact`, and never pass them to ``spark-submit`` as they are:
PySpark's ``launch_gateway`` turns every entry of a session's configuration into a
``--conf key=value`` argument of the JVM's command line, which every user of the
machine can read (``ps``, ``/proc/PID/cmdline``). :func:`launch_conf` is the part that
may go there; :func:`resources.spark.driver.start_session` starts sessions that way and
hands the rest (:func:`is_secret`) to the running JVM.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from resources.iceberg.catalog_conf import (
    SQLITE_BUSY_TIMEOUT_MS,
    _check_credentials,
    _is_s3,
    normalise_warehouse,
    sqlite_jdbc_url,
)

# Versions -------------------------------------------------------------------------------

SPARK_MINOR_VERSION = "3.5"
SCALA_BINARY_VERSION = "2.12"
# The newest 1.10.x whose iceberg-aws-bundle resolves from Maven Central (1.10.2 has a
# Spark runtime there but no aws-bundle); runtime and bundle must share one version.
ICEBERG_VERSION = "1.10.1"
SQLITE_JDBC_VERSION = "3.51.3.0"
# hadoop-aws must match the Hadoop that pyspark bundles (3.3.4 for pyspark 3.5.x), and
# the AWS SDK v1 bundle must be the one hadoop-aws 3.3.4 was built against.
HADOOP_AWS_VERSION = "3.3.4"
AWS_JAVA_SDK_BUNDLE_VERSION = "1.12.262"

# Maven coordinates ----------------------------------------------------------------------

ICEBERG_SPARK_RUNTIME = (
    f"org.apache.iceberg:iceberg-spark-runtime-{SPARK_MINOR_VERSION}_{SCALA_BINARY_VERSION}"
    f":{ICEBERG_VERSION}"
)
ICEBERG_AWS_BUNDLE = f"org.apache.iceberg:iceberg-aws-bundle:{ICEBERG_VERSION}"
SQLITE_JDBC = f"org.xerial:sqlite-jdbc:{SQLITE_JDBC_VERSION}"
HADOOP_AWS = f"org.apache.hadoop:hadoop-aws:{HADOOP_AWS_VERSION}"
AWS_JAVA_SDK_BUNDLE = f"com.amazonaws:aws-java-sdk-bundle:{AWS_JAVA_SDK_BUNDLE_VERSION}"

#: Every JVM artefact a session needs, resolved from Maven Central by Spark's own Ivy
#: (about 400 MB, mostly the AWS SDK v1 bundle that hadoop-aws needs).
SPARK_PACKAGES: tuple[str, ...] = (
    ICEBERG_SPARK_RUNTIME,
    ICEBERG_AWS_BUNDLE,
    SQLITE_JDBC,
    HADOOP_AWS,
    AWS_JAVA_SDK_BUNDLE,
)

# Class names ----------------------------------------------------------------------------

ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
ICEBERG_SPARK_CATALOG = "org.apache.iceberg.spark.SparkCatalog"
ICEBERG_JDBC_CATALOG = "org.apache.iceberg.jdbc.JdbcCatalog"
ICEBERG_S3_FILE_IO = "org.apache.iceberg.aws.s3.S3FileIO"
S3A_FILE_SYSTEM = "org.apache.hadoop.fs.s3a.S3AFileSystem"
S3A_SIMPLE_CREDENTIALS = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"


# Substrings of a key (lower case) whose value is a credential: Spark's own redaction
# pattern (spark.redaction.regex: secret, password, token, access.key) and the spellings
# of S3A, S3FileIO, JDBC and REST catalogs (``credential`` is the OAuth2 client secret).
_SECRET_MARKERS = (
    "secret",
    "password",
    "passwd",
    "token",
    "access.key",
    "access-key",
    "access_key",
    "credential",
    "apikey",
    "api_key",
    "api-key",
)
# ...except these, which name a provider class, not a credential.
_NOT_SECRET_SUFFIXES = (".credentials.provider", ".credentials-provider")
# Keys whose values become a process's environment variables (executors, the YARN
# application master, a Kubernetes driver): the usual way to hand credentials to them.
_ENVIRONMENT_PREFIXES = (
    "spark.executorenv.",
    "spark.yarn.appmasterenv.",
    "spark.kubernetes.driverenv.",
)
# The password of a URL's user information (``jdbc:postgresql://user:password@host``).
_URL_PASSWORD = re.compile(r"(?<=://)([^/:@\s]*):([^/@\s]+)@")


# Locations ------------------------------------------------------------------------------


# Spark ----------------------------------------------------------------------------------


def build_spark_conf(  # noqa: PLR0913 (keyword-only: one per setting)
    *,
    catalog_name: str,
    catalog_uri: str,
    warehouse: str,
    s3_endpoint: str | None,
    s3_region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    master: str = "local[2]",
    driver_memory: str = "2g",
    shuffle_partitions: int = 4,
    ivy_dir: str | None = None,
    app_name: str = "lakehouse",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The complete Spark configuration of a session on the shared Iceberg catalog.

    Part of it must be in place before the JVM starts (``spark.jars.packages``,
    ``spark.driver.memory``), so it belongs to the first session of the process; start
    that with :func:`resources.spark.driver.start_session`, never with
    ``SparkSession.builder.config(map=conf)``, which puts the credentials on the JVM's
    command line (see the module docstring).

    Args:
        catalog_name: Iceberg catalog name; must equal the pyiceberg catalog name. It
            also becomes ``spark.sql.defaultCatalog``, so ``ns.table`` resolves to it.
        catalog_uri: the SQLAlchemy URI pyiceberg uses (``sqlite:////abs/catalog.db``);
            converted to ``jdbc:sqlite:/abs/catalog.db`` for Iceberg's ``JdbcCatalog``.
            The file and its tables must exist (:func:`bootstrap_sqlite_catalog`).
        warehouse: ``s3://bucket/prefix`` (Iceberg ``S3FileIO``) or a local directory
            (``/abs/dir`` or ``file:///abs/dir``; Hadoop's local file system).
        s3_endpoint: S3 API endpoint such as ``http://127.0.0.1:19000``; ``None`` means
            AWS S3 itself (no endpoint override, virtual-hosted addressing).
        s3_region: region of the bucket (any region for a local S3 server).
        access_key_id: static credentials; ``None`` (with ``secret_access_key``) uses
            the AWS default credential chain (environment, profile, instance role).
        secret_access_key: see ``access_key_id``.
        master: Spark master URL.
        driver_memory: JVM heap of the driver (in local mode: of everything).
        shuffle_partitions: ``spark.sql.shuffle.partitions``; small for local data.
        ivy_dir: Spark's Ivy directory for the jars (``spark.jars.ivy``), e.g.
            ``~/.cache/lakehouse/ivy``; ``None`` keeps Spark's default (``~/.ivy2``).
        app_name: ``spark.app.name``.
        extra: further settings; they override the derived ones.

    Returns:
        ``{"spark.key": "value"}``. It holds the credentials when given: log it only
        through :func:`redact`, and launch a JVM only with :func:`launch_conf`.
    """
    _check_credentials(access_key_id, secret_access_key)
    warehouse = normalise_warehouse(warehouse)
    cat = f"spark.sql.catalog.{catalog_name}"

    conf: dict[str, str] = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.driver.memory": driver_memory,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # Python workers (UDFs) run the driver's interpreter, whose environment has the
        # project's dependencies (pandas, pyarrow); in local mode they share the machine.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.jars.packages": ",".join(SPARK_PACKAGES),
        # Iceberg tables, with the shared catalog as Spark's default catalog (dbt-spark
        # lists and creates its relations there).
        "spark.sql.extensions": ICEBERG_EXTENSIONS,
        "spark.sql.defaultCatalog": catalog_name,
        cat: ICEBERG_SPARK_CATALOG,
        f"{cat}.catalog-impl": ICEBERG_JDBC_CATALOG,
        f"{cat}.uri": sqlite_jdbc_url(catalog_uri),
        f"{cat}.warehouse": warehouse,
        f"{cat}.jdbc.schema-version": "V1",
        # See the module docstring: the tables come from pyiceberg, never from Spark.
        f"{cat}.jdbc.init-catalog-tables": "false",
        # No table cache: with it (the default, 30 s) Spark keeps reading the snapshot
        # it loaded first and misses pyiceberg's commits until REFRESH TABLE.
        f"{cat}.cache-enabled": "false",
        # Passed on to the SQLite JDBC driver (``jdbc.`` prefix removed).
        f"{cat}.jdbc.busy_timeout": str(SQLITE_BUSY_TIMEOUT_MS),
        # INSERT OVERWRITE replaces only the partitions present in the query's output,
        # as idempotent re-runs of a partition need (Iceberg honours this setting).
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
    }
    if master.startswith("local"):
        # Keep the driver on loopback; otherwise Spark binds to the first non-loopback
        # interface when the host name resolves to 127.0.0.1.
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if ivy_dir is not None:
        conf["spark.jars.ivy"] = os.path.abspath(os.path.expanduser(ivy_dir))

    if _is_s3(warehouse):
        conf[f"{cat}.io-impl"] = ICEBERG_S3_FILE_IO
        conf[f"{cat}.client.region"] = s3_region
        if s3_endpoint is not None:
            conf[f"{cat}.s3.endpoint"] = s3_endpoint
            conf[f"{cat}.s3.path-style-access"] = "true"
        if access_key_id is not None and secret_access_key is not None:
            conf[f"{cat}.s3.access-key-id"] = access_key_id
            conf[f"{cat}.s3.secret-access-key"] = secret_access_key

    # Plain files (bronze Parquet) through hadoop-aws: s3a://, and s3:// mapped to S3A.
    s3a = "spark.hadoop.fs.s3a"
    conf["spark.hadoop.fs.s3a.impl"] = S3A_FILE_SYSTEM
    conf["spark.hadoop.fs.s3.impl"] = S3A_FILE_SYSTEM
    conf[f"{s3a}.endpoint.region"] = s3_region
    if s3_endpoint is not None:
        conf[f"{s3a}.endpoint"] = s3_endpoint
        conf[f"{s3a}.path.style.access"] = "true"
        https = urlsplit(s3_endpoint).scheme == "https"
        conf[f"{s3a}.connection.ssl.enabled"] = "true" if https else "false"
    if access_key_id is not None and secret_access_key is not None:
        conf[f"{s3a}.aws.credentials.provider"] = S3A_SIMPLE_CREDENTIALS
        conf[f"{s3a}.access.key"] = access_key_id
        conf[f"{s3a}.secret.key"] = secret_access_key

    if extra:
        conf.update(extra)
    return conf


def is_local_master(master: str) -> bool:
    """Whether ``master`` runs Spark inside the driver's process (``local``, ``local[N]``)."""
    return master.startswith("local")


def is_loopback_master(master: str) -> bool:
    """Whether a standalone ``spark://`` master (every one of its hosts) is on this machine."""
    if not master.startswith("spark://"):
        return False
    hosts = [part.rpartition(":")[0] for part in master.removeprefix("spark://").split(",")]
    return all(host == "localhost" or host.startswith("127.") for host in hosts)


#: Where ``spark.archives`` unpacks a packed Python environment on each executor.
PYTHON_ARCHIVE_ALIAS = "environment"


def client_mode_conf(  # noqa: PLR0913 (keyword-only: one per setting)
    *,
    master: str,
    s3_region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    driver_host: str | None = None,
    executor_memory: str | None = None,
    executor_cores: int | None = None,
    executor_instances: int | None = None,
    py_files: Sequence[str] = (),
    python_archive: str | None = None,
    executor_python: str | None = None,
    executor_image: str | None = None,
    executor_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What a session needs on top of :func:`build_spark_conf` when executors run elsewhere.

    For a cluster master (``spark://``, ``k8s://``, ``yarn``) in client mode: this
    process is the driver and shares neither a file system nor a Python installation
    with the executors, so everything they need travels through Spark itself. The JVM
    packages (``spark.jars.packages``, resolved by spark-submit) and ``spark.jars`` (the
    UDF jar) are served by the driver and fetched by every executor; ``py_files`` go to
    ``spark.submit.pyFiles`` (the project's code as a zip: see
    :func:`resources.spark.resource.python_package_zip`); a packed environment goes to
    ``spark.archives``, unpacked as ``./environment`` beside each executor. The
    credentials reach executors as ``spark.executorEnv.AWS_*`` (the AWS SDK default
    chains read them there, e.g. boto3 in a Python UDF), and the S3A and Iceberg settings
    of :func:`build_spark_conf` with the conf the executors fetch from the driver at
    registration; both travel over Spark's RPC, never on a command line:
    :func:`is_secret` keeps every ``spark.executorEnv.*`` entry out of
    :func:`launch_conf`, and a standalone worker puts only ``spark.auth*``,
    ``spark.rpc*``, ``spark.network*`` and port settings on an executor's command line.

    Args:
        master: the cluster master URL; a loopback ``spark://`` master (the local stack's
            cluster) keeps the driver on 127.0.0.1 too.
        s3_region: ``AWS_REGION`` of the executors.
        access_key_id: static S3 credentials for the executors' environment, or ``None``
            (with ``secret_access_key``) for their own default chain (instance role,
            Kubernetes service account).
        secret_access_key: see ``access_key_id``.
        driver_host: the address executors reach the driver at (``spark.driver.host``).
        executor_memory: ``spark.executor.memory``.
        executor_cores: ``spark.executor.cores``.
        executor_instances: ``spark.executor.instances`` (YARN, Kubernetes); on a
            standalone master, with ``executor_cores``, the cap ``spark.cores.max``.
        py_files: ``spark.submit.pyFiles``, in order.
        python_archive: a packed environment for ``spark.archives`` (``#environment`` is
            appended unless the URI names an alias).
        executor_python: the executors' interpreter; default ``./environment/bin/python``
            with ``python_archive``, else the settings of :func:`build_spark_conf` stay.
        executor_image: the executor pods' image on a Kubernetes master
            (``spark.kubernetes.container.image``).
        executor_env: environment variables of the executors, values included.
    """
    if is_local_master(master):
        raise ValueError(f"client_mode_conf is for cluster masters, not {master!r}")
    _check_credentials(access_key_id, secret_access_key)
    conf: dict[str, str] = {"spark.submit.deployMode": "client"}
    host = driver_host or ("127.0.0.1" if is_loopback_master(master) else None)
    if host is not None:
        conf["spark.driver.host"] = host
    if host is not None and (host == "localhost" or host.startswith("127.")):
        conf["spark.driver.bindAddress"] = host
    if executor_memory is not None:
        conf["spark.executor.memory"] = executor_memory
    if executor_cores is not None:
        conf["spark.executor.cores"] = str(executor_cores)
    if executor_instances is not None:
        conf["spark.executor.instances"] = str(executor_instances)
        if master.startswith("spark://") and executor_cores is not None:
            conf["spark.cores.max"] = str(executor_instances * executor_cores)
    if executor_image is not None:
        if not master.startswith("k8s://"):
            raise ValueError(f"an executor image needs a Kubernetes master, not {master!r}")
        conf["spark.kubernetes.container.image"] = executor_image
    if py_files:
        conf["spark.submit.pyFiles"] = ",".join(py_files)
    if python_archive is not None:
        alias = "" if "#" in python_archive else f"#{PYTHON_ARCHIVE_ALIAS}"
        conf["spark.archives"] = python_archive + alias
        if executor_python is None:
            name = python_archive.rpartition("#")[2] if alias == "" else PYTHON_ARCHIVE_ALIAS
            executor_python = f"./{name}/bin/python"
    if executor_python is not None:
        conf["spark.pyspark.python"] = executor_python
    environment = dict(executor_env or {})
    if executor_python is not None:
        environment.setdefault("PYSPARK_PYTHON", executor_python)
    environment.setdefault("AWS_REGION", s3_region)
    if access_key_id is not None and secret_access_key is not None:
        environment["AWS_ACCESS_KEY_ID"] = access_key_id
        environment["AWS_SECRET_ACCESS_KEY"] = secret_access_key
    for name, value in environment.items():
        conf[f"spark.executorEnv.{name}"] = value
    return conf


# pyiceberg ------------------------------------------------------------------------------


def is_secret(key: str, value: str = "") -> bool:
    """Whether the ``conf`` entry ``key=value`` holds a credential (or may: an environment).

    A credential by its key (``fs.s3a.secret.key``, ``...s3.secret-access-key``,
    ``...jdbc.password``, a REST catalog's ``credential``, ``...token``), a value that
    becomes an environment variable of another process (``spark.executorEnv.*`` and
    the like, where credentials for executors go), or a URL with a password in it.
    """
    return _secret_key(key) or _URL_PASSWORD.search(value) is not None


def _secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered.startswith(_ENVIRONMENT_PREFIXES):
        return True
    return any(marker in lowered for marker in _SECRET_MARKERS) and not lowered.endswith(
        _NOT_SECRET_SUFFIXES
    )


def launch_conf(conf: Mapping[str, str]) -> dict[str, str]:
    """The part of ``conf`` that may travel on the JVM's command line: no :func:`is_secret`.

    What a JVM needs before it starts (``spark.jars.packages``, ``spark.driver.memory``,
    Java options) is never a credential; credentials are read when the SparkContext,
    the Hadoop configuration and the catalogs are created, after the JVM is up. (A
    password in ``spark.jars.repositories`` is withheld too: give it to Ivy in a
    settings file, ``spark.jars.ivySettings``.)
    """
    return {key: value for key, value in conf.items() if not is_secret(key, value)}


def redact(conf: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``conf`` with credential values masked, safe to log or show.

    Masked are the :func:`is_secret` entries; in a URL only its password.
    """
    return {
        key: "***" if _secret_key(key) else _URL_PASSWORD.sub(r"\1:***@", value)
        for key, value in conf.items()
    }
