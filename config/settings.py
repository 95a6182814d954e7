"""Every setting the project reads from the environment, declared once: its variable, type,
default, meaning and whether it is a secret. The loader, its validation and the README's
configuration table all come from the declarations below (`python -m config.settings
--write-readme` rewrites the table; a unit test holds the README to it).

Secrets (passwords, API keys) are only ever read from the environment, never from files in the
repository, and stay out of `repr`.
"""

from __future__ import annotations

import os
import sys
import time
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from .defaults import (
    DEFAULT_CONSUMER_GROUP,
    DEFAULT_DLQ_TOPIC,
    DEFAULT_INGEST_IDLE_S,
    DEFAULT_INGEST_REPORT_S,
    DEFAULT_INGEST_TRIGGER_S,
    DEFAULT_MAX_EVENTS_PER_SECOND,
    DEFAULT_MIN_SESSIONS,
    DEFAULT_THRESHOLD,
    DEFAULT_TOPIC,
    IP_MODES,
    IP_TRUNCATE,
)
from .kafka import KAFKA_PROTOCOLS, SASL_MECHANISMS, KafkaSecurity

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_HOME = Path.home()
DEFAULT_DAGSTER_HOME = _HOME / ".local" / "share" / "clickstream" / "dagster"
README_START = "<!-- settings: generated from config/settings.py -->"
README_END = "<!-- settings: end -->"
# Read by others, not by the project, yet part of its configuration.
DOCUMENTED_ELSEWHERE = [
    ("SPARK_CONF_DIR", "unset", "folder with a `spark-defaults.conf` for cluster or `s3a://` "
                                "settings (read by Spark itself)"),
    ("TZ", "`UTC` (set by the Makefile and the CLI)", "event time is always UTC"),
]


class SettingError(ValueError):
    """A variable whose value the project cannot use; the message names it and what it accepts."""


@dataclass(frozen=True)
class Parser:
    read: Callable[[str], typing.Any]
    accepts: str  # "a whole number", said in the error


def _one_of(choices: tuple[str, ...], case: Callable[[str], str] = str.lower) -> Parser:
    def read(text: str) -> str:
        if case(text) not in choices:
            raise ValueError
        return case(text)
    return Parser(read, f"one of {', '.join(choices)}")


def _whole(text: str) -> int:
    return int(text)


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise ValueError
    return int(text)


