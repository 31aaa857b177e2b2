"""Resolve JVM artefacts from Maven Central without Maven, with the Ivy jar shipped in pyspark.

Why this module exists: the local stack needs JVM programs (the Kafka broker, and later
e.g. a REST catalog server) whose jars live on Maven Central. Requiring Maven or Docker
on a developer's machine would add prerequisites beyond "Python 3.11 + JDK 17"; but the
pyspark wheel, which is a pinned dependency anyway, ships Apache Ivy
(``pyspark/jars/ivy-*.jar``), a complete Maven-compatible resolver whose default
settings already point at Maven Central. So we generate a tiny ``ivy.xml`` listing the
wanted modules, let Ivy resolve their transitive runtime dependencies and copy the jars
into a per-name directory under the lakehouse cache.

Resolution is cached: the directory holds a marker with the sorted coordinates it was
resolved for; if the marker matches, the jars are returned without starting a JVM.
A resolution is written into a temporary sibling directory and renamed into place only
when complete, so a killed resolution never leaves a directory that looks finished.
Concurrent resolutions (several test workers, a sensor and a CLI) are serialised with a
POSIX file lock on Ivy's cache.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from resources.locks import file_lock

__all__ = [
    "CACHE_ENV_VAR",
    "MIN_JAVA_MAJOR",
    "cache_root",
    "classpath",
    "file_lock",
    "find_ivy_jar",
    "java_executable",
    "java_major_version",
    "require_java",
    "resolve_jars",
]

#: Environment variable overriding the cache root (default ``~/.cache/lakehouse``).
CACHE_ENV_VAR = "LAKEHOUSE_CACHE_DIR"

#: Kafka 4.x and Spark 3.5 on our deployment targets (Glue 5 / EMR 7) run on Java 17.
MIN_JAVA_MAJOR = 17

_MARKER = ".coordinates"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_OUTPUT_TAIL_LINES = 40


def cache_root() -> Path:
    """Return the lakehouse cache root: ``$LAKEHOUSE_CACHE_DIR`` or ``~/.cache/lakehouse``.

    Everything downloaded for the local stack lives under it, so one ``rm -rf`` (or one
    CI cache entry) covers it all.
    """
    override = os.environ.get(CACHE_ENV_VAR)
    root = Path(override).expanduser() if override else Path.home() / ".cache" / "lakehouse"
    return root.resolve()


def java_executable() -> str:
    """Return the ``java`` binary to use: ``$JAVA_HOME/bin/java`` if present, else ``PATH``.

    ``JAVA_HOME`` wins because that is what Spark (``spark-class``) uses too, so the
    broker and Spark run on the same JDK.

    Raises:
        RuntimeError: if no java binary can be found.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("Java 17 is required (java not found on PATH)")
    return found


