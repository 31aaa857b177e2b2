"""The Iceberg catalog shared by pyiceberg and Spark."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.errors import ServiceUnreachableError
from resources.iceberg.catalog_conf import pyiceberg_catalog_properties, sqlite_path
from resources.s3.client import S3Resource

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


class IcebergCatalogResource(dg.ConfigurableResource):
    """An Iceberg catalog: the embedded SQLite catalog by default, or Glue / a REST catalog.

    Spark's catalog of the same ``name`` (see :class:`resources.spark.resource.SparkResource`)
    points at the same tables, so a table written by either engine is read by both.
    """

    name: str = Field(
        default="lakehouse", description="Catalog name, identical on the pyiceberg and Spark side."
    )
    type: str = Field(default="sql", description="sql (SQLite file), rest or glue.")
    uri: str | None = Field(
        default=None, description="sql: SQLAlchemy URI of the catalog file; rest: server URL."
    )
    warehouse: str = Field(description="Warehouse location, e.g. s3://lakehouse/warehouse.")
    s3: S3Resource = Field(description="Object store holding the warehouse.")
    properties: dict[str, str] = Field(
        default_factory=dict, description="Extra catalog properties (`catalog.properties`)."
    )

    _catalog: Catalog | None = PrivateAttr(default=None)

    def catalog_properties(self) -> dict[str, str]:
        """pyiceberg ``load_catalog`` properties; they hold credentials, never log them."""
        props = pyiceberg_catalog_properties(
            catalog_uri=self.uri or "",
            warehouse=self.warehouse,
            s3_endpoint=self.s3.endpoint_url,
            s3_region=self.s3.region,
            access_key_id=self.s3.access_key_id,
            secret_access_key=self.s3.secret_access_key,
            extra=self.properties,
        )
        if self.type == "sql":
            if not self.uri:
                raise ValueError("the sql catalog needs `uri` (catalog.uri)")
            return props
        # Glue and REST catalogs share the object-store settings, not the SQL ones.
        props = {k: v for k, v in props.items() if k not in ("uri", "schema_version")}
        props["type"] = self.type
        if self.type == "rest":
            props["uri"] = self.uri or ""
        elif self.type == "glue":
            props["glue.region"] = self.s3.region
        return props

    def load(self) -> Catalog:
        """The pyiceberg catalog (created once per resource instance)."""
        if self._catalog is None:
            from pyiceberg.catalog import load_catalog

            if self.type == "sql" and self.uri and self.uri.startswith("sqlite:"):
                sqlite_path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._catalog = load_catalog(self.name, **self.catalog_properties())
            except OSError as exc:
                raise ServiceUnreachableError(
                    "Iceberg catalog", self.uri or self.type, "catalog.uri", str(exc)
                ) from None
        return self._catalog

    def ensure_namespaces(self, namespaces: Iterable[str]) -> list[str]:
        """Create the namespaces that do not exist yet; returns the ones created."""
        catalog = self.load()
        existing = {".".join(ns) for ns in catalog.list_namespaces()}
        created = []
        for namespace in namespaces:
            if namespace not in existing:
                catalog.create_namespace_if_not_exists(namespace)
                created.append(namespace)
        return created
