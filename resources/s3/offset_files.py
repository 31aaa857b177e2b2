"""How landed Kafka records are laid out in the object store, and how to read that back.

A bronze file is named after the offsets it covers:
``<prefix>/<dataset>/date=YYYY-MM-DD/<topic>+<partition>+<first>-<last>.parquet``.
The name is the landing's ledger: the landed offsets are recovered from the store
itself, a re-run of the same range rewrites the same object, and a reader that
finds overlapping files (a replaced day whose older files are not deleted yet, two
racing runs) still returns every offset exactly once (:func:`resolve`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

_NAME = re.compile(
    r"^(?P<topic>[A-Za-z0-9._-]+)\+(?P<partition>\d+)\+(?P<first>\d+)-(?P<last>\d+)\.parquet$"
)


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets ``first..last`` (inclusive) of one Kafka topic-partition."""

    topic: str
    partition: int
    first: int
    last: int

    def __post_init__(self) -> None:
        if self.first < 0 or self.last < self.first:
            raise ValueError(f"invalid offset range {self.first}-{self.last}")

    @property
    def file_name(self) -> str:
        return f"{self.topic}+{self.partition}+{self.first}-{self.last}.parquet"

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def covers(self, other: OffsetRange) -> bool:
        return (
            (self.topic, self.partition) == (other.topic, other.partition)
            and self.first <= other.first
            and other.last <= self.last
        )

    @classmethod
    def parse(cls, file_name: str) -> OffsetRange | None:
        """The range a bronze file name declares, or None for foreign files."""
        match = _NAME.match(file_name)
        if match is None:
            return None
        return cls(
            topic=match["topic"],
            partition=int(match["partition"]),
            first=int(match["first"]),
            last=int(match["last"]),
        )


@dataclass(frozen=True)
class ReadPlan:
    """One file to read, and the first offset of it not already read from another file."""

    range: OffsetRange
    read_from: int


def resolve(ranges: Iterable[OffsetRange]) -> list[ReadPlan]:
    """Choose what to read so that every landed offset is read exactly once.

    Per topic-partition, files are taken in order of first offset, longest first; a
    file wholly covered by what is already chosen is skipped, and a partial overlap
    is read only from the first offset not yet covered.
    """
    by_partition: dict[tuple[str, int], list[OffsetRange]] = defaultdict(list)
    for item in ranges:
        by_partition[(item.topic, item.partition)].append(item)
    plans: list[ReadPlan] = []
    for key in sorted(by_partition):
        covered_to = -1
        for item in sorted(by_partition[key], key=lambda r: (r.first, -r.last)):
            if item.last <= covered_to:
                continue
            plans.append(ReadPlan(item, max(item.first, covered_to + 1)))
            covered_to = item.last
    return plans


def redundant(ranges: Iterable[OffsetRange]) -> list[OffsetRange]:
    """Files wholly covered by another file: safe to delete once the covering file exists."""
    items = sorted(set(ranges))
    return [item for item in items if any(other != item and other.covers(item) for other in items)]


def missing(
    ranges: Iterable[OffsetRange], topic: str, partition: int, start: int, end: int
) -> list[tuple[int, int]]:
    """The sub-ranges of offsets ``start..end-1`` that no landed file covers, as (first, last)."""
    gaps: list[tuple[int, int]] = []
    cursor = start
    own = sorted(r for r in ranges if (r.topic, r.partition) == (topic, partition))
    for item in own:
        if item.last < cursor:
            continue
        if item.first >= end:
            break
        if item.first > cursor:
            gaps.append((cursor, item.first - 1))
        cursor = max(cursor, item.last + 1)
    if cursor < end:
        gaps.append((cursor, end - 1))
    return gaps
