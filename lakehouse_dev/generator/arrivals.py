"""Arrival times and kinds: quotas of late, out-of-order, duplicate and malformed records,
late arrivals within and beyond the window, and the emitter that orders records by arrival."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from lakehouse_dev.generator.spec import (
    _DAY_MS,
    _HEADERS,
    _MINUTE_MS,
    KIND_DUPLICATE,
    KIND_LATE,
    KIND_MALFORMED,
    KIND_OUT_OF_ORDER,
    KIND_VALID,
    LATE_BEYOND_WINDOW_SHARE,
    LATE_WINDOW_DAYS,
    MALFORMED_PREFIX,
    MAX_LATE_DAYS,
    GeneratedRecord,
    GeneratorSpec,
    MalformFn,
    _below,
    _between,
)

if TYPE_CHECKING:
    pass


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
