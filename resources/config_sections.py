"""The sections of ``config/lakehouse.yaml``, one pydantic model each, validated with the
keys a user can set and their descriptions; :class:`resources.settings.LakehouseSettings`
holds them and :func:`resources.settings.load_settings` fills them."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal, get_args
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Layer = Literal["bronze", "silver", "gold"]

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

_TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

_BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

_MASTER_PATTERN = re.compile(
    r"^(local(\[[0-9*]+(,\s*[0-9]+)?\])?|local-cluster\[.+\]|spark://\S+|k8s://\S+|yarn)$"
)

_ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Section):
    bucket: str = Field(description="S3 bucket that holds bronze files and the Iceberg warehouse.")
    bronze_prefix: str = Field(default="bronze", description="Key prefix of bronze Parquet files.")
    warehouse_prefix: str = Field(
        default="warehouse", description="Key prefix of the Iceberg warehouse."
    )
    raw_prefix: str = Field(
        default="raw",
        description=(
            "Key prefix of HTTP sources' responses as received: "
            "<raw_prefix>/<dataset>/run_id=<run>/date=<day>/."
        ),
    )

    @field_validator("bucket")
    @classmethod
    def _valid_bucket(cls, value: str) -> str:
        if not _BUCKET_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a valid S3 bucket name")
        return value

    @field_validator("bronze_prefix", "warehouse_prefix", "raw_prefix")
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
    write_audit_publish: bool = Field(
        default=True,
        description=(
            "Silver runs write every table to a branch of their own, run the blocking checks "
            "on it and fast-forward main only when they pass (false: write main directly)."
        ),
    )
    audit_branch_max_age_days: int = Field(
        default=7,
        ge=1,
        description=(
            "A run branch that was not published (its checks or its run failed) is dropped "
            "by the next run of its dataset once it is older than this."
        ),
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


class TableHealthBounds(_Section):
    """When a table's health check warns (``maintenance.health``)."""

    max_small_files: int = Field(
        default=200,
        ge=0,
        description=(
            "Small files that compaction could merge (in partitions holding at least "
            "min_input_files of them) above which the table is unhealthy."
        ),
    )
    max_snapshots: int = Field(
        default=3000,
        ge=1,
        description=(
            "Snapshots above which the table is unhealthy: about a day of commits every "
            "30 s; far more means snapshot expiry is not running."
        ),
    )


class MaintenanceSettings(_Section):
    """Iceberg table maintenance: one asset per silver, quarantine and gold table.

    A run compacts the partitions with enough small files (``rewrite_data_files``),
    rewrites the manifests, expires snapshots and removes orphan files, in that order.
    """

    enabled: bool = Field(default=True, description="Build the maintenance assets and schedules.")
    cron: str = Field(
        default="0 2 * * *",
        description="When the first table's maintenance runs (UTC); the others follow, staggered.",
    )
    stagger_minutes: int = Field(
        default=6,
        ge=0,
        le=120,
        description="Minutes between the scheduled starts of two tables' maintenance.",
    )
    target_file_size_mb: int = Field(
        default=128, ge=1, description="Size compaction writes files at (target-file-size-bytes)."
    )
    small_file_mb: float = Field(
        default=32,
        gt=0,
        description="Files below this size count as small (compaction's min-file-size-bytes).",
    )
    min_input_files: int = Field(
        default=5,
        ge=2,
        description="A partition is compacted once it holds at least this many small files.",
    )
    snapshot_retain_last: int = Field(
        default=50, ge=1, description="expire_snapshots keeps at least this many snapshots."
    )
    snapshot_max_age_hours: float = Field(
        default=24,
        ge=0,
        description=(
            "expire_snapshots removes snapshots older than this (beyond retain_last); "
            "snapshots a branch or tag still needs are never removed."
        ),
    )
    orphan_min_age_hours: float = Field(
        default=72,
        ge=0,
        description=(
            "Orphan removal only deletes unreferenced files older than this: keep it far "
            "above the longest run (Iceberg's own procedure insists on 24 h), so the files "
            "of a write in flight are never touched."
        ),
    )
    health: TableHealthBounds = Field(default_factory=TableHealthBounds)


