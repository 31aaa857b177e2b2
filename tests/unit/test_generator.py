"""The event generator, read as a specification: what each kind of record is and
what the expected clean results are. Pure generation; no Kafka needed."""

from __future__ import annotations

import itertools
import json
import re
import socket
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

from lakehouse_dev.generator.cli import main
from lakehouse_dev.generator.kafka import ProduceError, produce
from lakehouse_dev.generator.purchase_orders import TAX_RATES
from lakehouse_dev.generator.records import (
    MALFORMATIONS,
    expected_orders,
    expected_plain_totals,
    generate,
    summarize,
)
from lakehouse_dev.generator.spec import DATASETS, LATE_WINDOW_DAYS, GeneratedRecord, GeneratorSpec

DAY_MS = 86_400_000
SPEC = GeneratorSpec(
    count=4_000,
    days=7,
    end_date=date(2026, 11, 21),
    late_share=0.05,
    out_of_order_share=0.05,
    duplicate_share=0.03,
    malformed_share=0.02,
    seed=7,
)
CENT = Decimal("0.01")
PLAIN_FIELDS = {"id", "name", "amount", "event_time"}
ORDER_FIELDS = {
    "event_id",
    "event_type",
    "event_time",
    "order_id",
    "version",
    "status",
    "currency",
    "customer",
    "items",
    "totals",
}
STATUSES_BY_EVENT_TYPE = {
    "order_created": {"created"},
    "order_updated": {"created", "paid", "shipped"},
    "order_cancelled": {"cancelled"},
    "order_refunded": {"refunded"},
}


@pytest.fixture(scope="module")
def generated() -> dict[str, list[GeneratedRecord]]:
    return {dataset: list(generate(dataset, SPEC)) for dataset in DATASETS}


