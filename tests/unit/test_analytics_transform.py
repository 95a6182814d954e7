"""Analytics transformations on small hand-built days, against answers worked out by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from spark.analytics import daily_tables, transform

DAY = date(2026, 5, 4)
T0 = datetime(2026, 5, 4, 10, 0, 0)
COLUMNS = ("event_id string, event_type string, event_ts timestamp, event_date date, user_id string, "
           "session_id string, url_path string, country string, device_type string, "
           "kafka_timestamp timestamp, kafka_partition long, kafka_offset long, "
           "referrer_class string, campaign_name string, browser_family string, "
           "device_class string, is_bot boolean, bot_reason string")
# What the enrichment found per session: the first event's channel and campaign, then internal
# clicks; the visitor's browser and device class.
VISITS = {"s1": ("search", None, "Chrome Mobile", "mobile"),
          "s2": ("paid", "black_friday", "Firefox", "desktop"),
          "f1": ("direct", None, "Chrome Mobile", "mobile"),
          "f2": ("paid", "black_friday", "Firefox", "desktop"),
          "f3": ("direct", None, "Firefox", "desktop"),
          "f4": ("search", None, "Safari", "tablet")}


def _rows(*events):
    """(id, type, seconds after T0, user, session, path, country, device) -> raw rows."""
    return [(i, kind, T0 + timedelta(seconds=s), DAY, u, sid, path, c, dev, T0, 0, n,
             *_enriched(sid, first=n == 0 or events[n - 1][4] != sid))
            for n, (i, kind, s, u, sid, path, c, dev) in enumerate(events)]


def _enriched(session: str, first: bool) -> tuple:
    channel, campaign, browser, device_class = VISITS[session]
    return (channel if first else "internal", campaign, browser, device_class, False, None)


EVENTS = _rows(
    ("e1", "page_view", 0, "u1", "s1", "/", "DE", "mobile"),
    ("e2", "click", 10, "u1", "s1", "/", "DE", "mobile"),
    ("e3", "page_view", 30, "u1", "s1", "/p/1", "DE", "mobile"),
    ("e4", "add_to_cart", 40, "u1", "s1", "/p/1", "DE", "mobile"),
    ("e5", "page_view", 90, "u1", "s1", "/cart", "DE", "mobile"),
    ("e6", "purchase", 100, "u1", "s1", "/checkout/confirmation", "DE", "mobile"),
    ("e7", "page_view", 5, "u2", "s2", "/", "US", "desktop"),
    ("e8", "page_view", 305, "u2", "s2", "/p/1", "US", "desktop"),
)


@pytest.fixture(scope="module")
def raw(spark):
    return spark.createDataFrame(EVENTS, COLUMNS)


def test_deduplicate_day_keeps_the_first_delivered_copy(spark, raw):
    copies = [(("e1",) + EVENTS[0][1:9] + (T0 + timedelta(seconds=s), 0, off) + EVENTS[0][12:]) for s, off in
              ((7, 70), (3, 30), (3, 40))]
    frame = spark.createDataFrame(copies + [EVENTS[1]], raw.schema).withColumn("event_hour", F.lit("10"))
    result = transform.deduplicate_day(frame).orderBy("event_id").collect()
    assert [r["event_id"] for r in result] == ["e1", "e2"]
    assert result[0]["kafka_offset"] == 30 and "event_hour" not in result[0]


def test_time_on_page_is_the_gap_to_the_next_page_view_and_null_for_the_last(raw):
    dwell = {r["event_id"]: r["time_on_page_s"] for r in transform.with_time_on_page(raw).collect()}
    assert (dwell["e1"], dwell["e3"], dwell["e5"]) == (30.0, 60.0, None)
    assert (dwell["e7"], dwell["e8"]) == (300.0, None)
    assert dwell["e2"] is None  # only page views have a time on page


def test_url_country_daily(raw):
    rows = {(r["url"], r["country"]): r.asDict() for r in transform.url_country_daily(raw).collect()}
    home_de = rows[("/", "DE")]
    counts = tuple(home_de[k] for k in ("events", "page_views", "unique_users", "sessions"))
    assert counts == (2, 1, 1, 1)
    assert home_de["avg_time_on_page_s"] == 30.0
    assert rows[("/cart", "DE")]["avg_time_on_page_s"] is None  # the session's last page view
    assert rows[("/p/1", "US")]["avg_time_on_page_s"] is None
    assert sum(r["events"] for r in rows.values()) == len(EVENTS)


def test_user_sessions(raw):
    sessions = {r["session_id"]: r.asDict() for r in transform.user_sessions(raw).collect()}
    s1 = sessions["s1"]
    assert (s1["user_id"], s1["events"], s1["page_views"], s1["duration_s"]) == ("u1", 6, 3, 100.0)
    assert (s1["entry_page"], s1["exit_page"], s1["converted"]) == ("/", "/cart", True)
    s2 = sessions["s2"]
    assert (s2["duration_s"], s2["converted"]) == (300.0, False)
    assert (s2["country"], s2["device_type"]) == ("US", "desktop")
    # First touch: the first event's channel and campaign, not the internal clicks after it.
    assert (s1["channel"], s1["campaign"], s1["browser"], s1["device_class"]) == (
        "search", None, "Chrome Mobile", "mobile")
    assert (s2["channel"], s2["campaign"], s2["browser"]) == ("paid", "black_friday", "Firefox")


def test_five_minute_windows(raw):
    popularity = {(r["window_start"], r["url"]): r["events"]
                  for r in transform.url_popularity_5m(raw).collect()}
    assert popularity[(T0, "/")] == 3 and popularity[(T0 + timedelta(minutes=5), "/p/1")] == 1
    devices = {(r["window_start"], r["device_type"]): r["events"]
               for r in transform.device_usage_5m(raw).collect()}
    assert devices == {(T0, "mobile"): 6, (T0, "desktop"): 1, (T0 + timedelta(minutes=5), "desktop"): 1}
    active = {r["window_start"]: r["active_users"] for r in transform.active_users_5m(raw).collect()}
    assert active == {T0: 2, T0 + timedelta(minutes=5): 1}


@pytest.mark.parametrize(("rows", "cores", "files"), [
    (10_000, 2, 1),            # a small day stays one file
    (1_000_000, 2, 2),         # one file per core, so the sort-and-write uses both
    (10_000_000, 2, 6),        # 2M rows per file rounds up to whole waves of cores
    (10_000_000, 64, 40),      # on a cluster, files stop at MIN_ROWS_PER_FILE
])
def test_a_day_is_written_in_files_that_keep_every_core_busy(rows, cores, files):
    assert daily_tables.files_per_day({"2026-05-04": rows, "2026-05-03": rows // 2}, cores) == files


@pytest.mark.parametrize("table", sorted(transform.COLUMN_SOURCES))
def test_column_lineage_names_every_output_column_and_only_raw_columns(raw, table):
    """The lineage the UI shows is held to the transformations' real columns, both ways."""
    output = getattr(transform, table)(raw)
    sources = transform.COLUMN_SOURCES[table]
    assert list(sources) == output.columns
    assert {column for inputs in sources.values() for column in inputs} <= set(raw.columns)


