"""The ``purchase_orders`` dataset: orders through their lifecycle, with customers, lines,
taxes and shipping whose totals add up, versioned events per order."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from lakehouse_dev.generator.arrivals import (
    _Emitter,
)
from lakehouse_dev.generator.malformations import (
    _dumps,
    _invalid_utf8,
    _missing_field,
    _not_json,
    _order_wrong_type,
    _truncated_json,
)
from lakehouse_dev.generator.spec import (
    _EVENT_TAIL_MS,
    _HOUR_MS,
    _MINUTE_MS,
    _ORDER_CREATION_TAIL_MS,
    _SECOND_MS,
    KIND_LATE,
    KIND_OUT_OF_ORDER,
    KIND_VALID,
    GeneratedRecord,
    GeneratorSpec,
    MalformFn,
    _ascending_times,
    _below,
    _between,
    _iso_z,
    _rng,
    _uuid4,
    _weighted,
)

if TYPE_CHECKING:
    pass


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