@pytest.fixture(params=DATASETS)
def dataset(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def records(generated: dict[str, list[GeneratedRecord]], dataset: str) -> list[GeneratedRecord]:
    return generated[dataset]


@pytest.fixture(scope="module")
def orders(generated: dict[str, list[GeneratedRecord]]) -> list[GeneratedRecord]:
    return generated["purchase_orders"]


@pytest.fixture(scope="module")
def plain(generated: dict[str, list[GeneratedRecord]]) -> list[GeneratedRecord]:
    return generated["plain"]


def clean(records: list[GeneratedRecord]) -> Iterator[tuple[GeneratedRecord, dict[str, Any]]]:
    """Each logical event once, parsed: no malformed records, no re-sends."""
    for record in records:
        if not record.is_malformed and record.kind != "duplicate":
            yield record, json.loads(record.value)


def event_ms(document: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(document["event_time"]).timestamp() * 1000)


def of_kind(records: list[GeneratedRecord], kind: str) -> list[GeneratedRecord]:
    return [record for record in records if record.kind == kind]


def totals_violations(order: dict[str, Any]) -> list[str]:
    """The totals rules of the purchase-order contract, written out independently."""
    gross = sum(
        (
            item["quantity"] * Decimal(item["unit_price"]) * (1 - Decimal(item["discount"]))
            for item in order["items"]
        ),
        Decimal(0),
    )
    totals = {name: Decimal(value) for name, value in order["totals"].items()}
    rate = TAX_RATES[order["customer"]["country"]]
    problems = []
    if totals["subtotal"] != gross.quantize(CENT, ROUND_HALF_UP):
        problems.append("subtotal")
    if totals["tax"] != (rate * totals["subtotal"]).quantize(CENT, ROUND_HALF_UP):
        problems.append("tax")
    if totals["total"] != totals["subtotal"] + totals["tax"] + totals["shipping"]:
        problems.append("total")
    return problems


# --------------------------------------------------------------------------- determinism


def test_same_seed_and_spec_give_byte_identical_records(dataset: str) -> None:
    spec = GeneratorSpec(count=500, days=5, end_date=date(2026, 3, 1), seed=3)

    assert list(generate(dataset, spec)) == list(generate(dataset, spec))


def test_another_seed_gives_other_events(dataset: str) -> None:
    spec = GeneratorSpec(count=200, days=5, end_date=date(2026, 3, 1), seed=3)
    other = GeneratorSpec(count=200, days=5, end_date=date(2026, 3, 1), seed=4)

    values = {record.value for record in generate(dataset, spec) if not record.is_malformed}
    other_values = {record.value for record in generate(dataset, other) if not record.is_malformed}

    assert not values & other_values


def test_generate_is_a_lazy_stream() -> None:
    stream = generate("plain", GeneratorSpec(count=10**9, end_date=date(2026, 3, 1)))

    assert isinstance(stream, Iterator)
    assert isinstance(next(stream), GeneratedRecord)


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        generate("nope", SPEC)


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"count": -1}, "count"),
        ({"days": 0}, "days"),
        ({"late_share": 1.5}, "late_share"),
        ({"duplicate_share": -0.1}, "duplicate_share"),
        ({"late_share": 0.5, "out_of_order_share": 0.3, "malformed_share": 0.3}, "disjoint"),
    ],
)
def test_spec_refuses_impossible_settings(settings: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        GeneratorSpec(**settings)


def test_end_date_defaults_to_yesterday_utc() -> None:
    before = datetime.now(UTC).date() - timedelta(days=1)
    spec = GeneratorSpec()
    after = datetime.now(UTC).date() - timedelta(days=1)

    assert spec.end_date in {before, after}


# --------------------------------------------------------------------------- volume and time


def test_count_is_the_number_of_logical_events(records: list[GeneratedRecord]) -> None:
    assert len([r for r in records if r.kind != "duplicate"]) == SPEC.count


def test_shares_are_roughly_honoured(records: list[GeneratedRecord]) -> None:
    summary = summarize("any", records)

    assert summary.malformed == SPEC.target(SPEC.malformed_share)
    assert summary.by_kind["duplicate"] == SPEC.target(SPEC.duplicate_share)
    for kind, share in (("late", SPEC.late_share), ("out_of_order", SPEC.out_of_order_share)):
        # Some picks fall on events that cannot take the label (too near the end,
        # an order's last version); the rest must be there.
        assert 0.75 * SPEC.target(share) <= summary.by_kind[kind] <= SPEC.target(share)


def test_records_come_in_timestamp_order(records: list[GeneratedRecord]) -> None:
    timestamps = [record.timestamp_ms for record in records]

    assert timestamps == sorted(timestamps)


def test_events_and_arrivals_stay_within_the_requested_days(
    records: list[GeneratedRecord],
) -> None:
    start, end = SPEC.start_ms, SPEC.end_ms

    assert all(start <= r.event_time_ms <= r.timestamp_ms < end for r in records)


def test_every_requested_day_has_events(records: list[GeneratedRecord]) -> None:
    days = {datetime.fromtimestamp(r.event_time_ms / 1000, UTC).date() for r in records}

    assert days == {SPEC.first_day + timedelta(days=n) for n in range(SPEC.days)}


def test_event_time_in_the_payload_is_the_records_event_time(
    records: list[GeneratedRecord],
) -> None:
    assert all(event_ms(document) == r.event_time_ms for r, document in clean(records))


# --------------------------------------------------------------------------- shapes


def test_plain_events_are_flat_and_keyed_by_id(plain: list[GeneratedRecord]) -> None:
    for record, document in clean(plain):
        assert set(document) == PLAIN_FIELDS
        assert record.key == document["id"].encode()
        assert document["name"] in {"Ada", "Grace", "Alan", "Barbara", "Edsger", "Katherine"}
        assert re.search(rb'"amount":\d+\.\d\d,', record.value)
        assert document["event_time"].endswith("Z")


def test_order_events_have_the_documented_shape(orders: list[GeneratedRecord]) -> None:
    for record, order in clean(orders):
        assert set(order) == ORDER_FIELDS
        assert record.key == order["order_id"].encode()
        assert re.fullmatch(r"PO-\d{6}", order["order_id"])
        assert re.fullmatch(r"C-\d+", order["customer"]["customer_id"])
        assert set(order["customer"]["contact_info"]) == {"email", "phone"}
        assert order["status"] in STATUSES_BY_EVENT_TYPE[order["event_type"]]
        assert order["currency"] in {"EUR", "USD", "GBP"}
        assert order["items"]
        for item in order["items"]:
            assert item["quantity"] > 0
            assert Decimal(item["unit_price"]) > 0
            assert 0 <= Decimal(item["discount"]) < 1


def test_valid_order_totals_add_up(orders: list[GeneratedRecord]) -> None:
    for _, order in clean(orders):
        assert totals_violations(order) == [], order


def test_order_versions_count_up_with_event_time(orders: list[GeneratedRecord]) -> None:
    versions: defaultdict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for record, order in clean(orders):
        versions[order["order_id"]].append(
            (order["version"], record.event_time_ms, order["status"])
        )

    for history in versions.values():
        history.sort()
        numbers = [version for version, _, _ in history]
        assert len(set(numbers)) == len(numbers)
        times = [time for _, time, _ in history]
        assert times == sorted(set(times))
    # Version 1 is missing only where that event was the malformed one.
    assert sum(history[0][0] == 1 for history in versions.values()) > 0.95 * len(versions)


def test_an_order_ends_cancelled_refunded_or_in_progress(orders: list[GeneratedRecord]) -> None:
    final_statuses = {order["status"] for order in expected_orders(orders).values()}

    assert final_statuses == {"created", "paid", "shipped", "cancelled", "refunded"}


def test_customers_change_tier_over_time(orders: list[GeneratedRecord]) -> None:
    tiers: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
    for record, order in clean(orders):
        tiers[order["customer"]["customer_id"]].append(
            (record.event_time_ms, order["customer"]["tier"])
        )

    changed = [history for history in tiers.values() if len({t for _, t in history}) > 1]
    assert changed
    for history in changed:
        sequence = [tier for _, tier in sorted(history)]
        switches = sum(a != b for a, b in itertools.pairwise(sequence))
        assert switches == 1  # one change, then the new tier stays


# --------------------------------------------------------------------------- kinds


def test_late_records_arrive_more_than_a_day_after_their_event(
    records: list[GeneratedRecord],
) -> None:
    late = of_kind(records, "late")

    assert late
    assert all(DAY_MS < r.timestamp_ms - r.event_time_ms <= 5 * DAY_MS for r in late)


def test_records_that_are_not_late_arrive_within_a_day(records: list[GeneratedRecord]) -> None:
    on_time = [r for r in records if r.kind in {"valid", "out_of_order"} or r.is_malformed]

    assert all(r.timestamp_ms - r.event_time_ms < DAY_MS for r in on_time)


def test_late_records_fall_inside_and_beyond_the_late_window(
    records: list[GeneratedRecord],
) -> None:
    def days_late(record: GeneratedRecord) -> int:
        return record.timestamp_ms // DAY_MS - record.event_time_ms // DAY_MS

    late = of_kind(records, "late")
    inside = [r for r in late if days_late(r) <= LATE_WINDOW_DAYS]
    beyond = [r for r in late if days_late(r) > LATE_WINDOW_DAYS]

    assert len(inside) > len(beyond) > 0
    assert all(r.timestamp_ms - r.event_time_ms < LATE_WINDOW_DAYS * DAY_MS for r in inside)
    assert all(r.timestamp_ms - r.event_time_ms > LATE_WINDOW_DAYS * DAY_MS for r in beyond)
    summary = summarize("any", records)
    assert (summary.late_within_window, summary.late_beyond_window) == (len(inside), len(beyond))


def test_out_of_order_order_updates_arrive_after_a_later_version(
    orders: list[GeneratedRecord],
) -> None:
    arrivals: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
    for record, order in clean(orders):
        arrivals[order["order_id"]].append((order["version"], record.timestamp_ms))
    swapped = 0
    for record in of_kind(orders, "out_of_order"):
        order = json.loads(record.value)
        later_versions_before = [
            ts
            for version, ts in arrivals[order["order_id"]]
            if version > order["version"] and ts < record.timestamp_ms
        ]
        swapped += bool(later_versions_before)

    assert swapped == len(of_kind(orders, "out_of_order")) > 0


def test_out_of_order_plain_events_arrive_after_later_events(
    plain: list[GeneratedRecord],
) -> None:
    out_of_order = of_kind(plain, "out_of_order")
    overtaken = 0
    latest_event_seen = 0
    for record in plain:
        if record.kind == "out_of_order" and latest_event_seen > record.event_time_ms:
            overtaken += 1
        latest_event_seen = max(latest_event_seen, record.event_time_ms)

    assert out_of_order
    assert overtaken == len(out_of_order)


def test_valid_versions_of_an_order_arrive_in_version_order(
    orders: list[GeneratedRecord],
) -> None:
    last_version: dict[str, int] = {}
    for record in of_kind(orders, "valid"):
        order = json.loads(record.value)
        assert order["version"] > last_version.get(order["order_id"], 0)
        last_version[order["order_id"]] = order["version"]


def test_duplicates_are_byte_identical_resends(records: list[GeneratedRecord]) -> None:
    sent: dict[tuple[bytes | None, bytes], GeneratedRecord] = {}
    for record in records:
        if record.kind == "duplicate":
            original = sent[(record.key, record.value)]
            assert original.kind in {"valid", "late", "out_of_order"}
            assert original.timestamp_ms <= record.timestamp_ms
            assert original.headers == record.headers
        else:
            assert (record.key, record.value) not in sent
            sent[(record.key, record.value)] = record
    assert of_kind(records, "duplicate")


def test_logical_events_have_unique_ids(records: list[GeneratedRecord]) -> None:
    ids = [doc.get("event_id", doc.get("id")) for _, doc in clean(records)]

    assert len(ids) == len(set(ids))


# --------------------------------------------------------------------------- malformed


def broken_rule(dataset: str, reason: str, record: GeneratedRecord) -> bool:
    """Whether a malformed record really breaks the rule its reason names."""
    if reason == "invalid_utf8":
        try:
            record.value.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False
    try:
        document = json.loads(record.value)
    except ValueError:
        return reason in {"not_json", "truncated_json"}
    required = PLAIN_FIELDS if dataset == "plain" else ORDER_FIELDS
    if reason == "missing_field":
        return not required <= set(document)
    if reason == "wrong_type":
        return wrong_type(dataset, document)
    if reason == "negative_quantity":
        negative = any(item["quantity"] < 0 for item in document["items"])
        return negative and totals_violations(document) == []
    if reason == "totals_mismatch":
        return "total" in totals_violations(document)
    return False


def wrong_type(dataset: str, document: dict[str, Any]) -> bool:
    if dataset == "plain":
        return not isinstance(document["amount"], int | float)
    if not isinstance(document["version"], int):
        return True
    for item in document["items"]:
        if not isinstance(item["quantity"], int):
            return True
        try:
            Decimal(item["unit_price"])
        except InvalidOperation:
            return True
    return False


def test_malformed_records_break_the_rule_they_are_labelled_with(
    dataset: str, records: list[GeneratedRecord]
) -> None:
    malformed = [record for record in records if record.is_malformed]

    assert malformed
    for record in malformed:
        reason = record.kind.removeprefix("malformed:")
        assert broken_rule(dataset, reason, record), record


def test_every_malformation_appears(dataset: str, records: list[GeneratedRecord]) -> None:
    reasons = {r.kind.removeprefix("malformed:") for r in records if r.is_malformed}

    assert reasons == set(MALFORMATIONS[dataset])


# --------------------------------------------------------------------------- expected results


def record(document: dict[str, Any] | bytes, kind: str = "valid", ts: int = 0) -> GeneratedRecord:
    value = document if isinstance(document, bytes) else json.dumps(document).encode()
    return GeneratedRecord(None, value, ts, [], kind, 0)


def plain_event(event_id: str, name: str, amount: str, when: str) -> dict[str, Any]:
    return {"id": event_id, "name": name, "amount": amount, "event_time": when}


def test_expected_plain_totals_ignore_malformed_and_count_duplicates_once() -> None:
    first = plain_event("1", "Ada", "10.10", "2026-11-20T23:59:59Z")
    records = [
        record(first),
        record(first, "duplicate"),
        record(plain_event("2", "Ada", "0.90", "2026-11-20T00:00:00Z"), "late"),
        record(plain_event("3", "Ada", "5.00", "2026-11-21T00:00:00Z"), "out_of_order"),
        record(plain_event("4", "Ada", "abc", "2026-11-20T10:00:00Z"), "malformed:wrong_type"),
        record(b"<html>", "malformed:not_json"),
    ]

    assert expected_plain_totals(records) == {
        (date(2026, 11, 20), "Ada"): Decimal("11.00"),
        (date(2026, 11, 21), "Ada"): Decimal("5.00"),
    }


def test_expected_plain_totals_of_generated_events_sum_each_id_once(
    plain: list[GeneratedRecord],
) -> None:
    by_id: dict[str, dict[str, Any]] = {}
    for r in plain:
        if not r.is_malformed:
            document = json.loads(r.value)
            by_id[document["id"]] = document
    totals: defaultdict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for document in by_id.values():
        day = datetime.fromisoformat(document["event_time"]).date()
        totals[(day, document["name"])] += Decimal(str(document["amount"]))

    assert expected_plain_totals(plain) == totals


def order_event(order_id: str, version: int, status: str) -> dict[str, Any]:
    return {"order_id": order_id, "version": version, "status": status}


def test_expected_orders_keep_the_latest_version_whatever_the_arrival_order() -> None:
    shipped = order_event("PO-000001", 3, "shipped")
    records = [
        record(shipped, ts=1),
        record(order_event("PO-000001", 2, "paid"), "out_of_order", ts=2),
        record(shipped, "duplicate", ts=3),
        record(order_event("PO-000001", 1, "created"), "late", ts=4),
        record(order_event("PO-000001", 4, "refunded"), "malformed:totals_mismatch", ts=5),
        record(order_event("PO-000002", 1, "created"), ts=6),
    ]

    assert expected_orders(records) == {
        "PO-000001": shipped,
        "PO-000002": order_event("PO-000002", 1, "created"),
    }


def test_expected_orders_cover_every_generated_order_at_its_highest_version(
    orders: list[GeneratedRecord],
) -> None:
    highest: dict[str, int] = {}
    for _, order in clean(orders):
        highest[order["order_id"]] = max(order["version"], highest.get(order["order_id"], 0))

    expected = expected_orders(orders)

    assert {order_id: order["version"] for order_id, order in expected.items()} == highest


def test_summary_reconciles_with_the_records(records: list[GeneratedRecord]) -> None:
    summary = summarize("any", records)

    assert summary.records == len(records) == sum(summary.by_kind.values())
    assert summary.logical_events == SPEC.count
    assert summary.late_within_window + summary.late_beyond_window == summary.by_kind["late"]
    assert sum(summary.by_event_day.values()) == len(records)
    assert summary.min_timestamp_ms == records[0].timestamp_ms
    assert summary.max_timestamp_ms == records[-1].timestamp_ms


# --------------------------------------------------------------------------- CLI and Kafka


def test_cli_dry_run_prints_what_it_made_and_writes_a_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "manifest.json"
    argv = ["--dataset", "plain", "--count", "300", "--days", "3", "--end-date", "2026-11-21"]
    argv += ["--seed", "5", "--topic", "plain-events", "--dry-run", "--manifest", str(manifest)]

    assert main(argv) == 0

    out = capsys.readouterr().out
    assert "plain-events" in out
    assert "2026-11-19..2026-11-21" in out
    written = json.loads(manifest.read_text())["datasets"]["plain"]
    assert written["summary"]["logical_events"] == 300
    spec = GeneratorSpec(count=300, days=3, end_date=date(2026, 11, 21), seed=5)
    totals = expected_plain_totals(generate("plain", spec))
    assert {
        (date.fromisoformat(row["date"]), row["name"]): Decimal(row["amount"])
        for row in written["expected"]["totals_by_day_and_name"]
    } == totals


def test_cli_refuses_timestamps_that_kafka_would_reject_as_future(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    argv = ["--dataset", "plain", "--end-date", tomorrow]
    argv += ["--topic", "t", "--bootstrap-servers", "127.0.0.1:1"]

    assert main(argv) == 2
    assert "future" in capsys.readouterr().err


def test_cli_needs_a_single_dataset_for_a_topic_override() -> None:
    with pytest.raises(SystemExit):
        main(["--topic", "t", "--dry-run"])


def test_produce_names_topic_and_broker_when_the_broker_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        broker = f"127.0.0.1:{sock.getsockname()[1]}"
    records = generate("plain", GeneratorSpec(count=10, end_date=date(2026, 1, 1)))

    with pytest.raises(ProduceError, match=rf"{broker}.*'plain-events'"):
        produce(records, "plain-events", broker, connect_timeout_s=1.0)


def test_cli_produces_with_the_projects_sasl_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the project's brokers the generator's producer gets the project's security
    settings, credentials from the variables the config names, as the pipeline's clients."""
    from lakehouse_dev.generator import cli

    sent: list[dict[str, Any]] = []

    def capture(records: Any, topic: str, bootstrap: str, *, config: Any = None) -> None:
        sent.append({"topic": topic, "bootstrap": bootstrap, "config": dict(config or {})})
        for _ in records:
            pass

    monkeypatch.setattr(cli, "produce", capture)
    for key, value in {
        "LAKEHOUSE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "LAKEHOUSE__KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "LAKEHOUSE__KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "LAKEHOUSE__KAFKA__SASL_USERNAME_ENV": "GENERATOR_TEST_USER",
        "LAKEHOUSE__KAFKA__SASL_PASSWORD_ENV": "GENERATOR_TEST_PASSWORD",
        "GENERATOR_TEST_USER": "events-writer",
        "GENERATOR_TEST_PASSWORD": "s3cret-for-the-test",
    }.items():
        monkeypatch.setenv(key, value)

    end = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert main(["--dataset", "plain", "--count", "20", "--days", "1", "--end-date", end]) == 0

    assert len(sent) == 1
    assert sent[0]["topic"] == "plain-events"
    assert sent[0]["bootstrap"] == "127.0.0.1:1"
    assert sent[0]["config"] == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "events-writer",
        "sasl.password": "s3cret-for-the-test",
    }
