"""Landing an HTTP source's day: responses stored raw, then parsed into typed rows.

A day is fetched whole before anything of it is landed: every page is downloaded
into the run's raw prefix (:mod:`resources.http.download`: retries, resume,
integrity), read back and typed once to count its records and find the next page.
Only when every page of every day of the run is stored and typed does the landing
write bronze, reading the same stored bytes again, so a source that fails for good,
or a response that does not parse, leaves every bronze day as it was. Re-landing a
day replaces it whole (kill-and-fill).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakehouse_assets.bronze.typed import META_FIELDS
from resources.config_sections import HttpSourceSettings
from resources.http.download import RetryPolicy, download
from resources.http.errors import HttpSourceError, ResponseFormatError
from resources.http.formats import Record, read_page
from resources.http.raw import RawStore
from resources.http.requests import PageRequest, first_page, next_page, request_headers

if TYPE_CHECKING:
    import httpx
    import s3fs


def retry_policy(source: HttpSourceSettings) -> RetryPolicy:
    retry = source.retry
    return RetryPolicy(
        max_attempts=retry.max_attempts,
        backoff_initial_seconds=retry.backoff_initial_seconds,
        backoff_max_seconds=retry.backoff_max_seconds,
        jitter=retry.jitter,
        retry_after_max_seconds=retry.retry_after_max_seconds,
    )


def http_client(source: HttpSourceSettings) -> httpx.Client:
    """A client with the source's timeouts: connect, and the longest silence mid-body."""
    import httpx

    timeout = httpx.Timeout(
        connect=source.connect_timeout_seconds,
        read=source.read_timeout_seconds,
        write=source.read_timeout_seconds,
        pool=source.connect_timeout_seconds,
    )
    return httpx.Client(timeout=timeout, follow_redirects=True)


@dataclass(frozen=True)
class FetchedPage:
    """One stored response of a day."""

    number: int
    url: str
    path: str
    records: int
    size: int
    sha256: str
    attempts: int
    resumed: int
    restarted: int


@dataclass(frozen=True)
class FetchedDay:
    day: str
    pages: list[FetchedPage]

    @property
    def records(self) -> int:
        return sum(page.records for page in self.pages)


def fetch_day(
    client: httpx.Client,
    source: HttpSourceSettings,
    raw: RawStore,
    fs: s3fs.S3FileSystem,
    day: str,
    typer: RecordTyper,
    *,
    log: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
    rng: random.Random | None = None,
) -> FetchedDay:
    """Download every page of ``day`` into the raw store; each is typed once as a check."""
    when = date.fromisoformat(day)
    headers = request_headers(source, when, environ)
    policy = retry_policy(source)
    request: PageRequest | None = first_page(source, when)
    pages: list[FetchedPage] = []
    while request is not None:
        if len(pages) >= source.pagination.max_pages:
            raise HttpSourceError(
                request.url,
                0,
                f"day {day} has more than pagination.max_pages ({source.pagination.max_pages}) "
                "pages; a pagination loop, or raise the limit",
            )
        path = raw.page_path(day, request.number, source.format)
        with raw.s3.named_errors(f"storing the response of {request.url} in s3://{path}"):
            got = download(
                client,
                request.url,
                headers=headers,
                open_sink=lambda path=path: raw.open_sink(fs, path),  # type: ignore[misc]
                policy=policy,
                log=log,
                rng=rng,
                **({"sleep": sleep} if sleep is not None else {}),
            )
        count = 0
        where = f"s3://{path} (the response of {request.url})"
        with raw.open(fs, path) as stream:
            page = read_page(source, stream, where)
            for batch in page.batches:
                typer.payload(batch, where, count)
                count += len(batch)
            cursor = page.cursor
        pages.append(
            FetchedPage(
                number=request.number,
                url=request.url,
                path=path,
                records=count,
                size=got.size,
                sha256=got.sha256,
                attempts=got.attempts,
                resumed=got.resumed,
                restarted=got.restarted,
            )
        )
        request = next_page(source, when, request, count, cursor, got.headers)
    return FetchedDay(day, pages)


