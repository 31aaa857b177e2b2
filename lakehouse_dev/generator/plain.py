"""The ``plain`` dataset: flat events {id, name, amount, event_time}."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from lakehouse_dev.generator.arrivals import (
    _Emitter,
)
from lakehouse_dev.generator.malformations import (
    _invalid_utf8,
    _missing_field,
    _not_json,
    _plain_wrong_type,
    _truncated_json,
)
from lakehouse_dev.generator.spec import (
    _EVENT_TAIL_MS,
    _HOUR_MS,
    _MINUTE_MS,
    KIND_LATE,
    KIND_OUT_OF_ORDER,
    KIND_VALID,
    GeneratedRecord,
    GeneratorSpec,
    MalformFn,
    _ascending_times,
    _below,
    _iso_z,
    _rng,
    _uuid4,
)

if TYPE_CHECKING:
    pass


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
