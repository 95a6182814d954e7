"""Pure transformations from the landing lake to the daily raw table and the analytics tables.

Each function takes and returns a DataFrame; the Dagster assets and `python -m spark.analytics`
call the same functions. Every output carries `event_date`, its daily partition.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ..enrichment import with_enriched_columns

WINDOW_MINUTES = 5  # divides an hour: a window never spans two hours
WINDOW = f"{WINDOW_MINUTES} minutes"
BOT_BY_EVENT_RATE = "event_rate"  # bot_reason of a user flagged by flag_fast_users


def deduplicate_day(landing: DataFrame, bucket: str | None = None) -> DataFrame:
    """One row per (event_date, event_id) over whole days. Duplicates are byte-identical events, so
    which copy survives only matters for Kafka metadata: the first delivered, deterministically.

    `bucket` names a column computed from event_id by which `landing` is already partitioned
    (with event_date); grouping on it too lets the dedup reuse that partitioning, not shuffle again.
    """
    keys = ["event_date", *([bucket] if bucket else []), "event_id"]
    first = Window.partitionBy(*keys).orderBy("kafka_timestamp", "kafka_partition", "kafka_offset")
    return (landing.withColumn("_copy", F.row_number().over(first))
            .where(F.col("_copy") == 1).drop("_copy", "event_hour", *([bucket] if bucket else [])))


def analytics_rows(rows: DataFrame, include_bots: bool = False) -> DataFrame:
    """The rows analytics count: people only, unless `include_bots` (CLICKSTREAM_INCLUDE_BOTS).
    Rows written before the enrichment have no `is_bot` and count as people."""
    if include_bots or "is_bot" not in rows.columns:
        return rows
    return rows.where(is_person())


def is_person() -> Column:
    """Not flagged as a bot (rows written before the enrichment have no flag)."""
    return ~F.coalesce(F.col("is_bot"), F.lit(False))


def flag_fast_users(rows: DataFrame, source: DataFrame, max_events_per_second: int) -> DataFrame:
    """Mark as bots (reason `event_rate`) the users of a day who sent more than
    `max_events_per_second` distinct events within one second of event time, counted in `source`
    (the same days' rows, before or after the dedup: distinct event ids either way). A person
    clicks a few times a second at most; a script replays pages faster."""
    fast = (source.groupBy("event_date", "user_id", F.date_trunc("second", "event_ts").alias("second"))
            .agg(F.count_distinct("event_id").alias("events"))
            .where(F.col("events") > max_events_per_second)
            .select("event_date", "user_id").distinct().withColumn("_fast", F.lit(True)))
    flagged = rows.join(F.broadcast(fast), ["event_date", "user_id"], "left")
    fast_user = F.coalesce(F.col("_fast"), F.lit(False))
    by_agent = F.coalesce(F.col("is_bot"), F.lit(False))
    return (flagged
            .withColumn("bot_reason", F.when(by_agent, F.col("bot_reason"))
                        .when(fast_user, F.lit(BOT_BY_EVENT_RATE)))
            .withColumn("is_bot", by_agent | fast_user)
            .drop("_fast").select(*rows.columns))


def with_time_on_page(raw: DataFrame) -> DataFrame:
    """`time_on_page_s` on page_view rows: seconds until the next page_view of the same session on
    the same day. Null for a session's last page_view of the day (its dwell is unknown) and for
    every other event type."""
    views = Window.partitionBy("event_date", "session_id").orderBy("event_ts", "event_id")
    next_view = F.lead("event_ts").over(views)
    page_views = raw.where(F.col("event_type") == "page_view").withColumn(
        "time_on_page_s", _seconds_between(F.col("event_ts"), next_view))
    others = raw.where(F.col("event_type") != "page_view").withColumn(
        "time_on_page_s", F.lit(None).cast("double"))
    return page_views.unionByName(others)


def url_country_daily(raw: DataFrame) -> DataFrame:
    """One row per (event_date, url, country); url is the path without query string or fragment."""
    return (
        with_time_on_page(raw)
        .groupBy("event_date", F.col("url_path").alias("url"), "country")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.sum((F.col("event_type") == "page_view").cast("long")).alias("page_views"),
            F.countDistinct("user_id").alias("unique_users"),
            F.countDistinct("session_id").alias("sessions"),
            F.round(F.avg("time_on_page_s"), 3).alias("avg_time_on_page_s"),
        )
    )


def url_popularity_5m(raw: DataFrame) -> DataFrame:
    """Events per url per 5-minute window."""
    return _windowed(raw, {"url": F.col("url_path")}, F.count(F.lit(1)).alias("events"))


def device_usage_5m(raw: DataFrame) -> DataFrame:
    """Events per device type per 5-minute window."""
    return _windowed(raw, {"device_type": F.col("device_type")}, F.count(F.lit(1)).alias("events"))


def active_users_5m(raw: DataFrame) -> DataFrame:
    """Distinct users per 5-minute window."""
    return _windowed(raw, {}, F.countDistinct("user_id").alias("active_users"),
                     F.count(F.lit(1)).alias("events"))


def user_sessions(raw: DataFrame) -> DataFrame:
    """One row per session and day: sessions are cut at midnight UTC, like the daily partitions."""
    return _session_rows(session_parts(raw))


# What a session's first event says about the visit: first-touch attribution (its channel and
# campaign) and the visitor's browser and device class, as the enrichment found them.
FIRST_TOUCH = {"channel": "referrer_class", "campaign": "campaign_name", "browser": "browser_family",
               "device_class": "device_class"}


def session_parts(raw: DataFrame) -> DataFrame:
    """Whole sessions' measures per (event_date, session_id), before they are shaped into rows: the
    live documents keep these as their state, and merge them as clickstream_dagster/live/documents.py does."""
    raw = with_enriched_columns(raw)  # a lake from before the enrichment: its fields read as null
    # Ordered by time then id (unique in a session): the smallest is the first event.
    ordered = F.struct("event_ts", "event_id", "url_path", *FIRST_TOUCH.values())
    views = F.when(F.col("event_type") == "page_view", ordered)
    return raw.groupBy("event_date", "session_id").agg(
        F.min("user_id").alias("user_id"),
        F.min("event_ts").alias("session_start"),
        F.max("event_ts").alias("session_end"),
        F.count(F.lit(1)).alias("events"),
        F.sum((F.col("event_type") == "page_view").cast("long")).alias("page_views"),
        F.min(ordered).alias("_first"),
        F.max(views).alias("_last_view"),
        F.max(ordered).alias("_last"),
        F.max((F.col("event_type") == "purchase").cast("int")).alias("_converted"),
        F.min("device_type").alias("device_type"),
        F.min("country").alias("country"),
    )


def _session_rows(sessions: DataFrame) -> DataFrame:
    return sessions.select(
        "event_date", "session_id", "user_id", "session_start", "session_end",
        _seconds_between(F.col("session_start"), F.col("session_end")).alias("duration_s"),
        "events", "page_views",
        F.col("_first.url_path").alias("entry_page"),
        F.coalesce(F.col("_last_view.url_path"), F.col("_last.url_path")).alias("exit_page"),
        F.col("_converted").cast("boolean").alias("converted"), "device_type", "country",
        *[F.col(f"_first.{source}").alias(name) for name, source in FIRST_TOUCH.items()],
    )


# The conversion funnel: each step's name, the event type that marks it, and for page views the
# path it starts with. A session reaches a step when it has passed every earlier step first, in
# event time (ordered, as analysts read a funnel): one that lands on a product page has not yet
# entered it.
FUNNEL_STEPS = (("home", "page_view", "/"), ("category", "page_view", "/c/"),
                ("product", "page_view", "/p/"), ("cart", "add_to_cart", None),
                ("checkout", "checkout", None), ("purchase", "purchase", None))
# The breakdowns, each a (dimension, segment) pair per session; "all" is the whole day.
FUNNEL_DIMENSIONS = ("all", "country", "device_class", "campaign")
NO_CAMPAIGN = "(none)"


def funnel_step() -> Column:
    """The funnel step (1..6) an event marks, null for any other event."""
    # url_path is the whole url without its query: the step reads the path part of it.
    page = F.coalesce(F.call_function("try_parse_url", F.col("url_path"), F.lit("PATH")), F.lit(""))
    step = F.lit(None).cast("int")
    for number, (_, event_type, path) in reversed(list(enumerate(FUNNEL_STEPS, start=1))):
        marks = F.col("event_type") == event_type
        if path == "/":
            marks &= page == path
        elif path:
            marks &= page.startswith(path)
        step = F.when(marks, F.lit(number)).otherwise(step)
    return step


def funnel_sessions(raw: DataFrame) -> DataFrame:
    """Per (event_date, session_id): the furthest funnel step reached in order (0: never entered),
    and the session's segments (its country, and its first event's device class and campaign)."""
    raw = with_enriched_columns(raw).withColumn("_step", funnel_step())
    marked = F.when(F.col("_step").isNotNull(), F.struct("event_ts", "event_id", "_step"))
    # Steps in event order, folded left: each event of the next step moves the session one on.
    in_order = F.array_sort(F.collect_list(marked))
    reached = F.aggregate(in_order, F.lit(0),
                          lambda at, event: F.when(event["_step"] == at + 1, at + 1).otherwise(at))
    first = F.min(F.struct("event_ts", "event_id", "device_class", "campaign_name"))
    sessions = raw.groupBy("event_date", "session_id").agg(
        reached.alias("reached"), F.min("country").alias("country"), first.alias("_first"))
    return sessions.select(
        "event_date", "session_id", "reached", "country",
        F.col("_first.device_class").alias("device_class"),
        F.coalesce(F.col("_first.campaign_name"), F.lit(NO_CAMPAIGN)).alias("campaign"))


def conversion_funnel(raw: DataFrame) -> DataFrame:
    """Sessions reaching each funnel step, with conversion, per day and segment."""
    segments = F.array(*[
        F.struct(F.lit(dimension).alias("dimension"),
                 (F.lit("all") if dimension == "all"
                  else F.coalesce(F.col(dimension), F.lit("unknown"))).alias("segment"))
        for dimension in FUNNEL_DIMENSIONS])
    per_segment = (
        funnel_sessions(raw)
        .select("event_date", "reached", F.explode(segments).alias("_s"))
        .groupBy("event_date", "_s.dimension", "_s.segment")
        .agg(F.count(F.lit(1)).alias("segment_sessions"),
             *[F.count_if(F.col("reached") >= n).alias(f"_at{n}")
               for n in range(1, len(FUNNEL_STEPS) + 1)])
    )
    steps = F.array(*[
        F.struct(F.lit(n).alias("step_number"), F.lit(name).alias("step"),
                 F.col(f"_at{n}").alias("sessions"),
                 F.col(f"_at{n - 1}" if n > 1 else "segment_sessions").alias("previous_step_sessions"))
        for n, (name, _, _) in enumerate(FUNNEL_STEPS, start=1)])
    rows = per_segment.select("event_date", "dimension", "segment", "segment_sessions", "_at1",
                              F.inline(steps))
    return rows.select(
        "event_date", "dimension", "segment", "step_number", "step", "sessions",
        "previous_step_sessions",
        # Of the sessions at the previous step (at the first: of all the segment's sessions).
        F.round(F.try_divide("sessions", "previous_step_sessions"), 4).alias("from_previous"),
        F.round(F.try_divide("sessions", "_at1"), 4).alias("from_start"),
        "segment_sessions")


def bot_traffic(raw: DataFrame) -> DataFrame:
    """Events, users and sessions of people and of bots, by how each bot was found and its browser;
    the one table that reads the bots' rows too."""
    raw = with_enriched_columns(raw)
    return raw.groupBy(
        "event_date",
        F.when(is_person(), F.lit("person")).otherwise(F.lit("bot")).alias("visitor"),
        F.coalesce("bot_reason", F.lit("none")).alias("bot_reason"),
        F.coalesce("browser_family", F.lit("unknown")).alias("browser"),
    ).agg(F.count(F.lit(1)).alias("events"), F.count_distinct("user_id").alias("users"),
          F.count_distinct("session_id").alias("sessions"))


