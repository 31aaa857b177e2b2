"""Generating a dataset's records, summarising them, and the results they should give:
the oracle silver and gold are checked against."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from lakehouse_dev.generator.plain import (
    _PLAIN_MALFORMATIONS,
    _plain_records,
)
from lakehouse_dev.generator.purchase_orders import (
    _ORDER_MALFORMATIONS,
    _purchase_order_records,
)
from lakehouse_dev.generator.spec import (
    DATASETS,
    KIND_DUPLICATE,
    KIND_LATE,
    KIND_OUT_OF_ORDER,
    KIND_VALID,
    LATE_WINDOW_DAYS,
    MALFORMED_PREFIX,
    GeneratedRecord,
    GeneratorSpec,
    _parse_event_time,
    _utc_day,
)

if TYPE_CHECKING:
    pass


MALFORMATIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "plain": tuple(reason for reason, _ in _PLAIN_MALFORMATIONS),
    "purchase_orders": tuple(reason for reason, _ in _ORDER_MALFORMATIONS),
}
"""The ways a record of each dataset is broken; its ``kind`` is ``malformed:<reason>``.

They take turns, so every reason appears once there are as many malformed
records as reasons.
"""

_GENERATORS: Final[Mapping[str, Callable[[GeneratorSpec], Iterator[GeneratedRecord]]]] = {
    "plain": _plain_records,
    "purchase_orders": _purchase_order_records,
}


def generate(dataset: str, spec: GeneratorSpec) -> Iterator[GeneratedRecord]:
    """Stream the records of ``dataset`` in Kafka-timestamp order.

    A lazy iterator, so a million events are never in memory at once (only
    the records still in flight are). ``list(generate(...))`` is fine for tests.
    """
    try:
        make = _GENERATORS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}") from None
    return make(spec)


@dataclass
class GenerationSummary:
    """What a run produced for one dataset, built record by record while streaming."""

    dataset: str
    records: int = 0
    value_bytes: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_event_day: Counter[date] = field(default_factory=Counter)
    late_within_window: int = 0
    late_beyond_window: int = 0
    min_timestamp_ms: int | None = None
    max_timestamp_ms: int | None = None

    def add(self, record: GeneratedRecord) -> None:
        self.records += 1
        self.value_bytes += len(record.value)
        self.by_kind[record.kind] += 1
        event_day = _utc_day(record.event_time_ms)
        self.by_event_day[event_day] += 1
        if record.kind == KIND_LATE:
            arrival_day = _utc_day(record.timestamp_ms)
            if (arrival_day - event_day).days <= LATE_WINDOW_DAYS:
                self.late_within_window += 1
            else:
                self.late_beyond_window += 1
        if self.min_timestamp_ms is None or record.timestamp_ms < self.min_timestamp_ms:
            self.min_timestamp_ms = record.timestamp_ms
        if self.max_timestamp_ms is None or record.timestamp_ms > self.max_timestamp_ms:
            self.max_timestamp_ms = record.timestamp_ms

    @property
    def malformed_by_reason(self) -> dict[str, int]:
        return {
            kind.removeprefix(MALFORMED_PREFIX): n
            for kind, n in sorted(self.by_kind.items())
            if kind.startswith(MALFORMED_PREFIX)
        }

    @property
    def malformed(self) -> int:
        return sum(self.malformed_by_reason.values())

    @property
    def logical_events(self) -> int:
        """Records that are not re-sends: the spec's ``count``."""
        return self.records - self.by_kind[KIND_DUPLICATE]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (days and timestamps as ISO strings)."""
        return {
            "dataset": self.dataset,
            "records": self.records,
            "logical_events": self.logical_events,
            "value_bytes": self.value_bytes,
            "valid": self.by_kind[KIND_VALID],
            "late": self.by_kind[KIND_LATE],
            "late_within_window": self.late_within_window,
            "late_beyond_window": self.late_beyond_window,
            "out_of_order": self.by_kind[KIND_OUT_OF_ORDER],
            "duplicates": self.by_kind[KIND_DUPLICATE],
            "malformed": self.malformed,
            "malformed_by_reason": self.malformed_by_reason,
            "by_event_day": {day.isoformat(): n for day, n in sorted(self.by_event_day.items())},
            "min_timestamp": _iso_ms(self.min_timestamp_ms),
            "max_timestamp": _iso_ms(self.max_timestamp_ms),
        }


def _iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def summarize(dataset: str, records: Iterable[GeneratedRecord]) -> GenerationSummary:
    """Summarise records already generated (the CLI summarises while it streams)."""
    summary = GenerationSummary(dataset)
    for record in records:
        summary.add(record)
    return summary


def _clean_document(record: GeneratedRecord) -> dict[str, Any] | None:
    """A logical event's payload, or None for malformed records and re-sends.

    Re-sends are byte-identical to a record produced earlier, so leaving them
    out counts every event once without remembering every id seen. Numbers
    parse as Decimal: amounts stay exact.
    """
    if record.is_malformed or record.kind == KIND_DUPLICATE:
        return None
    document: dict[str, Any] = json.loads(record.value, parse_float=Decimal)
    return document


class _PlainTotals:
    def __init__(self) -> None:
        self.totals: defaultdict[tuple[date, str], Decimal] = defaultdict(Decimal)
        self.events = 0

    def add(self, record: GeneratedRecord) -> None:
        document = _clean_document(record)
        if document is None:
            return
        event_day = _parse_event_time(document["event_time"]).date()
        self.totals[(event_day, document["name"])] += Decimal(document["amount"])
        self.events += 1


def expected_plain_totals(records: Iterable[GeneratedRecord]) -> dict[tuple[date, str], Decimal]:
    """Sum of ``amount`` per (UTC event day, name): gold's answer for the plain dataset.

    Counts every valid, late and out-of-order event once; malformed records
    and re-sends are left out.
    """
    plain = _PlainTotals()
    for record in records:
        plain.add(record)
    return dict(plain.totals)


class _LatestOrders:
    """Latest version per order among clean events, keeping ``project(document)``.

    The projection lets the CLI keep a few fields per order instead of whole
    documents when it computes a manifest for a million events.
    """

    def __init__(self, project: Callable[[dict[str, Any]], Any]) -> None:
        self._project = project
        self.latest: dict[str, tuple[int, Any]] = {}
        self.events = 0

    def add(self, record: GeneratedRecord) -> None:
        document = _clean_document(record)
        if document is None:
            return
        self.events += 1
        order_id, version = document["order_id"], document["version"]
        held = self.latest.get(order_id)
        if held is None or version > held[0]:
            self.latest[order_id] = (version, self._project(document))


def expected_orders(records: Iterable[GeneratedRecord]) -> dict[str, dict[str, Any]]:
    """Latest version of every order, whatever order the versions arrived in.

    Malformed records are left out, so an order whose newest event was broken
    is expected at its newest clean version. Money fields stay decimal
    strings, as in the payload.
    """
    orders = _LatestOrders(lambda document: document)
    for record in records:
        orders.add(record)
    return {order_id: document for order_id, (_, document) in orders.latest.items()}


def _order_fingerprint(document: dict[str, Any]) -> tuple[str, str, str, str, int]:
    return (
        document["status"],
        document["currency"],
        document["totals"]["total"],
        document["customer"]["customer_id"],
        len(document["items"]),
    )


class _ExpectedAggregates:
    """Expected clean results for the manifest, small enough for a million events."""

    def __init__(self, dataset: str) -> None:
        self._plain = _PlainTotals() if dataset == "plain" else None
        self._orders = _LatestOrders(_order_fingerprint)

    def add(self, record: GeneratedRecord) -> None:
        if self._plain is not None:
            self._plain.add(record)
        else:
            self._orders.add(record)

    def to_dict(self) -> dict[str, Any]:
        if self._plain is not None:
            return {
                "clean_events": self._plain.events,
                "totals_by_day_and_name": [
                    {"date": day.isoformat(), "name": name, "amount": str(amount)}
                    for (day, name), amount in sorted(self._plain.totals.items())
                ],
            }
        latest = [fingerprint for _, fingerprint in self._orders.latest.values()]
        total_by_currency: defaultdict[str, Decimal] = defaultdict(Decimal)
        for _, currency, total, _, _ in latest:
            total_by_currency[currency] += Decimal(total)
        return {
            "clean_events": self._orders.events,
            "orders": len(latest),
            "order_lines": sum(lines for *_, lines in latest),
            "customers": len({customer for *_, customer, _ in latest}),
            "orders_by_status": dict(sorted(Counter(status for status, *_ in latest).items())),
            "total_by_currency": {c: str(total) for c, total in sorted(total_by_currency.items())},
        }