class QuarantineAnomalySettings(_Section):
    """When a silver day's quarantine rate is an anomaly (the ``quarantine_rate_anomaly``
    check): more than ``k`` standard deviations above the rates of the days before it."""

    k: float = Field(
        default=3.0,
        gt=0,
        description="Standard deviations above the trailing window's mean that flag a day.",
    )
    window_days: int = Field(
        default=14,
        ge=2,
        le=365,
        description="The trailing window: this many days before the checked day.",
    )
    min_history_days: int = Field(
        default=7,
        ge=2,
        description=(
            "Days of the window that must have a recorded rate before a day is judged; "
            "with fewer the check passes and says the history is too short."
        ),
    )
    min_rate_increase: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description=(
            "A day is flagged only when its rate is also at least this much above the mean "
            "(absolute, 0.01 = one point): a flat history has no spread, and without a "
            "floor any rise would be an anomaly."
        ),
    )


class FreshnessSettings(_Section):
    """Dagster freshness policies, derived from the contracts' SLA ``latency``."""

    warn_fraction: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description=(
            "A silver table warns once its last materialisation is this fraction of the "
            "SLA latency old, and fails at the full latency."
        ),
    )
    gold_allowance_minutes: int = Field(
        default=30,
        ge=0,
        description=(
            "Gold models may lag the newest SLA of the silver tables they read by this "
            "much more: they are built after silver."
        ),
    )
    check_cron: str = Field(
        default="17 * * * *",
        description=(
            "When the contract freshness checks (newest row vs the SLA, on main) run on "
            "their own (UTC); they are not part of silver's own step, so they never hold "
            "a publish back."
        ),
    )


class QualitySettings(_Section):
    """Data-quality history and freshness (``quality``)."""

    quarantine_anomaly: QuarantineAnomalySettings = Field(default_factory=QuarantineAnomalySettings)
    freshness: FreshnessSettings = Field(default_factory=FreshnessSettings)


class LineageSettings(_Section):
    """OpenLineage events of every layer (``lineage``): where they go and what emits them.

    Dagster's materialisations and checks are sent by the ``openlineage`` sensor
    (dagster-openlineage), Spark's jobs (silver, and gold's dbt models, which run on
    the same Spark session) by the openlineage-spark listener; both use this transport.
    """

    enabled: bool = Field(
        default=True,
        description="Emit OpenLineage events (the sensor and the Spark listener); false: none.",
    )
    transport: Literal["file", "http", "console"] = Field(
        default="file",
        description=(
            "file: JSON lines under `file_dir` (one file per producer); http: POST to `url` "
            "(Marquez or any OpenLineage receiver); console: the process's log."
        ),
    )
    file_dir: str | None = Field(
        default=None,
        description="file transport: directory of the event files; null: <stack.data_dir>/lineage.",
    )
    url: str | None = Field(
        default=None,
        description="http transport: the receiver's base URL, e.g. http://marquez:5000.",
    )
    endpoint: str = Field(
        default="api/v1/lineage", description="http transport: path of the lineage endpoint."
    )
    api_key_env: str | None = Field(
        default=None,
        description=(
            "http transport: NAME of the environment variable holding the receiver's API key "
            "(sent as a Bearer token); null or unset: no authentication."
        ),
    )
    timeout_seconds: float = Field(
        default=5.0, gt=0, description="http transport: timeout of one event's request."
    )
    namespace: str = Field(
        default="lakehouse",
        pattern=r"^[A-Za-z0-9_.:/-]+$",
        description="OpenLineage namespace of the jobs (Dagster assets and runs, Spark jobs).",
    )
    spark_listener: bool = Field(
        default=True,
        description=(
            "Attach the openlineage-spark listener to Spark sessions (Spark's own lineage of "
            "every job, with column lineage)."
        ),
    )
    sensor_interval_seconds: int = Field(
        default=30, ge=5, description="How often the openlineage sensor reads Dagster's event log."
    )

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and urlparse(value).scheme not in ("http", "https"):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value


