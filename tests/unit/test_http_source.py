"""HTTP sources in configuration, their requests, formats and typing (no services)."""

import io
import os
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pyarrow as pa
import pytest
from pydantic import ValidationError

from lakehouse_assets.bronze.http_landing import RecordTyper
from resources.config_sections import DatasetSettings, HttpSourceSettings
from resources.http.errors import ResponseFormatError
from resources.http.formats import read_page
from resources.http.requests import (
    MissingCredentialError,
    first_page,
    next_page,
    request_headers,
)
from resources.settings import ConfigError, load_settings

DAY = date(2026, 11, 30)


def _source(**values: object) -> HttpSourceSettings:
    return HttpSourceSettings.model_validate(
        {"url": "http://127.0.0.1:1/items", "format": "json", **values}
    )


def test_a_dataset_names_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match=r"exactly one source.*both are set"):
        DatasetSettings.model_validate(
            {"topic": "t", "http": {"url": "http://127.0.0.1:1/x", "format": "json"}}
        )
    with pytest.raises(ValidationError, match=r"exactly one source.*neither is set"):
        DatasetSettings.model_validate({"description": "nothing"})
    assert DatasetSettings.model_validate({"topic": "t"}).kind == "kafka"
    http = DatasetSettings.model_validate(
        {"http": {"url": "http://127.0.0.1:1/x", "format": "csv"}}
    )
    assert http.kind == "http"
    with pytest.raises(ValueError, match="HTTP source, not a Kafka topic"):
        _ = http.kafka_topic


def test_an_unknown_placeholder_or_an_incomplete_pagination_fails_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"placeholder \{day\}"):
        _source(url="http://127.0.0.1:1/items/{day}")
    with pytest.raises(ValidationError, match="needs param, size"):
        _source(pagination={"kind": "page"})
    with pytest.raises(ValidationError, match="json only"):
        _source(format="csv", records_path="data")


def test_invalid_http_config_fails_at_load_naming_the_key() -> None:
    environ = {**os.environ, "LAKEHOUSE__DATASETS__WEATHER__HTTP__FORMAT": "xml"}
    with pytest.raises(ConfigError, match=r"datasets\.weather\.http\.format"):
        load_settings("local", environ=environ)


def test_the_shipped_weather_dataset_reads_the_real_api_only_in_prod() -> None:
    local = load_settings("local", environ={})
    assert local.dataset("weather").http_source.url.startswith("http://127.0.0.1:")
    prod = load_settings("prod", environ={"LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "b:9092"})
    assert (
        prod.dataset("weather").http_source.url == "https://archive-api.open-meteo.com/v1/archive"
    )


def test_the_url_and_params_take_the_day_and_pages_follow_their_kind() -> None:
    source = _source(
        params={"from": "{date}", "to": "{next_date}"},
        pagination={"kind": "page", "param": "page", "size": 2, "size_param": "per_page"},
    )
    first = first_page(source, DAY)
    assert first.url == ("http://127.0.0.1:1/items?from=2026-11-30&to=2026-12-01&page=1&per_page=2")
    second = next_page(source, DAY, first, 2, None, httpx.Headers())
    assert second is not None
    assert "page=2" in second.url
    assert next_page(source, DAY, second, 1, None, httpx.Headers()) is None

    cursor = _source(pagination={"kind": "cursor", "param": "after", "cursor_path": "next"})
    page = first_page(cursor, DAY)
    assert next_page(cursor, DAY, page, 5, "abc", httpx.Headers()).url.endswith("after=abc")  # type: ignore[union-attr]
    assert next_page(cursor, DAY, page, 5, None, httpx.Headers()) is None

    link = _source(pagination={"kind": "link"})
    headers = httpx.Headers({"Link": '</items?p=2>; rel="next", </items?p=9>; rel="last"'})
    assert next_page(link, DAY, first_page(link, DAY), 3, None, headers).url == (  # type: ignore[union-attr]
        "http://127.0.0.1:1/items?p=2"
    )


def test_the_credential_comes_from_the_variable_auth_env_names() -> None:
    source = _source(auth_env="API_KEY")
    assert request_headers(source, DAY, {"API_KEY": "k"}) == {"Authorization": "Bearer k"}
    with pytest.raises(MissingCredentialError, match="API_KEY"):
        request_headers(source, DAY, {})


def test_json_columns_ndjson_and_csv_read_as_records() -> None:
    columns = _source(records_path="hourly", orient="columns", document_fields=["lat"])
    body = b'{"lat": 1.5, "hourly": {"time": ["a", "b"], "t": [1.25, null]}}'
    (batch,) = read_page(columns, io.BytesIO(body), "doc").batches
    assert batch == [
        {"lat": Decimal("1.5"), "time": "a", "t": Decimal("1.25")},
        {"lat": Decimal("1.5"), "time": "b", "t": None},
    ]
    ndjson = _source(format="ndjson")
    assert list(read_page(ndjson, io.BytesIO(b'{"a": 1}\n\n{"a": 2}\n'), "x").batches) == [
        [{"a": 1}, {"a": 2}]
    ]
    csv = _source(format="csv")
    assert list(read_page(csv, io.BytesIO(b"a,b\n1,\n"), "x").batches) == [[{"a": "1", "b": None}]]
    with pytest.raises(ResponseFormatError, match="differ in length"):
        list(read_page(columns, io.BytesIO(b'{"hourly": {"x": [1], "y": []}}'), "doc").batches)


def test_values_are_typed_by_the_contract_and_a_misfit_names_record_and_field() -> None:
    typer = RecordTyper(
        pa.schema([("time", pa.timestamp("us", tz="UTC")), ("n", pa.int32()), ("x", pa.float64())])
    )
    table = typer.payload([{"time": "2026-11-30T05:00", "n": "3", "x": Decimal("0.1")}], "doc", 0)
    assert table.to_pylist() == [{"time": datetime(2026, 11, 30, 5, tzinfo=UTC), "n": 3, "x": 0.1}]
    with pytest.raises(ResponseFormatError, match="doc: record 7 field 'n' is 'many'"):
        typer.payload([{"n": "many"}], "doc", 7)