def _flag(text: str) -> bool:
    value = {"on": True, "true": True, "yes": True, "1": True,
             "off": False, "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise ValueError
    return value


def _remote_url(text: str) -> str | None:
    if text.lower() in ("none", "off", "in-process"):
        return None
    if not text.startswith("sc://"):
        raise ValueError
    return text


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise ValueError
    return int(text)


def _hour_after_midnight(text: str) -> int:
    # Hour 0 would close a day at the midnight its last seconds are still landing: the live path
    # would stop serving them before they arrive, leaving them to the close's final load.
    hour = int(text)
    if not 1 <= hour <= 23:
        raise ValueError
    return hour


def _day(text: str) -> str:
    return date.fromisoformat(text).isoformat()


def _expand(text: str) -> str:
    # s3a://, hdfs:// and file:// URIs pass through untouched; plain paths become absolute.
    return text if "://" in text else str(Path(text).expanduser().resolve())


_remote = Parser(_remote_url, "a Spark Connect URL (sc://host:port), or none to run Spark inside "
                              "each process")
_days = Parser(_non_negative, "a whole number of days, or 0 to keep forever")
_count = Parser(_positive, "a whole number, 1 or more")
_hour = Parser(_hour_after_midnight, "an hour after midnight, 1 to 23")
_iso_day = Parser(_day, "a day written YYYY-MM-DD, for example 2024-01-01")
_path_or_uri = Parser(_expand, "a path or a URI")
_url = Parser(lambda text: ",".join(url.strip().rstrip("/") for url in text.split(",")),
              "a URL, or URLs separated by commas")
BY_TYPE = {str: Parser(str, "text"), int: Parser(_whole, "a whole number"),
           float: Parser(float, "a number"), bool: Parser(_flag, "on or off"),
           Path: Parser(lambda text: Path(text).expanduser(), "a path")}


def setting(variable: str, default, meaning: str, *, parse: Parser | None = None,
            secret: bool = False, shown: str | None = None, factory: Callable | None = None):
    """One setting's declaration, as a dataclass field of `Settings`."""
    metadata = {"variable": variable, "meaning": meaning, "parse": parse, "secret": secret,
                "shown": shown}
    if factory is not None:
        return field(default_factory=factory, repr=not secret, metadata=metadata)
    return field(default=default, repr=not secret, metadata=metadata)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _default_state_dir() -> Path:
    # Elasticsearch runs as an unprivileged user when we are root, and that user cannot traverse
    # /root, so root keeps service state in a system location instead of the home folder.
    if _is_root():
        return Path("/var/lib/clickstream")
    return _HOME / ".local" / "state" / "clickstream"


def use_utc() -> None:
    """Event time is UTC: this process, and every JVM and Python process it starts, runs in UTC
    unless TZ already says otherwise."""
    os.environ.setdefault("TZ", "UTC")
    time.tzset()


# pyspark's mark of a Spark Connect client process: `pyspark.sql.functions` then build Connect
# columns. Its builder sets it for a remote session.
CONNECT_CLIENT_MARK = "SPARK_CONNECT_MODE_ENABLED"


def mark_connect_client() -> None:
    """Mark this process as a Spark Connect client, for a session built without pyspark's
    builder."""
    os.environ[CONNECT_CLIENT_MARK] = "1"


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a child process: this one's, in UTC, with `overrides` on top. A process
    that opened a Spark Connect session is marked as a Connect client; a child chooses its own kind
    of Spark from its settings, so the mark is not passed on."""
    env = {key: value for key, value in os.environ.items() if key != CONNECT_CLIENT_MARK}
    return {**env, "TZ": "UTC", **overrides}


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = setting(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092",
        "Kafka brokers. A loopback address is started by `stack up` if nothing answers there; any "
        "other address is used as it is.")
    kafka_security_protocol: str = setting(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
        "`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, for every Kafka client: producer, "
        "ingest (Spark's source and dead-letter sink), sensors, admin",
        parse=_one_of(KAFKA_PROTOCOLS, str.upper))
    kafka_sasl_mechanism: str = setting(
        "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512",
        "`SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN`",
        parse=_one_of(SASL_MECHANISMS, str.upper))
    kafka_sasl_username: str | None = setting(
        "KAFKA_SASL_USERNAME", None,
        "SASL user (required with a `SASL_*` protocol)")
    kafka_sasl_password: str | None = setting(
        "KAFKA_SASL_PASSWORD", None,
        "SASL password (a Dagster `EnvVar`, never written into the definitions)",
        secret=True)
    kafka_ssl_ca_location: str | None = setting(
        "KAFKA_SSL_CA_LOCATION", None,
        "PEM bundle of the CA that signed the brokers' certificates; it must be readable where "
        "Spark runs too",
        shown="unset: the system's CAs")
    topic: str = setting(
        "CLICKSTREAM_TOPIC", DEFAULT_TOPIC,
        "topic the web events arrive on")
    dlq_topic: str = setting(
        "CLICKSTREAM_DLQ_TOPIC", DEFAULT_DLQ_TOPIC,
        "dead-letter topic for events that fail the contract")
    ip_anonymization: str = setting(
        "CLICKSTREAM_IP_ANONYMIZATION", IP_TRUNCATE,
        "how client IP addresses reach the lake: `truncate` keeps their network (IPv4 /24, IPv6 "
        "/48), `off` keeps them as sent. Dead letters always keep the original bytes; no index "
        "serves an address",
        parse=_one_of(IP_MODES))
    include_bots: bool = setting(
        "CLICKSTREAM_INCLUDE_BOTS", False,
        "bots stay in the lake either way (`is_bot`, `bot_reason`); `off` leaves them out of "
        "every analytics table and index, `on` counts them as people (see Enrichment in "
        "[docs/ingest.md](docs/ingest.md))")
    bot_events_per_second: int = setting(
        "CLICKSTREAM_BOT_EVENTS_PER_SECOND", DEFAULT_MAX_EVENTS_PER_SECOND,
        "a user with more distinct events than this within one second of a day is flagged as a "
        "bot (`bot_reason` `event_rate`) when the day is compacted")
    consumer_group: str = setting(
        "CLICKSTREAM_CONSUMER_GROUP", DEFAULT_CONSUMER_GROUP,
        "consumer group the ingest commits its landed offsets to, so `kafka-consumer-groups "
        "--describe` and the sensors see its lag")
    topic_partitions: int = setting(
        "CLICKSTREAM_TOPIC_PARTITIONS", 6,
        "partitions of the event topic when the stack creates it (the dead-letter topic gets 1)")
    elasticsearch_url: str = setting(
        "ELASTICSEARCH_URL", "http://127.0.0.1:9200",
        "Elasticsearch endpoint, or several separated by commas (clients use whichever answers); "
        "loopback http is started by `stack up` when nothing answers",
        parse=_url)
    elasticsearch_replicas: int | None = setting(
        "CLICKSTREAM_ES_REPLICAS", None,
        "replicas of every served index; each needs a node of its own",
        parse=Parser(_non_negative, "a whole number, 0 or more"),
        shown="unset: 1 with `CLICKSTREAM_ES_NODES` of 2 or more, else 0")
    elasticsearch_api_key: str | None = setting(
        "ELASTICSEARCH_API_KEY", None,
        "API key (takes precedence over user and password)",
        secret=True)
    elasticsearch_username: str | None = setting(
        "ELASTICSEARCH_USERNAME", None,
        "basic-auth user")
    elasticsearch_password: str | None = setting(
        "ELASTICSEARCH_PASSWORD", None,
        "basic-auth password",
        secret=True)
    elasticsearch_ca_certs: str | None = setting(
        "ELASTICSEARCH_CA_CERTS", None,
        "CA certificate bundle for an https endpoint")
    elasticsearch_index_prefix: str = setting(
        "CLICKSTREAM_ES_INDEX_PREFIX", "clickstream",
        "index families are `<prefix>-url-country`, `<prefix>-sessions`, ...")
    lake_dir: str = setting(
        "CLICKSTREAM_LAKE_DIR", str(_HOME / ".local" / "share" / "clickstream" / "lake"),
        "root of the lake's Delta tables: a local path, or an `s3a://bucket/prefix` URI",
        parse=_path_or_uri, shown="`~/.local/share/clickstream/lake`")
    spark_remote: str | None = setting(
        "CLICKSTREAM_SPARK_REMOTE", "sc://127.0.0.1:15002",
        "the Spark Connect server every run is a client of (no JVM starts per run). A loopback "
        "address is started by `stack up` if nothing answers there; point it at a cluster's "
        "Connect endpoint to run there. `none` runs Spark inside each process instead",
        parse=_remote)
    spark_retry_s: float = setting(
        "CLICKSTREAM_SPARK_RETRY_S", 30.0,
        "how long a Spark Connect client retries a server that does not answer before the call "
        "fails (pyspark's own default waits at least ten minutes per call): a run or `clickstream "
        "ingest` whose server died fails with an error naming its address, and the sensors retry "
        "it")
    spark_master: str = setting(
        "SPARK_MASTER", "local[*]",
        "master of the Spark that `stack up` starts (the Connect server, or each process's own "
        "with `CLICKSTREAM_SPARK_REMOTE=none`): `local[*]`, `spark://host:7077`, `yarn`, "
        "`k8s://...`")
    spark_workers: int = setting(
        "CLICKSTREAM_SPARK_WORKERS", 2,
        "workers of the Spark standalone cluster that `stack up` starts, beside its master, when "
        "`SPARK_MASTER` is `spark://127.0.0.1:PORT` and no master answers there. The Connect "
        "server is the cluster's driver; each worker runs one executor",
        parse=_count)
    spark_worker_cores: int = setting(
        "CLICKSTREAM_SPARK_WORKER_CORES", 1,
        "cores each of those workers offers its executor", parse=_count)
    spark_worker_memory: str = setting(
        "CLICKSTREAM_SPARK_WORKER_MEMORY", "2g",
        "memory each of those workers offers, all of it its executor's heap")
    spark_driver_memory: str = setting(
        "SPARK_DRIVER_MEMORY", "3g",
        "driver memory of that Spark (the executor too, in local mode); 3g keeps the whole local "
        "stack under 8 GiB")
    spark_shuffle_partitions: int = setting(
        "SPARK_SHUFFLE_PARTITIONS", 8,
        "Partitions after a shuffle in the daily jobs; about 2-4 per core in the cluster (AQE "
        "merges small ones)")
    spark_class_archive: bool = setting(
        "CLICKSTREAM_SPARK_CLASS_ARCHIVE", True,
        "the local Spark Connect server keeps the classes it loaded in an archive under the cache "
        "folder when it stops, and the next one starts from it, answering and running its first "
        "queries sooner; `off` starts every server from the jars alone")
    dagster_home: Path | None = setting(
        "DAGSTER_HOME", None,
        "Dagster instance folder: run history, sensor cursors. Unset, `clickstream demo` uses a "
        "throwaway instance",
        shown="`~/.local/share/clickstream/dagster` (set by the Makefile; `clickstream run` uses "
              "it when unset)")
    java_home: str | None = setting(
        "JAVA_HOME", None,
        "the JDK the local stack runs Kafka, Elasticsearch and Spark with (17 or newer)",
        shown="unset: `java` on PATH")
    cache_dir: Path = setting(
        "CLICKSTREAM_CACHE_DIR", _HOME / ".cache" / "clickstream",
        "downloaded jars and distributions",
        shown="`~/.cache/clickstream`")
    state_dir: Path = setting(
        "CLICKSTREAM_STATE_DIR", None,
        "service data, pid files, logs",
        factory=_default_state_dir, shown="`~/.local/state/clickstream` (root: `/var/lib/clickstream`)")
    kafka_heap: str = setting(
        "CLICKSTREAM_KAFKA_HEAP", "1g",
        "local broker's maximum heap")
    kafka_brokers: int = setting(
        "CLICKSTREAM_KAFKA_BROKERS", 1,
        "brokers `stack up` starts when `KAFKA_BOOTSTRAP_SERVERS` is on loopback, each also a KRaft "
        "controller: broker N listens on the first address's port + 2(N-1), its controller on the "
        "next port. With 3 or more, topics get 3 replicas and `min.insync.replicas=2`. List every "
        "broker in `KAFKA_BOOTSTRAP_SERVERS`, so a client can start while the first is down",
        parse=_count)
    elasticsearch_heap: str = setting(
        "CLICKSTREAM_ES_HEAP", "1g",
        "local Elasticsearch heap")
    elasticsearch_nodes: int = setting(
        "CLICKSTREAM_ES_NODES", 1,
        "nodes `stack up` starts when `ELASTICSEARCH_URL` is loopback http, each master-eligible "
        "and holding data: node N serves HTTP on the first URL's port + N-1 (transport: + 100). "
        "List every node in `ELASTICSEARCH_URL`, so clients outlive the first",
        parse=_count)
    elasticsearch_user: str = setting(
        "CLICKSTREAM_ES_USER", "clickstream",
        "system user that runs Elasticsearch when the stack runs as root")
    maven_settings: str | None = setting(
        "CLICKSTREAM_MAVEN_SETTINGS", None,
        "a Maven `settings.xml` with your own mirror or proxy",
        shown="generated")
    automation: bool = setting(
        "CLICKSTREAM_AUTOMATION", True,
        "`off` starts Dagster with every sensor and schedule stopped")
    sensor_interval_s: int = setting(
        "CLICKSTREAM_SENSOR_INTERVAL_S", 5,
        "how often the sensors look at Kafka and the run queue; a sensor never queues a second "
        "run for work that one already waits for, so a short interval costs only the look itself")
    volume_band: float = setting(
        "CLICKSTREAM_VOLUME_BAND", 0.5,
        "allowed deviation of a day's rows from the trailing 7-day median")
    alert_webhook_url: str | None = setting(
        "CLICKSTREAM_ALERT_WEBHOOK_URL", None,
        "failed runs, days with traffic anomalies and open days' anomalous windows as the live "
        "path finds them are POSTed here as JSON (`kind`: `run_failure` or `traffic_anomaly`, "
        "the live ones with `live: true`)")
    anomaly_threshold: float = setting(
        "CLICKSTREAM_ANOMALY_THRESHOLD", DEFAULT_THRESHOLD,
        "a 5-minute window is a traffic anomaly when its sessions are this many spreads from the "
        "seasonal baseline (see Anomaly alerts in [docs/architecture.md](docs/architecture.md)); "
        "also the `threshold` of `traffic_anomalies`' run config, and the live path's")
    anomaly_min_sessions: int = setting(
        "CLICKSTREAM_ANOMALY_MIN_SESSIONS", DEFAULT_MIN_SESSIONS,
        "and its sessions differ from the baseline by at least this many (and by half the "
        "baseline): smaller changes never alert")
    day_close_hour_utc: int = setting(
        "CLICKSTREAM_DAY_CLOSE_HOUR_UTC", 2,
        "hour after midnight UTC at which the finished day is recomputed as final; until then the "
        "day is open, and the volume band applies only its ceiling to it",
        parse=_hour)
    ingest_stream_s: int = setting(
        "CLICKSTREAM_INGEST_STREAM_S", 3600,
        "how long one of the Kafka sensor's ingest runs keeps its streaming query running, "
        "landing micro-batches and refreshing the live documents after each. Each handover to the "
        "next run holds the live path up for some 30 s, so runs are long; `0` makes every run "
        "available-now (take what is on the topic and stop), which pays a run start per cycle")
    ingest_trigger_s: float = setting(
        "CLICKSTREAM_INGEST_TRIGGER_S", DEFAULT_INGEST_TRIGGER_S,
        "seconds between the micro-batches of a streaming run. Every micro-batch has a fixed cost "
        "in Spark jobs and Delta commits, so a shorter interval is fresher only while the machine "
        "has CPU to spare: on 2 cores at 1,000 events/s, 5 s against 10 s took Elasticsearch's "
        "p95 from 16-18 s to 10 s for 9 to 17 points more CPU (see "
        "[docs/benchmarks.md](docs/benchmarks.md))")
    ingest_idle_s: int = setting(
        "CLICKSTREAM_INGEST_IDLE_S", DEFAULT_INGEST_IDLE_S,
        "a streaming run ends once the topic has been quiet this long; the sensor starts the next "
        "when records come")
    ingest_report_s: int = setting(
        "CLICKSTREAM_INGEST_REPORT_S", DEFAULT_INGEST_REPORT_S,
        "a streaming run records what the lake gained (changed days, counts, dead letters) as a "
        "`clickstream_landing` materialization this often, so late data for a closed day reaches "
        "the partition sensor within about this long, not at the run's end")
    landing_retention_days: int = setting(
        "CLICKSTREAM_LANDING_RETENTION_DAYS", 30,
        "`retention_job` deletes landing events dated earlier, once the raw table holds their "
        "compacted day; `0` keeps them forever",
        parse=_days)
    dead_letter_retention_days: int = setting(
        "CLICKSTREAM_DEAD_LETTER_RETENTION_DAYS", 14,
        "bad rows ingested earlier are deleted, and the dead-letter topic keeps messages this "
        "long (`retention.ms`); `0` keeps them forever",
        parse=_days)
    index_retention_days: int = setting(
        "CLICKSTREAM_INDEX_RETENTION_DAYS", 90,
        "daily indices of earlier days are deleted; `0` keeps them forever",
        parse=_days)
    first_day: str = setting(
        "CLICKSTREAM_FIRST_DAY", "2026-01-01",
        "first daily partition (YYYY-MM-DD). Move it back to replay or backfill older history; "
        "the ingest dead-letters events dated before it, or more than a day after their ingest "
        "day (`out_of_range: event_ts ...`)",
        parse=_iso_day)

    def __post_init__(self):
        self.kafka_security  # noqa: B018 (validates the Kafka security settings together)

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None) -> Settings:
        """The settings from the environment; an unset or empty variable keeps its default."""
        environ = os.environ if environ is None else environ
        types = typing.get_type_hints(cls)
        values = {}
        for declared in declarations():
            text = environ.get(declared.metadata["variable"], "").strip()
            if text:
                values[declared.name] = _parse(declared, types[declared.name], text)
        try:
            return cls(**values)
        except ValueError as exc:  # settings that are wrong only together (SASL without a user)
            raise SettingError(str(exc)) from None

    @property
    def kafka_security(self) -> KafkaSecurity:
        """SASL and TLS for every Kafka client; plaintext by default, as on the local broker."""
        return KafkaSecurity(protocol=self.kafka_security_protocol,
                             sasl_mechanism=self.kafka_sasl_mechanism,
                             username=self.kafka_sasl_username, password=self.kafka_sasl_password,
                             ca_location=self.kafka_ssl_ca_location)

    def with_kafka_security(self, security: KafkaSecurity) -> Settings:
        """These settings, with every Kafka client using `security`."""
        return replace(self, kafka_security_protocol=security.protocol,
                       kafka_sasl_mechanism=security.sasl_mechanism,
                       kafka_sasl_username=security.username, kafka_sasl_password=security.password,
                       kafka_ssl_ca_location=security.ca_location)

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
    def spark_cluster_is_local(self) -> bool:
        """True when SPARK_MASTER is a standalone master on loopback, which `stack up` may start."""
        parsed = urlparse(self.spark_master.replace("spark://", "http://", 1))
        return self.spark_master.startswith("spark://") and (parsed.hostname or "") in LOOPBACK_HOSTS

    @property
    def spark_master_port(self) -> int:
        return urlparse(self.spark_master.replace("spark://", "http://", 1)).port or 7077

    @property
    def elasticsearch_urls(self) -> list[str]:
        return self.elasticsearch_url.split(",")

    @property
    def elasticsearch_is_local(self) -> bool:
        parsed = [urlparse(url) for url in self.elasticsearch_urls]
        return all(p.scheme == "http" and (p.hostname or "") in LOOPBACK_HOSTS for p in parsed)

    @property
    def elasticsearch_port(self) -> int:
        return urlparse(self.elasticsearch_urls[0]).port or 9200

    @property
    def index_replicas(self) -> int:
        """Replicas of each served index: as set, else 1 on a local cluster of several nodes."""
        if self.elasticsearch_replicas is not None:
            return self.elasticsearch_replicas
        return 1 if self.elasticsearch_nodes > 1 else 0


def _host_of(server: str) -> str:
    host = server.strip().rsplit(":", 1)[0]
    return host.strip("[]") if host.startswith("[") else host


def declarations() -> list:
    """The declared settings, in the README's order."""
    return [f for f in fields(Settings) if "variable" in f.metadata]


def _parse(declared, kind, text: str):
    parser = declared.metadata["parse"] or BY_TYPE[_inner(kind)]
    try:
        return parser.read(text)
    except ValueError:
        value = "its value" if declared.metadata["secret"] else repr(text)  # never echo a secret
        raise SettingError(f"{declared.metadata['variable']}={value} is not {parser.accepts}"
                           ) from None


def _inner(kind):
    """`int` of `int | None`."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if args else kind


def _shown(declared) -> str:
    if declared.metadata["shown"]:
        return declared.metadata["shown"]
    default = declared.default if declared.default is not MISSING else declared.default_factory()
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "`on`" if default else "`off`"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def markdown_table() -> str:
    """The README's configuration table, from the declarations."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for declared in declarations():
        meaning = declared.metadata["meaning"]
        secret = "secret: " if declared.metadata["secret"] else ""
        rows.append(f"| `{declared.metadata['variable']}` | {_shown(declared)} | {secret}{meaning} |")
    rows += [f"| `{variable}` | {shown} | {meaning} |" for variable, shown, meaning in DOCUMENTED_ELSEWHERE]
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    """`readme` with the text between its settings markers replaced by `markdown_table()`."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    return readme[:start] + "\n" + markdown_table() + "\n" + readme[end:]


if __name__ == "__main__":
    # python -m config.settings [--write-readme]
    path = Path(__file__).resolve().parents[1] / "README.md"
    if sys.argv[1:] == ["--write-readme"]:
        path.write_text(readme_with_table(path.read_text()))
    else:
        print(markdown_table())