# The live documents' distinct counts (2^12 registers: about 1.6 % relative standard error). Their
# sketches merge with clickstream_dagster/live/documents.py's, which use the same settings.
HLL_LG_K = 12


def url_country_parts(raw: DataFrame) -> DataFrame:
    """url_country_daily's measures per (event_date, url, country), mergeable: counts as sums,
    distinct users and sessions as HyperLogLog sketches, dwell as a sum and a count."""
    return (
        with_time_on_page(raw)
        .groupBy("event_date", F.col("url_path").alias("url"), "country")
        .agg(
            F.count(F.lit(1)).alias("events"),
            F.sum((F.col("event_type") == "page_view").cast("long")).alias("page_views"),
            F.hll_sketch_agg("user_id", HLL_LG_K).alias("users_sketch"),
            F.hll_sketch_agg("session_id", HLL_LG_K).alias("sessions_sketch"),
            F.sum("time_on_page_s").alias("dwell_s"),
            F.count("time_on_page_s").alias("dwell_views"),
        )
    )


def window_start() -> Column:
    """The start of an event's tumbling 5-minute window, the unit the live path recomputes."""
    return F.window("event_ts", WINDOW).start.alias("window_start")


def _windowed(raw: DataFrame, keys: dict[str, Column], *aggregates: Column) -> DataFrame:
    """Aggregate per tumbling 5-minute window of event time (and per key)."""
    grouped = raw.groupBy("event_date", F.window("event_ts", WINDOW).alias("w"),
                          *[column.alias(name) for name, column in keys.items()])
    result = grouped.agg(*aggregates)
    measures = [c for c in result.columns if c not in ("event_date", "w", *keys)]
    return result.select(
        "event_date", F.col("w.start").alias("window_start"), F.col("w.end").alias("window_end"),
        *keys, *measures)


