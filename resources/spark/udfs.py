"""The project's Java UDFs for Spark: compiled from ``resources/spark/java`` on first use.

Some per-row work is too slow as Spark column expressions or Python, such as certifying
contract payloads (``lakehouse.validation.PayloadCertifier``). Its Java source ships
with the project. The first Spark session of a machine compiles it with the JDK's
``javac`` against PySpark's own jars (Spark's UDF interfaces, Jackson) and caches the
jar under a name derived from the sources and the PySpark version. A changed source
gets a new jar, and with it a new shared driver (its key hashes the configuration).

The jar goes on the session's classpath through ``spark.jars``; on a cluster, Spark
ships it to the executors. Without a JDK, the first session start fails with a
:class:`UdfBuildError` that names ``javac``. A session whose classpath lacks the jar (a
cluster it was not shipped to) still works: the code that uses a UDF asks
:func:`has_class` first and falls back to slower paths.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from resources.locks import file_lock
from resources.private_apis import jvm_has_class

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: The Java sources, one directory per package.
JAVA_SOURCES = Path(__file__).resolve().parent / "java"
_JAR_PREFIX = "lakehouse-udfs-"


class UdfBuildError(RuntimeError):
    """The Java UDFs could not be compiled; the message holds javac's output."""


def _sources() -> list[Path]:
    return sorted(JAVA_SOURCES.rglob("*.java"))


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def _fingerprint(sources: list[Path]) -> str:
    import pyspark

    digest = hashlib.sha256(pyspark.__version__.encode())
    for source in sources:
        digest.update(str(source.relative_to(JAVA_SOURCES)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _javac() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "javac"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("javac")
    if found is None:
        raise UdfBuildError(
            "javac not found: the project compiles its Spark UDFs with a JDK 17 "
            "(set JAVA_HOME to one, or put its bin directory on PATH)"
        )
    return found


def udf_jar(cache: Path) -> Path:
    """The jar of the project's Java UDFs, compiled into ``cache`` unless already there.

    Safe to call from many processes at once: one compiles (under a file lock) and
    moves the finished jar into place; the others wait for it.

    Raises:
        UdfBuildError: without a JDK, or when javac fails (its output is in the message).
    """
    sources = _sources()
    jar = cache / f"{_JAR_PREFIX}{_fingerprint(sources)}.jar"
    if jar.is_file():
        return jar
    with file_lock(cache / ".lock"):
        if jar.is_file():
            return jar
        javac = _javac()
        with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as work:
            classes = Path(work) / "classes"
            command = [
                javac,
                "--release",
                "17",
                "-nowarn",
                "-encoding",
                "UTF-8",
                "-cp",
                str(_pyspark_jars() / "*"),
                "-d",
                str(classes),
                *map(str, sources),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise UdfBuildError(
                    f"javac failed ({done.returncode}) on {JAVA_SOURCES}:\n"
                    f"{done.stdout}{done.stderr}"
                )
            staged = Path(work) / jar.name
            with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
                for path in sorted(classes.rglob("*.class")):
                    archive.write(path, path.relative_to(classes).as_posix())
            os.replace(staged, jar)
    # Older jars stay: a running shared driver may still load classes from its own.
    return jar


def has_class(spark: SparkSession, name: str) -> bool:
    """Whether the session's JVM can load class ``name`` (the UDF jar is on its classpath)."""
    return jvm_has_class(spark, name)
