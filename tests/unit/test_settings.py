"""Configuration: one file, per-environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.settings import ConfigError, LakehouseSettings, load_settings

BASE = {"LAKEHOUSE_ENV": "local"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lakehouse.yaml"
    path.write_text(text)
    return path


def test_local_environment_derives_locations_by_convention() -> None:
    settings = load_settings("local", environ=BASE)
    assert settings.warehouse == "s3://lakehouse/warehouse"
    assert settings.bronze_uri("purchase_orders") == "s3://lakehouse/bronze/purchase_orders"
    assert settings.catalog_uri.startswith("sqlite:///")
    assert settings.catalog_uri.endswith("/.lakehouse/catalog/catalog.db")
    assert settings.namespace("silver") == "silver"
    assert settings.dataset("purchase_orders").topic == "purchase-orders"
    assert settings.late_window_days("plain") == 3
    assert settings.s3_is_local
    assert settings.kafka_is_local


def test_environment_variables_override_any_key() -> None:
    settings = load_settings(
        "local",
        environ={
            "LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:39092",
            "LAKEHOUSE__SPARK__SHUFFLE_PARTITIONS": "8",
            "LAKEHOUSE__DATASETS__PLAIN__LATE_WINDOW_DAYS": "5",
        },
    )
    assert settings.kafka.bootstrap_servers == "127.0.0.1:39092"
    assert settings.spark.shuffle_partitions == 8
    assert settings.late_window_days("plain") == 5
    assert settings.late_window_days("purchase_orders") == 3


def test_environments_override_defaults() -> None:
    settings = load_settings(
        "prod",
        environ={
            "LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "b-1.example:9098",
        },
    )
    assert settings.storage.bucket == "lakehouse-prod"
    assert settings.catalog.type == "glue"
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_password_env == "KAFKA_SASL_PASSWORD"
    assert settings.s3.endpoint_url is None
    assert not settings.kafka_is_local


def test_wrong_type_names_the_key_and_value() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings("local", environ={"LAKEHOUSE__SPARK__SHUFFLE_PARTITIONS": "many"})
    message = str(error.value)
    assert "environment 'local'" in message
    assert "spark.shuffle_partitions" in message
    assert "'many'" in message


def test_unknown_key_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "defaults: {storage: {bucket: lakehouse}, kafka: {bootstrap_servers: 'h:1', "
        "bootstrap_server: 'h:2'}, partitions: {start_date: 2026-11-01}, "
        "datasets: {plain: {topic: plain-events}}}\nenvironments: {local: {}}\n",
    )
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_server: unknown key"):
        load_settings("local", config_path=path, environ={})


def test_malformed_endpoint_is_named() -> None:
    with pytest.raises(ConfigError, match=r"s3\.endpoint_url: .*'localhost:9000' is not an http"):
        load_settings("local", environ={"LAKEHOUSE__S3__ENDPOINT_URL": "localhost:9000"})
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers: .*'broker' is not host:port"):
        load_settings("local", environ={"LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "broker"})


def test_missing_endpoint_tells_which_variable_to_set() -> None:
    with pytest.raises(ConfigError, match="LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS"):
        load_settings("prod", environ={})


def test_unknown_environment_lists_the_defined_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown environment 'qa' \(defined: dev, k8s, local, prod\)"
    ):
        load_settings("qa", environ={})


def test_invalid_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"storage\.bucket"):
        load_settings("local", environ={"LAKEHOUSE__STORAGE__BUCKET": "Not_A_Bucket"})
    with pytest.raises(ConfigError, match=r"datasets\.plain\.topic"):
        load_settings("local", environ={"LAKEHOUSE__DATASETS__PLAIN__TOPIC": "bad topic!"})


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "defaults: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings("local", config_path=path, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("local", config_path=tmp_path / "missing.yaml", environ={})


def test_unknown_dataset_lists_the_configured_ones() -> None:
    settings = load_settings("local", environ={})
    with pytest.raises(
        ConfigError,
        match=r"unknown dataset 'clicks' \(configured: plain, purchase_orders, weather\)",
    ):
        settings.dataset("clicks")


def test_unknown_or_null_override_variables_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.nope: unknown key"):
        load_settings("local", environ={"LAKEHOUSE__KAFKA__NOPE": "1"})
    with pytest.raises(ConfigError, match=r"\n  nope: unknown key"):
        load_settings("local", environ={"LAKEHOUSE__NOPE": "1"})
    with pytest.raises(ConfigError, match=r"kafka: required but null"):
        load_settings("local", environ={"LAKEHOUSE__KAFKA": ""})


def test_only_load_settings_reads_override_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE__SPARK__SHUFFLE_PARTITIONS", "7")
    assert load_settings("local").spark.shuffle_partitions == 7
    settings = load_settings("local", environ={})
    assert settings.spark.shuffle_partitions == 4
    assert LakehouseSettings.model_validate(settings.model_dump()) == settings
    # Built from values, a section left out takes its default, not the variable.
    values = settings.model_dump(exclude={"spark"})
    assert LakehouseSettings.model_validate(values).spark.shuffle_partitions == 4
    assert LakehouseSettings(**values).spark.shuffle_partitions == 4