class DynamoDbExport(_Section):
    """One gold model exported to DynamoDB."""

    key: str = Field(description="The model's key column: the table's partition key.")
    partition_column: str = Field(
        description="The model's date column that holds its Dagster partition (the day)."
    )


class DynamoDbSettings(_Section):
    """Gold models exported to DynamoDB for lookups by key (``serving.dynamodb``)."""

    enabled: bool = Field(default=True, description="Build the export assets.")
    endpoint_url: str | None = Field(
        default=None,
        description=(
            "DynamoDB endpoint; null: s3.endpoint_url, i.e. AWS, or locally the stack's "
            "AWS API server (the S3 server answers the DynamoDB API too)."
        ),
    )
    region: str | None = Field(default=None, description="Region; null: s3.region.")
    table_prefix: str = Field(
        default="lakehouse_", description="Table name = this prefix + the model's name."
    )
    exports: dict[str, DynamoDbExport] = Field(
        default_factory=dict, description="Gold model name -> its key and partition column."
    )
    sample_size: int = Field(
        default=50,
        ge=0,
        description="Rows a day's reconciliation check compares value by value.",
    )


class PostgresExport(_Section):
    """One gold model exported to Postgres (a table of the star schema)."""

    primary_key: list[str] = Field(
        min_length=1, description="The model's key columns: the table's primary key."
    )
    partition_column: str | None = Field(
        default=None,
        description=(
            "The model's date column that holds its Dagster partition (the day): each day "
            "is replaced on its own. Null: a dimension replaced whole at every export."
        ),
    )
    indexes: list[list[str]] = Field(
        default_factory=list,
        description="Secondary indexes, each a list of columns (the partition column gets one).",
    )

    @field_validator("primary_key", "indexes")
    @classmethod
    def _names(cls, value: list[str] | list[list[str]]) -> list[str] | list[list[str]]:
        for column in (c for item in value for c in ([item] if isinstance(item, str) else item)):
            if not _NAME_PATTERN.match(column):
                raise ValueError(f"{column!r} is not a column name (lower case, digits, _)")
        return value


class PostgresSettings(_Section):
    """Gold models exported to PostgreSQL as a star schema for BI (``serving.postgres``)."""

    enabled: bool = Field(
        default=True,
        description="Build the export assets (and run the local stack's PostgreSQL server).",
    )
    host: str | None = Field(
        default="127.0.0.1",
        description="Server host; the local stack's server listens on 127.0.0.1.",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Server port; null: stack.postgres_port."
    )
    database: str = Field(default="lakehouse", description="Database of the serving schema.")
    user: str = Field(default="lakehouse", description="Role the exports connect as.")
    password_env: str | None = Field(
        default="LAKEHOUSE_POSTGRES_PASSWORD",
        description=(
            "NAME of the environment variable holding the role's password; unset with a "
            "loopback host: the local stack's placeholder password."
        ),
    )
    sslmode: str = Field(
        default="prefer",
        pattern=r"^(disable|allow|prefer|require|verify-ca|verify-full)$",
        description="libpq sslmode (`require` or `verify-full` for servers off this machine).",
    )
    schema_name: str = Field(
        default="gold",
        pattern=_NAME_PATTERN.pattern,
        description="Schema that holds the exported tables and the export log.",
    )
    exports: dict[str, PostgresExport] = Field(
        default_factory=dict,
        description="Gold model name -> its primary key, partition column and indexes.",
    )
    sample_size: int = Field(
        default=50,
        ge=0,
        description="Rows a reconciliation check compares value by value.",
    )

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value


