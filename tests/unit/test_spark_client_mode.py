"""Client mode on a cluster master: settings, the session's conf, the shipped Python zip."""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path

import pytest

from resources.iceberg.catalog import IcebergCatalogResource
from resources.s3.client import S3Resource
from resources.settings import ConfigError, load_settings
from resources.spark.conf import client_mode_conf, is_secret, launch_conf, redact
from resources.spark.resource import SparkResource, python_package_zip, spark_resource

KEY, SECRET = "AKIA-client-mode-test", "secret-client-mode-test"
CLUSTER = {"LAKEHOUSE__SPARK__MASTER": "spark://127.0.0.1:17077"}
#: The production profiles leave the brokers to the deployment (never contacted here).
BROKERS = {"LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "broker.internal:9096"}


def _catalog(tmp_path: Path) -> IcebergCatalogResource:
    return IcebergCatalogResource(
        name="lakehouse",
        type="sql",
        uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse="s3://lakehouse/warehouse",
        s3=S3Resource(
            endpoint_url="http://127.0.0.1:19000",
            region="eu-west-1",
            access_key_id=KEY,
            secret_access_key=SECRET,
            bucket="lakehouse",
        ),
    )


def _resource(tmp_path: Path, **fields: object) -> SparkResource:
    values: dict[str, object] = {
        "catalog": _catalog(tmp_path),
        "master": "spark://127.0.0.1:17077",
        "pyfiles_cache_dir": str(tmp_path / "pyfiles"),
        "ship_packages": ["lakehouse_assets", "resources"],
    }
    values.update(fields)
    return SparkResource(**values)  # type: ignore[arg-type]


# Settings ---------------------------------------------------------------------------------


def test_defaults_keep_local_mode_and_no_cluster() -> None:
    settings = load_settings("local", environ={})
    assert settings.spark.master == "local[2]"
    assert settings.spark.is_local
    assert settings.spark.shared_driver
    assert settings.stack.spark_cluster is False
    assert (settings.stack.spark_workers, settings.stack.spark_worker_cores) == (2, 1)
    assert settings.spark_cluster_url == "spark://127.0.0.1:17077"
    assert settings.spark.ship_packages == ["lakehouse_assets", "resources"]
    assert settings.spark.executor_env == []
    dev = load_settings(
        "dev",
        environ={
            "LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "b:9092",
            "LAKEHOUSE__CATALOG__URI": "http://catalog:8181",
        },
    )
    assert dev.spark.master == "local[*]"  # one bigger machine; prod and k8s are clusters


def test_cluster_keys_are_set_by_variables() -> None:
    settings = load_settings(
        "local",
        environ={
            **CLUSTER,
            "LAKEHOUSE__STACK__SPARK_CLUSTER": "true",
            "LAKEHOUSE__STACK__SPARK_WORKERS": "3",
            "LAKEHOUSE__STACK__SPARK_MASTER_PORT": "27077",
            "LAKEHOUSE__SPARK__EXECUTOR_MEMORY": "768m",
            "LAKEHOUSE__SPARK__EXECUTOR_ENV": "[MY_TOKEN, OTHER]",
            "LAKEHOUSE__SPARK__PY_FILES": "[s3a://bucket/extra.zip]",
        },
    )
    assert settings.stack.spark_cluster is True
    assert settings.stack.spark_workers == 3
    assert settings.spark_cluster_url == "spark://127.0.0.1:27077"
    assert not settings.spark.is_local
    assert settings.spark.executor_memory == "768m"
    assert settings.spark.executor_env == ["MY_TOKEN", "OTHER"]
    assert settings.spark.py_files == ["s3a://bucket/extra.zip"]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("LAKEHOUSE__SPARK__MASTER", "mesos://h:5050", "spark.master"),
        ("LAKEHOUSE__SPARK__EXECUTOR_MEMORY", "lots", "spark.executor_memory"),
        ("LAKEHOUSE__SPARK__EXECUTOR_ENV", "[not-a-name]", "spark.executor_env"),
        ("LAKEHOUSE__STACK__SPARK_WORKER_MEMORY", "1 GB", "stack.spark_worker_memory"),
        ("LAKEHOUSE__STACK__SPARK_WORKERS", "0", "stack.spark_workers"),
        ("LAKEHOUSE__STACK__SPARK_MASTER_WEBUI_PORT", "18082", "stack"),
    ],
)
def test_invalid_cluster_settings_name_the_key(variable: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings("local", environ={variable: value})


def test_shared_driver_is_ignored_for_a_cluster_master_and_refused_by_the_resource(
    tmp_path: Path,
) -> None:
    settings = load_settings("local", environ=CLUSTER)
    assert settings.spark.shared_driver  # the local environment's setting stays as it is
    resource = spark_resource(settings, _catalog(tmp_path))
    assert resource.shared_driver_dir is None
    assert not resource.is_local
    local = spark_resource(load_settings("local", environ={}), _catalog(tmp_path))
    assert local.shared_driver_dir is not None
    refused = _resource(tmp_path, shared_driver_dir=str(tmp_path / "drivers"))
    with pytest.raises(ValueError, match="serves local masters only"):
        refused._init_session()


# The session's conf ------------------------------------------------------------------------


def test_a_cluster_session_ships_code_python_and_credentials_off_the_command_line(
    tmp_path: Path,
) -> None:
    resource = _resource(tmp_path, executor_memory="1g", executor_cores=1, executor_instances=2)
    conf = resource.session_conf()
    zipped = Path(conf["spark.submit.pyFiles"].split(",")[0])
    assert zipped.parent == tmp_path / "pyfiles"
    assert zipped.name.startswith("lakehouse-py-")
    assert zipped.is_file()
    assert conf["spark.submit.deployMode"] == "client"
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.executor.memory"] == "1g"
    assert conf["spark.cores.max"] == "2"
    assert conf["spark.pyspark.python"] == sys.executable
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == sys.executable
    assert conf["spark.executorEnv.AWS_ACCESS_KEY_ID"] == KEY
    assert conf["spark.executorEnv.AWS_SECRET_ACCESS_KEY"] == SECRET
    assert conf["spark.executorEnv.AWS_REGION"] == "eu-west-1"
    assert "spark.jars.packages" in conf
    # Nothing of the executors' environment, nor any credential, reaches spark-submit.
    launched = launch_conf(conf)
    assert not any(k.startswith("spark.executorEnv.") for k in launched)
    assert KEY not in str(launched)
    assert SECRET not in str(launched)
    assert SECRET not in str(redact(conf))
    assert launched["spark.submit.pyFiles"] == conf["spark.submit.pyFiles"]


def test_local_masters_get_no_client_mode_settings(tmp_path: Path) -> None:
    conf = _resource(tmp_path, master="local[2]").session_conf()
    assert "spark.submit.pyFiles" not in conf
    assert not any(k.startswith("spark.executorEnv.") for k in conf)
    assert "spark.executor.memory" not in conf


def test_executor_env_values_come_from_the_environment_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_TEST_TOKEN", "token-value")
    conf = _resource(tmp_path, executor_env=["LAKEHOUSE_TEST_TOKEN"]).session_conf()
    assert conf["spark.executorEnv.LAKEHOUSE_TEST_TOKEN"] == "token-value"
    assert is_secret("spark.executorEnv.LAKEHOUSE_TEST_TOKEN")
    monkeypatch.delenv("LAKEHOUSE_TEST_TOKEN")
    with pytest.raises(ValueError, match="LAKEHOUSE_TEST_TOKEN"):
        _resource(tmp_path, executor_env=["LAKEHOUSE_TEST_TOKEN"]).session_conf()


def test_explicit_spark_conf_wins_over_derived_client_settings(tmp_path: Path) -> None:
    conf = _resource(
        tmp_path,
        ship_packages=[],
        spark_config={"spark.driver.host": "driver.internal", "spark.submit.pyFiles": "x.zip"},
    ).session_conf()
    assert conf["spark.driver.host"] == "driver.internal"
    assert conf["spark.submit.pyFiles"] == "x.zip"


def test_a_python_archive_becomes_the_executors_environment() -> None:
    conf = client_mode_conf(
        master="k8s://https://k8s.example:6443",
        s3_region="eu-west-1",
        access_key_id=None,
        secret_access_key=None,
        executor_instances=4,
        executor_cores=2,
        python_archive="s3a://artefacts/lakehouse-venv.tar.gz",
    )
    assert conf["spark.archives"] == "s3a://artefacts/lakehouse-venv.tar.gz#environment"
    assert conf["spark.pyspark.python"] == "./environment/bin/python"
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert conf["spark.executor.instances"] == "4"
    assert "spark.cores.max" not in conf  # a standalone setting
    assert "spark.driver.host" not in conf  # a remote master: Spark's default
    assert "spark.executorEnv.AWS_SECRET_ACCESS_KEY" not in conf  # the executors' own chain
    named = client_mode_conf(
        master="yarn",
        s3_region="eu-west-1",
        access_key_id=None,
        secret_access_key=None,
        python_archive="hdfs:///envs/venv.tar.gz#env",
    )
    assert named["spark.pyspark.python"] == "./env/bin/python"
    with pytest.raises(ValueError, match="cluster masters"):
        client_mode_conf(
            master="local[2]", s3_region="x", access_key_id=None, secret_access_key=None
        )


# Production profiles ---------------------------------------------------------------------


def _profile_conf(environment: str, environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """What a run's session would send in ``environment``: its settings, no static keys."""
    from resources.environments import iceberg_resource, s3_resource

    settings = load_settings(environment, environ={**environ, **BROKERS})
    resource = spark_resource(settings, iceberg_resource(settings, s3_resource(settings)))
    return resource.model_copy(update={"pyfiles_cache_dir": str(tmp_path)}).session_conf()


def test_prod_runs_on_yarn_with_a_packed_python_and_the_shipped_code(tmp_path: Path) -> None:
    conf = _profile_conf("prod", {}, tmp_path)
    assert conf["spark.master"] == "yarn"
    assert conf["spark.submit.deployMode"] == "client"
    assert (conf["spark.executor.instances"], conf["spark.executor.cores"]) == ("8", "4")
    assert conf["spark.executor.memory"] == "12g"
    assert conf["spark.archives"] == (
        "s3a://lakehouse-prod/artifacts/lakehouse-executor-py311.tar.gz#environment"
    )
    assert conf["spark.pyspark.python"] == "./environment/bin/python"
    assert "/lakehouse-py-" in conf["spark.submit.pyFiles"]
    assert "iceberg-spark-runtime" in conf["spark.jars.packages"]
    # No static keys: executors use their instance role through the default chain.
    assert not [key for key in conf if key.startswith("spark.executorEnv.AWS_ACCESS")]
    assert conf["spark.executorEnv.AWS_REGION"] == "us-east-1"


def test_the_k8s_example_names_the_image_namespace_and_driver_address(tmp_path: Path) -> None:
    environ = {
        "LAKEHOUSE__SPARK__EXECUTOR_IMAGE": "registry.internal/lakehouse-executor:1.0",
        "LAKEHOUSE__SPARK__DRIVER_HOST": "10.1.2.3",
    }
    conf = _profile_conf("k8s", environ, tmp_path)
    assert conf["spark.master"] == "k8s://https://kubernetes.default.svc:443"
    assert conf["spark.kubernetes.container.image"] == "registry.internal/lakehouse-executor:1.0"
    assert conf["spark.kubernetes.namespace"] == "lakehouse"
    assert conf["spark.driver.host"] == "10.1.2.3"
    assert "spark.driver.bindAddress" not in conf  # the pod's own address, not loopback
    assert conf["spark.pyspark.python"] == "/usr/local/bin/python3.11"
    assert (conf["spark.executor.instances"], conf["spark.executor.memory"]) == ("8", "6g")
    without_image = load_settings("k8s", environ=BROKERS)
    resource = spark_resource(without_image, _catalog(tmp_path))
    with pytest.raises(ValueError, match="LAKEHOUSE__SPARK__EXECUTOR_IMAGE"):
        resource.model_copy(update={"pyfiles_cache_dir": str(tmp_path)}).session_conf()


def test_an_executor_image_needs_a_kubernetes_master() -> None:
    with pytest.raises(ConfigError, match="executor_image is for Kubernetes masters"):
        load_settings(
            "prod", environ={**BROKERS, "LAKEHOUSE__SPARK__EXECUTOR_IMAGE": "some/image:1"}
        )


# The zip of the project's packages ------------------------------------------------------------


def test_package_zip_holds_the_sources_only_and_is_reproducible(tmp_path: Path) -> None:
    first = python_package_zip(["lakehouse_assets", "resources"], tmp_path / "a")
    second = python_package_zip(["lakehouse_assets", "resources"], tmp_path / "b")
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()
    assert python_package_zip(["lakehouse_assets", "resources"], tmp_path / "a") == first
    names = zipfile.ZipFile(first).namelist()
    assert "lakehouse_assets/silver/validation.py" in names
    assert "resources/spark/resource.py" in names
    assert "lakehouse_assets/__init__.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith("resources/spark/java/") for n in names)
    assert not any(n.startswith("lakehouse_dev/") for n in names)
    assert list((tmp_path / "a").glob(".build-*")) == []


def test_a_changed_source_gets_a_new_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "src" / "lakehouse_zip_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    importlib.invalidate_caches()
    before = python_package_zip(["lakehouse_zip_probe"], tmp_path / "cache")
    (package / "__init__.py").write_text("VALUE = 2\n")
    after = python_package_zip(["lakehouse_zip_probe"], tmp_path / "cache")
    assert before != after
    assert before.is_file()
    assert after.is_file()
    assert zipfile.ZipFile(after).read("lakehouse_zip_probe/__init__.py") == b"VALUE = 2\n"
    with pytest.raises(ValueError, match="not an importable top-level package"):
        python_package_zip(["no_such_package_here"], tmp_path / "cache")
