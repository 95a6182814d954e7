"""Every setting the project reads from the environment, with its default, in one place.

The README's configuration table documents exactly these names. Secrets (Elasticsearch API key and
password) are only ever read from the environment, never from files in the repository.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from spark.analytics.anomalies import DEFAULT_MIN_SESSIONS, DEFAULT_THRESHOLD
from spark.analytics.jobs import DEFAULT_MAX_EVENTS_PER_SECOND
from spark.ingest.config import IP_MODES, KAFKA_PROTOCOLS, SASL_MECHANISMS, IngestConfig, KafkaSecurity

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
DEFAULT_DAGSTER_HOME = Path.home() / ".local" / "share" / "clickstream" / "dagster"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _choice(name: str, default: str, choices: tuple[str, ...], case=str.lower) -> str:
    value = case(_env(name, default))
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def use_utc() -> None:
    """Event time is UTC: this process, and every JVM and Python process it starts, runs in UTC
    unless TZ already says otherwise."""
    os.environ.setdefault("TZ", "UTC")
    time.tzset()


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a child process: this one's, in UTC, with `overrides` on top. A process
    that opened a Spark Connect session is marked as a Connect client; a child chooses its own kind
    of Spark from its settings, so the mark is not passed on."""
    env = {key: value for key, value in os.environ.items() if key != "SPARK_CONNECT_MODE_ENABLED"}
    return {**env, "TZ": "UTC", **overrides}


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _default_state_dir() -> Path:
    # Elasticsearch runs as an unprivileged user when we are root, and that user cannot traverse
    # /root, so root keeps service state in a system location instead of the home folder.
    if _is_root():
        return Path("/var/lib/clickstream")
    return Path.home() / ".local" / "state" / "clickstream"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # SASL and TLS for every Kafka client; plaintext by default, as on the local broker.
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    topic: str = IngestConfig.topic
    dlq_topic: str = IngestConfig.dlq_topic
    consumer_group: str = IngestConfig.consumer_group
    ip_anonymization: str = IngestConfig.ip_anonymization
    # Bots (by user agent, or by more events in one second than this) stay in the lake; the
    # analytics and indices leave them out unless include_bots.
    include_bots: bool = False
    bot_events_per_second: int = DEFAULT_MAX_EVENTS_PER_SECOND
    # A 5-minute window is a traffic anomaly past this robust score, if its sessions changed by
    # at least anomaly_min_sessions (spark/analytics/anomalies.py).
    anomaly_threshold: float = DEFAULT_THRESHOLD
    anomaly_min_sessions: int = DEFAULT_MIN_SESSIONS
    topic_partitions: int = 6
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_api_key: str | None = field(default=None, repr=False)
    elasticsearch_username: str | None = None
    elasticsearch_password: str | None = field(default=None, repr=False)
    elasticsearch_ca_certs: str | None = None
    elasticsearch_index_prefix: str = "clickstream"
    lake_dir: str = str(Path.home() / ".local" / "share" / "clickstream" / "lake")
    # Runs are clients of this Spark Connect server; None runs Spark inside each process instead.
    spark_remote: str | None = "sc://127.0.0.1:15002"
    # How long a Connect client retries a server that does not answer before its call fails:
    # pyspark's default tolerates at least ten minutes per call, so a dead server hung runs.
    spark_retry_s: float = 30.0
    spark_master: str = "local[*]"
    spark_driver_memory: str = "3g"
    spark_shuffle_partitions: int = 8
    cache_dir: Path = Path.home() / ".cache" / "clickstream"
    # Dagster's instance folder (run history, sensor cursors); None: an ephemeral instance where a
    # command allows one. `clickstream run` uses DEFAULT_DAGSTER_HOME then.
    dagster_home: Path | None = None
    # The JDK the local stack runs Kafka, Elasticsearch and Spark with; None: `java` on PATH.
    java_home: str | None = None
    state_dir: Path = field(default_factory=_default_state_dir)
    kafka_heap: str = "1g"
    elasticsearch_heap: str = "1g"
    elasticsearch_user: str = "clickstream"
    maven_settings: str | None = None
    # Daily partitions start here; replaying older history (a week of 2024, say) moves it back.
    first_day: str = "2026-01-01"
    automation: bool = True
    sensor_interval_s: int = 5
    volume_band: float = 0.5
    alert_webhook_url: str | None = None
    day_close_hour_utc: int = 2
    # The Kafka sensor's ingest runs keep their query running for up to this long, landing a
    # micro-batch every `ingest_trigger_s` and refreshing the live documents after each, and end
    # early once the topic is quiet for `ingest_idle_s`. 0: each run takes what is on the topic
    # and stops (available-now), which pays a run start per cycle. A handover from one run to the
    # next holds the live path up for some 30 s, so runs are long; they report what the lake
    # gained every `ingest_report_s`, which is how late data reaches the partition sensor.
    ingest_stream_s: int = 3600
    # 10 s: at 1,000 events/s a fresher live path for 5 to 9 % more CPU than 15 s; at 100/s the
    # stack still idles over half the cores (docs/benchmarks.md).
    ingest_trigger_s: float = 10.0
    ingest_idle_s: int = 60
    ingest_report_s: int = 60
    # Days kept, counted back from today (UTC); 0 keeps forever. The landing and the dead letters
    # hold personal data as sent; the raw table keeps each compacted day beyond the landing's.
    landing_retention_days: int = 30
    dead_letter_retention_days: int = 14
    index_retention_days: int = 90

    @classmethod
    def from_env(cls) -> Settings:
        defaults = cls()
        return cls(
            kafka_bootstrap_servers=_env("KAFKA_BOOTSTRAP_SERVERS", defaults.kafka_bootstrap_servers),
            kafka_security=KafkaSecurity(
                protocol=_choice("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", KAFKA_PROTOCOLS, str.upper),
                sasl_mechanism=_choice("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", SASL_MECHANISMS,
                                       str.upper),
                username=os.environ.get("KAFKA_SASL_USERNAME") or None,
                password=os.environ.get("KAFKA_SASL_PASSWORD") or None,
                ca_location=os.environ.get("KAFKA_SSL_CA_LOCATION") or None),
            topic=_env("CLICKSTREAM_TOPIC", defaults.topic),
            dlq_topic=_env("CLICKSTREAM_DLQ_TOPIC", defaults.dlq_topic),
            consumer_group=_env("CLICKSTREAM_CONSUMER_GROUP", defaults.consumer_group),
            ip_anonymization=_choice("CLICKSTREAM_IP_ANONYMIZATION", defaults.ip_anonymization,
                                     IP_MODES),
            include_bots=_choice("CLICKSTREAM_INCLUDE_BOTS", "off", ("on", "off")) == "on",
            bot_events_per_second=int(_env("CLICKSTREAM_BOT_EVENTS_PER_SECOND",
                                           str(defaults.bot_events_per_second))),
            anomaly_threshold=float(_env("CLICKSTREAM_ANOMALY_THRESHOLD",
                                         str(defaults.anomaly_threshold))),
            anomaly_min_sessions=int(_env("CLICKSTREAM_ANOMALY_MIN_SESSIONS",
                                          str(defaults.anomaly_min_sessions))),
            topic_partitions=int(_env("CLICKSTREAM_TOPIC_PARTITIONS", str(defaults.topic_partitions))),
            elasticsearch_url=_env("ELASTICSEARCH_URL", defaults.elasticsearch_url).rstrip("/"),
            elasticsearch_api_key=os.environ.get("ELASTICSEARCH_API_KEY") or None,
            elasticsearch_username=os.environ.get("ELASTICSEARCH_USERNAME") or None,
            elasticsearch_password=os.environ.get("ELASTICSEARCH_PASSWORD") or None,
            elasticsearch_ca_certs=os.environ.get("ELASTICSEARCH_CA_CERTS") or None,
            elasticsearch_index_prefix=_env("CLICKSTREAM_ES_INDEX_PREFIX",
                                            defaults.elasticsearch_index_prefix),
            lake_dir=_expand_path_or_uri(_env("CLICKSTREAM_LAKE_DIR", defaults.lake_dir)),
            spark_remote=_remote(_env("CLICKSTREAM_SPARK_REMOTE", defaults.spark_remote)),
            spark_retry_s=float(_env("CLICKSTREAM_SPARK_RETRY_S", str(defaults.spark_retry_s))),
            spark_master=_env("SPARK_MASTER", defaults.spark_master),
            spark_driver_memory=_env("SPARK_DRIVER_MEMORY", defaults.spark_driver_memory),
            spark_shuffle_partitions=int(_env("SPARK_SHUFFLE_PARTITIONS",
                                              str(defaults.spark_shuffle_partitions))),
            cache_dir=Path(_env("CLICKSTREAM_CACHE_DIR", str(defaults.cache_dir))).expanduser(),
            dagster_home=Path(os.environ["DAGSTER_HOME"]).expanduser()
            if os.environ.get("DAGSTER_HOME") else None,
            java_home=os.environ.get("JAVA_HOME") or None,
            state_dir=Path(_env("CLICKSTREAM_STATE_DIR", str(defaults.state_dir))).expanduser(),
            kafka_heap=_env("CLICKSTREAM_KAFKA_HEAP", defaults.kafka_heap),
            elasticsearch_heap=_env("CLICKSTREAM_ES_HEAP", defaults.elasticsearch_heap),
            elasticsearch_user=_env("CLICKSTREAM_ES_USER", defaults.elasticsearch_user),
            maven_settings=os.environ.get("CLICKSTREAM_MAVEN_SETTINGS") or None,
            first_day=_iso_day(_env("CLICKSTREAM_FIRST_DAY", defaults.first_day)),
            automation=_env("CLICKSTREAM_AUTOMATION", "on").lower() != "off",
            sensor_interval_s=int(_env("CLICKSTREAM_SENSOR_INTERVAL_S",
                                       str(defaults.sensor_interval_s))),
            volume_band=float(_env("CLICKSTREAM_VOLUME_BAND", str(defaults.volume_band))),
            alert_webhook_url=os.environ.get("CLICKSTREAM_ALERT_WEBHOOK_URL") or None,
            day_close_hour_utc=int(_env("CLICKSTREAM_DAY_CLOSE_HOUR_UTC",
                                        str(defaults.day_close_hour_utc))),
            ingest_stream_s=int(_env("CLICKSTREAM_INGEST_STREAM_S", str(defaults.ingest_stream_s))),
            ingest_trigger_s=float(_env("CLICKSTREAM_INGEST_TRIGGER_S",
                                        str(defaults.ingest_trigger_s))),
            ingest_idle_s=int(_env("CLICKSTREAM_INGEST_IDLE_S", str(defaults.ingest_idle_s))),
            ingest_report_s=int(_env("CLICKSTREAM_INGEST_REPORT_S", str(defaults.ingest_report_s))),
            landing_retention_days=_days("CLICKSTREAM_LANDING_RETENTION_DAYS",
                                        defaults.landing_retention_days),
            dead_letter_retention_days=_days("CLICKSTREAM_DEAD_LETTER_RETENTION_DAYS",
                                            defaults.dead_letter_retention_days),
            index_retention_days=_days("CLICKSTREAM_INDEX_RETENTION_DAYS",
                                      defaults.index_retention_days),
        )

    def ingest_config(self, **overrides) -> IngestConfig:
        """The ingest job's configuration for these settings; `overrides` set its other fields."""
        return IngestConfig(bootstrap_servers=self.kafka_bootstrap_servers, lake_root=self.lake_dir,
                            topic=self.topic, dlq_topic=self.dlq_topic,
                            consumer_group=self.consumer_group, first_day=self.first_day,
                            ip_anonymization=self.ip_anonymization,
                            kafka_security=self.kafka_security, **overrides)

    def kafka_client_config(self, **more: str) -> dict[str, str]:
        """A confluent-kafka client's settings for the configured cluster, plus `more`."""
        return {"bootstrap.servers": self.kafka_bootstrap_servers,
                **self.kafka_security.client_config(), **more}

    @property
    def kafka_is_local(self) -> bool:
        """True when every bootstrap server is on loopback, so the stack may start the broker."""
        return all(_host_of(s) in LOOPBACK_HOSTS for s in self.kafka_bootstrap_servers.split(","))

    @property
    def kafka_port(self) -> int:
        first = self.kafka_bootstrap_servers.split(",")[0]
        return int(first.rsplit(":", 1)[1])

    @property
    def spark_connect_is_local(self) -> bool:
        """True when runs use a Connect server on loopback, which `stack up` may start."""
        parsed = urlparse((self.spark_remote or "").replace("sc://", "http://", 1))
        return bool(self.spark_remote) and (parsed.hostname or "") in LOOPBACK_HOSTS

    @property
    def spark_connect_port(self) -> int:
        return urlparse((self.spark_remote or "").replace("sc://", "http://", 1)).port or 15002

    @property
    def elasticsearch_is_local(self) -> bool:
        parsed = urlparse(self.elasticsearch_url)
        return parsed.scheme == "http" and (parsed.hostname or "") in LOOPBACK_HOSTS

    @property
    def elasticsearch_port(self) -> int:
        return urlparse(self.elasticsearch_url).port or 9200


def _host_of(server: str) -> str:
    host = server.strip().rsplit(":", 1)[0]
    return host.strip("[]") if host.startswith("[") else host


def _remote(value: str) -> str | None:
    if value.lower() in ("none", "off", "in-process"):
        return None
    if not value.startswith("sc://"):
        raise ValueError(f"CLICKSTREAM_SPARK_REMOTE={value!r} is not a Spark Connect URL: write "
                         f"sc://host:port, or none to run Spark inside each process")
    return value


def _days(name: str, default: int) -> int:
    value = _env(name, str(default))
    if not value.isdigit():
        raise ValueError(f"{name}={value!r} is not a number of days: write a whole number, "
                         f"or 0 to keep forever")
    return int(value)


def _iso_day(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"CLICKSTREAM_FIRST_DAY={value!r} is not a day: write it as YYYY-MM-DD, "
                         f"for example 2024-01-01") from None


def _expand_path_or_uri(value: str) -> str:
    # s3a://, hdfs:// and file:// URIs pass through untouched; plain paths become absolute.
    if "://" in value:
        return value
    return str(Path(value).expanduser().resolve())
