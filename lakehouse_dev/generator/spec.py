"""What to generate (GeneratorSpec), the generated record, its kinds, and the clock and
random helpers every dataset's generator shares."""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final, NamedTuple, TypeVar

if TYPE_CHECKING:
    pass


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


MalformFn = Callable[[bytes | None, bytes, int], tuple[bytes | None, bytes]]