class ServingSettings(_Section):
    """Serving stores that gold is exported to (``serving``)."""

    dynamodb: DynamoDbSettings = Field(default_factory=DynamoDbSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)


_S3_URI_PATTERN = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?$")


def _s3_uris(values: list[str], what: str) -> list[str]:
    for value in values:
        if not _S3_URI_PATTERN.match(value):
            raise ValueError(f"{what}: {value!r} is not an s3://bucket/key URI")
    return values


class SubprocessLauncherSettings(_Section):
    """``silver_launcher.subprocess``: spark-submit of the silver job on this machine."""

    spark_submit: str | None = Field(
        default=None,
        description="The spark-submit executable; null: the pyspark wheel's own bin/spark-submit.",
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="Further spark-submit arguments, placed before the entry point.",
    )


class GlueLauncherSettings(_Section):
    """``silver_launcher.glue``: the silver job as an AWS Glue (5.x) Spark job.

    :func:`resources.spark.aws_jobs.glue_job_definition` turns these into the job's
    CreateJob/UpdateJob parameters; the Iceberg catalog's Spark settings are derived
    from ``catalog``, ``storage`` and ``s3``, never repeated here.
    """

    job_name: str = Field(
        default="lakehouse-silver",
        pattern=r"^[A-Za-z0-9_.-]{1,255}$",
        description="Name of the Glue job (created or updated by ensure_glue_job).",
    )
    role_arn: str | None = Field(
        default=None,
        description=(
            "IAM role the job runs as (S3 on bronze, warehouse and pipes prefixes, the Glue "
            "Data Catalog, CloudWatch logs); required with kind pipes_glue."
        ),
    )
    glue_version: str = Field(
        default="5.0",
        pattern=r"^\d+\.\d+$",
        description="Glue version: 5.0 is Spark 3.5.4, Python 3.11, Java 17, Iceberg 1.7.1.",
    )
    worker_type: str = Field(
        default="G.1X", description="Worker type (G.1X: 4 vCPU, 16 GB; G.2X: 8 vCPU, 32 GB; ...)."
    )
    number_of_workers: int = Field(
        default=2, ge=2, description="Workers of a run, the driver included (Glue's minimum: 2)."
    )
    timeout_minutes: int = Field(
        default=120, ge=1, description="A run still going after this is stopped (state TIMEOUT)."
    )
    max_concurrent_runs: int = Field(
        default=8,
        ge=1,
        description=(
            "Runs of the job at once (ExecutionProperty.MaxConcurrentRuns): silver runs of "
            "different datasets and days run in parallel, each a job run."
        ),
    )
    script_location: str | None = Field(
        default=None,
        description=(
            "s3:// URI of the bootstrap script lakehouse_silver_job.py (written by "
            "`python -m resources.spark.aws_jobs package`); required with kind pipes_glue."
        ),
    )
    extra_py_files: list[str] = Field(
        default_factory=list,
        description=(
            "`--extra-py-files`: s3:// URIs, first the code archive lakehouse-silver.zip "
            "(the bootstrap extracts it); required with kind pipes_glue."
        ),
    )
    extra_jars: list[str] = Field(
        default_factory=list,
        description="`--extra-jars`: s3:// URIs of further jars, e.g. the certifier UDF jar.",
    )
    additional_python_modules: list[str] = Field(
        default_factory=list,
        description=(
            "`--additional-python-modules`: pip requirements the job needs beyond Glue's own "
            "(pinned as in requirements.lock, e.g. dagster-pipes==1.13.27)."
        ),
    )
    datalake_formats: str = Field(
        default="iceberg",
        description="`--datalake-formats`: Glue's own Iceberg runtime and AWS bundle on the classpath.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Further Spark settings for the job's `--conf`; they override the derived ones.",
    )
    default_arguments: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Further DefaultArguments of the job (`--TempDir`, `--enable-spark-ui`, ...); "
            "they override the derived ones."
        ),
    )

    @field_validator("extra_py_files", "extra_jars")
    @classmethod
    def _s3(cls, value: list[str]) -> list[str]:
        return _s3_uris(value, "Glue fetches these from S3")

    @field_validator("script_location")
    @classmethod
    def _script_on_s3(cls, value: str | None) -> str | None:
        if value is not None:
            _s3_uris([value], "Glue fetches the script from S3")
        return value


