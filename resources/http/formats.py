"""Response formats read back as records: plain Python values, one dict per record.

JSON documents are parsed whole (one page of an API); NDJSON, CSV and Parquet are read
in batches of at most ``batch_size`` records, so a large file download never sits in
memory whole. Numbers in JSON keep their exact text (``Decimal``), so a money value
reaches its typed column without a detour through binary floating point.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from resources.config_sections import HttpSourceSettings
from resources.http.errors import ResponseFormatError

Record = dict[str, Any]

#: Records per batch that the streaming formats yield.
BATCH_RECORDS = 10_000


@dataclass(frozen=True)
class Page:
    """The records of one response, and the next page's cursor (cursor pagination)."""

    batches: Iterator[list[Record]]
    cursor: Any = None


def read_page(
    source: HttpSourceSettings, stream: IO[bytes], where: str, batch_size: int = BATCH_RECORDS
) -> Page:
    """The records of one stored response (``where`` names it in errors)."""
    if source.format == "json":
        document = _json_document(stream, where)
        cursor = (
            _dig(document, source.pagination.cursor_path) if source.pagination.cursor_path else None
        )
        records = _json_records(source, document, where)
        return Page(_chunks(iter(records), batch_size), cursor)
    if source.format == "ndjson":
        return Page(_chunks(_ndjson(stream, where), batch_size))
    if source.format == "csv":
        return Page(_chunks(_csv(stream, where), batch_size))
    return Page(_parquet(stream, batch_size))


def _json_document(stream: IO[bytes], where: str) -> Any:
    try:
        return json.load(stream, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResponseFormatError(f"{where} is not a JSON document: {exc}") from exc


def _dig(document: Any, path: str) -> Any:
    node = document
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _json_records(source: HttpSourceSettings, document: Any, where: str) -> list[Record]:
    found = _dig(document, source.records_path) if source.records_path else document
    shown = f"`{source.records_path}`" if source.records_path else "the document"
    if source.orient == "columns":
        if not isinstance(found, dict) or not all(isinstance(v, list) for v in found.values()):
            raise ResponseFormatError(
                f"{where}: {shown} is not an object of arrays (orient: columns)"
            )
        lengths = {name: len(values) for name, values in found.items()}
        if len(set(lengths.values())) > 1:
            raise ResponseFormatError(f"{where}: the arrays of {shown} differ in length: {lengths}")
        count = next(iter(lengths.values()), 0)
        records = [{name: found[name][i] for name in found} for i in range(count)]
    else:
        if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
            raise ResponseFormatError(f"{where}: {shown} is not a list of objects (orient: rows)")
        records = found
    if source.document_fields:
        if not isinstance(document, dict):
            raise ResponseFormatError(f"{where}: document_fields need a JSON object document")
        shared = {name: document.get(name) for name in source.document_fields}
        records = [{**shared, **record} for record in records]
    return records


def _ndjson(stream: IO[bytes], where: str) -> Iterator[Record]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ResponseFormatError(f"{where} line {number} is not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise ResponseFormatError(f"{where} line {number} is not a JSON object")
        yield record


def _csv(stream: IO[bytes], where: str) -> Iterator[Record]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        for row in csv.DictReader(text):
            # An empty field is a missing value, not an empty string.
            yield {name: (value if value != "" else None) for name, value in row.items()}
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ResponseFormatError(f"{where} is not valid CSV: {exc}") from exc
    finally:
        text.detach()


def _parquet(stream: IO[bytes], batch_size: int) -> Iterator[list[Record]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(stream).iter_batches(batch_size=batch_size):
        yield batch.to_pylist()


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
