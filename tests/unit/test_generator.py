"""The simulator: contract, determinism, coherent sessions, and faults in the requested shares."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

import jsonschema
import orjson
import pytest

from contract import event_schema, event_types, max_event_bytes
from simulator.producer import parse_duration, parse_shift
from simulator.timeline import (
    DUPLICATE,
    LATE,
    MALFORMED,
    MALFORMED_REASONS,
    VALID,
    GeneratorConfig,
    TrafficShift,
    stream,
)

START = datetime(2026, 3, 2, tzinfo=UTC)
VALIDATOR = jsonschema.Draft202012Validator(
    event_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def _messages(**kwargs):
    return list(stream(GeneratorConfig(**{"events": 20_000, "seed": 11, "start": START, **kwargs})))


@pytest.fixture(scope="module")
def clean():
    return _messages()


@pytest.fixture(scope="module")
def faulty():
    return _messages(events=40_000, duplicate_ratio=0.05, late_ratio=0.05, malformed_ratio=0.05,
                     max_lateness_s=1800)


def test_every_valid_event_matches_the_contract(clean):
    assert len(clean) == 20_000
    for message in clean:
        assert len(message.value) <= max_event_bytes()
        event = orjson.loads(message.value)
        VALIDATOR.validate(event)
        assert message.key == event["user"]["user_id"].encode()
        assert event["event_ts"].endswith("Z") and len(event["event_ts"]) == 24


def test_every_malformed_message_breaks_the_contract_for_its_reason(faulty):
    malformed = [m for m in faulty if m.kind == MALFORMED]
    assert {m.reason for m in malformed} == set(MALFORMED_REASONS)
    for message in malformed:
        if message.reason == "invalid_json":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(message.value)
            continue
        if message.reason == "oversized":
            assert len(message.value) > max_event_bytes()
            continue
        assert not VALIDATOR.is_valid(orjson.loads(message.value)), message.reason


def test_same_seed_and_start_give_identical_bytes_and_another_seed_does_not(clean):
    again = _messages()
    assert [m.value for m in again] == [m.value for m in clean]
    other = _messages(seed=12)
    assert [m.value for m in other] != [m.value for m in clean]


def test_sessions_are_coherent(clean):
    sessions: dict[str, list[dict]] = defaultdict(list)
    for message in clean:
        event = orjson.loads(message.value)
        sessions[event["user"]["session_id"]].append(event)
    assert len(sessions) > 1_000
    purchases = 0
    for events in sessions.values():
        assert len({e["user"]["user_id"] for e in events}) == 1
        stamps = [e["event_ts"] for e in events]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # strictly ordered
        types = [e["event_type"] for e in events]
        assert types[0] == "page_view"
        if "purchase" in types:
            purchases += 1
            assert types.index("add_to_cart") < types.index("checkout") < types.index("purchase")
    conversion = purchases / len(sessions)
    assert 0.005 < conversion < 0.10, conversion


def test_users_keep_their_attributes(clean):
    seen: dict[str, tuple] = {}
    for message in clean:
        event = orjson.loads(message.value)
        attrs = (event["geo"]["country"], event["geo"]["city"], event["device"]["user_agent"])
        assert seen.setdefault(event["user"]["user_id"], attrs) == attrs


def test_campaign_traffic_carries_utm_parameters(clean):
    landings = [orjson.loads(m.value) for m in clean]
    with_campaign = [e for e in landings if e["campaign"] and e["page"]["referrer"] != e["page"]["url"]
                     and "utm_source=" in e["page"]["url"]]
    assert with_campaign
    for event in with_campaign:
        assert f"utm_campaign={event['campaign']['name']}" in event["page"]["url"]
    assert {e["event_type"] for e in landings} == set(event_types())


def test_dwell_times_are_heavy_tailed(clean):
    gaps = []
    last: dict[str, int] = {}
    for message in clean:
        event = orjson.loads(message.value)
        if event["event_type"] != "page_view":
            continue
        sid = event["user"]["session_id"]
        if sid in last:
            gaps.append(message.event_ts_ms - last[sid])
        last[sid] = message.event_ts_ms
    gaps.sort()
    median, p99 = gaps[len(gaps) // 2], gaps[int(len(gaps) * 0.99)]
    assert 5_000 < median < 120_000
    assert p99 > 8 * median


def test_fault_shares_are_within_tolerance(faulty):
    kinds = Counter(m.kind for m in faulty)
    assert sum(kinds.values()) == 40_000
    for kind in (DUPLICATE, LATE, MALFORMED):
        assert abs(kinds[kind] / 40_000 - 0.05) < 0.01, (kind, kinds)
    assert kinds[VALID] > 0.8 * 40_000


def test_duplicates_repeat_an_earlier_event_exactly(faulty):
    values = Counter(m.value for m in faulty if m.kind != MALFORMED)
    for message in (m for m in faulty if m.kind == DUPLICATE):
        assert values[message.value] >= 2


def test_late_events_arrive_out_of_order_within_the_max_lateness(faulty):
    late = [m for m in faulty if m.kind == LATE]
    for message in late:
        lateness = message.delivery_ms - message.event_ts_ms
        assert 900_000 <= lateness <= 1_800_000
    delivery = [m.delivery_ms for m in faulty]
    assert delivery == sorted(delivery)  # delivered in delivery order, so late = out of event order


def test_days_and_daily_curve():
    messages = _messages(events=30_000, days=3)
    days = Counter(datetime.fromtimestamp(m.event_ts_ms / 1000, UTC).date() for m in messages)
    assert sorted(days) == [START.date().replace(day=d) for d in (2, 3, 4)]
    assert all(8_000 < n < 12_000 for n in days.values())
    hours = Counter(datetime.fromtimestamp(m.event_ts_ms / 1000, UTC).hour for m in messages)
    assert hours[20] > 3 * hours[4]


def test_durations_parse_with_units():
    assert parse_duration("90") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("2h") == 7200
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_a_shift_starts_sessions_that_many_times_as_often_for_its_minutes():
    spike, drop = parse_shift("14:00,15m,4", START), parse_shift("19:00,30m,0", START)
    assert spike == TrafficShift(START.replace(hour=14), 15, 4.0)
    # Enough events per 5-minute step and shard for whole sessions, not one cut short.
    shifted = _messages(events=100_000, shifts=(spike, drop))
    assert len(shifted) == 100_000  # the day's total is kept

    def first_events(messages, hour, minutes):  # sessions starting in [hour:00, hour:minutes)
        begin = START.replace(hour=hour).timestamp() * 1000
        starts = {}
        for m in messages:
            session = orjson.loads(m.value)["user"]["session_id"]
            starts.setdefault(session, m.event_ts_ms)
        return sum(begin <= ts < begin + minutes * 60_000 for ts in starts.values())

    usual = _messages(events=100_000, bucket_s=300)  # the same 5-minute steps, without the shifts
    assert first_events(shifted, 14, 15) > 3 * first_events(usual, 14, 15)
    assert first_events(shifted, 19, 30) == 0 < first_events(usual, 19, 30)
    with pytest.raises(ValueError, match="HH:MM,DURATION,FACTOR"):
        parse_shift("14:00,4", START)
