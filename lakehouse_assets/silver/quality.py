"""Data-quality history of a silver dataset: per day, numbers the UI plots, and a check
that flags a quarantine rate far above the days before it.

Every silver run counts, per silver day of its window, the bronze records that belong
to the day (``rows_in``) and what became of them: accepted into the tables,
quarantined (per rule) or removed as duplicates. :meth:`DayQuality.metadata` turns a
day into numeric metadata under fixed keys, so Dagster's asset page plots each one
over the partitions (the Plots tab of the dataset's events table):

=================================  ==================================================
``dagster/partition_row_count``    accepted rows the day holds in the events table
``rows_in``                        bronze records of the day
``rows_accepted``                  ... accepted
``rows_quarantined``               ... quarantined (``quarantine_rate`` of rows_in)
``rows_duplicate``                 ... removed as duplicates (``duplicate_rate``)
``quarantined/<rule id>``          ... quarantined by that rule (rules that fired)
=================================  ==================================================

Each day's figures go on that day's materialisation (``add_asset_metadata`` with the
day's partition key), also in a ranged run (a single-run backfill), whose output
metadata would be the same for every day.

``quarantine_rate_anomaly`` (:func:`evaluate_anomaly`) compares each day of the
run with the days before it (``quality.quarantine_anomaly``): the rates recorded
for the ``window_days`` days before, read back from the instance
(:func:`recorded_rates`: each day's latest materialisation), and the run's own
earlier days. A day is an anomaly when
its rate is more than ``k`` standard deviations above the window's mean and at least
``min_rate_increase`` above it; with fewer than ``min_history_days`` rates the day is
not judged. The check warns and never blocks: a spike is a question for a person
(a producer's bad release, a contract too strict), and the quarantined rows are safe.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import dagster as dg

from resources.config_sections import QuarantineAnomalySettings

ANOMALY_CHECK = "quarantine_rate_anomaly"
QUARANTINE_RATE = "quarantine_rate"
RULE_PREFIX = "quarantined/"


@dataclass(frozen=True)
class DayQuality:
    """What became of one silver day's bronze records."""

    day: date
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    by_rule: Mapping[str, int] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        return self.accepted + self.quarantined + self.duplicates

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0

    @property
    def duplicate_rate(self) -> float:
        return self.duplicates / self.rows_in if self.rows_in else 0.0

    def metadata(self) -> dict[str, Any]:
        """The day's figures under the keys the UI plots (see the module docstring)."""
        return {
            "dagster/partition_row_count": self.accepted,
            "rows_in": self.rows_in,
            "rows_accepted": self.accepted,
            "rows_quarantined": self.quarantined,
            "rows_duplicate": self.duplicates,
            QUARANTINE_RATE: self.quarantine_rate,
            "duplicate_rate": self.duplicate_rate,
            **{f"{RULE_PREFIX}{rule}": n for rule, n in sorted(self.by_rule.items())},
        }


def day_qualities(
    counts: Iterable[tuple[date, str, str | None, int]],
    first: date,
    last: date,
    *,
    accepted: str,
    quarantined: str,
    duplicate: str,
) -> list[DayQuality]:
    """One :class:`DayQuality` per day ``first``..``last`` (days without records
    included), from ``(day, status, rule id, count)`` rows; rows of other days are
    ignored."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    totals: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rules: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, status, rule, n in counts:
        totals[day][status] += n
        if status == quarantined:
            rules[day][rule or "unknown"] += n
    return [
        DayQuality(
            day,
            accepted=totals[day][accepted],
            quarantined=totals[day][quarantined],
            duplicates=totals[day][duplicate],
            by_rule=dict(rules[day]),
        )
        for day in days
    ]


@dataclass(frozen=True)
class DayVerdict:
    """One day judged against the rates of the days before it."""

    day: date
    rate: float
    history: int
    mean: float | None = None
    stddev: float | None = None
    threshold: float | None = None

    @property
    def judged(self) -> bool:
        return self.threshold is not None

    @property
    def anomalous(self) -> bool:
        return self.threshold is not None and self.rate > self.threshold

    def describe(self) -> str:
        if not self.judged:
            return f"{self.day}: rate {self.rate:.4f}, only {self.history} day(s) of history"
        return (
            f"{self.day}: rate {self.rate:.4f} vs mean {self.mean:.4f} +- {self.stddev:.4f} "
            f"over {self.history} day(s), threshold {self.threshold:.4f}"
        )


def evaluate_anomaly(
    days: Sequence[DayQuality],
    recorded: Mapping[date, float],
    settings: QuarantineAnomalySettings,
) -> list[DayVerdict]:
    """Each day of ``days`` (in order) against the ``window_days`` days before it: their
    rates from ``recorded`` or, for days of the run itself, from ``days``. A day without
    records does not count as history (its rate of 0 says nothing)."""
    rates = dict(recorded)
    rates.update({d.day: d.quarantine_rate for d in days if d.rows_in})
    verdicts = []
    for day in days:
        window = [
            rates[d]
            for offset in range(1, settings.window_days + 1)
            if (d := day.day - timedelta(days=offset)) in rates
        ]
        if not day.rows_in or len(window) < settings.min_history_days:
            verdicts.append(DayVerdict(day.day, day.quarantine_rate, len(window)))
            continue
        mean = sum(window) / len(window)
        stddev = math.sqrt(sum((r - mean) ** 2 for r in window) / (len(window) - 1))
        threshold = max(mean + settings.k * stddev, mean + settings.min_rate_increase)
        verdicts.append(
            DayVerdict(day.day, day.quarantine_rate, len(window), mean, stddev, threshold)
        )
    return verdicts


def recorded_rates(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    days: Sequence[date],
    *,
    exclude_run: str | None = None,
) -> dict[date, float]:
    """The ``quarantine_rate`` of the latest materialisation of each of ``days`` on
    ``asset_key`` that has one, ignoring those of run ``exclude_run``."""
    partitions = [d.isoformat() for d in days]
    records_filter = dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions)
    # Every rerun of a day adds a materialisation: read a generous page, newest first.
    limit = max(100, 10 * len(partitions))
    rates: dict[date, float] = {}
    for record in instance.fetch_materializations(records_filter, limit=limit).records:
        event = record.asset_materialization
        if event is None or record.partition_key is None or record.run_id == exclude_run:
            continue
        value = event.metadata.get(QUARANTINE_RATE)
        if isinstance(value, dg.FloatMetadataValue) and value.value is not None:
            rates.setdefault(date.fromisoformat(record.partition_key), value.value)
    return rates


def anomaly_check_spec(
    asset_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    settings: QuarantineAnomalySettings,
) -> dg.AssetCheckSpec:
    """The ``quarantine_rate_anomaly`` check of a dataset's events table (never blocks)."""
    return dg.AssetCheckSpec(
        ANOMALY_CHECK,
        asset=asset_key,
        partitions_def=partitions_def,
        description=(
            f"The day's quarantine rate is at most {settings.k:g} standard deviations (and "
            f"{settings.min_rate_increase:g} absolute) above the mean of the "
            f"{settings.window_days} days before it (judged once {settings.min_history_days} "
            "of them have a rate); warns, never blocks."
        ),
    )


