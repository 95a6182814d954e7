import re
from pathlib import Path

import pytest

from config.settings import Settings
from spark.ingest.config import IngestConfig
from tests.helpers import environment_names


def test_defaults_point_at_the_local_stack(monkeypatch):
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "ELASTICSEARCH_URL", "CLICKSTREAM_LAKE_DIR"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings.from_env()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka_is_local and settings.kafka_port == 9092
    assert settings.elasticsearch_url == "http://127.0.0.1:9200"
    assert settings.elasticsearch_is_local and settings.elasticsearch_port == 9200
    assert Path(settings.lake_dir).is_absolute()


def test_remote_services_are_never_local(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,broker-2.internal:9092")
    monkeypatch.setenv("ELASTICSEARCH_URL", "https://es.internal:9243/")
    settings = Settings.from_env()
    assert not settings.kafka_is_local
    assert not settings.elasticsearch_is_local
    assert settings.elasticsearch_url == "https://es.internal:9243"


def test_a_standalone_master_on_loopback_is_the_stacks_to_start(monkeypatch):
    from spark.session import settings_conf
    from stack.services import local_services

    monkeypatch.setenv("SPARK_MASTER", "spark://127.0.0.1:7177")
    monkeypatch.setenv("CLICKSTREAM_SPARK_WORKERS", "3")
    monkeypatch.setenv("CLICKSTREAM_SPARK_WORKER_CORES", "2")
    settings = Settings.from_env()
    assert settings.spark_cluster_is_local and settings.spark_master_port == 7177
    names = [service.name for service in local_services(settings)]
    # Master and workers before the Connect server, which is their driver.
    assert names[-5:] == ["spark-master", "spark-worker-1", "spark-worker-2", "spark-worker-3",
                          "spark-connect"]
    conf = settings_conf(settings)
    assert conf["spark.default.parallelism"] == conf["spark.databricks.delta.snapshotPartitions"] == "6"
    assert conf["spark.driver.host"] == "127.0.0.1"
    assert conf["spark.executor.memory"] == settings.spark_worker_memory
    # A cluster elsewhere is used as it is: nothing to start, and Spark's own sizing.
    monkeypatch.setenv("SPARK_MASTER", "spark://spark-master.internal:7077")
    remote = Settings.from_env()
    assert not remote.spark_cluster_is_local
    assert not {"spark-master", "spark-worker-1"} & {s.name for s in local_services(remote)}
    assert "spark.default.parallelism" not in settings_conf(remote)
    assert "spark.driver.host" not in settings_conf(remote)


def test_several_local_brokers_take_consecutive_port_pairs(monkeypatch):
    from stack.services import kafka_service, local_services

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9192,127.0.0.1:9194,127.0.0.1:9196")
    monkeypatch.setenv("CLICKSTREAM_KAFKA_BROKERS", "3")
    settings = Settings.from_env()
    assert [s.name for s in local_services(settings)][:3] == ["kafka", "kafka-2", "kafka-3"]
    # `up` refuses to start the cluster while any broker's or controller's port is taken.
    assert [port for port, _ in kafka_service(settings).ports] == list(range(9192, 9198))


def test_several_local_nodes_serve_every_index_with_a_replica(monkeypatch):
    from config.clients import elasticsearch_client
    from stack.services import elasticsearch_service, local_services

    monkeypatch.setenv("ELASTICSEARCH_URL", "http://127.0.0.1:9300/, http://127.0.0.1:9301")
    monkeypatch.setenv("CLICKSTREAM_ES_NODES", "2")
    settings = Settings.from_env()
    assert settings.elasticsearch_urls == ["http://127.0.0.1:9300", "http://127.0.0.1:9301"]
    assert settings.elasticsearch_is_local and settings.index_replicas == 1
    assert "elasticsearch-2" in [s.name for s in local_services(settings)]
    assert [port for port, _ in elasticsearch_service(settings).ports] == [9300, 9400, 9301, 9401]
    # Clients know every node, so they outlive the first.
    nodes = elasticsearch_client(settings).transport.node_pool.all()
    assert sorted(node.base_url for node in nodes) == settings.elasticsearch_urls
    monkeypatch.setenv("CLICKSTREAM_ES_REPLICAS", "0")
    assert Settings.from_env().index_replicas == 0
    monkeypatch.delenv("CLICKSTREAM_ES_NODES")
    monkeypatch.delenv("CLICKSTREAM_ES_REPLICAS")
    assert Settings.from_env().index_replicas == 0


def test_lake_uri_passes_through_and_paths_expand(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_LAKE_DIR", "s3a://bucket/lake")
    assert Settings.from_env().lake_dir == "s3a://bucket/lake"
    monkeypatch.setenv("CLICKSTREAM_LAKE_DIR", "~/lake")
    assert Settings.from_env().lake_dir == str(Path.home() / "lake")


def test_secrets_come_from_the_environment_and_stay_out_of_repr(monkeypatch):
    monkeypatch.setenv("ELASTICSEARCH_API_KEY", "c2VjcmV0")
    settings = Settings.from_env()
    assert settings.elasticsearch_api_key == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(settings)


ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["contract", "spark", "clickstream_dagster", "simulator", "stack", "cli", "bench", "tests"]


def test_only_settings_reads_the_environment():
    """One configuration route: every other module takes Settings (or plain values from it)."""
    readers = sorted(str(path.relative_to(ROOT)) for package in PACKAGES
                     for path in (ROOT / package).rglob("*.py")
                     if "os.environ" in path.read_text()
                     and path.name != "settings.py" and path != Path(__file__))
    assert readers == []


def test_every_variable_settings_reads_is_documented():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.MULTILINE))
    assert environment_names() - documented == set()


