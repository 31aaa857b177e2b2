"""HTTP datasets land exactly once over real HTTP, whatever the source does.

A weather API of our own (:mod:`lakehouse_dev.weather_api`) serves Open-Meteo-shaped
documents on loopback and injects faults on request: errors, resets mid-body, 429s
with Retry-After, short bodies, slow bodies. Each test lands a day of a dataset of its
own through the bronze asset (the raw copy and the typed Parquet in the test stack's
S3 server) and compares the result with the generator's document: every hour once,
the raw bytes exactly as served.
"""

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import httpx
import pyarrow as pa
import pytest

from lakehouse_assets.bronze.http_assets import build_http_bronze_asset
from lakehouse_dev.generator.weather import hourly_weather, weather_body
from lakehouse_dev.stack import LocalStack
from lakehouse_dev.weather_api import Fault, RunningApi, serve_in_thread
from resources.config_sections import DatasetSettings, HttpRetrySettings
from resources.environments import build_resources
from resources.settings import PROJECT_ROOT, LakehouseSettings

DAY = date(2026, 11, 12)
LATITUDE, LONGITUDE = 52.52, 13.41
VARIABLES = ("temperature_2m", "relative_humidity_2m", "precipitation", "wind_speed_10m")
MAX_ATTEMPTS = 4


def _day(offset: int = 0) -> str:
    return (DAY + timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def weather_api() -> Iterator[RunningApi]:
    running = serve_in_thread()
    yield running
    running.stop()


class HttpDataset:
    """A weather dataset of its own (bronze and raw prefixes), read from ``api``."""

    def __init__(self, settings: LakehouseSettings, api: RunningApi, **http: Any) -> None:
        self.name = f"w_{uuid.uuid4().hex[:8]}"
        self.server = api
        self.api = api.api  # its scripted faults and the requests it got
        source = settings.dataset("weather").http_source.model_copy(
            update={
                "url": f"{api.url}/v1/archive",
                "retry": HttpRetrySettings(
                    max_attempts=MAX_ATTEMPTS,
                    backoff_initial_seconds=0.01,
                    backoff_max_seconds=0.05,
                    retry_after_max_seconds=5,
                ),
                "read_timeout_seconds": 2.0,
                **http,
            }
        )
        spec = DatasetSettings(
            http=source,
            start_date=DAY - timedelta(days=5),
            contract=str(PROJECT_ROOT / "contracts" / "weather.yaml"),
        )
        self.settings = settings.model_copy(
            update={"datasets": {**settings.datasets, self.name: spec}}
        )
        self.resources = build_resources(self.settings)
        self.api.faults.clear()
        self.api.requests.clear()

    def land(self, *days: str, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [build_http_bronze_asset(self.settings, self.name)],
            resources=self.resources,
            raise_on_error=raise_on_error,
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
            },
        )

    def bronze(self, *days: str) -> pa.Table:
        store = self.resources["bronze_store"]
        return pa.Table.from_batches(list(store.read_batches(self.name, days)))

    def files(self, day: str) -> list[str]:
        return sorted(r.file_name for r in self.resources["bronze_store"].landed(self.name, day))

    def raw_objects(self) -> dict[str, bytes]:
        fs = self.resources["bronze_store"].filesystem()
        base = f"{self.settings.storage.bucket}/{self.settings.storage.raw_prefix}/{self.name}"
        return {path: fs.cat_file(path) for path in fs.find(base)}


@pytest.fixture
def dataset(stack: LocalStack, settings: LakehouseSettings, weather_api: RunningApi) -> HttpDataset:
    return HttpDataset(settings, weather_api)


def _expected(day: str) -> list[tuple[Any, ...]]:
    """The generator's hours of ``day``: what bronze must hold, each exactly once."""
    when = date.fromisoformat(day)
    hourly = hourly_weather(LATITUDE, LONGITUDE, when, when, VARIABLES)["hourly"]
    return [
        (
            datetime.fromisoformat(hourly["time"][i]).replace(tzinfo=UTC),
            hourly["temperature_2m"][i],
            hourly["relative_humidity_2m"][i],
            hourly["precipitation"][i],
            hourly["wind_speed_10m"][i],
        )
        for i in range(len(hourly["time"]))
    ]


