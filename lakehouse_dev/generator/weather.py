"""The ``weather`` dataset: hourly observations shaped like Open-Meteo's archive API.

:func:`hourly_weather` is the document ``GET /v1/archive`` answers for one place and a
range of days (``hourly`` arrays of ``time`` and one per variable, times in GMT), a pure
function of its arguments and ``seed``: the local weather API
(:mod:`lakehouse_dev.weather_api`) serves it, and tests compute the same document to
know what the pipeline must hold.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, Final

#: Hourly variables the generator knows, with their units (Open-Meteo's names).
UNITS: Final = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "precipitation": "mm",
    "wind_speed_10m": "km/h",
}
DEFAULT_VARIABLES: Final = (
    "temperature_2m",
    "relative_humidity_2m",
    "precipitation",
    "wind_speed_10m",
)


def _rng(seed: int, latitude: float, longitude: float, day: date) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{latitude:.4f}|{longitude:.4f}|{day}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _hour_values(rng: random.Random, latitude: float, day: date, hour: int) -> dict[str, Any]:
    season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 200) / 365)
    base = 12 - abs(latitude) / 4 + 8 * season
    daily = 4 * math.sin(2 * math.pi * (hour - 9) / 24)
    rain = rng.random() < 0.15
    return {
        "temperature_2m": round(base + daily + rng.gauss(0, 1.2), 1),
        "relative_humidity_2m": max(15, min(100, int(70 - daily * 4 + rng.gauss(0, 8)))),
        "precipitation": round(rng.expovariate(1.5), 1) if rain else 0.0,
        "wind_speed_10m": round(abs(rng.gauss(12, 6)), 1),
    }


def hourly_weather(
    latitude: float,
    longitude: float,
    start: date,
    end: date,
    variables: Sequence[str] = DEFAULT_VARIABLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Open-Meteo's archive answer for ``start..end`` (inclusive), 24 hours a day, GMT."""
    unknown = [name for name in variables if name not in UNITS]
    if unknown:
        raise ValueError(f"unknown hourly variable(s): {', '.join(unknown)}")
    hourly: dict[str, list[Any]] = {"time": [], **{name: [] for name in variables}}
    day = start
    while day <= end:
        rng = _rng(seed, latitude, longitude, day)
        for hour in range(24):
            values = _hour_values(rng, latitude, day, hour)
            hourly["time"].append(f"{day.isoformat()}T{hour:02d}:00")
            for name in variables:
                hourly[name].append(values[name])
        day += timedelta(days=1)
    return {
        "latitude": latitude,
        "longitude": longitude,
        "generationtime_ms": 0.05,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 38.0,
        "hourly_units": {"time": "iso8601", **{name: UNITS[name] for name in variables}},
        "hourly": hourly,
    }


def weather_body(
    latitude: float,
    longitude: float,
    start: date,
    end: date,
    variables: Sequence[str] = DEFAULT_VARIABLES,
    seed: int = 0,
) -> bytes:
    """:func:`hourly_weather` as the API sends it (compact JSON, UTF-8)."""
    document = hourly_weather(latitude, longitude, start, end, variables, seed)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