def anomaly_result(
    asset_key: dg.AssetKey, verdicts: Sequence[DayVerdict], settings: QuarantineAnomalySettings
) -> dg.AssetCheckResult:
    """The check's result for a run's days: failed (WARN) when any day is an anomaly."""
    anomalies = [v for v in verdicts if v.anomalous]
    judged = [v for v in verdicts if v.judged]
    if anomalies:
        description = "quarantine rate anomaly: " + "; ".join(v.describe() for v in anomalies)
    elif judged:
        description = "no anomaly: " + "; ".join(v.describe() for v in judged[-3:])
    else:
        description = "not judged yet: " + "; ".join(v.describe() for v in verdicts[-3:])
    # The day closest to (or furthest over) its threshold; without one, the newest day.
    worst = max(judged, key=lambda v: v.rate - (v.threshold or 0.0)) if judged else verdicts[-1]
    metadata: dict[str, Any] = {
        "days_judged": len(judged),
        "anomalous_days": [v.day.isoformat() for v in anomalies],
        QUARANTINE_RATE: worst.rate,
        "k": settings.k,
        "window_days": settings.window_days,
    }
    if worst.judged:
        metadata.update(
            trailing_mean=worst.mean,
            trailing_stddev=worst.stddev,
            threshold=worst.threshold,
            history_days=worst.history,
        )
    return dg.AssetCheckResult(
        check_name=ANOMALY_CHECK,
        asset_key=asset_key,
        passed=not anomalies,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def record_days(
    context: dg.AssetExecutionContext,
    events_key: dg.AssetKey,
    quarantine_key: dg.AssetKey,
    days: Sequence[DayQuality],
) -> None:
    """Each day's figures on its materialisation of the events table, and its quarantined
    rows on the quarantine's (call before the outputs are yielded)."""
    for quality in days:
        day = quality.day.isoformat()
        context.add_asset_metadata(quality.metadata(), asset_key=events_key, partition_key=day)
        context.add_asset_metadata(
            {"dagster/partition_row_count": quality.quarantined},
            asset_key=quarantine_key,
            partition_key=day,
        )


def judge_quarantine_rates(
    context: dg.AssetExecutionContext,
    asset_key: dg.AssetKey,
    days: Sequence[DayQuality],
    settings: QuarantineAnomalySettings,
) -> dg.AssetCheckResult:
    """``quarantine_rate_anomaly`` for a run's ``days``: each against the rates recorded
    for the days before it (this run's own events aside) and the run's earlier days."""
    recorded = history_rates(
        context.instance, asset_key, days[0].day, days[-1].day, settings, context.run.run_id
    )
    return anomaly_result(asset_key, evaluate_anomaly(days, recorded, settings), settings)


def history_rates(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    first: date,
    last: date,
    settings: QuarantineAnomalySettings,
    run_id: str,
) -> dict[date, float]:
    """The recorded rates the anomaly check of run ``run_id`` over ``first``..``last``
    reads: each day of the range and of the window before it (the run's own aside)."""
    span = (last - first).days + settings.window_days
    candidates = [last - timedelta(days=i) for i in range(span, -1, -1)]
    return recorded_rates(instance, asset_key, candidates, exclude_run=run_id)