# Each daily table's columns, and the raw_clickstream columns each is computed from: the column
# lineage the Dagster UI shows. A unit test holds it to the transformations' real output columns.
_WINDOW = {"event_date": ["event_date"], "window_start": ["event_ts"], "window_end": ["event_ts"]}
COLUMN_SOURCES: dict[str, dict[str, list[str]]] = {
    "url_country_daily": {
        "event_date": ["event_date"], "url": ["url_path"], "country": ["country"],
        "events": ["event_id"], "page_views": ["event_type"], "unique_users": ["user_id"],
        "sessions": ["session_id"],
        "avg_time_on_page_s": ["event_type", "event_ts", "session_id"],
    },
    "url_popularity_5m": {**_WINDOW, "url": ["url_path"], "events": ["event_id"]},
    "device_usage_5m": {**_WINDOW, "device_type": ["device_type"], "events": ["event_id"]},
    "active_users_5m": {**_WINDOW, "active_users": ["user_id"], "events": ["event_id"]},
    "conversion_funnel": {
        "event_date": ["event_date"],
        # A segment is a session's country, or its first event's device class or campaign.
        **dict.fromkeys(("dimension", "segment"),
                        ["country", "device_class", "campaign_name", "event_ts"]),
        "step_number": ["event_type", "url_path"], "step": ["event_type", "url_path"],
        **{name: ["session_id", "event_type", "url_path", "event_ts"]
           for name in ("sessions", "previous_step_sessions", "from_previous", "from_start")},
        "segment_sessions": ["session_id"],
    },
    "bot_traffic": {
        "event_date": ["event_date"], "visitor": ["is_bot"], "bot_reason": ["bot_reason"],
        "browser": ["browser_family"], "events": ["event_id"], "users": ["user_id"],
        "sessions": ["session_id"],
    },
    "user_sessions": {
        "event_date": ["event_date"], "session_id": ["session_id"], "user_id": ["user_id"],
        "session_start": ["event_ts"], "session_end": ["event_ts"], "duration_s": ["event_ts"],
        "events": ["event_id"], "page_views": ["event_type"],
        "entry_page": ["url_path", "event_ts"], "exit_page": ["url_path", "event_ts", "event_type"],
        "converted": ["event_type"], "device_type": ["device_type"], "country": ["country"],
        **{name: [source, "event_ts"] for name, source in FIRST_TOUCH.items()},
    },
}


def _seconds_between(start: Column, end: Column) -> Column:
    return F.round(F.unix_micros(end) / 1e6 - F.unix_micros(start) / 1e6, 3)
