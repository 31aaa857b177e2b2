"""Project settings: one YAML file per project, one section per environment.

``config/lakehouse.yaml`` is the single source of truth. This module merges its
``defaults`` with the selected environment, applies ``LAKEHOUSE__SECTION__KEY``
environment overrides, validates the result and derives everything that follows
by convention (bronze prefix, warehouse location, catalog file, Dagster home).

Invalid configuration fails here, at load time, with a :class:`ConfigError` that
names the file, the environment, the key and the problem, instead of surfacing
later as a traceback from deep inside boto3, librdkafka or Spark.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "lakehouse.yaml"
ENVIRONMENTS = ("local", "dev", "prod")
ENV_OVERRIDE_PREFIX = "LAKEHOUSE__"

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MASTER_PATTERN = re.compile(
    r"^(local(\[[0-9*]+(,\s*[0-9]+)?\])?|local-cluster\[.+\]|spark://\S+|k8s://\S+|yarn)$"
)
_ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


Layer = Literal["bronze", "silver", "gold"]


class ConfigError(ValueError):
    """Configuration is invalid; the message names file, environment, key and problem."""


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Section):
    bucket: str = Field(description="S3 bucket that holds bronze files and the Iceberg warehouse.")
    bronze_prefix: str = Field(default="bronze", description="Key prefix of bronze Parquet files.")
    warehouse_prefix: str = Field(
        default="warehouse", description="Key prefix of the Iceberg warehouse."
    )

    @field_validator("bucket")
    @classmethod
    def _valid_bucket(cls, value: str) -> str:
        if not _BUCKET_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a valid S3 bucket name")
        return value

    @field_validator("bronze_prefix", "warehouse_prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        cleaned = value.strip("/")
        if not cleaned:
            raise ValueError("must not be empty")
        return cleaned


class S3Settings(_Section):
    endpoint_url: str | None = Field(
        default=None, description="S3 API endpoint; null means AWS S3 itself."
    )
    region: str = Field(default="us-east-1", description="AWS region of the bucket.")
    access_key_id_env: str = Field(
        default="AWS_ACCESS_KEY_ID", description="Environment variable holding the access key id."
    )
    secret_access_key_env: str = Field(
        default="AWS_SECRET_ACCESS_KEY",
        description="Environment variable holding the secret access key.",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class CatalogSettings(_Section):
    name: str = Field(
        default="lakehouse",
        description="Iceberg catalog name; identical for pyiceberg and Spark (part of the key).",
    )
    type: Literal["sql", "rest", "glue"] = Field(default="sql", description="Catalog kind.")
    uri: str | None = Field(
        default=None,
        description="sql: SQLAlchemy URI (derived from stack.data_dir when null); rest: server URL.",
    )
    namespaces: dict[Layer, str] = Field(
        default_factory=lambda: {layer: layer for layer in get_args(Layer)},
        description="Iceberg namespace of each medallion layer.",
    )
    properties: dict[str, str] = Field(
        default_factory=dict, description="Extra catalog properties for pyiceberg and Spark."
    )

    @model_validator(mode="after")
    def _uri_where_needed(self) -> CatalogSettings:
        if self.type == "rest" and not self.uri:
            raise ValueError(
                "a rest catalog needs `uri` (set catalog.uri or LAKEHOUSE__CATALOG__URI)"
            )
        return self

    @field_validator("namespaces")
    @classmethod
    def _all_layers(cls, value: dict[Layer, str]) -> dict[Layer, str]:
        missing = {"bronze", "silver", "gold"} - set(value)
        if missing:
            raise ValueError(f"missing layer(s): {', '.join(sorted(missing))}")
        for layer, namespace in value.items():
            if not _NAME_PATTERN.match(namespace):
                raise ValueError(
                    f"namespace {namespace!r} of {layer} is not a lowercase identifier"
                )
        return value


class KafkaSettings(_Section):
    bootstrap_servers: str = Field(description="Comma-separated host:port list of brokers.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username_env: str | None = Field(
        default=None, description="Environment variable holding the SASL user name."
    )
    sasl_password_env: str | None = Field(
        default=None, description="Environment variable holding the SASL password."
    )
    client_id: str = "lakehouse"
    consumer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    producer: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server.strip()!r} is not host:port")
        return value


class SparkSettings(_Section):
    """Where Spark runs and what its executors need.

    With a ``local[...]`` master (the default) everything runs in the run's process.
    With a cluster master (``spark://``, ``k8s://``, ``yarn``) the run's process is the
    driver (client mode) and the executors run elsewhere: every ``executor_*`` key, the
    project's Python code (``ship_packages``), ``py_files`` and ``python_archive``
    reach them through Spark's own mechanisms, never through a shared file system.
    """

    master: str = Field(
        default="local[2]",
        description=(
            "`spark.master`: local[N] (one process), spark://host:port (standalone; the "
            "local stack's cluster is spark://127.0.0.1:<stack.spark_master_port>), "
            "k8s://https://host:port or yarn (client mode: this process is the driver)."
        ),
    )
    driver_memory: str = Field(
        default="2g", description="Driver JVM heap (in local mode: of everything)."
    )
    shuffle_partitions: int = Field(default=4, ge=1)
    conf: dict[str, str] = Field(default_factory=dict, description="Extra spark.* settings.")
    shared_driver: bool = Field(
        default=False,
        description=(
            "Runs attach to one warm local Spark driver (started on first use, stopped when "
            "idle or by `lakehouse-stack stop`) instead of each starting a JVM. For local "
            "mode on one machine only: with a cluster master it is ignored (each run's "
            "process is its own driver, and its application holds cluster cores only while "
            "the run lasts)."
        ),
    )
    executor_memory: str | None = Field(
        default=None,
        description="Cluster masters: heap of each executor (`spark.executor.memory`); null: Spark's 1g.",
    )
    executor_cores: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Cluster masters: cores of each executor (`spark.executor.cores`); null: all of "
            "a standalone worker's cores, 1 on YARN and Kubernetes."
        ),
    )
    executor_instances: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Cluster masters: number of executors (`spark.executor.instances` on YARN and "
            "Kubernetes; on a standalone master `spark.cores.max` = instances x cores)."
        ),
    )
    driver_host: str | None = Field(
        default=None,
        description=(
            "Cluster masters: the address executors reach the driver at (`spark.driver.host`). "
            "Null: 127.0.0.1 (bound there too) when the master is local or on loopback, "
            "else Spark's default (this host's name)."
        ),
    )
    ship_packages: list[str] = Field(
        default_factory=lambda: ["lakehouse_assets", "resources"],
        description=(
            "Cluster masters: top-level Python packages zipped (named by a hash of their "
            "sources, in the cache directory) and shipped to executors in "
            "`spark.submit.pyFiles`. Empty when the executor image has the project installed."
        ),
    )
    py_files: list[str] = Field(
        default_factory=list,
        description=(
            "Cluster masters: further .zip/.egg/.py files for `spark.submit.pyFiles`, as "
            "paths on the driver or URIs Spark can fetch (s3a://, https://)."
        ),
    )
    python_archive: str | None = Field(
        default=None,
        description=(
            "Cluster masters: a packed Python environment for the executors (venv-pack or "
            "conda-pack .tar.gz, with pyspark, pandas and pyarrow), given to `spark.archives` "
            "as `<uri>#environment`; executors then run ./environment/bin/python."
        ),
    )
    executor_python: str | None = Field(
        default=None,
        description=(
            "Cluster masters: the Python executors run (`spark.pyspark.python`, "
            "`spark.executorEnv.PYSPARK_PYTHON`). Null: ./environment/bin/python with "
            "`python_archive`, else the driver's interpreter path (right for the local "
            "stack's cluster and for executor images that install the same path)."
        ),
    )
    executor_image: str | None = Field(
        default=None,
        description=(
            "Kubernetes masters only: the container image of the executor pods "
            "(`spark.kubernetes.container.image`): Spark 3.5.8's JVM side with the image "
            "entrypoint of Spark's own images, and Python 3.11 at `executor_python` with "
            'pyspark 3.5.8, pandas and pyarrow (see README "Scaling out").'
        ),
    )
    executor_env: list[str] = Field(
        default_factory=list,
        description=(
            "Cluster masters: names of environment variables of the driver's process whose "
            "values executors get (`spark.executorEnv.<NAME>`, over Spark's RPC, never on a "
            "command line). Names only: values stay out of this file."
        ),
    )

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+[kmgt]?", value.lower()):
            raise ValueError(f"{value!r} is not a JVM memory size such as 2g or 512m")
        return value

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not _MASTER_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a Spark master URL (local[N], spark://host:port, "
                "k8s://https://host:port or yarn)"
            )
        return value

    @field_validator("executor_env")
    @classmethod
    def _variable_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ENV_NAME_PATTERN.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _image_for_kubernetes(self) -> SparkSettings:
        if self.executor_image is not None and not self.master.startswith("k8s://"):
            raise ValueError(
                f"executor_image is for Kubernetes masters (k8s://...), not {self.master!r}: "
                "other cluster managers start executors from their hosts' installation "
                "(give them Python with python_archive or executor_python)"
            )
        return self

    @property
    def is_local(self) -> bool:
        """Whether Spark runs in the driver's process (``local``, ``local[N]``, ...)."""
        return self.master.startswith("local")


class DbtSettings(_Section):
    project_dir: str = Field(default="dbt", description="The dbt project, relative to the root.")
    target: str = Field(default="local", description="The target of the generated dbt profile.")
    reporting_currency: str = Field(
        default="EUR",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency gold reports money in (rates: the fx_rates seed).",
    )
    owner: str = Field(
        default="team:data-platform",
        description="Dagster owner of gold assets whose dbt meta names none (email or team:x).",
    )


class PartitionSettings(_Section):
    start_date: date = Field(description="First daily partition (UTC) of every dataset.")
    late_window_days: int = Field(default=3, ge=0, le=60)


class LandingSettings(_Section):
    sensor_interval_seconds: int = Field(
        default=30, ge=5, description="How often the Kafka arrivals sensor compares offsets."
    )
    lookback_days: int = Field(
        default=7,
        ge=1,
        le=366,
        description="Days the sensor re-checks for offsets not landed yet (failed runs, gaps).",
    )


class StackSettings(_Section):
    """The local stack (`lakehouse-stack`): services on loopback, state in ``data_dir``."""

    data_dir: str = Field(default=".lakehouse", description="State of the local services.")
    kafka_heap: str = Field(default="512m", description="JVM heap of the local Kafka broker.")
    spark_cluster: bool = Field(
        default=False,
        description=(
            "Also start a Spark standalone cluster on loopback: a master and "
            "`spark_workers` workers, separate JVMs from the pyspark wheel. Runs use it "
            "with spark.master spark://127.0.0.1:<spark_master_port>."
        ),
    )
    spark_workers: int = Field(default=2, ge=1, le=16, description="Workers of the local cluster.")
    spark_worker_cores: int = Field(
        default=1, ge=1, description="Cores each local worker offers to executors."
    )
    spark_worker_memory: str = Field(
        default="1g",
        description="Memory each local worker offers to executors (>= spark.executor_memory).",
    )
    spark_daemon_memory: str = Field(
        default="256m", description="JVM heap of the local master and worker daemons themselves."
    )
    spark_master_port: int = Field(
        default=17077, ge=1, le=65535, description="RPC port of the local master (spark://)."
    )
    spark_master_webui_port: int = Field(
        default=18080,
        ge=1,
        le=65535,
        description="Web UI of the local master; http://127.0.0.1:<port>/json/ lists workers and apps.",
    )
    spark_worker_webui_port: int = Field(
        default=18081,
        ge=1,
        le=65535,
        description="Web UI of the first local worker; worker i (from 0) uses this port + i.",
    )

    @field_validator("spark_worker_memory", "spark_daemon_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[kmgt]?", value.lower()):
            raise ValueError(f"{value!r} is not a JVM memory size such as 1g or 512m")
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> StackSettings:
        workers = range(
            self.spark_worker_webui_port, self.spark_worker_webui_port + self.spark_workers
        )
        if self.spark_master_port == self.spark_master_webui_port or {
            self.spark_master_port,
            self.spark_master_webui_port,
        } & set(workers):
            raise ValueError(
                "spark_master_port, spark_master_webui_port and the worker web UI ports "
                f"(spark_worker_webui_port .. +{self.spark_workers - 1}) must all differ"
            )
        if workers.stop - 1 > 65535:
            raise ValueError("the worker web UI ports run past 65535")
        return self


class DatasetSettings(_Section):
    topic: str = Field(description="Kafka topic the dataset arrives on.")
    topic_partitions: int = Field(default=3, ge=1, le=1000)
    description: str = ""
    start_date: date | None = Field(default=None, description="Overrides partitions.start_date.")
    late_window_days: int | None = Field(
        default=None, ge=0, le=60, description="Overrides partitions.late_window_days."
    )
    contract: str | None = Field(
        default=None,
        description="Data contract file (relative to the project root); default contracts/<dataset>.yaml.",
    )

    @field_validator("topic")
    @classmethod
    def _valid_topic(cls, value: str) -> str:
        if not _TOPIC_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a valid Kafka topic name")
        return value


class LakehouseSettings(_Section):
    """Validated settings of one environment, with the conventions derived from them."""

    environment: str
    config_path: Path
    storage: StorageSettings
    s3: S3Settings = Field(default_factory=S3Settings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    kafka: KafkaSettings
    spark: SparkSettings = Field(default_factory=SparkSettings)
    dbt: DbtSettings = Field(default_factory=DbtSettings)
    partitions: PartitionSettings
    landing: LandingSettings = Field(default_factory=LandingSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    datasets: dict[str, DatasetSettings]

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, value: dict[str, DatasetSettings]) -> dict[str, DatasetSettings]:
        for name in value:
            if not _NAME_PATTERN.match(name):
                raise ValueError(f"dataset name {name!r} is not a lowercase identifier")
        return value

    # Conventions -------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """Absolute directory holding local service state (Kafka logs, catalog, S3 snapshot)."""
        path = Path(self.stack.data_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def catalog_uri(self) -> str:
        """Catalog URI; for the embedded SQLite catalog it lives in the data directory."""
        if self.catalog.uri is not None:
            return self.catalog.uri
        return f"sqlite:///{self.data_dir / 'catalog' / 'catalog.db'}"

    @property
    def warehouse(self) -> str:
        return f"s3://{self.storage.bucket}/{self.storage.warehouse_prefix}"

    @property
    def spark_cluster_url(self) -> str:
        """The master URL of the local stack's Spark cluster (``stack.spark_cluster``)."""
        return f"spark://127.0.0.1:{self.stack.spark_master_port}"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    @property
    def dbt_project_dir(self) -> Path:
        path = Path(self.dbt.project_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    def bronze_uri(self, dataset: str) -> str:
        """``s3://bucket/bronze/<dataset>``: the prefix under which a dataset's partitions land."""
        self.dataset(dataset)
        return f"s3://{self.storage.bucket}/{self.storage.bronze_prefix}/{dataset}"

    def namespace(self, layer: Layer) -> str:
        return self.catalog.namespaces[layer]

    def dataset(self, name: str) -> DatasetSettings:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets))
            raise ConfigError(
                f"{self.config_path}: unknown dataset {name!r} (configured: {known})"
            ) from None

    def dataset_start_date(self, name: str) -> date:
        return self.dataset(name).start_date or self.partitions.start_date

    def contract_path(self, name: str) -> Path:
        """The dataset's data contract: ``datasets.<name>.contract`` or ``contracts/<name>.yaml``."""
        configured = self.dataset(name).contract
        path = Path(configured) if configured else Path("contracts") / f"{name}.yaml"
        return path if path.is_absolute() else PROJECT_ROOT / path

    def late_window_days(self, name: str) -> int:
        configured = self.dataset(name).late_window_days
        return self.partitions.late_window_days if configured is None else configured

    @property
    def s3_is_local(self) -> bool:
        return _is_loopback_url(self.s3.endpoint_url)

    @property
    def kafka_is_local(self) -> bool:
        return all(
            _is_loopback_host(server.strip().rpartition(":")[0])
            for server in self.kafka.bootstrap_servers.split(",")
        )


def _is_loopback_host(host: str | None) -> bool:
    return host is not None and (host == "localhost" or host.startswith("127.") or host == "::1")


def _is_loopback_url(url: str | None) -> bool:
    return url is not None and _is_loopback_host(urlparse(url).hostname)


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS=x`` becomes ``{"kafka": {"bootstrap_servers": "x"}}``."""
    overrides: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_OVERRIDE_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_OVERRIDE_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty key segment")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment variable {name}: not a YAML value ({exc})") from None
        # Strings that YAML would turn into dates or numbers stay as the user typed them
        # unless the schema wants a number; pydantic converts "19092" to int where needed.
        if not isinstance(value, (dict, list, bool, type(None))):
            value = raw
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name}: conflicts with another override")
        node[path[-1]] = value
    return overrides


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "<root>"
    if error["type"] == "extra_forbidden":
        return f"{location}: unknown key"
    if error["type"] == "missing":
        return f"{location}: required key is missing"
    value = error.get("input")
    if value is None and "input" in error and error["type"].endswith("_type"):
        variable = ENV_OVERRIDE_PREFIX + "__".join(str(part).upper() for part in error["loc"])
        return f"{location}: required but null (set it in the file or with {variable})"
    shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
    return f"{location}: {error['msg']}{shown}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: top level must be a mapping with `defaults` and `environments`")
    unknown = set(document) - {"defaults", "environments"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
    return document


def load_settings(
    environment: str | None = None,
    config_path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> LakehouseSettings:
    """Load and validate the settings of one environment.

    Args:
        environment: ``local``, ``dev`` or ``prod``; defaults to ``$LAKEHOUSE_ENV`` or ``local``.
        config_path: the YAML file; defaults to ``$LAKEHOUSE_CONFIG`` or ``config/lakehouse.yaml``.
        environ: the environment variables to read overrides from (default: ``os.environ``).

    Raises:
        ConfigError: naming the file, environment, key and problem.
    """
    environ = os.environ if environ is None else environ
    env_name = environment or environ.get("LAKEHOUSE_ENV") or "local"
    path = Path(config_path or environ.get("LAKEHOUSE_CONFIG") or DEFAULT_CONFIG_PATH)
    document = _read_yaml(path)
    environments = document.get("environments") or {}
    if env_name not in environments:
        known = ", ".join(sorted(environments)) or "none"
        raise ConfigError(f"{path}: unknown environment {env_name!r} (defined: {known})")
    merged = _deep_merge(document.get("defaults") or {}, environments[env_name] or {})
    merged = _deep_merge(merged, _env_overrides(environ))
    merged.update(environment=env_name, config_path=path)
    try:
        return LakehouseSettings.model_validate(merged)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(error) for error in exc.errors())
        raise ConfigError(
            f"{path} (environment {env_name!r}) is invalid:\n  {problems}\n"
            f"Fix the file or the matching {ENV_OVERRIDE_PREFIX}<SECTION>__<KEY> variable."
        ) from None


@cache
def get_settings() -> LakehouseSettings:
    """Settings of the current process's environment, loaded once."""
    return load_settings()


def cache_dir() -> Path:
    """Downloaded JVM artefacts (Kafka broker jars, Spark packages), shared by checkouts.

    ``$LAKEHOUSE_CACHE_DIR`` or ``~/.cache/lakehouse``: outside the project so that a
    fresh clone reuses what an earlier one downloaded.
    """
    configured = os.environ.get("LAKEHOUSE_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "lakehouse"