SITE = "https://shop.example.com"  # the lake's url_path: the url without its query
# Four visits through the funnel's steps: all six in order; a product page before home (it enters
# at home, then reaches category); a cart before home (only home counts); no step at all.
FUNNEL_EVENTS = _rows(
    ("a1", "page_view", 0, "u1", "f1", SITE + "/", "DE", "mobile"),
    ("a2", "page_view", 10, "u1", "f1", SITE + "/c/shoes", "DE", "mobile"),
    ("a3", "page_view", 20, "u1", "f1", SITE + "/p/00001", "DE", "mobile"),
    ("a4", "add_to_cart", 30, "u1", "f1", SITE + "/p/00001", "DE", "mobile"),
    ("a5", "checkout", 40, "u1", "f1", SITE + "/checkout", "DE", "mobile"),
    ("a6", "purchase", 50, "u1", "f1", SITE + "/checkout/confirmation", "DE", "mobile"),
    ("b1", "page_view", 0, "u2", "f2", SITE + "/p/00002", "US", "desktop"),
    ("b2", "page_view", 10, "u2", "f2", SITE + "/", "US", "desktop"),
    ("b3", "page_view", 20, "u2", "f2", SITE + "/c/hats", "US", "desktop"),
    ("c1", "add_to_cart", 0, "u3", "f3", SITE + "/p/00003", "DE", "desktop"),
    ("c2", "page_view", 10, "u3", "f3", SITE + "/", "DE", "desktop"),
    ("c3", "page_view", 20, "u3", "f3", SITE + "/cart", "DE", "desktop"),
    ("d1", "click", 0, "u4", "f4", SITE + "/search", "US", "tablet"),
)


def _funnel(spark) -> dict[tuple[str, str], list[tuple]]:
    rows = transform.conversion_funnel(spark.createDataFrame(FUNNEL_EVENTS, COLUMNS)).collect()
    by_segment: dict[tuple[str, str], list[tuple]] = {}
    for r in sorted(rows, key=lambda r: (r["dimension"], r["segment"], r["step_number"])):
        by_segment.setdefault((r["dimension"], r["segment"]), []).append(
            (r["step"], r["sessions"], r["from_previous"], r["from_start"]))
    return by_segment


def test_the_funnel_counts_sessions_that_reach_each_step_in_order(spark):
    funnel = _funnel(spark)
    assert funnel[("all", "all")] == [
        ("home", 3, 0.75, 1.0), ("category", 2, 0.6667, 0.6667), ("product", 1, 0.5, 0.3333),
        ("cart", 1, 1.0, 0.3333), ("checkout", 1, 1.0, 0.3333), ("purchase", 1, 1.0, 0.3333)]
    sessions = {segment: [step[1] for step in steps] for segment, steps in funnel.items()}
    assert sessions[("country", "DE")] == [2, 1, 1, 1, 1, 1]
    assert sessions[("country", "US")] == [1, 1, 0, 0, 0, 0]
    assert sessions[("campaign", "black_friday")] == [1, 1, 0, 0, 0, 0]
    assert sessions[("campaign", transform.NO_CAMPAIGN)] == [2, 1, 1, 1, 1, 1]
    assert sessions[("device_class", "tablet")] == [0] * 6  # entered no step: counted, never reached
    assert funnel[("device_class", "tablet")][0][3] is None  # no conversion from an empty start
    # Every segment of every breakdown holds the same sessions as the whole day.
    for dimension in transform.FUNNEL_DIMENSIONS:
        assert [sum(c) for c in zip(*(v for (d, _), v in sessions.items() if d == dimension),
                                    strict=True)] == sessions[("all", "all")]