@functools.lru_cache(maxsize=8)
def java_major_version(java: str) -> int:
    """Return the major version of the given java binary (``17`` for ``17.0.15``).

    ``java -version`` prints e.g. ``openjdk version "17.0.15" 2025-04-15`` (or
    ``"1.8.0_392"`` for Java 8) on stderr. Cached per binary: it costs a JVM start.
    """
    proc = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if match is None:
        raise RuntimeError(f"cannot parse the output of `{java} -version`: {proc.stderr!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_x" means Java 8
        major = int(match.group(2))
    return major


def require_java() -> str:
    """Find java and check it is at least Java 17; return the binary path.

    Raises:
        RuntimeError: if java is missing or too old, with what to do about it.
    """
    java = java_executable()
    major = java_major_version(java)
    if major < MIN_JAVA_MAJOR:
        raise RuntimeError(
            f"Java {MIN_JAVA_MAJOR} is required, but {java} is Java {major}; "
            "install JDK 17 or point JAVA_HOME at one"
        )
    return java


def find_ivy_jar() -> Path:
    """Return the Apache Ivy jar bundled in the installed pyspark wheel.

    pyspark uses it for ``spark.jars.packages``; reusing it means no extra download and
    no extra prerequisite.
    """
    import pyspark

    jars_dir = Path(pyspark.__file__).parent / "jars"
    candidates = sorted(jars_dir.glob("ivy-*.jar"))
    if not candidates:
        raise RuntimeError(f"no ivy-*.jar found in {jars_dir}; is pyspark installed correctly?")
    return candidates[-1]


def classpath(jars: Sequence[Path]) -> str:
    """Join jar paths into a ``-cp`` argument with the platform's path separator."""
    return os.pathsep.join(str(jar) for jar in jars)


def _parse_coordinate(coordinate: str) -> tuple[str, str, str]:
    """Split ``group:artifact:version`` and validate each part (they end up in XML)."""
    parts = coordinate.strip().split(":")
    if len(parts) != 3 or not all(_PART_RE.match(part) for part in parts):
        raise ValueError(
            f"invalid Maven coordinate {coordinate!r}: expected 'group:artifact:version'"
        )
    return parts[0], parts[1], parts[2]


def _write_ivy_file(path: Path, name: str, coordinates: Sequence[str]) -> None:
    """Write an ``ivy.xml`` whose ``default`` conf depends on every coordinate.

    ``conf="default->default"`` maps to Maven's runtime scope plus the module's own
    artifact (Ivy's ``default`` conf of a POM module), i.e. what a program needs to run.
    """
    module = ET.Element("ivy-module", version="2.0")
    ET.SubElement(module, "info", organisation="lakehouse", module=f"{name}-resolver")
    confs = ET.SubElement(module, "configurations")
    ET.SubElement(confs, "conf", name="default")
    deps = ET.SubElement(module, "dependencies")
    for coordinate in coordinates:
        group, artifact, version = _parse_coordinate(coordinate)
        ET.SubElement(
            deps, "dependency", org=group, name=artifact, rev=version, conf="default->default"
        )
    ET.ElementTree(module).write(path, encoding="utf-8", xml_declaration=True)


def _proxy_properties() -> list[str]:
    """Translate ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` into Java system properties.

    The JVM ignores the proxy environment variables that Python clients (pip, boto3)
    honour; without this, Ivy would fail on a machine that only reaches the internet
    through a proxy although ``pip install`` works there.
    """
    props: list[str] = []
    for scheme in ("https", "http"):
        value = os.environ.get(f"{scheme}_proxy") or os.environ.get(f"{scheme.upper()}_PROXY")
        if not value:
            continue
        parsed = urlsplit(value if "://" in value else f"http://{value}")
        if parsed.hostname:
            props.append(f"-D{scheme}.proxyHost={parsed.hostname}")
            props.append(f"-D{scheme}.proxyPort={parsed.port or 80}")
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY")
    if props and no_proxy:
        hosts = "|".join(h.strip() for h in no_proxy.split(",") if h.strip())
        props.append(f"-Dhttp.nonProxyHosts={hosts}")
    return props


def _cached_jars(target: Path, marker_text: str) -> list[Path] | None:
    """Return the jars of a complete resolution for exactly these coordinates, or None."""
    marker = target / _MARKER
    try:
        if marker.read_text(encoding="utf-8") != marker_text:
            return None
    except OSError:
        return None
    jars = sorted(target.glob("*.jar"))
    return jars or None


def _tail(text: str, lines: int = _OUTPUT_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])