def test_the_ingest_defaults_are_written_once(monkeypatch):
    """Settings and the ingest job take their defaults from one declaration."""
    for var in ("CLICKSTREAM_TOPIC", "CLICKSTREAM_DLQ_TOPIC", "CLICKSTREAM_CONSUMER_GROUP"):
        monkeypatch.delenv(var, raising=False)
    config = IngestConfig.from_settings(Settings.from_env())
    assert (config.topic, config.dlq_topic, config.consumer_group) == (
        IngestConfig.topic, IngestConfig.dlq_topic, IngestConfig.consumer_group)


def test_a_streaming_run_launched_by_hand_paces_itself_like_the_sensors_runs(monkeypatch):
    """The launchpad's defaults for a streaming ingest run are the settings' defaults."""
    from clickstream_dagster.assets.ingest import IngestRunConfig

    for var in ("CLICKSTREAM_INGEST_TRIGGER_S", "CLICKSTREAM_INGEST_IDLE_S",
                "CLICKSTREAM_INGEST_REPORT_S"):
        monkeypatch.delenv(var, raising=False)
    settings, by_hand = Settings.from_env(), IngestRunConfig()
    assert (by_hand.trigger_seconds, by_hand.idle_seconds, by_hand.report_seconds) == (
        settings.ingest_trigger_s, settings.ingest_idle_s, settings.ingest_report_s)


def test_retention_days_are_whole_numbers_and_zero_keeps_forever(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_INDEX_RETENTION_DAYS", "0")
    monkeypatch.setenv("CLICKSTREAM_LANDING_RETENTION_DAYS", "7")
    settings = Settings.from_env()
    assert (settings.index_retention_days, settings.landing_retention_days) == (0, 7)
    monkeypatch.setenv("CLICKSTREAM_DEAD_LETTER_RETENTION_DAYS", "two weeks")
    with pytest.raises(ValueError, match="CLICKSTREAM_DEAD_LETTER_RETENTION_DAYS='two weeks'"):
        Settings.from_env()


def test_kafka_security_reaches_both_kinds_of_client_and_says_what_is_missing(monkeypatch):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "app")
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD"):
        Settings.from_env()
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", 'pa"ss')
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", "/etc/kafka/ca.pem")
    settings = Settings.from_env()
    assert 'pa"ss' not in repr(settings)
    assert settings.kafka_client_config() == {
        "bootstrap.servers": "127.0.0.1:9092", "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "app", "sasl.password": 'pa"ss',
        "ssl.ca.location": "/etc/kafka/ca.pem"}
    spark = IngestConfig.from_settings(settings).spark_kafka_options
    assert spark["kafka.sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.'
                                               'ScramLoginModule required username="app" '
                                               'password="pa\\"ss";')
    assert spark["kafka.ssl.truststore.location"] == "/etc/kafka/ca.pem"
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(ValueError, match="KAFKA_SECURITY_PROTOCOL='TLS'"):
        Settings.from_env()


def test_the_readme_table_is_the_settings_declaration():
    from config.settings import readme_with_table

    readme = (ROOT / "README.md").read_text()
    assert readme_with_table(readme) == readme, \
        "run `python -m config.settings --write-readme`"


@pytest.mark.parametrize(("variable", "value", "accepts"), [
    ("CLICKSTREAM_SENSOR_INTERVAL_S", "5s", "a whole number"),
    ("CLICKSTREAM_VOLUME_BAND", "half", "a number"),
    ("CLICKSTREAM_AUTOMATION", "maybe", "on or off"),
    ("CLICKSTREAM_IP_ANONYMIZATION", "hash", "one of truncate, off"),
    ("CLICKSTREAM_DAY_CLOSE_HOUR_UTC", "25", "an hour after midnight"),
    ("CLICKSTREAM_DAY_CLOSE_HOUR_UTC", "0", "an hour after midnight, 1 to 23"),
    ("CLICKSTREAM_SPARK_REMOTE", "127.0.0.1:15002", "a Spark Connect URL"),
    ("CLICKSTREAM_FIRST_DAY", "2026-02-30", "a day written YYYY-MM-DD"),
    ("CLICKSTREAM_SPARK_WORKERS", "0", "a whole number, 1 or more"),
    ("CLICKSTREAM_KAFKA_BROKERS", "0", "a whole number, 1 or more"),
    ("CLICKSTREAM_ES_NODES", "0", "a whole number, 1 or more"),
])
def test_an_invalid_value_names_the_variable_and_what_it_accepts(monkeypatch, variable, value,
                                                                 accepts):
    from config.settings import SettingError

    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError, match=rf"^{variable}='{value}' is not {accepts}"):
        Settings.from_env()


def test_every_setting_is_declared_once_and_secrets_stay_out_of_sight():
    from config.settings import declarations

    variables = [d.metadata["variable"] for d in declarations()]
    assert len(variables) == len(set(variables))
    secrets = {d.metadata["variable"] for d in declarations() if d.metadata["secret"]}
    assert secrets == {"KAFKA_SASL_PASSWORD", "ELASTICSEARCH_API_KEY", "ELASTICSEARCH_PASSWORD"}
    assert all(not d.repr for d in declarations() if d.metadata["secret"])


def test_the_configuration_imports_no_spark_no_dagster_and_no_layer_above_it():
    import subprocess
    import sys

    above = {"pyspark", "dagster", "spark", "clickstream_dagster", "stack", "simulator"}
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, config.settings, config.clients; "
                               f"print(sorted({above!r} & set(sys.modules)))"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
