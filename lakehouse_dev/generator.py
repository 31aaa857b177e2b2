"""Synthetic Kafka events for the lakehouse's reference datasets.

One generator feeds the demo, the tests and the benchmarks (ARCHITECTURE.md,
"Event generator"), so it does three jobs:

* :func:`generate` streams the records of one dataset in Kafka-timestamp order:
  valid events plus what a real feed also delivers (late arrivals, out-of-order
  updates, exact re-sends, malformed payloads), each labelled with its ``kind``
  so a test knows what the pipeline should do with it;
* :func:`expected_plain_totals` and :func:`expected_orders` compute the clean
  results from the generated records alone: the oracle the pipeline's silver
  and gold tables are checked against;
* :func:`produce` and the ``lakehouse-events`` CLI (:func:`main`) put the
  records on Kafka.

Generation is a pure function of ``(dataset, GeneratorSpec)``: the same spec
gives byte-identical records, and no wall clock is read while generating.

Time model. Event times are spread over the spec's UTC days, and so are the
Kafka timestamps (arrival times): nothing arrives after the end of
``end_date``. A late record's event time therefore lies at least its delay
before that end, and a topic never holds records stamped in the future, which
Kafka 4 brokers refuse anyway (``message.timestamp.after.max.ms`` defaults to
one hour). For the same reason ``end_date`` defaults to yesterday (UTC), the
last complete day, which is also the last daily partition that exists.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import heapq
import importlib
import itertools
import json
import logging
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message, Producer

__all__ = [
    "CLIENT_LOG",
    "DATASETS",
    "LATE_WINDOW_DAYS",
    "MALFORMATIONS",
    "TAX_RATES",
    "GeneratedRecord",
    "GenerationSummary",
    "GeneratorSpec",
    "ProduceError",
    "ProduceResult",
    "expected_orders",
    "expected_plain_totals",
    "generate",
    "main",
    "produce",
    "summarize",
]

DATASETS: Final = ("plain", "purchase_orders")

LATE_WINDOW_DAYS: Final = 3
"""The pipeline's default late-data window (ARCHITECTURE.md, rule 4).

