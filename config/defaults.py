"""Defaults and choices of settings that the Spark code and the runs' config apply, kept free of
Spark so the settings declare them and the jobs use them from one place."""

# Where the events arrive, where their dead letters go, and the consumer group the ingest commits to.
DEFAULT_TOPIC = "clickstream"
DEFAULT_DLQ_TOPIC = "clickstream.dlq"
DEFAULT_CONSUMER_GROUP = "clickstream-ingest"

# A streaming ingest run lands a micro-batch this often (CLICKSTREAM_INGEST_TRIGGER_S), ends after
# this long without a record (CLICKSTREAM_INGEST_IDLE_S), and reports what the lake gained this
# often (CLICKSTREAM_INGEST_REPORT_S).
DEFAULT_INGEST_TRIGGER_S = 5.0
DEFAULT_INGEST_IDLE_S = 60
DEFAULT_INGEST_REPORT_S = 60

# A 5-minute window is a traffic anomaly past this robust score (CLICKSTREAM_ANOMALY_THRESHOLD),
DEFAULT_THRESHOLD = 5.0
# if its sessions changed by at least this many (CLICKSTREAM_ANOMALY_MIN_SESSIONS).
DEFAULT_MIN_SESSIONS = 20
# A user with more distinct events in one second is a bot (CLICKSTREAM_BOT_EVENTS_PER_SECOND).
DEFAULT_MAX_EVENTS_PER_SECOND = 10

# How the client's IP address reaches the lake: truncated to its network (the default), or as
# sent. Dead letters keep the original bytes, as they must to be replayed.
IP_TRUNCATE = "truncate"
IP_KEEP = "off"
IP_MODES = (IP_TRUNCATE, IP_KEEP)