class EmrServerlessLauncherSettings(_Section):
    """``silver_launcher.emr_serverless``: the silver job as an EMR Serverless Spark job run.

    :func:`resources.spark.aws_jobs.emr_serverless_start_job_run_params` turns these into
    StartJobRun parameters; sizing comes from ``spark`` (driver and executor memory,
    cores, instances), the catalog's Spark settings from ``catalog``, ``storage`` and ``s3``.
    """

    application_id: str | None = Field(
        default=None,
        description="The EMR Serverless application (type Spark) runs go to; required with kind pipes_emr_serverless.",
    )
    execution_role_arn: str | None = Field(
        default=None,
        description=(
            "IAM role of the job runs (S3, Glue Data Catalog, logs); required with kind "
            "pipes_emr_serverless."
        ),
    )
    release_label: str = Field(
        default="emr-7.12.0",
        pattern=r"^emr-7\.\d+\.\d+$",
        description=(
            "EMR release of the application (7.x: Spark 3.5, Python 3.11, Java 17; 7.12.0 "
            "has Iceberg 1.10.0); used when the application is created."
        ),
    )
    entry_point: str | None = Field(
        default=None,
        description=(
            "s3:// URI of the bootstrap script lakehouse_silver_job.py; required with kind "
            "pipes_emr_serverless."
        ),
    )
    py_files: list[str] = Field(
        default_factory=list,
        description=(
            "`spark.submit.pyFiles`: s3:// URIs, first the code archive lakehouse-silver.zip; "
            "required with kind pipes_emr_serverless."
        ),
    )
    python_archive: str | None = Field(
        default=None,
        description=(
            "s3:// URI of a packed Python 3.11 environment (venv-pack) with the job's "
            "dependencies, unpacked as ./environment for the driver and the executors "
            "(`spark.archives`); null: the image's Python."
        ),
    )
    jars: list[str] = Field(
        default_factory=lambda: ["/usr/share/aws/iceberg/lib/iceberg-spark3-runtime.jar"],
        description=(
            "`spark.jars`: the release's own Iceberg runtime (with its AWS integration) and "
            "further jars (s3:// URIs, e.g. the certifier UDF jar)."
        ),
    )
    log_uri: str | None = Field(
        default=None,
        description="s3:// prefix for the driver's and executors' logs (S3 monitoring); null: none.",
    )
    execution_timeout_minutes: int = Field(
        default=120, ge=5, description="A run still going after this is cancelled."
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="Further Spark settings (`--conf`); they override the derived ones.",
    )

    @field_validator("py_files")
    @classmethod
    def _s3(cls, value: list[str]) -> list[str]:
        return _s3_uris(value, "EMR Serverless fetches these from S3")

    @field_validator("entry_point", "python_archive", "log_uri")
    @classmethod
    def _on_s3(cls, value: str | None) -> str | None:
        if value is not None:
            _s3_uris([value], "EMR Serverless reads this from S3")
        return value


SilverLauncherKind = Literal["session", "pipes_subprocess", "pipes_glue", "pipes_emr_serverless"]

# What each launcher kind cannot run without: (section, key, what it is).
_LAUNCHER_REQUIRES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "pipes_glue": (
        ("glue", "role_arn", "the IAM role the job runs as"),
        ("glue", "script_location", "the s3:// URI of lakehouse_silver_job.py"),
        ("glue", "extra_py_files", "the s3:// URI of lakehouse-silver.zip"),
    ),
    "pipes_emr_serverless": (
        ("emr_serverless", "application_id", "the EMR Serverless application"),
        ("emr_serverless", "execution_role_arn", "the IAM role the job runs as"),
        ("emr_serverless", "entry_point", "the s3:// URI of lakehouse_silver_job.py"),
        ("emr_serverless", "py_files", "the s3:// URI of lakehouse-silver.zip"),
    ),
}


