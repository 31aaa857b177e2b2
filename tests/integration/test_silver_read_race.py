"""Silver reads each bronze day's offsets once, from one consistent listing, even while a
landing of the same day replaces the files that silver listed.

The race is made deterministic: a day is landed in two appends (two files), silver
builds its read, and before its first Spark action (or right after it listed the
files) the day is landed again in replace mode as one file, so the names silver
listed are gone when Spark opens them.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from lakehouse_assets.bronze.assets import build_bronze_asset, landing_run_config
from lakehouse_assets.silver import assets as silver_assets
from lakehouse_assets.silver.assets import RECONCILIATION_CHECK
from lakehouse_assets.silver.errors import BronzeFileVanishedError
from lakehouse_assets.silver.transforms import BRONZE_READ_ATTEMPTS
from lakehouse_dev.stack import LocalStack
from resources.s3.parquet_store import ParquetStore
from tests.integration.conftest import failure_message
from tests.integration.test_silver import SilverDataset, _at, _day, _make_dataset, plain_event

pytestmark = pytest.mark.integration


@pytest.fixture
def plain(stack: LocalStack, spark: Any) -> SilverDataset:
    return _make_dataset("contracts/plain.yaml")


def _land(dataset: SilverDataset, mode: str) -> None:
    dg.materialize(
        [build_bronze_asset(dataset.settings, dataset.name)],
        resources=dataset.resources,
        run_config=landing_run_config(dataset.name, mode),  # type: ignore[arg-type]
        partition_key=_day(0),
    )


def _files(store: ParquetStore, dataset: SilverDataset) -> list[str]:
    """The names of day 0's bronze files (``store``: initialised, its secrets resolved)."""
    return sorted(r.file_name for r in store.landed(dataset.name, _day(0)))


def _table(resources: Any, dataset: SilverDataset, name: str) -> Any:
    """A silver table of ``dataset``, through the session's (initialised) catalog."""
    catalog = resources.iceberg.load()
    return catalog.load_table((dataset.settings.namespace("silver"), name))


def _in_two_files(store: ParquetStore, dataset: SilverDataset) -> None:
    """Day 0 with eight records landed by two appends: two files, four offsets each."""
    dataset.produce([(plain_event(f"a{i}", _at(0, 9, i)), _at(0, 9, i)) for i in range(4)])
    _land(dataset, "append")
    dataset.produce([(plain_event(f"b{i}", _at(0, 10, i)), _at(0, 10, i)) for i in range(4)])
    _land(dataset, "append")
    topic = dataset.topic
    assert _files(store, dataset) == [f"{topic}+0+0-3.parquet", f"{topic}+0+4-7.parquet"]


@contextmanager
def _landing_during_silver_reads(
    monkeypatch: pytest.MonkeyPatch, when: str, land: Callable[[], None]
) -> Iterator[None]:
    """Run ``land`` inside each of silver's reads of bronze: right after the store listed
    the files (``when="listed"``, before Spark defines its read of them), or once the
    read is built, before its first Spark action (``"built"``)."""
    if when == "built":
        classify = silver_assets.classify

        def racing_classify(*args: Any, **kwargs: Any) -> Any:
            land()
            return classify(*args, **kwargs)

        monkeypatch.setattr(silver_assets, "classify", racing_classify)
    else:
        read_plan = ParquetStore.read_plan

        def racing_read_plan(self: ParquetStore, *args: Any, **kwargs: Any) -> Any:
            plans = read_plan(self, *args, **kwargs)
            land()
            return plans

        monkeypatch.setattr(ParquetStore, "read_plan", racing_read_plan)
    yield


def _check_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [evaluation] = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == RECONCILIATION_CHECK
    ]
    assert evaluation.passed, evaluation.description
    return {k: v.value for k, v in evaluation.metadata.items()}


def _rows(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = ("id", "event_date", "kafka_partition", "kafka_offset")
    return sorted(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


@pytest.mark.parametrize("when", ["built", "listed"])
def test_a_replace_landing_removing_listed_files_does_not_fail_silver(
    plain: SilverDataset, resources: Any, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The files silver listed vanish before Spark reads them: silver plans the day again
    and reads the replacing file; every offset once, the same rows as an undisturbed run."""
    store = resources.bronze_store
    _in_two_files(store, plain)
    relanded: list[bool] = []

    def replace_once() -> None:
        if not relanded:
            relanded.append(True)
            _land(plain, "replace")

    with _landing_during_silver_reads(monkeypatch, when, replace_once):
        result = plain.silver(_day(0))
    assert result.success, failure_message(result)
    assert relanded
    assert _files(store, plain) == [f"{plain.topic}+0+0-7.parquet"]  # the listed names are gone

    table = _table(resources, plain, "plain")
    raced = table.scan().to_arrow()
    ids = [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)]
    assert sorted(raced.column("id").to_pylist()) == ids
    assert sorted(raced.column("kafka_offset").to_pylist()) == list(range(8))
    metadata = _check_metadata(result)
    assert metadata["bronze_rows_read"] == metadata["bronze_rows_in_store"] == 8
    assert metadata["accepted_in_table"] == 8
    assert metadata["bronze_read_attempts"] == 2
    summary = table.current_snapshot().summary.additional_properties
    assert json.loads(summary["lakehouse.source_offsets"]) == {_day(0): {"0": [0, 7]}}

    # The reference: the same day, read with nothing racing it.
    monkeypatch.undo()
    reference = plain.silver(_day(0))
    assert reference.success, failure_message(reference)
    assert _rows(_table(resources, plain, "plain").scan().to_arrow()) == _rows(raced)
    assert _check_metadata(reference)["bronze_read_attempts"] == 1


def test_a_landing_that_keeps_replacing_the_files_fails_silver_naming_the_file(
    plain: SilverDataset, resources: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attempt's files vanish (each landing adds a record, so each names its file
    anew): after the last attempt the error names the dataset, the day, the file and the
    landing that replaced it, and nothing is written."""
    store = resources.bronze_store
    _in_two_files(store, plain)
    landings: list[str] = []

    def replace_with_one_more_record() -> None:
        n = len(landings)
        plain.produce([(plain_event(f"c{n}", _at(0, 11, n)), _at(0, 11, n))])
        _land(plain, "replace")
        landings.append(_files(store, plain)[0])

    with _landing_during_silver_reads(monkeypatch, "built", replace_with_one_more_record):
        result = plain.silver(_day(0))
    assert not result.success
    assert len(landings) == BRONZE_READ_ATTEMPTS
    message = failure_message(result)
    assert BronzeFileVanishedError.__name__ in message
    # The last attempt read the file that the landing before the last one wrote.
    directory = store.partition_dir(plain.name, _day(0))
    assert f"bronze file s3://{directory}/{landings[-2]} " in message
    assert f"dataset {plain.name}, day {_day(0)}" in message
    assert f"a landing of bronze {plain.name} {_day(0)} was replacing it" in message
    assert f"in each of {BRONZE_READ_ATTEMPTS} attempts" in message
    catalog = resources.iceberg.load()
    assert not catalog.table_exists((plain.settings.namespace("silver"), "plain"))