def resolve_jars(
    name: str,
    coordinates: Sequence[str],
    dest_root: Path | None = None,
    *,
    timeout: float = 900,
) -> list[Path]:
    """Resolve Maven coordinates and their runtime dependencies to local jar files.

    Args:
        name: a directory-safe name for this jar set (e.g. ``"kafka-4.1.1"``); the jars
            go to ``<dest_root>/<name>/``.
        coordinates: ``"group:artifact:version"`` strings. Ivy resolves version
            conflicts between them (latest wins), so e.g. a logging binding can be added
            next to the program it is for.
        dest_root: where jar sets live; default ``<cache_root()>/jars``.
        timeout: seconds Ivy may take (a cold resolution of Kafka takes ~45 s).

    Returns:
        The retrieved jar paths, sorted by file name.

    Raises:
        ValueError: on an invalid name or coordinate.
        RuntimeError: if Java 17 is missing, or if Ivy fails (with the tail of its output).
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid jar set name {name!r}: use letters, digits, '.', '_', '-'")
    if not coordinates:
        raise ValueError("resolve_jars needs at least one coordinate")
    for coordinate in coordinates:
        _parse_coordinate(coordinate)
    wanted = sorted({c.strip() for c in coordinates})
    marker_text = "\n".join(wanted) + "\n"

    root = (dest_root if dest_root is not None else cache_root() / "jars").resolve()
    target = root / name
    cached = _cached_jars(target, marker_text)
    if cached is not None:
        return cached

    java = require_java()
    ivy_home = cache_root() / "ivy"
    root.mkdir(parents=True, exist_ok=True)
    # One lock for Ivy's shared cache: Ivy does not lock it, and two concurrent
    # resolutions could otherwise race on the same download.
    with file_lock(ivy_home / ".lock"):
        # Another process may have finished the same resolution while we waited.
        cached = _cached_jars(target, marker_text)
        if cached is not None:
            return cached
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
        staging.chmod(0o755)  # mkdtemp makes it 0700; the jars are not secret
        try:
            _run_ivy(
                java,
                ivy_home=ivy_home,
                staging=staging,
                name=name,
                coordinates=wanted,
                timeout=timeout,
            )
            (staging / _MARKER).write_text(marker_text, encoding="utf-8")
            _swap_into_place(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        jars = _cached_jars(target, marker_text)
        if jars is None:  # pragma: no cover - _run_ivy already checked for jars
            raise RuntimeError(f"Ivy resolution of {name} produced no jars in {target}")
        return jars


def _run_ivy(
    java: str,
    *,
    ivy_home: Path,
    staging: Path,
    name: str,
    coordinates: Sequence[str],
    timeout: float,
) -> None:
    """Run Ivy's command line to resolve ``coordinates`` and retrieve jars into ``staging``.

    ``ivy.default.ivy.user.dir`` and ``-cache`` keep Ivy's state under the lakehouse
    cache instead of ``~/.ivy2`` (which Spark also uses), so a developer's locally
    published artefacts cannot leak into our resolution.
    """
    ivy_file = staging / "ivy.xml"
    _write_ivy_file(ivy_file, name, coordinates)
    lib = staging / "lib"
    command = [
        java,
        *_proxy_properties(),
        f"-Divy.default.ivy.user.dir={ivy_home}",
        "-jar",
        str(find_ivy_jar()),
        "-ivy",
        str(ivy_file),
        "-confs",
        "default",
        "-cache",
        str(ivy_home / "cache"),
        "-retrieve",
        f"{lib}/[artifact]-[revision](-[classifier]).[ext]",
    ]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        raise RuntimeError(
            f"Ivy did not finish resolving {name} within {timeout:.0f} s:\n{_tail(out)}"
        ) from exc
    output = proc.stdout + proc.stderr
    # Ivy 2.5 exits non-zero on unresolved dependencies, but check the summary too.
    failed = proc.returncode != 0 or "UNRESOLVED DEPENDENCIES" in output
    jars = sorted(lib.glob("*.jar")) if lib.is_dir() else []
    if failed or not jars:
        raise RuntimeError(
            f"Ivy failed to resolve {name} ({', '.join(coordinates)}) after "
            f"{time.monotonic() - started:.0f} s (exit code {proc.returncode}):\n{_tail(output)}"
        )
    # Flatten: the final directory holds the jars and the marker only.
    for jar in jars:
        jar.rename(staging / jar.name)
    shutil.rmtree(lib)
    ivy_file.unlink()


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with renames, never exposing a partial directory.

    An outdated ``target`` (other coordinates) is first renamed aside, so at every
    instant ``target`` is either absent, the old complete set or the new complete set.
    """
    if target.exists():
        trash = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        target.rename(trash)
        staging.rename(target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(target)