Late records are split around it: most arrive within it (arrival day at most
this many days after the event day, and less than this many days after the
event), a quarter arrive after it, so tests see both outcomes.
"""

LATE_BEYOND_WINDOW_SHARE: Final = 0.25
MAX_LATE_DAYS: Final = 5

KIND_VALID: Final = "valid"
KIND_LATE: Final = "late"
KIND_OUT_OF_ORDER: Final = "out_of_order"
KIND_DUPLICATE: Final = "duplicate"
KIND_MALFORMED: Final = "malformed"
MALFORMED_PREFIX: Final = "malformed:"

_SECOND_MS: Final = 1_000
_MINUTE_MS: Final = 60_000
_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 86_400_000
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()

_EVENT_TAIL_MS: Final = _MINUTE_MS
"""Events end this long before the last day ends, so a normal ingestion delay
(at most a few seconds) never pushes an arrival past it."""

_ORDER_CREATION_TAIL_MS: Final = 10 * _MINUTE_MS
"""Orders are created at least this long before the end, which leaves room for
the rest of a lifecycle squeezed in before the end."""

_HEADERS: Final = (("content-type", b"application/json"), ("source", b"lakehouse-events"))


def _yesterday_utc() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


@dataclass(frozen=True)
class GeneratorSpec:
    """What to generate; records are a pure function of the spec and the dataset.

    ``count`` is the number of logical events (for purchase orders: events, not
    orders). ``late_share``, ``out_of_order_share`` and ``malformed_share`` label
    disjoint subsets of them, so they add up to at most 1. Duplicates are exact
    re-sends on top of ``count``. Shares are targets: a late or out-of-order
    label that an event cannot take (an event too close to the end to arrive
    a day later, an order's last version) passes to a later event, so the
    realised shares can fall a little short; the summary reports what was made.
    Late records need ``days >= 2``; records later than the late window need
    ``days >= LATE_WINDOW_DAYS + 2``, since nothing arrives after ``end_date``.
    """

    count: int = 10_000
    days: int = 7
    end_date: date = field(default_factory=_yesterday_utc)
    late_share: float = 0.05
    out_of_order_share: float = 0.05
    duplicate_share: float = 0.02
    malformed_share: float = 0.01
    seed: int = 42

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1, got {self.days}")
        shares = {
            "late_share": self.late_share,
            "out_of_order_share": self.out_of_order_share,
            "duplicate_share": self.duplicate_share,
            "malformed_share": self.malformed_share,
        }
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {share}")
        labelled = self.late_share + self.out_of_order_share + self.malformed_share
        if labelled > 1.0:
            raise ValueError(
                "late_share + out_of_order_share + malformed_share must be <= 1 "
                f"(they label disjoint events), got {labelled:g}"
            )

    @property
    def first_day(self) -> date:
        """The first UTC day that events fall on."""
        return self.end_date - timedelta(days=self.days - 1)

    @property
    def start_ms(self) -> int:
        """Epoch milliseconds of the first day's midnight (UTC)."""
        return _epoch_ms(self.first_day)

    @property
    def end_ms(self) -> int:
        """Epoch milliseconds of the midnight after ``end_date``: no timestamp reaches it."""
        return _epoch_ms(self.end_date) + _DAY_MS

    def target(self, share: float) -> int:
        """How many of the ``count`` logical events a share asks for."""
        return round(self.count * share)


class GeneratedRecord(NamedTuple):
    """One Kafka record, independent of the topic it goes to.

    ``timestamp_ms`` is the record's Kafka timestamp, the arrival time;
    ``event_time_ms`` is when the logical event happened (for a malformed
    record, when the event it stands for happened). ``kind`` is bookkeeping for
    tests and summaries and is never sent: ``valid``, ``late``,
    ``out_of_order``, ``duplicate`` or ``malformed:<reason>``.
    """

    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: list[tuple[str, bytes]]
    kind: str
    event_time_ms: int

    @property
    def is_malformed(self) -> bool:
        """Whether the value breaks the dataset's contract (and belongs in quarantine)."""
        return self.kind.startswith(MALFORMED_PREFIX)


# --------------------------------------------------------------------------- time


def _epoch_ms(day: date) -> int:
    return (day.toordinal() - _EPOCH_ORDINAL) * _DAY_MS


def _utc_day(ms: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + ms // _DAY_MS)


_HOUR_PREFIXES: dict[int, str] = {}


def _hour_prefix(epoch_hour: int) -> str:
    prefix = _HOUR_PREFIXES.get(epoch_hour)
    if prefix is None:
        if len(_HOUR_PREFIXES) > 100_000:  # a run over more than eleven years
            _HOUR_PREFIXES.clear()
        day, hour = divmod(epoch_hour, 24)
        prefix = f"{date.fromordinal(_EPOCH_ORDINAL + day).isoformat()}T{hour:02d}:"
        _HOUR_PREFIXES[epoch_hour] = prefix
    return prefix


def _iso_z(ms: int) -> str:
    """``2026-11-21T10:15:00Z`` for epoch milliseconds (whole seconds).

    Hand-made because ``datetime.strftime`` costs more than the rest of an
    event put together at a million events.
    """
    epoch_hour, ms_of_hour = divmod(ms, _HOUR_MS)
    minutes, seconds = divmod(ms_of_hour // _SECOND_MS, 60)
    return f"{_hour_prefix(epoch_hour)}{minutes:02d}:{seconds:02d}Z"


def _parse_event_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _ascending_times(rng: random.Random, n: int, start_ms: int, stop_ms: int) -> Iterator[int]:
    """Yield ``n`` uniform times in ``[start_ms, stop_ms)``, whole seconds, ascending.

    Sequential order statistics: the largest of ``k`` uniforms is ``U ** (1/k)``,
    so walking down from the maximum gives sorted times one by one, without
    building and sorting a million values first.
    """
    span_s = max(1, (stop_ms - start_ms) // _SECOND_MS)
    remaining_max = 1.0
    for k in range(n, 0, -1):
        remaining_max *= (1.0 - rng.random()) ** (1.0 / k)
        offset_s = min(span_s - 1, int((1.0 - remaining_max) * span_s))
        yield start_ms + offset_s * _SECOND_MS


def _rng(spec: GeneratorSpec, *stream: str) -> random.Random:
    # String seeds go through SHA-512, so the streams are stable across runs and platforms.
    return random.Random(":".join((*stream, str(spec.seed))))


_T = TypeVar("_T")


def _uuid4(rng: random.Random) -> str:
    """A random (version 4, RFC 4122 variant) UUID drawn from ``rng``."""
    bits = rng.getrandbits
    return "%08x-%04x-4%03x-%04x-%012x" % (  # noqa: UP031 (twice as fast as f-strings here)
        bits(32),
        bits(16),
        bits(12),
        0x8000 | bits(14),
        bits(48),
    )


def _below(rng: random.Random, n: int) -> int:
    """A uniform integer in ``[0, n)``.

    Scales ``random()`` instead of calling ``randrange``, which costs four
    times as much; the bias is below 2**-20 for every range used here.
    """
    return int(rng.random() * n)


def _between(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]``."""
    return low + int(rng.random() * (high - low + 1))


def _weighted(rng: random.Random, values: Sequence[_T], cum_weights: Sequence[int]) -> _T:
    return values[bisect.bisect_right(cum_weights, rng.random() * cum_weights[-1])]


# --------------------------------------------------------------------------- kinds and arrivals


class _Quota:
    """Picks exactly ``targets[kind]`` of a known number of events, uniformly at random.

    Selection sampling: each event takes a kind with probability (left of that
    kind) / (events left), which hits every target exactly without knowing the
    events in advance. A pick that an event cannot realise is given back and
    goes to a later event.
    """

    def __init__(self, rng: random.Random, events: int, targets: Mapping[str, int]) -> None:
        self._rng = rng
        self._events_left = events
        self._left = dict(targets)

    def draw(self) -> str | None:
        if self._events_left <= 0:
            return None
        pick = _below(self._rng, self._events_left)
        self._events_left -= 1
        for kind, left in self._left.items():
            if pick < left:
                self._left[kind] = left - 1
                return kind
            pick -= left
        return None

    def give_back(self, kind: str) -> None:
        self._left[kind] += 1


class _LateArrivals:
    """Arrival times 1..5 days after the event, a quarter of them beyond the late window."""

    def __init__(self, rng: random.Random, last_arrival_ms: int) -> None:
        self._rng = rng
        self._last_ms = last_arrival_ms
        self._made = 0
        self._beyond = 0

    def arrival(self, event_ms: int) -> int | None:
        """A late arrival for an event, or None when the spec's days leave no room for one."""
        if self._beyond < LATE_BEYOND_WINDOW_SHARE * (self._made + 1):
            beyond = self._beyond_window(event_ms)
            if beyond is not None:
                self._beyond += 1
                self._made += 1
                return beyond
        within = self._within_window(event_ms)
        if within is not None:
            self._made += 1
        return within

    def _within_window(self, event_ms: int) -> int | None:
        earliest = event_ms + _DAY_MS + _MINUTE_MS
        latest = min(event_ms + LATE_WINDOW_DAYS * _DAY_MS - _MINUTE_MS, self._last_ms)
        return self._between(earliest, latest)

    def _beyond_window(self, event_ms: int) -> int | None:
        # Past the window by both readings: more than W days after the event,
        # and on a day more than W days after the event's day.
        event_day_start = event_ms - event_ms % _DAY_MS
        earliest = event_day_start + (LATE_WINDOW_DAYS + 1) * _DAY_MS
        latest = min(event_ms + MAX_LATE_DAYS * _DAY_MS, self._last_ms)
        return self._between(earliest, latest)

    def _between(self, earliest: int, latest: int) -> int | None:
        return _between(self._rng, earliest, latest) if earliest <= latest else None


MalformFn = Callable[[bytes | None, bytes, int], tuple[bytes | None, bytes]]


class _Emitter:
    """Turns logical events into records and releases them in timestamp order.

    It picks each event's kind, times normal arrivals, breaks the values of
    malformed events, adds re-sends, and holds records in a heap until no later
    event can arrive before them. An event never arrives before it happens, so
    once the dataset's events have reached time T, every held record stamped at
    or before T is final: memory holds only what is still in flight (open
    order lifecycles, late arrivals), not the whole run.
    """

    def __init__(
        self,
        rng: random.Random,
        spec: GeneratorSpec,
        malformations: Sequence[tuple[str, MalformFn]],
    ) -> None:
        self._rng = rng
        self.last_arrival_ms = spec.end_ms - 1
        self._kinds = _Quota(
            rng,
            spec.count,
            {
                # Malformed first: it always takes, while late and out-of-order
                # picks that are given back pile up towards the end and would
                # otherwise crowd it out there.
                KIND_MALFORMED: spec.target(spec.malformed_share),
                KIND_LATE: spec.target(spec.late_share),
                KIND_OUT_OF_ORDER: spec.target(spec.out_of_order_share),
            },
        )
        self._resends = _Quota(rng, spec.count, {KIND_DUPLICATE: spec.target(spec.duplicate_share)})
        self._late = _LateArrivals(rng, self.last_arrival_ms)
        self._malformations = malformations
        self._malformed = 0
        self._held: list[tuple[int, int, GeneratedRecord]] = []
        self._sequence = itertools.count()

    def draw_kind(self) -> str:
        return self._kinds.draw() or KIND_VALID

    def give_back(self, kind: str) -> None:
        self._kinds.give_back(kind)

    def normal_arrival(self, event_ms: int) -> int:
        """Ingestion latency of a healthy feed: tens of milliseconds to a few seconds."""
        return min(event_ms + _between(self._rng, 20, 3_000), self.last_arrival_ms)

    def late_arrival(self, event_ms: int) -> int | None:
        return self._late.arrival(event_ms)

    def delayed_arrival(self, event_ms: int, min_delay_ms: int, max_delay_ms: int) -> int | None:
        """An arrival ``min..max`` after the event, or None if the end comes first."""
        return self.between(
            event_ms + min_delay_ms, min(event_ms + max_delay_ms, self.last_arrival_ms)
        )

    def between(self, earliest: int, latest: int) -> int | None:
        """A uniform time in ``[earliest, latest]``, or None if that is empty."""
        return _between(self._rng, earliest, latest) if earliest <= latest else None

    def emit(
        self, key: bytes | None, value: bytes, event_ms: int, arrival_ms: int, kind: str
    ) -> None:
        """Hold one logical event's record, and maybe a re-send of it."""
        if kind == KIND_MALFORMED:
            reason, malform = self._malformations[self._malformed % len(self._malformations)]
            key, value = malform(key, value, self._malformed // len(self._malformations))
            self._malformed += 1
            kind = MALFORMED_PREFIX + reason
        record = GeneratedRecord(key, value, arrival_ms, list(_HEADERS), kind, event_ms)
        self._hold(record)
        if self._resends.draw() is None:
            return
        if record.is_malformed:
            # Re-sent garbage would count twice in quarantine; re-send a good record instead.
            self._resends.give_back(KIND_DUPLICATE)
            return
        resent_ms = min(arrival_ms + _between(self._rng, 5, 10 * _MINUTE_MS), self.last_arrival_ms)
        self._hold(GeneratedRecord(key, value, resent_ms, list(_HEADERS), KIND_DUPLICATE, event_ms))

    def release_until(self, ms: int) -> Iterator[GeneratedRecord]:
        """Yield held records stamped at or before ``ms``, in timestamp order."""
        held = self._held
        while held and held[0][0] <= ms:
            yield heapq.heappop(held)[2]

    def drain(self) -> Iterator[GeneratedRecord]:
        while self._held:
            yield heapq.heappop(self._held)[2]

    def _hold(self, record: GeneratedRecord) -> None:
        heapq.heappush(self._held, (record.timestamp_ms, next(self._sequence), record))


# --------------------------------------------------------------------------- malformations


_GARBAGE: Final = (
    b"<html><body><h1>502 Bad Gateway</h1><!-- request %d --></body></html>",
    b"ERROR serializer: event %d dropped, see producer log",
    b"\x00\x01\x02\x03\xfe\xff binary frame %d",
    b"id=%d;name=Ada;amount=12.50",
)


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _not_json(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    # A misbehaving producer that writes error pages or binary frames sends no key
    # either. Numbered, so no two of them look like re-sends of each other.
    return None, _GARBAGE[turn % len(_GARBAGE)] % turn


def _truncated_json(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    # Cut inside the object: the closing brace is gone, so it never parses.
    return key, value[: max(1, len(value) * 2 // 3)]


def _invalid_utf8(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    # 0xC3 0x28 is an invalid two-byte sequence: the JSON text is not UTF-8.
    return key, value.replace(b'"name":"', b'"name":"\xc3\x28', 1)


def _missing_field(required: tuple[str, ...]) -> MalformFn:
    def malform(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
        document = json.loads(value)
        del document[required[turn % len(required)]]
        return key, _dumps(document)

    return malform


def _plain_wrong_type(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    document = json.loads(value)
    document["amount"] = "abc"
    return key, _dumps(document)


def _order_wrong_type(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    document = json.loads(value)
    variant = turn % 3
    if variant == 0:
        document["items"][0]["unit_price"] = "abc"
    elif variant == 1:
        document["items"][0]["quantity"] = "two"
    else:
        document["version"] = "three"
    return key, _dumps(document)


def _negative_quantity(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    # Totals are recomputed, so the negative quantity is the only rule this record breaks.
    document = json.loads(value)
    document["items"][0]["quantity"] = -abs(document["items"][0]["quantity"])
    document["totals"] = _totals_document(document)
    return key, _dumps(document)


def _totals_mismatch(key: bytes | None, value: bytes, turn: int) -> tuple[bytes | None, bytes]:
    document = json.loads(value)
    total = Decimal(document["totals"]["total"]) + Decimal("1.00")
    document["totals"]["total"] = str(total)
    return key, _dumps(document)


# --------------------------------------------------------------------------- plain


_PLAIN_NAMES: Final = ("Ada", "Grace", "Alan", "Barbara", "Edsger", "Katherine")
_PLAIN_REQUIRED: Final = ("id", "name", "amount", "event_time")
_PLAIN_TEMPLATE: Final = '{"id":"%s","name":"%s","amount":%d.%02d,"event_time":"%s"}'
_PLAIN_MALFORMATIONS: Final[tuple[tuple[str, MalformFn], ...]] = (
    ("not_json", _not_json),
    ("truncated_json", _truncated_json),
    ("invalid_utf8", _invalid_utf8),
    ("missing_field", _missing_field(_PLAIN_REQUIRED)),
    ("wrong_type", _plain_wrong_type),
)
_PLAIN_OUT_OF_ORDER_DELAY_MS: Final = (10 * _MINUTE_MS, 12 * _HOUR_MS)


def _plain_records(spec: GeneratorSpec) -> Iterator[GeneratedRecord]:
    """Flat events ``{id, name, amount, event_time}`` keyed by id.

    ``amount`` is a JSON number with exactly two decimals (cents), so readers
    that parse it as a decimal see the exact value.
    """
    rng = _rng(spec, "plain")
    emitter = _Emitter(rng, spec, _PLAIN_MALFORMATIONS)
    times = _ascending_times(
        _rng(spec, "plain", "times"), spec.count, spec.start_ms, spec.end_ms - _EVENT_TAIL_MS
    )
    for event_ms in times:
        yield from emitter.release_until(event_ms)
        event_id = _uuid4(rng)
        cents = min(500_000, max(1, int(rng.lognormvariate(8.0, 1.0))))
        name = _PLAIN_NAMES[_below(rng, len(_PLAIN_NAMES))]
        value = _PLAIN_TEMPLATE % (event_id, name, cents // 100, cents % 100, _iso_z(event_ms))
        kind, arrival_ms = _plain_arrival(emitter, emitter.draw_kind(), event_ms)
        emitter.emit(event_id.encode(), value.encode(), event_ms, arrival_ms, kind)
    yield from emitter.drain()


def _plain_arrival(emitter: _Emitter, kind: str, event_ms: int) -> tuple[str, int]:
    """Arrival for a plain event; out-of-order ones come minutes to hours behind."""
    arrival: int | None = None
    if kind == KIND_LATE:
        arrival = emitter.late_arrival(event_ms)
    elif kind == KIND_OUT_OF_ORDER:
        arrival = emitter.delayed_arrival(event_ms, *_PLAIN_OUT_OF_ORDER_DELAY_MS)
    else:
        return kind, emitter.normal_arrival(event_ms)
    if arrival is None:
        emitter.give_back(kind)
        return KIND_VALID, emitter.normal_arrival(event_ms)
    return kind, arrival


# --------------------------------------------------------------------------- purchase orders


@dataclass(frozen=True, slots=True)
class _Country:
    currency: str
    tax_rate: Decimal
    phone_prefix: str
    weight: int


_COUNTRIES: Final[Mapping[str, _Country]] = {
    "DE": _Country("EUR", Decimal("0.19"), "+49", 24),
    "FR": _Country("EUR", Decimal("0.20"), "+33", 14),
    "NL": _Country("EUR", Decimal("0.21"), "+31", 8),
    "ES": _Country("EUR", Decimal("0.21"), "+34", 7),
    "IT": _Country("EUR", Decimal("0.22"), "+39", 7),
    "IE": _Country("EUR", Decimal("0.23"), "+353", 3),
    "GB": _Country("GBP", Decimal("0.20"), "+44", 16),
    "US": _Country("USD", Decimal("0.07"), "+1", 21),
}
TAX_RATES: Final[Mapping[str, Decimal]] = {
    code: country.tax_rate for code, country in _COUNTRIES.items()
}
"""Tax rate by customer country: ``totals.tax = round(rate * subtotal, 2)``."""

_SHIPPING_FEES: Final[Mapping[str, Decimal]] = {
    "EUR": Decimal("4.90"),
    "GBP": Decimal("3.95"),
    "USD": Decimal("5.99"),
}
_FREE_SHIPPING_FROM: Final = Decimal("50.00")
_CENT: Final = Decimal("0.01")
_ONE: Final = Decimal(1)
_NO_SHIPPING: Final = Decimal("0.00")

_COUNTRY_BY_PERCENT: Final = tuple(
    code for code, country in _COUNTRIES.items() for _ in range(country.weight)
)
_TIERS: Final = ("bronze", "silver", "gold", "platinum")
_TIER_BY_PERCENT: Final = ("bronze",) * 50 + ("silver",) * 30 + ("gold",) * 15 + ("platinum",) * 5
_FIRST_NAMES: Final = (
    "Ada", "Alan", "Grace", "Linus", "Barbara", "Edsger", "Katherine", "Dennis",
    "Margaret", "Ken", "Frances", "John", "Radia", "Tim", "Hedy", "Donald",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Dijkstra", "Johnson", "Ritchie",
    "Hamilton", "Thompson", "Allen", "Backus", "Perlman", "Berners-Lee", "Lamarr", "Knuth",
)  # fmt: skip
_TIER_CHANGE_PERCENT: Final = 20

_SKU_COUNT: Final = 500
_LINE_COUNTS: Final = (1, 2, 3, 4)
_LINE_COUNT_CUM: Final = (45, 75, 90, 100)
_QUANTITIES: Final = (1, 2, 3, 4, 5)
_QUANTITY_CUM: Final = (55, 80, 90, 96, 100)
_DISCOUNTS: Final = ("0.00", "0.05", "0.10", "0.15", "0.20", "0.25")
_DISCOUNT_CUM: Final = (60, 70, 85, 90, 97, 100)

_ITEM_TEMPLATE: Final = '{"sku":"SKU-%d","quantity":%d,"unit_price":"%s","discount":"%s"}'
_TOTALS_TEMPLATE: Final = '{"subtotal":"%s","tax":"%s","shipping":"%s","total":"%s"}'
_ORDER_TEMPLATE: Final = (
    '{"event_id":"%s","event_type":"%s","event_time":"%s","order_id":"%s","version":%d,'
    '"status":"%s","currency":"%s","customer":%s,"items":%s,"totals":%s}'
)
_ORDER_REQUIRED: Final = (
    "order_id", "event_time", "version", "totals", "customer",
    "event_id", "event_type", "status", "currency", "items",
)  # fmt: skip
_ORDER_MALFORMATIONS: Final[tuple[tuple[str, MalformFn], ...]] = (
    ("not_json", _not_json),
    ("truncated_json", _truncated_json),
    ("invalid_utf8", _invalid_utf8),
    ("missing_field", _missing_field(_ORDER_REQUIRED)),
    ("wrong_type", _order_wrong_type),
    ("negative_quantity", _negative_quantity),
    ("totals_mismatch", _totals_mismatch),
)


@dataclass(frozen=True, slots=True)
class _Step:
    """One event of an order's lifecycle and how long after the previous one it comes."""

    name: str
    event_type: str
    status: str
    min_gap_s: int
    max_gap_s: int


_CREATED: Final = _Step("created", "order_created", "created", 0, 0)
_AMENDED: Final = _Step("amended", "order_updated", "created", 120, 90 * 60)
_PAID: Final = _Step("paid", "order_updated", "paid", 60, 2 * 3600)
_SHIPPED: Final = _Step("shipped", "order_updated", "shipped", 2 * 3600, 30 * 3600)
_CANCELLED: Final = _Step("cancelled", "order_cancelled", "cancelled", 600, 24 * 3600)
_REFUNDED: Final = _Step("refunded", "order_refunded", "refunded", 86_400, 4 * 86_400)

_LIFECYCLES: Final = (
    ((_PAID, _SHIPPED), 55),
    ((_PAID, _SHIPPED, _REFUNDED), 7),
    ((_PAID,), 8),
    ((), 6),
    ((_CANCELLED,), 14),
    ((_PAID, _CANCELLED), 10),
)
_AMENDED_PERCENT: Final = 15
_LIFECYCLE_VARIANTS: Final = tuple(
    (_CREATED, *amended, *steps) for steps, _ in _LIFECYCLES for amended in ((), (_AMENDED,))
)
_LIFECYCLE_CUM: Final = tuple(
    itertools.accumulate(
        weight * (_AMENDED_PERCENT if amended else 100 - _AMENDED_PERCENT)
        for _, weight in _LIFECYCLES
        for amended in (False, True)
    )
)
_ORDER_OUT_OF_ORDER_DELAY_MS: Final = (_SECOND_MS, 10 * _MINUTE_MS)
_ORDER_OUT_OF_ORDER_LIMIT_MS: Final = 20 * _HOUR_MS
"""An out-of-order update still arrives within this of its event time, so it is
never also late."""


@lru_cache(maxsize=1)
def _sku_prices() -> tuple[Decimal, ...]:
    """Unit price of SKU-1 .. SKU-500: one fixed catalogue for every seed."""
    rng = random.Random("sku-catalogue:v1")
    cents = ("99", "49", "95", "00")
    return tuple(
        Decimal(f"{rng.randint(1, 249)}.{cents[rng.randrange(len(cents))]}")
        for _ in range(_SKU_COUNT)
    )


@dataclass(frozen=True, slots=True)
class _Line:
    sku: int
    quantity: int
    discount: str


@dataclass(frozen=True, slots=True)
class _Customer:
    """A customer as its ``customer`` JSON object, before and after a tier change.

    Most customers keep their tier (``tier_changes_at_ms`` is None); the others
    change it once during the generated days, which an SCD2 dimension records.
    """

    country: str
    json: str
    json_after_change: str
    tier_changes_at_ms: int | None

    def json_at(self, event_ms: int) -> str:
        """The customer as of an event time (with the tier they had then)."""
        if self.tier_changes_at_ms is not None and event_ms >= self.tier_changes_at_ms:
            return self.json_after_change
        return self.json


class _CustomerPool:
    """Customers ``C-1 .. C-size``, built on first use.

    A customer's name, country and contact data come from a hash of their
    number, so ``C-42`` is the same person in every run and seed; only the
    time of a tier change depends on the spec's days.
    """

    def __init__(self, size: int, start_ms: int, end_ms: int) -> None:
        self._size = size
        self._start_ms = start_ms
        self._span_ms = end_ms - start_ms
        self._customers: dict[int, _Customer] = {}

    def pick(self, rng: random.Random) -> _Customer:
        # Skewed towards low numbers: regulars order often, most customers rarely.
        number = 1 + int(self._size * rng.random() ** 1.5)
        customer = self._customers.get(number)
        if customer is None:
            customer = self._customers[number] = self._make(number)
        return customer

    def _make(self, number: int) -> _Customer:
        digest = hashlib.blake2b(f"customer:{number}".encode(), digest_size=16).digest()
        first = _FIRST_NAMES[digest[0] % len(_FIRST_NAMES)]
        last = _LAST_NAMES[digest[1] % len(_LAST_NAMES)]
        country = _COUNTRY_BY_PERCENT[digest[2] % 100]
        tier = _TIER_BY_PERCENT[digest[3] % 100]
        subscriber = int.from_bytes(digest[4:8]) % 1_000_000_000
        customer = {
            "customer_id": f"C-{number}",
            "name": f"{first} {last}",
            "country": country,
            "tier": tier,
            "contact_info": {
                "email": f"{first}.{last}.{number}@example.com".lower(),
                "phone": f"{_COUNTRIES[country].phone_prefix}{subscriber:09d}",
            },
        }
        before = json.dumps(customer, separators=(",", ":"))
        if digest[8] % 100 >= _TIER_CHANGE_PERCENT:
            return _Customer(country, before, before, None)
        changes_at = self._start_ms + int.from_bytes(digest[9:13]) % self._span_ms
        rank = _TIERS.index(tier)
        downgrade = (digest[13] % 4 == 0 and rank > 0) or rank == len(_TIERS) - 1
        customer["tier"] = _TIERS[rank - 1] if downgrade else _TIERS[rank + 1]
        return _Customer(country, before, json.dumps(customer, separators=(",", ":")), changes_at)


@dataclass(frozen=True, slots=True)
class _Totals:
    subtotal: Decimal
    tax: Decimal
    shipping: Decimal
    total: Decimal


def _order_totals(
    lines: Iterable[tuple[int, Decimal, Decimal]], tax_rate: Decimal, shipping_fee: Decimal
) -> _Totals:
    """Totals that add up exactly, from ``(quantity, unit_price, discount)`` lines.

    subtotal = round(sum(quantity * unit_price * (1 - discount))), tax =
    round(rate * subtotal), shipping is free from 50.00, total = subtotal + tax
    + shipping; rounding is to cents, half up, as Spark and SQL round.
    """
    gross = sum((qty * price * (_ONE - discount) for qty, price, discount in lines), Decimal(0))
    subtotal = gross.quantize(_CENT, ROUND_HALF_UP)
    tax = (subtotal * tax_rate).quantize(_CENT, ROUND_HALF_UP)
    shipping = _NO_SHIPPING if subtotal >= _FREE_SHIPPING_FROM else shipping_fee
    return _Totals(subtotal, tax, shipping, subtotal + tax + shipping)


def _totals_document(order: Mapping[str, Any]) -> dict[str, str]:
    """Recompute an order document's totals from its own items, country and currency."""
    totals = _order_totals(
        (
            (item["quantity"], Decimal(item["unit_price"]), Decimal(item["discount"]))
            for item in order["items"]
        ),
        TAX_RATES[order["customer"]["country"]],
        _SHIPPING_FEES[order["currency"]],
    )
    return {
        "subtotal": str(totals.subtotal),
        "tax": str(totals.tax),
        "shipping": str(totals.shipping),
        "total": str(totals.total),
    }


def _draw_lines(rng: random.Random) -> tuple[_Line, ...]:
    count = _weighted(rng, _LINE_COUNTS, _LINE_COUNT_CUM)
    skus: list[int] = []
    while len(skus) < count:
        sku = 1 + _below(rng, _SKU_COUNT)
        if sku not in skus:
            skus.append(sku)
    return tuple(_draw_line(rng, sku) for sku in skus)


def _draw_line(rng: random.Random, sku: int) -> _Line:
    quantity = _weighted(rng, _QUANTITIES, _QUANTITY_CUM)
    discount = _weighted(rng, _DISCOUNTS, _DISCOUNT_CUM)
    return _Line(sku, quantity, discount)


def _amend_lines(rng: random.Random, lines: tuple[_Line, ...]) -> tuple[_Line, ...]:
    """The customer edits the basket before paying: adds, removes or re-counts a line."""
    choice = _below(rng, 3)
    if choice == 0 and len(lines) < len(_LINE_COUNTS):
        taken = {line.sku for line in lines}
        sku = 1 + _below(rng, _SKU_COUNT)
        while sku in taken:
            sku = sku % _SKU_COUNT + 1
        return (*lines, _draw_line(rng, sku))
    if choice == 1 and len(lines) > 1:
        drop = _below(rng, len(lines))
        return lines[:drop] + lines[drop + 1 :]
    index = _below(rng, len(lines))
    old = lines[index]
    quantity = old.quantity % _QUANTITIES[-1] + 1  # always a different quantity
    return (*lines[:index], _Line(old.sku, quantity, old.discount), *lines[index + 1 :])


def _basket_json(lines: tuple[_Line, ...], country: _Country) -> tuple[str, str]:
    """The ``items`` and ``totals`` JSON of a basket (rendered once per basket state)."""
    prices = _sku_prices()
    totals = _order_totals(
        ((line.quantity, prices[line.sku - 1], Decimal(line.discount)) for line in lines),
        country.tax_rate,
        _SHIPPING_FEES[country.currency],
    )
    items = ",".join(
        _ITEM_TEMPLATE % (line.sku, line.quantity, prices[line.sku - 1], line.discount)
        for line in lines
    )
    return (
        f"[{items}]",
        _TOTALS_TEMPLATE % (totals.subtotal, totals.tax, totals.shipping, totals.total),
    )


def _plan_lifecycles(rng: random.Random, event_count: int) -> list[tuple[_Step, ...]]:
    """Lifecycles of all orders, whose events add up to exactly ``event_count``.

    The last order is cut short (an order still in progress). Planned up front
    because the orders' creation times are drawn in sorted order, which needs
    their number; the plan is a list of references to a dozen shared tuples.
    """
    plans: list[tuple[_Step, ...]] = []
    planned = 0
    while planned < event_count:
        steps = _weighted(rng, _LIFECYCLE_VARIANTS, _LIFECYCLE_CUM)
        steps = steps[: event_count - planned]
        plans.append(steps)
        planned += len(steps)
    return plans


def _lifecycle_times(
    rng: random.Random, created_ms: int, steps: tuple[_Step, ...], last_ms: int
) -> list[int]:
    """Event times of one order, strictly increasing, squeezed to end by ``last_ms``."""
    gaps_s = [_between(rng, step.min_gap_s, step.max_gap_s) for step in steps[1:]]
    available_s = (last_ms - created_ms) // _SECOND_MS
    planned_s = sum(gaps_s)
    if planned_s > available_s:
        gaps_s = [max(1, gap * available_s // planned_s) for gap in gaps_s]
    times = [created_ms]
    for gap_s in gaps_s:
        times.append(times[-1] + gap_s * _SECOND_MS)
    return times


def _order_events(
    rng: random.Random,
    *,
    order_number: int,
    created_ms: int,
    steps: tuple[_Step, ...],
    customers: _CustomerPool,
    last_event_ms: int,
) -> list[tuple[int, bytes]]:
    """``(event_time_ms, value)`` of each version of one order.

    Every event carries the whole order as of that moment (as in
    ARCHITECTURE.md), so the latest version alone describes the order.
    """
    customer = customers.pick(rng)
    country = _COUNTRIES[customer.country]
    order_id = f"PO-{order_number:06d}"
    lines = _draw_lines(rng)
    items_json, totals_json = _basket_json(lines, country)
    events = []
    times = _lifecycle_times(rng, created_ms, steps, last_event_ms)
    for version, (step, event_ms) in enumerate(zip(steps, times, strict=True), start=1):
        if step is _AMENDED:
            lines = _amend_lines(rng, lines)
            items_json, totals_json = _basket_json(lines, country)
        value = _ORDER_TEMPLATE % (
            _uuid4(rng),
            step.event_type,
            _iso_z(event_ms),
            order_id,
            version,
            step.status,
            country.currency,
            customer.json_at(event_ms),
            items_json,
            totals_json,
        )
        events.append((event_ms, value.encode()))
    return events


def _purchase_order_records(spec: GeneratorSpec) -> Iterator[GeneratedRecord]:
    """Nested purchase-order events keyed by order id, orders spread over the days."""
    rng = _rng(spec, "purchase_orders")
    emitter = _Emitter(rng, spec, _ORDER_MALFORMATIONS)
    plans = _plan_lifecycles(rng, spec.count)
    customers = _CustomerPool(max(10, min(50_000, spec.count // 25)), spec.start_ms, spec.end_ms)
    last_event_ms = spec.end_ms - _EVENT_TAIL_MS
    created = _ascending_times(
        _rng(spec, "purchase_orders", "times"),
        len(plans),
        spec.start_ms,
        spec.end_ms - _ORDER_CREATION_TAIL_MS,
    )
    for index, (created_ms, steps) in enumerate(zip(created, plans, strict=True)):
        yield from emitter.release_until(created_ms)
        events = _order_events(
            rng,
            order_number=index + 1,
            created_ms=created_ms,
            steps=steps,
            customers=customers,
            last_event_ms=last_event_ms,
        )
        key = f"PO-{index + 1:06d}".encode()
        _emit_order(emitter, key, events)
    yield from emitter.drain()


def _emit_order(emitter: _Emitter, key: bytes, events: list[tuple[int, bytes]]) -> None:
    """Pick kinds and arrivals for one order's events and hand them to the emitter.

    Normal arrivals keep version order. An out-of-order version arrives just
    after the next version (which must itself arrive normally, so the swap is
    real) and still within a day of its event time; a late version arrives
    days later, after the versions that follow it.
    """
    kinds = [emitter.draw_kind() for _ in events]
    arrivals: list[int] = []
    for event_ms, _ in events:
        arrival = emitter.normal_arrival(event_ms)
        if arrivals and arrival <= arrivals[-1]:
            arrival = arrivals[-1] + 1
        arrivals.append(arrival)
    for index, (event_ms, value) in enumerate(events):
        kind = kinds[index]
        arrival_ms: int | None = arrivals[index]
        if kind == KIND_LATE:
            arrival_ms = emitter.late_arrival(event_ms)
        elif kind == KIND_OUT_OF_ORDER:
            arrival_ms = _after_next_version(emitter, index, kinds, arrivals, event_ms)
        if arrival_ms is None:
            emitter.give_back(kind)
            kind, arrival_ms = KIND_VALID, arrivals[index]
        emitter.emit(key, value, event_ms, arrival_ms, kind)


def _after_next_version(
    emitter: _Emitter, index: int, kinds: list[str], arrivals: list[int], event_ms: int
) -> int | None:
    if index + 1 >= len(kinds) or kinds[index + 1] != KIND_VALID:
        return None
    limit = min(event_ms + _ORDER_OUT_OF_ORDER_LIMIT_MS, emitter.last_arrival_ms)
    low, high = _ORDER_OUT_OF_ORDER_DELAY_MS
    earliest = arrivals[index + 1] + low
    latest = min(arrivals[index + 1] + high, limit)
    return emitter.between(earliest, latest)


# --------------------------------------------------------------------------- public generation


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


# --------------------------------------------------------------------------- expected results


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


# --------------------------------------------------------------------------- Kafka


CLIENT_LOG: Final = logging.getLogger("lakehouse_dev.generator.kafka_client")
"""librdkafka's own log lines (a refused connection is logged every few
milliseconds); :class:`ProduceError` carries what matters."""


class ProduceError(RuntimeError):
    """Records could not be delivered; the message names the topic and the broker."""


@dataclass(frozen=True)
class ProduceResult:
    """What :func:`produce` delivered (acknowledged by all in-sync replicas)."""

    topic: str
    bootstrap_servers: str
    records: int
    value_bytes: int
    elapsed_s: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def _producer_config(bootstrap_servers: str, delivery_timeout_ms: int) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers,
        "client.id": "lakehouse-events",
        "acks": "all",
        "enable.idempotence": True,
        # Batching for throughput: a million small records in large compressed batches.
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.kbytes": 128 * 1024,
        # librdkafka retries a message until this expires; bound it so a dead
        # broker becomes an error instead of a hang.
        "message.timeout.ms": delivery_timeout_ms,
        # The Java clients' partitioner: a key lands where a JVM producer would put it.
        "partitioner": "murmur2_random",
        # Only failures call back into Python: no per-message callback cost.
        "delivery.report.only.error": True,
    }


class _DeliveryFailures:
    """Collects delivery and fatal client errors reported by librdkafka's threads."""

    def __init__(self, topic: str, bootstrap_servers: str) -> None:
        self._where = f"topic {topic!r} on Kafka at {bootstrap_servers}"
        self.failed = 0
        self.first: str | None = None

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            if self.first is None:
                self.first = str(error)

    def on_error(self, error: KafkaError) -> None:
        # Transient errors (a broker restarting) are retried by librdkafka and end
        # as delivery failures if they last; only fatal ones stop the run here.
        if error.fatal() and self.first is None:
            self.first = f"fatal client error: {error}"
            self.failed += 1

    def raise_if_failed(self) -> None:
        if self.first is not None:
            raise ProduceError(
                f"delivery to {self._where} failed for {self.failed} record(s); "
                f"first error: {self.first}"
            )


def produce(
    records: Iterable[GeneratedRecord],
    topic: str,
    bootstrap_servers: str,
    *,
    config: Mapping[str, Any] | None = None,
    connect_timeout_s: float = 10.0,
    delivery_timeout_ms: int = 60_000,
    flush_timeout_s: float = 120.0,
) -> ProduceResult:
    """Produce records to ``topic`` with their timestamps, keys and headers.

    Idempotent, ``acks=all``, batched. The broker is asked for the topic's
    metadata first, so an unreachable broker or a missing topic fails in
    ``connect_timeout_s`` with nothing sent. Delivery errors stop the run at
    the next check; every record must be acknowledged within
    ``flush_timeout_s`` of the last send. Raises :class:`ProduceError`.
    ``config`` overrides librdkafka settings.
    """
    from confluent_kafka import Producer

    failures = _DeliveryFailures(topic, bootstrap_servers)
    producer = Producer(
        {
            **_producer_config(bootstrap_servers, delivery_timeout_ms),
            "on_delivery": failures.on_delivery,
            "error_cb": failures.on_error,
            "logger": CLIENT_LOG,
            **(config or {}),
        }
    )
    try:
        _check_topic(producer, topic, bootstrap_servers, connect_timeout_s)
        started = time.perf_counter()
        sent, value_bytes = _send_all(producer, topic, records, failures)
        undelivered = producer.flush(flush_timeout_s)
        failures.raise_if_failed()
        if undelivered:
            raise ProduceError(
                f"{undelivered} of {sent} record(s) to topic {topic!r} on Kafka at "
                f"{bootstrap_servers} were not acknowledged within {flush_timeout_s:g}s"
            )
        return ProduceResult(
            topic, bootstrap_servers, sent, value_bytes, time.perf_counter() - started
        )
    except BaseException:
        # Drop what is still queued so the client shuts down now instead of retrying.
        producer.purge()
        producer.flush(0)
        raise


def _check_topic(producer: Producer, topic: str, bootstrap_servers: str, timeout_s: float) -> None:
    from confluent_kafka import KafkaError, KafkaException

    try:
        metadata = producer.list_topics(topic=topic, timeout=timeout_s)
    except KafkaException as exc:
        raise ProduceError(
            f"cannot reach Kafka at {bootstrap_servers} to produce to topic {topic!r} "
            f"(waited {timeout_s:g}s): {exc.args[0] if exc.args else exc}"
        ) from exc
    topic_metadata = metadata.topics.get(topic)
    error = topic_metadata.error if topic_metadata is not None else None
    missing = (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    if topic_metadata is None or (error is not None and error.code() in missing):
        raise ProduceError(
            f"topic {topic!r} is not available on Kafka at {bootstrap_servers}: "
            f"{error if error is not None else 'no metadata returned'}"
        )


_POLL_EVERY: Final = 10_000


def _send_all(
    producer: Producer,
    topic: str,
    records: Iterable[GeneratedRecord],
    failures: _DeliveryFailures,
) -> tuple[int, int]:
    sent = 0
    value_bytes = 0
    for record in records:
        while True:
            try:
                producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=[*record.headers],
                    timestamp=record.timestamp_ms,
                )
                break
            except BufferError:
                # The local queue is full: let librdkafka send a batch, then retry.
                producer.poll(0.1)
                failures.raise_if_failed()
        sent += 1
        value_bytes += len(record.value)
        if sent % _POLL_EVERY == 0:
            producer.poll(0)
            failures.raise_if_failed()
    return sent, value_bytes


# --------------------------------------------------------------------------- CLI


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share is between 0 and 1, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    defaults = GeneratorSpec.__dataclass_fields__
    parser = argparse.ArgumentParser(
        prog="lakehouse-events",
        description=(
            "Produce realistic events for the lakehouse's Kafka topics: late, out-of-order, "
            "duplicate and malformed records included, in Kafka-timestamp order."
        ),
    )
    parser.add_argument("--dataset", choices=(*DATASETS, "all"), default="all")
    parser.add_argument(
        "--count",
        type=int,
        default=defaults["count"].default,
        help="logical events per dataset, duplicates not included (default: %(default)s)",
    )
    parser.add_argument(
        "--days",
        type=int,
        default=defaults["days"].default,
        help="UTC days the events spread over (default: %(default)s)",
    )
    parser.add_argument(
        "--end-date",
        type=_parse_date,
        default=None,
        help="last day, YYYY-MM-DD (default: yesterday UTC, the last complete day)",
    )
    for name in ("late_share", "out_of_order_share", "duplicate_share", "malformed_share"):
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=_share,
            default=defaults[name].default,
            help="(default: %(default)s)",
        )
    parser.add_argument("--seed", type=int, default=defaults["seed"].default)
    parser.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (default: project settings)"
    )
    parser.add_argument(
        "--topic", help="topic to produce to (default: the dataset's topic in project settings)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="generate and summarise only, no Kafka"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the Kafka client's own log lines"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        help="write a JSON summary with the expected clean results to this path",
    )
    return parser


def _spec_from_args(args: argparse.Namespace) -> GeneratorSpec:
    extra = {"end_date": args.end_date} if args.end_date is not None else {}
    return GeneratorSpec(
        count=args.count,
        days=args.days,
        late_share=args.late_share,
        out_of_order_share=args.out_of_order_share,
        duplicate_share=args.duplicate_share,
        malformed_share=args.malformed_share,
        seed=args.seed,
        **extra,
    )


def _kafka_targets(
    args: argparse.Namespace, datasets: Sequence[str]
) -> tuple[str | None, dict[str, str | None]]:
    """Bootstrap servers and topics: options first, the project's settings for the rest.

    Settings are imported only when an option is missing, so the generator
    works without them; a dry run tolerates settings that cannot load.
    """
    topics: dict[str, str | None] = {name: args.topic for name in datasets}
    bootstrap: str | None = args.bootstrap_servers
    if args.topic is not None and (bootstrap is not None or args.dry_run):
        return bootstrap, topics
    try:
        # Imported by name: the settings module is optional for the generator.
        settings = importlib.import_module("resources.settings").load_settings()
        if bootstrap is None:
            bootstrap = settings.kafka.bootstrap_servers
        if args.topic is None:
            topics = {name: settings.datasets[name].topic for name in datasets}
    except Exception as exc:
        if not args.dry_run:
            raise ProduceError(
                f"cannot read Kafka settings from the project settings ({exc}); "
                "pass --bootstrap-servers and --topic"
            ) from exc
    return bootstrap, topics


def _observed(
    records: Iterable[GeneratedRecord], observers: Sequence[Callable[[GeneratedRecord], None]]
) -> Iterator[GeneratedRecord]:
    for record in records:
        for observe in observers:
            observe(record)
        yield record


def _run_dataset(
    dataset: str,
    spec: GeneratorSpec,
    topic: str | None,
    bootstrap: str | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    summary = GenerationSummary(dataset)
    expected = _ExpectedAggregates(dataset) if args.manifest is not None else None
    observers = [summary.add] if expected is None else [summary.add, expected.add]
    stream = _observed(generate(dataset, spec), observers)
    result: ProduceResult | None = None
    if args.dry_run:
        for _ in stream:
            pass
    else:
        assert topic is not None, "resolved by _kafka_targets"
        assert bootstrap is not None, "resolved by _kafka_targets"
        print(f"producing {dataset} to {topic} at {bootstrap} ...", file=sys.stderr)
        result = produce(stream, topic, bootstrap)
    return {
        "topic": topic,
        "summary": summary,
        "result": result,
        "expected": None if expected is None else expected.to_dict(),
    }


def _format_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    header = (
        "dataset",
        "topic",
        "records",
        "valid",
        "late (in/beyond window)",
        "out-of-order",
        "duplicates",
        "malformed",
        "event days",
        "sent",
    )
    rows = [header]
    notes = []
    for dataset, report in reports.items():
        summary: GenerationSummary = report["summary"]
        result: ProduceResult | None = report["result"]
        days = sorted(summary.by_event_day)
        rows.append(
            (
                dataset,
                report["topic"] or "-",
                f"{summary.records:,}",
                f"{summary.by_kind[KIND_VALID]:,}",
                f"{summary.by_kind[KIND_LATE]:,} ({summary.late_within_window:,}/"
                f"{summary.late_beyond_window:,})",
                f"{summary.by_kind[KIND_OUT_OF_ORDER]:,}",
                f"{summary.by_kind[KIND_DUPLICATE]:,}",
                f"{summary.malformed:,}",
                f"{days[0]}..{days[-1]}" if days else "-",
                "dry run"
                if result is None
                else f"{result.elapsed_s:.1f}s ({result.records_per_s:,.0f}/s)",
            )
        )
        if summary.malformed:
            reasons = ", ".join(f"{r} {n:,}" for r, n in summary.malformed_by_reason.items())
            notes.append(f"{dataset} malformed: {reasons}")
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in [*lines, *notes])


def _write_manifest(
    path: Path, spec: GeneratorSpec, reports: Mapping[str, Mapping[str, Any]]
) -> None:
    document = {
        "spec": {
            "count": spec.count,
            "days": spec.days,
            "first_day": spec.first_day.isoformat(),
            "end_date": spec.end_date.isoformat(),
            "late_share": spec.late_share,
            "out_of_order_share": spec.out_of_order_share,
            "duplicate_share": spec.duplicate_share,
            "malformed_share": spec.malformed_share,
            "seed": spec.seed,
            "late_window_days": LATE_WINDOW_DAYS,
        },
        "datasets": {
            dataset: {
                "topic": report["topic"],
                "summary": report["summary"].to_dict(),
                "expected": report["expected"],
                "produced": None
                if report["result"] is None
                else {
                    "records": report["result"].records,
                    "elapsed_s": round(report["result"].elapsed_s, 3),
                },
            }
            for dataset, report in reports.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``lakehouse-events``: generate, produce, print what was made; 0 on success."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    else:
        CLIENT_LOG.setLevel(logging.CRITICAL)
    try:
        spec = _spec_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    datasets = DATASETS if args.dataset == "all" else (args.dataset,)
    if args.topic is not None and len(datasets) > 1:
        parser.error("--topic needs a single --dataset")
    if not args.dry_run and spec.end_ms - 1 > time.time() * 1000 + _HOUR_MS:
        print(
            f"error: --end-date {spec.end_date} stamps records up to its midnight, more than an "
            "hour ahead of now; Kafka brokers refuse records from the future "
            "(message.timestamp.after.max.ms, 1 h by default). Use an earlier --end-date.",
            file=sys.stderr,
        )
        return 2
    try:
        bootstrap, topics = _kafka_targets(args, datasets)
        reports = {
            dataset: _run_dataset(dataset, spec, topics[dataset], bootstrap, args)
            for dataset in datasets
        }
    except ProduceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"seed {spec.seed}, {spec.count:,} events per dataset over {spec.days} day(s) "
        f"{spec.first_day}..{spec.end_date}"
    )
    print(_format_table(reports))
    if args.manifest is not None:
        _write_manifest(args.manifest, spec, reports)
        print(f"manifest: {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
