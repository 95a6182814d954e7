"""The analytics' tunable defaults, in a module without Spark: the settings read them."""

# A 5-minute window is a traffic anomaly past this robust score (CLICKSTREAM_ANOMALY_THRESHOLD),
DEFAULT_THRESHOLD = 5.0
# if its sessions changed by at least this many (CLICKSTREAM_ANOMALY_MIN_SESSIONS).
DEFAULT_MIN_SESSIONS = 20
# A user with more distinct events in one second is a bot (CLICKSTREAM_BOT_EVENTS_PER_SECOND).
DEFAULT_MAX_EVENTS_PER_SECOND = 10
