"""Kafka security by configuration, against a real local broker that asks for it: SASL (SCRAM)
over TLS with its own CA. Every client (admin, producer, sensor, the Spark ingest and its
dead-letter writer, the consumer group) gets its settings from the documented environment alone."""

import dataclasses

import dagster as dg
import pytest

from clickstream_dagster.assets.ingest import clickstream_landing
from clickstream_dagster.definitions import build_resources, defs
from clickstream_dagster.sensors import kafka_ingest_sensor
from config.settings import Settings
from simulator.producer import GeneratorError, check_topic, produce
from simulator.timeline import MALFORMED, GeneratorConfig, stream
from stack import kafka
from stack.process import stop_process
from tests.helpers import free_port

USER, PASSWORD = "clickstream-app", "Sc4am-secret"
CONFIG = GeneratorConfig(events=3_000, seed=11, malformed_ratio=0.03)


@pytest.fixture(scope="module")
def secured(stack):
    port = free_port(pairs=3)  # clients, controller, the broker's own loopback listener
    broker = kafka.start_secured(dataclasses.replace(stack, kafka_heap="512m"), port, USER, PASSWORD)
    settings = dataclasses.replace(broker.settings, topic="secured", dlq_topic="secured.dlq")
    kafka.ensure_topics(settings)
    yield settings
    stop_process(stack.state_dir, kafka.SECURED_NAME)


def test_a_client_without_the_password_or_the_ca_is_refused(secured):
    wrong_password = dataclasses.replace(secured, kafka_sasl_password="not-it")
    no_ca = dataclasses.replace(secured, kafka_ssl_ca_location=None)
    plaintext = dataclasses.replace(secured, kafka_security_protocol="PLAINTEXT")
    for settings in (wrong_password, no_ca, plaintext):
        assert kafka.probe(settings, timeout_s=3) is None
    with pytest.raises(GeneratorError, match="Cannot reach Kafka"):
        check_topic(wrong_password, secured.topic)


def test_every_client_works_over_sasl_ssl_from_the_documented_environment(secured, monkeypatch,
                                                                         tmp_path):
    security = secured.kafka_security
    for name, value in (("KAFKA_BOOTSTRAP_SERVERS", secured.kafka_bootstrap_servers),
                        ("KAFKA_SECURITY_PROTOCOL", security.protocol),
                        ("KAFKA_SASL_MECHANISM", security.sasl_mechanism),
                        ("KAFKA_SASL_USERNAME", security.username),
                        ("KAFKA_SASL_PASSWORD", security.password),
                        ("KAFKA_SSL_CA_LOCATION", security.ca_location),
                        ("CLICKSTREAM_TOPIC", secured.topic),
                        ("CLICKSTREAM_DLQ_TOPIC", secured.dlq_topic),
                        ("CLICKSTREAM_LAKE_DIR", str(tmp_path / "lake"))):
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert PASSWORD not in repr(settings)
    resources = build_resources(settings)
    instance = dg.DagsterInstance.ephemeral()

    summary = produce(CONFIG, settings, progress=False)
    assert summary.failed == 0 and summary.produced == CONFIG.events
    malformed = sum(1 for message in stream(CONFIG) if message.kind == MALFORMED)

    with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context:
        requested = kafka_ingest_sensor.evaluate_tick(context)
    assert len(requested.run_requests) == 1

    landing = dg.materialize([clickstream_landing], resources=resources, instance=instance)
    assert landing.success
    metadata = landing.asset_materializations_for_node("clickstream_landing")[0].metadata
    assert metadata["records_consumed"].value == CONFIG.events
    assert metadata["dead_letters"].value == malformed
    assert metadata["rows_landed"].value + malformed + metadata["duplicates_removed"].value \
        == CONFIG.events
    # The dead letters reached the secured topic, and the group's position is the topic's end.
    with dg.build_resources({"kafka": resources["kafka"]}) as initialized:  # EnvVar resolved
        assert sum(initialized.kafka.end_offsets(secured.dlq_topic).values()) == malformed
        end = initialized.kafka.end_offsets()
        assert initialized.kafka.committed_offsets(list(end)) == end
    with dg.build_sensor_context(instance=instance, resources=resources, definitions=defs) as context:
        after = kafka_ingest_sensor.evaluate_tick(context)
    assert not after.run_requests and "all consumed" in after.skip_message
