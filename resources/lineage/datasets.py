"""The OpenLineage identity (namespace, name) of every lakehouse asset.

Names follow OpenLineage's dataset naming, so the events of every producer join on
one identity:

* a Kafka topic: namespace ``kafka://<host:port>`` (the first bootstrap server), name
  the topic;
* an S3 prefix (bronze): namespace ``s3://<bucket>``, name the key prefix;
* an Iceberg table: its *location*, as openlineage-spark names Iceberg tables
  (``s3://<bucket>``, ``<warehouse prefix>/<namespace>/<table>``), with a ``TABLE``
  symlink naming it in the catalog (``iceberg://<catalog>``, ``<namespace>.<table>``);
* anything else: the Dagster asset key in the jobs' namespace, as dagster-openlineage
  names assets.

An asset says which kind it is through its definition: a static ``dagster/uri`` (the
topic's ``kafka://`` URI, bronze's ``s3://`` prefix) or, for Iceberg, its key
``<layer>/<table>`` with the layer's catalog namespace. An Iceberg table's location is
what the catalog says (pyiceberg and Spark place new tables differently); the
materialisation's own ``dagster/uri`` wins when it has one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import dagster as dg

#: Reads an Iceberg table's location from the catalog, None when it does not exist.
TableLocator = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class Dataset:
    """One OpenLineage dataset: its namespace and name, and its catalog name if a table.

    ``table`` is ``(iceberg://<catalog>, <namespace>.<table>)``: the name under which
    engines query it, sent as a ``TABLE`` symlink.
    """

    namespace: str
    name: str
    table: tuple[str, str] | None = None


def uri_dataset(uri: str) -> Dataset:
    """A dataset from a storage or topic URI, named as OpenLineage names it.

    ``s3://bucket/a/b/`` (also ``s3a://``) is ``(s3://bucket, a/b)``; ``kafka://host:port/topic``
    is ``(kafka://host:port, topic)``; ``file:/x/y`` or ``/x/y`` is ``(file, /x/y)``.
    """
    parts = urlsplit(uri)
    scheme = {"s3a": "s3", "s3n": "s3"}.get(parts.scheme, parts.scheme)
    if scheme in ("", "file"):
        return Dataset("file", parts.path.rstrip("/") or "/")
    return Dataset(f"{scheme}://{parts.netloc}", parts.path.strip("/"))


@dataclass
class LakehouseDatasets:
    """Maps asset keys to :class:`Dataset` identities and to the assets they read.

    Built once when the definitions load (:func:`lakehouse_datasets`); the Iceberg
    locations are looked up on first use and kept.
    """

    job_namespace: str
    static_uris: Mapping[dg.AssetKey, str]
    iceberg_tables: Mapping[dg.AssetKey, tuple[str, str]]
    upstream: Mapping[dg.AssetKey, tuple[dg.AssetKey, ...]]
    catalog_name: str
    warehouse: str
    table_location: TableLocator | None = None
    _locations: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def dataset(self, key: dg.AssetKey, uri: str | None = None) -> Dataset:
        """The identity of ``key``; ``uri`` is the location its materialisation reported."""
        if key in self.static_uris:
            return uri_dataset(self.static_uris[key])
        if key in self.iceberg_tables:
            namespace, table = self.iceberg_tables[key]
            location = self._location(namespace, table, uri)
            found = uri_dataset(location)
            symlink = (f"iceberg://{self.catalog_name}", f"{namespace}.{table}")
            return Dataset(found.namespace, found.name, symlink)
        return Dataset(self.job_namespace, "/".join(key.path))

    def inputs(self, key: dg.AssetKey) -> tuple[dg.AssetKey, ...]:
        """The assets ``key`` is computed from (its deps in the definitions)."""
        return self.upstream.get(key, ())

    def _location(self, namespace: str, table: str, reported: str | None) -> str:
        with self._lock:
            if reported:
                self._locations[(namespace, table)] = reported
                return reported
            known = self._locations.get((namespace, table))
            if known is not None:
                return known
        found = self.table_location(namespace, table) if self.table_location else None
        # Not created yet (a run's first write): where Iceberg's Spark catalogs put it.
        location = found or f"{self.warehouse.rstrip('/')}/{namespace}/{table}"
        if found:
            with self._lock:
                self._locations[(namespace, table)] = found
        return location


def lakehouse_datasets(
    specs: list[dg.AssetSpec],
    *,
    job_namespace: str,
    iceberg_namespaces: Mapping[str, str],
    catalog_name: str,
    warehouse: str,
    table_location: TableLocator | None = None,
) -> LakehouseDatasets:
    """The identities of ``specs`` (every asset of the definitions).

    Args:
        specs: every asset spec, e.g. ``Definitions.resolve_all_asset_specs()``.
        job_namespace: OpenLineage namespace of jobs and of assets with no storage name.
        iceberg_namespaces: layer (first key segment) -> catalog namespace, for layers
            whose two-segment keys ``<layer>/<table>`` are Iceberg tables.
        catalog_name: the Iceberg catalog's name (the symlink's first part).
        warehouse: the warehouse location, for tables not created yet.
        table_location: the catalog's location of a table, None when missing.
    """
    static: dict[dg.AssetKey, str] = {}
    tables: dict[dg.AssetKey, tuple[str, str]] = {}
    upstream: dict[dg.AssetKey, tuple[dg.AssetKey, ...]] = {}
    for spec in specs:
        upstream[spec.key] = tuple(dep.asset_key for dep in spec.deps)
        uri = spec.metadata.get("dagster/uri")
        text = getattr(uri, "value", uri)
        if isinstance(text, str):
            static[spec.key] = text
        elif len(spec.key.path) == 2 and spec.key.path[0] in iceberg_namespaces:
            tables[spec.key] = (iceberg_namespaces[spec.key.path[0]], spec.key.path[1])
    return LakehouseDatasets(
        job_namespace=job_namespace,
        static_uris=static,
        iceberg_tables=tables,
        upstream=upstream,
        catalog_name=catalog_name,
        warehouse=warehouse,
        table_location=table_location,
    )