class SilverLauncherSettings(_Section):
    """How silver's Spark work runs (``silver_launcher``), the same assets and checks in
    the UI whichever runs it.

    ``session``: in the Dagster run's process (its Spark session). The ``pipes_*`` kinds
    run the silver job entry point (``lakehouse_assets.silver.job``) as a Spark
    application that reports back through Dagster Pipes: ``pipes_subprocess`` with
    spark-submit on this machine, ``pipes_glue`` as an AWS Glue job run,
    ``pipes_emr_serverless`` as an EMR Serverless job run.
    """

    kind: SilverLauncherKind = Field(
        default="session",
        description=(
            "session (the run's own Spark session), pipes_subprocess (spark-submit here), "
            "pipes_glue (an AWS Glue job) or pipes_emr_serverless (an EMR Serverless job)."
        ),
    )
    pipes_bucket: str | None = Field(
        default=None,
        description=(
            "Bucket of the Pipes context and messages of Glue and EMR Serverless runs; "
            "null: storage.bucket."
        ),
    )
    pipes_prefix: str = Field(
        default="pipes",
        description="Key prefix of the Pipes context and messages (the job role writes there).",
    )
    subprocess: SubprocessLauncherSettings = Field(default_factory=SubprocessLauncherSettings)
    glue: GlueLauncherSettings = Field(default_factory=GlueLauncherSettings)
    emr_serverless: EmrServerlessLauncherSettings = Field(
        default_factory=EmrServerlessLauncherSettings
    )

    @field_validator("pipes_bucket")
    @classmethod
    def _valid_bucket(cls, value: str | None) -> str | None:
        if value is not None and not _BUCKET_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a valid S3 bucket name")
        return value

    @field_validator("pipes_prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        cleaned = value.strip("/")
        if not cleaned:
            raise ValueError("must not be empty")
        return cleaned

    @model_validator(mode="after")
    def _complete_for_kind(self) -> SilverLauncherSettings:
        missing = [
            f"silver_launcher.{section}.{key} ({what}; "
            f"LAKEHOUSE__SILVER_LAUNCHER__{section.upper()}__{key.upper()})"
            for section, key, what in _LAUNCHER_REQUIRES.get(self.kind, ())
            if not getattr(getattr(self, section), key)
        ]
        if missing:
            raise ValueError(f"kind {self.kind} needs " + ", ".join(missing))
        return self


class StackSettings(_Section):
    """The local stack (`lakehouse-stack`): services on loopback, state in ``data_dir``."""

    data_dir: str = Field(default=".lakehouse", description="State of the local services.")
    kafka_heap: str = Field(default="512m", description="JVM heap of the local Kafka broker.")
    postgres_port: int = Field(
        default=15432,
        ge=1,
        le=65535,
        description=(
            "Loopback port of the local PostgreSQL server (serving.postgres), run when "
            "serving.postgres.enabled; its cluster lives in <data_dir>/postgres."
        ),
    )
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
    weather_port: int = Field(
        default=18700,
        ge=1,
        le=65535,
        description=(
            "Loopback port of the local weather API (Open-Meteo's archive API, serving "
            "generated data) that the `weather` dataset reads in the local environment."
        ),
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


HttpFormat = Literal["json", "ndjson", "csv", "parquet"]

#: Placeholders a URL, a query parameter or a header of an HTTP source may hold.
HTTP_PLACEHOLDERS = ("date", "next_date")


def _check_placeholders(text: str) -> str:
    import string

    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name not in HTTP_PLACEHOLDERS:
            raise ValueError(
                f"{text!r} names placeholder {{{name}}}; known: "
                + ", ".join(f"{{{p}}}" for p in HTTP_PLACEHOLDERS)
            )
    return text


class HttpRetrySettings(_Section):
    """How an HTTP source's requests are retried (``datasets.<name>.http.retry``)."""

    max_attempts: int = Field(
        default=6,
        ge=1,
        le=100,
        description=(
            "Requests per page before the landing fails, resumed downloads included; "
            "429, 5xx, connection errors, timeouts and truncated bodies are retried."
        ),
    )
    backoff_initial_seconds: float = Field(
        default=1.0, ge=0, description="Wait before the second attempt; doubles each attempt."
    )
    backoff_max_seconds: float = Field(
        default=60.0, ge=0, description="Longest wait between attempts (before jitter)."
    )
    jitter: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of each wait drawn at random (0.5: between 50% and 100% of it).",
    )
    retry_after_max_seconds: float = Field(
        default=600.0,
        ge=0,
        description=(
            "A Retry-After longer than this fails the landing at once instead of waiting "
            "(the server asks for more patience than a run should hold a slot for)."
        ),
    )


class HttpPaginationSettings(_Section):
    """How an HTTP source's pages follow each other (``datasets.<name>.http.pagination``).

    ``none``: one request per day. ``page``: query parameter ``param`` counts pages from
    ``start``; ``offset``: ``param`` is the first record's index. Both send ``size`` in
    ``size_param`` (when set) and stop at a page with fewer than ``size`` records (or
    none). ``cursor``: the JSON response holds the next page's cursor at ``cursor_path``
    (dotted), sent back in ``param``; a missing or null cursor ends. ``link``: follow the
    ``Link: <...>; rel="next"`` response header.
    """

    kind: Literal["none", "page", "offset", "cursor", "link"] = "none"
    param: str | None = Field(
        default=None, description="Query parameter of the page/offset/cursor."
    )
    size_param: str | None = Field(default=None, description="Query parameter of the page size.")
    size: int | None = Field(default=None, ge=1, description="Records per page (page, offset).")
    start: int = Field(default=1, ge=0, description="First page number (page).")
    cursor_path: str | None = Field(
        default=None, description="Dotted path of the next cursor in a JSON response (cursor)."
    )
    max_pages: int = Field(
        default=1000, ge=1, description="A day with more pages fails: a pagination loop guard."
    )

    @model_validator(mode="after")
    def _complete(self) -> HttpPaginationSettings:
        needs = {
            "page": ("param", "size"),
            "offset": ("param", "size"),
            "cursor": ("param", "cursor_path"),
        }.get(self.kind, ())
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"pagination kind {self.kind!r} needs {', '.join(missing)}")
        return self


