"""The Iceberg catalog's settings that pyiceberg and Spark share, derived from one place.

pyiceberg's ``SqlCatalog`` and Spark's Iceberg ``JdbcCatalog`` share one SQLite
catalog file and one warehouse. :func:`pyiceberg_catalog_properties` gives pyiceberg's
side, :func:`bootstrap_sqlite_catalog` creates the file and its tables before the
first Spark session, and :mod:`resources.spark.conf` derives Spark's side from the same
helpers here (:func:`sqlite_path`, :func:`normalise_warehouse`); its docstring says
what makes the two engines agree on one SQLite file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

#: Milliseconds either engine waits for the other one's SQLite write lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000

_S3_SCHEMES = frozenset({"s3", "s3a", "s3n"})


def sqlite_path(catalog_uri: str) -> Path:
    """The absolute path of the SQLite file behind a SQLAlchemy ``sqlite://`` URI.

    ``sqlite:////abs/catalog.db`` (four slashes) is absolute; ``sqlite:///rel/catalog.db``
    is resolved against the current directory, because the JVM and Python must open the
    very same file. ``jdbc:sqlite:/abs/catalog.db`` is accepted too.

    Raises:
        ValueError: for in-memory databases (they cannot be shared between processes),
            query parameters other than ``timeout`` (they mean different things to
            SQLAlchemy and to the JDBC driver; the busy timeout is set here for both)
            and non-SQLite URIs.
    """
    if catalog_uri.startswith("jdbc:sqlite:"):
        raw = catalog_uri.removeprefix("jdbc:sqlite:")
        if raw.startswith("file:"):
            raw = urlsplit(raw).path
    else:
        scheme, sep, rest = catalog_uri.partition("://")
        if not sep or scheme.split("+", 1)[0] != "sqlite":
            raise ValueError(f"not a SQLAlchemy sqlite:// URI: {catalog_uri!r}")
        if not rest.startswith("/"):
            raise ValueError(f"a SQLite URI needs a file path: {catalog_uri!r}")
        raw = rest[1:]  # sqlite:///rel -> "rel"; sqlite:////abs -> "/abs"
    raw, _, query = raw.partition("?")
    # Only pysqlite's busy timeout, as pyiceberg_catalog_properties() adds it, is accepted.
    if set(parse_qs(query, keep_blank_values=True)) - {"timeout"}:
        raise ValueError(f"unsupported query parameters in the catalog URI: {catalog_uri!r}")
    if raw in ("", ":memory:"):
        raise ValueError(f"an in-memory SQLite catalog cannot be shared: {catalog_uri!r}")
    return Path(os.path.abspath(unquote(raw)))


def sqlite_jdbc_url(catalog_uri: str) -> str:
    """``sqlite:////abs/catalog.db`` -> ``jdbc:sqlite:/abs/catalog.db`` (see :func:`sqlite_path`)."""
    return f"jdbc:sqlite:{sqlite_path(catalog_uri)}"


def _is_s3(location: str) -> bool:
    return urlsplit(location).scheme in _S3_SCHEMES


def normalise_warehouse(warehouse: str) -> str:
    """``s3://bucket/prefix`` without a trailing slash; a local directory as ``file:///abs``.

    Java writes local locations as ``file:/abs`` and pyiceberg as ``file:///abs``; both
    read either form, so only the warehouse root is normalised here.
    """
    warehouse = warehouse.rstrip("/")
    parsed = urlsplit(warehouse)
    if parsed.scheme in _S3_SCHEMES:
        if not parsed.netloc:
            raise ValueError(f"warehouse {warehouse!r} has no bucket")
        return warehouse
    if parsed.scheme == "file":
        path = unquote(parsed.path)
    elif parsed.scheme == "":
        path = warehouse
    else:
        raise ValueError(f"unsupported warehouse scheme {parsed.scheme!r} in {warehouse!r}")
    return "file://" + os.path.abspath(path)


def _check_credentials(access_key_id: str | None, secret_access_key: str | None) -> None:
    if (access_key_id is None) != (secret_access_key is None):
        raise ValueError("give both access_key_id and secret_access_key, or neither")


def pyiceberg_catalog_properties(
    *,
    catalog_uri: str,
    warehouse: str,
    s3_endpoint: str | None,
    s3_region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Properties of pyiceberg's ``SqlCatalog`` on the catalog of :func:`build_spark_conf`.

    Use them with the same catalog name as Spark: ``load_catalog(name, **props)`` or
    ``SqlCatalog(name, **props)``. Writing to partitioned tables with transforms such as
    ``day(ts)`` also needs the ``pyiceberg-core`` package (pyiceberg's extra of that name).

    Args:
        catalog_uri: SQLAlchemy URI of the SQLite file (``sqlite:////abs/catalog.db``).
        warehouse: ``s3://bucket/prefix`` or a local directory.
        s3_endpoint: S3 API endpoint, ``None`` for AWS S3 itself.
        s3_region: region of the bucket; always set, so pyiceberg never asks AWS for it.
        access_key_id: static credentials, or ``None`` for the AWS default chain.
        secret_access_key: see ``access_key_id``.
        extra: further properties; they override the derived ones.

    Returns:
        ``{"type": "sql", "uri": ..., "warehouse": ..., "s3.*": ...}``. It holds the
        credentials when given: log it only through :func:`redact`.
    """
    _check_credentials(access_key_id, secret_access_key)
    warehouse = normalise_warehouse(warehouse)
    timeout_s = SQLITE_BUSY_TIMEOUT_MS / 1000
    props: dict[str, str] = {
        "type": "sql",
        # Absolute path, as Spark sees it; `timeout` is pysqlite's busy timeout.
        "uri": f"sqlite:///{sqlite_path(catalog_uri)}?timeout={timeout_s:g}",
        "warehouse": warehouse,
        # Create, or migrate to, the table layout Spark uses (the iceberg_type column).
        "schema_version": "v1",
    }
    if _is_s3(warehouse):
        props["s3.region"] = s3_region
        if s3_endpoint is not None:
            props["s3.endpoint"] = s3_endpoint
            # Path-style requests: the bucket in the path, not in the host name.
            props["s3.force-virtual-addressing"] = "false"
        if access_key_id is not None and secret_access_key is not None:
            props["s3.access-key-id"] = access_key_id
            props["s3.secret-access-key"] = secret_access_key
    if extra:
        props.update(extra)
    return props


def bootstrap_sqlite_catalog(catalog_name: str, catalog_uri: str) -> Path:
    """Create the SQLite catalog file and its (V1) tables if absent; return the file's path.

    Idempotent. Run it before the first Spark session touches the catalog: Spark is
    configured not to create the catalog tables itself (see the module docstring).
    """
    from pyiceberg.catalog.sql import SqlCatalog

    path = sqlite_path(catalog_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog(
        catalog_name,
        uri=f"sqlite:///{path}?timeout={SQLITE_BUSY_TIMEOUT_MS / 1000:g}",
        schema_version="v1",
    )
    catalog.engine.dispose()
    return path