def typed_batches(
    source: HttpSourceSettings,
    raw: RawStore,
    fetched: FetchedDay,
    typer: RecordTyper,
    run_id: str,
    loaded_at: datetime,
) -> Iterator[pa.Table]:
    """The day's typed rows, page by page from the stored responses, indexed 0..n-1."""
    fs = raw.filesystem()
    index = 0
    day = date.fromisoformat(fetched.day)
    for stored in fetched.pages:
        where = f"s3://{stored.path} (the response of {stored.url})"
        with raw.open(fs, stored.path) as stream:
            for batch in read_page(source, stream, where).batches:
                payload = typer.payload(batch, where, 0)
                count = len(batch)
                meta = [
                    pa.array(range(index, index + count), pa.int64()),
                    pa.repeat(pa.scalar(day, pa.date32()), count),
                    pa.repeat(pa.scalar(run_id, pa.string()), count),
                    pa.repeat(pa.scalar(loaded_at, pa.timestamp("us", tz="UTC")), count),
                    pa.repeat(pa.scalar(f"s3://{stored.path}", pa.string()), count),
                ]
                index += count
                yield pa.Table.from_arrays([*payload.columns, *meta], schema=typer.schema)
    if index != fetched.records:
        # The stored bytes are immutable; a different count means they were changed.
        raise RuntimeError(
            f"the raw responses of {fetched.day} now hold {index} records, "
            f"{fetched.records} when they were fetched"
        )


class RecordTyper:
    """Records (plain values) as the contract's typed columns; a value that does not fit
    its column fails with the response, record and field named."""

    def __init__(self, payload: pa.Schema) -> None:
        self.payload_schema = payload
        self.schema = pa.schema([*payload, *META_FIELDS])
        self._convert = [(f.name, f.type, _converter(f.type)) for f in payload]

    def payload(self, records: Sequence[Record], where: str, first: int) -> pa.Table:
        columns = []
        for name, kind, convert in self._convert:
            values = []
            for number, record in enumerate(records):
                value = record.get(name)
                try:
                    values.append(None if value is None else convert(value))
                except (TypeError, ValueError, ArithmeticError) as exc:
                    raise ResponseFormatError(
                        f"{where}: record {first + number} field {name!r} is {value!r}, "
                        f"which is not a {kind} ({exc}); the contract types this field"
                    ) from None
            try:
                columns.append(pa.array(values, kind))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ResponseFormatError(
                    f"{where}: field {name!r} of records {first}..{first + len(records) - 1} "
                    f"does not fit {kind}: {exc}"
                ) from None
        return pa.Table.from_arrays(columns, schema=self.payload_schema)


def _converter(kind: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_timestamp(kind):
        return _timestamp
    if pa.types.is_date32(kind) or pa.types.is_date64(kind):
        return _date
    if pa.types.is_decimal(kind):
        return _decimal
    if pa.types.is_floating(kind):
        return _float
    if pa.types.is_integer(kind):
        return _integer
    if pa.types.is_boolean(kind):
        return _boolean
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _string
    return lambda value: value  # nested: Arrow converts objects and lists itself


def _not_bool(value: Any) -> None:
    if isinstance(value, bool):
        raise TypeError("a boolean")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str):
        stamp = datetime.fromisoformat(value)
    else:
        raise TypeError(type(value).__name__)
    # Without an offset, a time is UTC: ask the API for UTC (Open-Meteo: timezone=GMT).
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        raise TypeError("a timestamp")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise TypeError(type(value).__name__)


def _decimal(value: Any) -> Decimal:
    _not_bool(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, (int, Decimal, str)):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise ValueError("not a decimal number") from None
    raise TypeError(type(value).__name__)


def _float(value: Any) -> float:
    _not_bool(value)
    if isinstance(value, (int, float, Decimal, str)):
        return float(value)
    raise TypeError(type(value).__name__)


def _integer(value: Any) -> int:
    _not_bool(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str):
        return int(value)
    raise TypeError(type(value).__name__)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError(type(value).__name__)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(type(value).__name__)


def now() -> datetime:
    return datetime.now(UTC)
