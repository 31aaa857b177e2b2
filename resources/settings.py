"""Project settings: one YAML file per project, one section per environment.

``config/lakehouse.yaml`` is the single source of truth. :func:`load_settings` layers,
with pydantic-settings, ``LAKEHOUSE__SECTION__KEY`` environment overrides over the
selected environment's section over the file's ``defaults``, validates the result and
derives everything that follows by convention (bronze prefix, warehouse location,
catalog file, Dagster home).

Invalid configuration fails here, at load time, with a :class:`ConfigError` that
names the file, the environment, the key and the problem, instead of surfacing
later as a traceback from deep inside boto3, librdkafka or Spark.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from resources.config_sections import (
    _NAME_PATTERN,
    CatalogSettings,
    DatasetSettings,
    DbtSettings,
    KafkaSettings,
    LandingSettings,
    Layer,
    LineageSettings,
    MaintenanceSettings,
    PartitionSettings,
    QualitySettings,
    S3Settings,
    ServingSettings,
    SilverLauncherSettings,
    SparkSettings,
    StackSettings,
    StorageSettings,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config" / "lakehouse.yaml"
ENV_OVERRIDE_PREFIX = "LAKEHOUSE__"


class ConfigError(ValueError):
    """Configuration is invalid; the message names file, environment, key and problem."""


@dataclass(frozen=True)
class _Layers:
    """What one :func:`load_settings` call layers: the file's two sections, the overrides."""

    defaults: dict[str, Any]
    environment: dict[str, Any]
    overrides: dict[str, Any]


_LOADING: ContextVar[_Layers | None] = ContextVar("lakehouse_settings_loading", default=None)


class LakehouseSettings(BaseSettings):
    """Validated settings of one environment, with the conventions derived from them."""

    model_config = SettingsConfigDict(
        # Unknown keys are errors: a typo must not silently fall back to a default.
        extra="forbid",
        frozen=True,
        validate_default=False,
        # YAML keys are matched as spelled; the override source matches names case-insensitively.
        case_sensitive=True,
        env_prefix=ENV_OVERRIDE_PREFIX,
        env_nested_delimiter="__",
    )

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
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    lineage: LineageSettings = Field(default_factory=LineageSettings)
    silver_launcher: SilverLauncherSettings = Field(default_factory=SilverLauncherSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    datasets: dict[str, DatasetSettings]

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, value: dict[str, DatasetSettings]) -> dict[str, DatasetSettings]:
        for name in value:
            if not _NAME_PATTERN.match(name):
                raise ValueError(f"dataset name {name!r} is not a lowercase identifier")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first; pydantic-settings deep-merges them in this order."""
        layers = _LOADING.get()
        if layers is None:
            # Built from values (``LakehouseSettings(...)``, ``model_validate``): those values
            # only, as a plain model; never os.environ, a .env file or a secrets directory.
            return (init_settings,)
        return (
            init_settings,  # environment and config_path, set by load_settings
            _OverrideSource(settings_cls, layers.overrides),
            InitSettingsSource(settings_cls, init_kwargs=layers.environment),
            InitSettingsSource(settings_cls, init_kwargs=layers.defaults),
        )

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
    def lineage_dir(self) -> Path:
        """Where the file transport writes OpenLineage events (``lineage.file_dir``)."""
        if self.lineage.file_dir is None:
            return self.data_dir / "lineage"
        path = Path(self.lineage.file_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

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


class _OverrideSource(EnvSettingsSource):
    """``LAKEHOUSE__SECTION__KEY`` overrides from the mapping :func:`load_settings` was given.

    pydantic-settings matches the names to the schema (prefix, ``__`` nesting, case) and
    nests the values; :func:`_override_values` has already read each value as YAML.
    """

    def __init__(self, settings_cls: type[BaseSettings], overrides: Mapping[str, Any]) -> None:
        super().__init__(settings_cls, case_sensitive=False)
        # EnvSettingsSource takes no mapping to read: it loads os.environ into its public
        # ``env_vars``, which every lookup reads. Replace it with the given variables.
        self.env_vars = overrides

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        return value  # already parsed as YAML, which also reads JSON

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        # pydantic-settings reads only the fields it knows and skips a field set to null:
        # give validation those too, so that ``LAKEHOUSE__NOPE`` is an unknown key and
        # ``LAKEHOUSE__KAFKA=`` a null section, as in the file.
        for name, value in self.env_vars.items():
            values.setdefault(name[self.env_prefix_len :].partition("__")[0], value)
        return values


def _override_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``LAKEHOUSE__...`` variables, names lowercased and values read as YAML.

    ``[A, B]`` is a list, ``{a: 1}`` a mapping, ``true`` a boolean, an empty value or
    ``null`` is null; anything else stays the string typed (``127.0.0.1:9092``,
    ``2026-01-05``, ``08``) and pydantic converts it where the schema wants a number or a
    date. pydantic-settings would parse only JSON, and only for list and mapping fields.
    """
    overrides: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_OVERRIDE_PREFIX):
            continue
        if not all(name[len(ENV_OVERRIDE_PREFIX) :].split("__")):
            raise ConfigError(f"environment variable {name}: empty key segment")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment variable {name}: not a YAML value ({exc})") from None
        keep = isinstance(value, (dict, list, bool, type(None)))
        overrides[name.lower()] = value if keep else raw
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
    defaults, section = document.get("defaults") or {}, environments[env_name] or {}
    if not isinstance(defaults, dict) or not isinstance(section, dict):
        raise ConfigError(f"{path}: `defaults` and `environments.{env_name}` must be mappings")
    token = _LOADING.set(_Layers(defaults, section, _override_values(environ)))
    try:
        # The sources above supply the other fields (mypy sees only the model's fields).
        return LakehouseSettings(environment=env_name, config_path=path)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "\n  ".join(_describe(error) for error in exc.errors())
        raise ConfigError(
            f"{path} (environment {env_name!r}) is invalid:\n  {problems}\n"
            f"Fix the file or the matching {ENV_OVERRIDE_PREFIX}<SECTION>__<KEY> variable."
        ) from None
    finally:
        _LOADING.reset(token)


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
