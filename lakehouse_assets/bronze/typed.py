"""Typed bronze of HTTP datasets: its Arrow schema, and how silver reads it as records.

An HTTP dataset's bronze day is typed Parquet: one column per field of the contract's
payload object (every one nullable: a missing required value is silver's to
quarantine, not bronze's to drop) and the load metadata

* ``meta_record_index``: the record's position in the day's responses, 0-based;
  a deterministic function of the responses, so the file is named by it as Kafka
  files are by offsets (``<dataset>+0+0-<n-1>.parquet``);
* ``meta_date``: the day (partition) the record was fetched for;
* ``meta_run_id``, ``meta_loaded_at``: the landing run and its time;
* ``meta_raw_object``: the stored response (``s3://.../raw/...``) it was read from.

Silver validates, quarantines and deduplicates bronze records of the Kafka shape.
:func:`as_bronze_records` gives each typed row that shape, so an HTTP dataset goes
through the same contract path: ``value`` is the row's payload as JSON, ``offset`` the
record index, ``partition`` 0, ``timestamp`` the start of its day (its arrival day:
records of day ``D`` are never late for silver ``D``), ``headers`` the raw object,
``load_run_id``/``loaded_at`` the meta columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from lakehouse_assets.contracts.model import Contract

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

RECORD_INDEX = "meta_record_index"
META_FIELDS = [
    pa.field(RECORD_INDEX, pa.int64(), nullable=False),
    pa.field("meta_date", pa.date32(), nullable=False),
    pa.field("meta_run_id", pa.string(), nullable=False),
    pa.field("meta_loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("meta_raw_object", pa.string(), nullable=False),
]

#: Timestamps in the JSON silver validates: ISO 8601 with the offset it requires.
_JSON_OPTIONS = {"timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX", "timeZone": "UTC"}


def payload_schema(contract: Contract) -> pa.Schema:
    """The contract's payload fields as nullable Arrow columns."""
    payload = contract.payload
    if payload is None:
        raise ValueError(
            f"{contract.path}: no schema object with physicalType: topic describes the "
            "records of the HTTP source"
        )
    return pa.schema([field.with_nullable(True) for field in contract.arrow_schema(payload)])


def typed_bronze_schema(contract: Contract) -> pa.Schema:
    """The Arrow schema of an HTTP dataset's bronze files."""
    payload = payload_schema(contract)
    clash = [name for name in payload.names if name.startswith("meta_")]
    if clash:
        raise ValueError(
            f"{contract.path}: payload field(s) {', '.join(clash)} use the prefix meta_, "
            "which bronze keeps for its load metadata"
        )
    return pa.schema([*payload, *META_FIELDS])


class TypedBronze:
    """How silver reads an HTTP dataset's typed bronze (see the module docstring)."""

    def __init__(self, dataset: str, contract: Contract) -> None:
        self.dataset = dataset
        self.schema = typed_bronze_schema(contract)
        self.payload_fields = payload_schema(contract).names

    def spark_schema(self) -> StructType:
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(self.schema)

    def as_bronze_records(self, frame: DataFrame) -> DataFrame:
        """Typed rows as bronze records of the Kafka shape (``BRONZE_SCHEMA``'s columns)."""
        from pyspark.sql import functions as F

        payload = F.struct(*[F.col(f"`{name}`") for name in self.payload_fields])
        header = F.struct(
            F.lit("raw_object").alias("key"), F.col("meta_raw_object").cast("binary").alias("value")
        )
        return frame.select(
            F.lit(self.dataset).alias("topic"),
            F.lit(0).cast("int").alias("partition"),
            F.col(RECORD_INDEX).alias("offset"),
            F.to_timestamp(F.col("meta_date")).alias("timestamp"),
            F.lit(0).cast("byte").alias("timestamp_type"),
            F.lit(None).cast("binary").alias("key"),
            F.to_json(payload, _JSON_OPTIONS).cast("binary").alias("value"),
            F.array(header).alias("headers"),
            F.col("meta_run_id").alias("load_run_id"),
            F.col("meta_loaded_at").alias("loaded_at"),
        )
