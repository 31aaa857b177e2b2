"""The project's Java UDFs are compiled once per source version, and a missing JDK is named."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from resources.spark.udfs import UdfBuildError, udf_jar


def test_the_jar_is_compiled_once_and_reused(tmp_path: Path) -> None:
    jar = udf_jar(tmp_path)
    with zipfile.ZipFile(jar) as archive:
        assert "lakehouse/validation/PayloadCertifier.class" in archive.namelist()
    built = jar.stat().st_mtime_ns

    assert udf_jar(tmp_path) == jar
    assert jar.stat().st_mtime_ns == built
    # Nothing half-built is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([jar.name, ".lock"])


def test_without_a_jdk_the_error_names_javac(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UdfBuildError, match="javac not found"):
        udf_jar(tmp_path / "cache")
