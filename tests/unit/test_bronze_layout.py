"""The bronze ledger: file names, gaps, and reading overlapping files exactly once."""

from __future__ import annotations

from resources.s3.offset_files import OffsetRange, ReadPlan, missing, redundant, resolve


def _r(first: int, last: int, partition: int = 0) -> OffsetRange:
    return OffsetRange("orders", partition, first, last)


def test_file_name_round_trips() -> None:
    item = OffsetRange("purchase-orders", 2, 100, 199)
    assert item.file_name == "purchase-orders+2+100-199.parquet"
    assert OffsetRange.parse(item.file_name) == item
    assert item.count == 100


def test_foreign_files_are_ignored() -> None:
    assert OffsetRange.parse("_SUCCESS") is None
    assert OffsetRange.parse("orders+0+5-1.parquet.tmp") is None


def test_missing_finds_every_gap_of_a_day() -> None:
    landed = [_r(0, 99), _r(200, 299), _r(0, 10, partition=1)]
    assert missing(landed, "orders", 0, 0, 400) == [(100, 199), (300, 399)]
    assert missing(landed, "orders", 0, 50, 100) == []
    assert missing([], "orders", 0, 5, 5) == []


def test_overlapping_files_are_read_once() -> None:
    plans = resolve([_r(0, 49), _r(0, 99), _r(50, 150), _r(151, 160)])
    assert plans == [
        ReadPlan(_r(0, 99), 0),
        ReadPlan(_r(50, 150), 100),
        ReadPlan(_r(151, 160), 151),
    ]


def test_only_wholly_covered_files_are_redundant() -> None:
    assert redundant([_r(0, 99), _r(0, 49), _r(50, 150), _r(0, 10, partition=1)]) == [_r(0, 49)]