class HttpSourceSettings(_Section):
    """An HTTP API or file download as a dataset's source (``datasets.<name>.http``).

    One day (a daily partition) is one request, or one request per page: the URL,
    the query parameters and the headers may hold ``{date}`` (the day, YYYY-MM-DD) and
    ``{next_date}`` (the day after). Each response is stored as received under
    ``s3://<bucket>/<storage.raw_prefix>/<dataset>/run_id=<run>/``, then parsed into
    the contract's typed columns and landed as the bronze day.
    """

    url: str = Field(description="URL template, e.g. https://api.example.com/v1/items?day={date}.")
    params: dict[str, str] = Field(
        default_factory=dict, description="Query parameters (templates, like the URL)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers; never secrets (see auth_env)."
    )
    auth_header: str = Field(
        default="Authorization", description="Header that carries the credential of auth_env."
    )
    auth_env: str | None = Field(
        default=None,
        description=(
            "NAME of the environment variable whose value is sent in auth_header (with "
            "auth_scheme before it); null: no credential. The value never reaches a log."
        ),
    )
    auth_scheme: str | None = Field(
        default="Bearer", description="Prefix of the credential (Bearer); null: the value alone."
    )
    format: HttpFormat = Field(description="Response format: json, ndjson, csv or parquet.")
    records_path: str | None = Field(
        default=None,
        description=(
            "json: dotted path of the records in the document (null: the document is the "
            "list of records); ignored by the other formats."
        ),
    )
    orient: Literal["rows", "columns"] = Field(
        default="rows",
        description=(
            "json: the records are a list of objects (rows) or an object of equally long "
            "arrays, one per field (columns, as Open-Meteo's `hourly`)."
        ),
    )
    document_fields: list[str] = Field(
        default_factory=list,
        description=(
            "json: top-level fields of the document copied into every record "
            "(Open-Meteo's latitude and longitude)."
        ),
    )
    pagination: HttpPaginationSettings = Field(default_factory=HttpPaginationSettings)
    retry: HttpRetrySettings = Field(default_factory=HttpRetrySettings)
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, description="TCP/TLS connect timeout."
    )
    read_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest silence while a response streams in; then the attempt is retried.",
    )
    cron: str = Field(
        default="30 1 * * *",
        description=(
            "When the schedule lands new days (UTC): the last `schedule_days` closed days, "
            "each in replace mode."
        ),
    )
    schedule_days: int = Field(
        default=2,
        ge=1,
        le=60,
        description="Closed days (yesterday and before) each scheduled run re-lands.",
    )
    include_today: bool = Field(
        default=False,
        description=(
            "Also land today (a partial day, re-landed by every run) for sources that "
            "publish during the day; the archive API publishes closed days only."
        ),
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parsed = urlparse(_check_placeholders(value))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("params", "headers")
    @classmethod
    def _valid_templates(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            _check_placeholders(text)
        return value

    @field_validator("auth_env")
    @classmethod
    def _valid_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME_PATTERN.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _format_options(self) -> HttpSourceSettings:
        if self.format != "json" and (self.records_path or self.document_fields):
            raise ValueError("records_path and document_fields apply to format json only")
        if self.orient == "columns" and self.format != "json":
            raise ValueError("orient: columns applies to format json only")
        if self.pagination.kind == "cursor" and self.format != "json":
            raise ValueError("cursor pagination reads the cursor from a json response")
        return self


class DatasetSettings(_Section):
    """One dataset (``datasets.<name>``): where it comes from, and its partitions.

    A dataset has exactly one source: a Kafka ``topic``, or an ``http`` source (an
    API or a file download landed by a schedule, see HttpSourceSettings).
    """

    topic: str | None = Field(
        default=None, description="Kafka topic the dataset arrives on (Kafka datasets)."
    )
    topic_partitions: int = Field(
        default=3, ge=1, le=1000, description="Partitions of the topic the local stack creates."
    )
    http: HttpSourceSettings | None = Field(
        default=None, description="The HTTP source the dataset is fetched from (HTTP datasets)."
    )
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
    def _valid_topic(cls, value: str | None) -> str | None:
        if value is not None and not _TOPIC_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a valid Kafka topic name")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSettings:
        if (self.topic is None) == (self.http is None):
            raise ValueError(
                "a dataset has exactly one source: `topic` (Kafka) or `http` (an HTTP API); "
                + ("both are set" if self.topic else "neither is set")
            )
        return self

    @property
    def kind(self) -> Literal["kafka", "http"]:
        """Where the dataset comes from: ``kafka`` (a topic) or ``http`` (an HTTP source)."""
        return "kafka" if self.topic is not None else "http"

    @property
    def kafka_topic(self) -> str:
        """The Kafka topic; a ValueError for an HTTP dataset, which has none."""
        if self.topic is None:
            raise ValueError("this dataset comes from an HTTP source, not a Kafka topic")
        return self.topic

    @property
    def http_source(self) -> HttpSourceSettings:
        """The HTTP source; a ValueError for a Kafka dataset, which has none."""
        if self.http is None:
            raise ValueError("this dataset comes from a Kafka topic, not an HTTP source")
        return self.http