def _hours(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = ["time", "temperature_2m", "relative_humidity_2m", "precipitation", "wind_speed_10m"]
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def _responses(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    node = f"bronze__{name}"
    value = result.asset_materializations_for_node(node)[0].metadata["http_responses"].value
    assert isinstance(value, dict)
    return value


def _assert_exactly_the_days(dataset: HttpDataset, *days: str) -> None:
    table = dataset.bronze(*days)
    assert _hours(table) == sorted(h for day in days for h in _expected(day))
    for day in days:
        assert dataset.files(day) == [f"{dataset.name}+0+0-23.parquet"]
    assert table.column("latitude").to_pylist() == [LATITUDE] * table.num_rows


def _served_body(day: str) -> bytes:
    when = date.fromisoformat(day)
    return weather_body(LATITUDE, LONGITUDE, when, when, VARIABLES)


def test_a_day_lands_typed_with_its_run_and_the_raw_response_as_received(
    dataset: HttpDataset,
) -> None:
    result = dataset.land(_day())
    _assert_exactly_the_days(dataset, _day())
    table = dataset.bronze(_day())
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("relative_humidity_2m").type == pa.int32()
    assert set(table.column("meta_run_id").to_pylist()) == {result.run_id}
    assert sorted(table.column("meta_record_index").to_pylist()) == list(range(24))
    (raw,) = dataset.raw_objects().items()
    assert f"/run_id={result.run_id}/date={_day()}/page=00000.json" in raw[0]
    assert raw[1] == _served_body(_day())
    assert set(table.column("meta_raw_object").to_pylist()) == {f"s3://{raw[0]}"}


def test_server_errors_then_success_land_every_hour_once(dataset: HttpDataset) -> None:
    dataset.api.faults.extend([Fault(status=500), Fault(status=503)])
    result = dataset.land(_day())
    _assert_exactly_the_days(dataset, _day())
    (page,) = _responses(result, dataset.name)[_day()]
    assert page["attempts"] == 3


def test_a_connection_reset_mid_body_resumes_with_a_range_request(dataset: HttpDataset) -> None:
    dataset.api.faults.append(Fault(reset_after=700))
    result = dataset.land(_day())
    _assert_exactly_the_days(dataset, _day())
    first, second = dataset.api.requests
    assert first["range"] == ""
    assert second["range"] == "bytes=700-"
    assert second["if_range"].startswith('"')  # the ETag: only the same representation
    (page,) = _responses(result, dataset.name)[_day()]
    assert (page["attempts"], page["resumed"], page["restarted"]) == (2, 1, 0)
    assert list(dataset.raw_objects().values()) == [_served_body(_day())]


def test_a_body_short_of_its_length_without_ranges_is_fetched_again_whole(
    dataset: HttpDataset,
) -> None:
    dataset.api.faults.append(Fault(close_after=500, ranges=False))
    result = dataset.land(_day())
    _assert_exactly_the_days(dataset, _day())
    assert [r["range"] for r in dataset.api.requests] == ["", ""]
    (page,) = _responses(result, dataset.name)[_day()]
    assert (page["attempts"], page["resumed"], page["restarted"]) == (2, 0, 1)
    assert list(dataset.raw_objects().values()) == [_served_body(_day())]


def test_a_truncated_body_with_a_consistent_length_is_caught_by_its_checksum(
    dataset: HttpDataset,
) -> None:
    dataset.api.faults.append(Fault(truncate_to=400))
    result = dataset.land(_day())
    _assert_exactly_the_days(dataset, _day())
    (page,) = _responses(result, dataset.name)[_day()]
    assert (page["attempts"], page["restarted"]) == (2, 1)
    assert list(dataset.raw_objects().values()) == [_served_body(_day())]


def test_429_with_retry_after_is_waited_out(dataset: HttpDataset) -> None:
    dataset.api.faults.append(Fault(status=429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    dataset.land(_day())
    _assert_exactly_the_days(dataset, _day())
    assert len(dataset.api.requests) == 2
    # The backoff alone is at most 0.05 s: the wait is the server's.
    assert time.monotonic() - started >= 1.0


def test_a_slow_server_within_the_read_timeout_is_waited_for(dataset: HttpDataset) -> None:
    dataset.api.faults.append(Fault(delay=0.4, chunks=3))
    result = dataset.land(_day())
    _assert_exactly_the_days(dataset, _day())
    (page,) = _responses(result, dataset.name)[_day()]
    assert page["attempts"] == 1


def test_a_permanent_failure_names_url_and_attempts_and_keeps_every_day_as_it_was(
    dataset: HttpDataset,
) -> None:
    first = dataset.land(_day(0), _day(1))
    before = {day: dataset.files(day) for day in (_day(0), _day(1))}
    # The first day answers, the second never does: neither day may change.
    dataset.api.faults.extend([Fault(), *[Fault(status=502)] * MAX_ATTEMPTS])
    result = dataset.land(_day(0), _day(1), raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    assert error is not None
    message = error.to_string()
    assert f"{dataset.server.url}/v1/archive?" in message
    assert f"start_date={_day(1)}" in message
    assert f"after {MAX_ATTEMPTS} attempt(s)" in message
    assert "HTTP 502" in message
    assert {day: dataset.files(day) for day in (_day(0), _day(1))} == before
    table = dataset.bronze(_day(0), _day(1))
    assert set(table.column("meta_run_id").to_pylist()) == {first.run_id}
    _assert_exactly_the_days(dataset, _day(0), _day(1))


def test_a_client_error_fails_at_once_with_the_servers_reason(dataset: HttpDataset) -> None:
    dataset.api.faults.append(Fault(status=404))
    result = dataset.land(_day(), raise_on_error=False)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "after 1 attempt(s)" in error.to_string()
    assert "HTTP 404" in error.to_string()
    assert len(dataset.api.requests) == 1
    assert dataset.files(_day()) == []


def test_relanding_a_day_replaces_it_whole(dataset: HttpDataset) -> None:
    dataset.land(_day())
    second = dataset.land(_day())
    _assert_exactly_the_days(dataset, _day())
    assert set(dataset.bronze(_day()).column("meta_run_id").to_pylist()) == {second.run_id}
    assert len(dataset.raw_objects()) == 2  # each run keeps its own responses


def test_the_auth_header_comes_from_the_variable_auth_env_names(
    stack: LocalStack,
    settings: LakehouseSettings,
    weather_api: RunningApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = HttpDataset(settings, weather_api, auth_env="WEATHER_TEST_KEY")
    result = dataset.land(_day(), raise_on_error=False)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    assert "WEATHER_TEST_KEY" in error.to_string()
    assert dataset.api.requests == []
    monkeypatch.setenv("WEATHER_TEST_KEY", "s3cr3t-value")
    result = dataset.land(_day())
    assert [r["authorization"] for r in dataset.api.requests] == ["Bearer s3cr3t-value"]
    assert "s3cr3t-value" not in json.dumps(
        {
            k: str(v.value)
            for k, v in result.asset_materializations_for_node(f"bronze__{dataset.name}")[
                0
            ].metadata.items()
        }
    )
    _assert_exactly_the_days(dataset, _day())


def test_the_stacks_weather_api_serves_generated_days_and_stops(tmp_path: Any) -> None:
    from lakehouse_dev.weather_api import WeatherApiServer
    from tests.conftest import _free_port

    server = WeatherApiServer(tmp_path, _free_port())
    try:
        server.start()
        server.start()  # finds it running
        query = (
            f"?latitude={LATITUDE}&longitude={LONGITUDE}&start_date={_day()}&end_date={_day()}"
            f"&hourly={','.join(VARIABLES)}&timezone=GMT"
        )
        response = httpx.get(server.url + query, timeout=10)
        assert response.status_code == 200
        assert response.content == _served_body(_day())
    finally:
        assert server.stop()
    assert not server.is_running()
