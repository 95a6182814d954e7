import pytest
from confluent_kafka import KafkaError, KafkaException

from clickstream_dagster.resources import KafkaResource
from clickstream_dagster.resources import kafka as kafka_resource


def resource(bootstrap_servers: str, **fields) -> KafkaResource:
    return KafkaResource(**{"bootstrap_servers": bootstrap_servers, "topic": "clickstream",
                            "dlq_topic": "clickstream.dlq", "consumer_group": "clickstream-ingest",
                            **fields})


def test_a_process_keeps_one_admin_client_per_cluster():
    # Nothing listens on these ports: building a client does not connect.
    first = resource("127.0.0.1:1")
    assert first.admin() is first.admin()
    assert resource("127.0.0.1:1", topic="other", consumer_group="other").admin() is first.admin()
    assert resource("127.0.0.1:2").admin() is not first.admin()
    assert resource("127.0.0.1:1", security_protocol="SASL_PLAINTEXT", sasl_username="u",
                    sasl_password="p").admin() is not first.admin()


def _answers(*outcomes):
    """A call that raises or returns each of `outcomes` in turn, and counts its calls."""
    calls = []

    def call():
        outcome = outcomes[len(calls)]
        calls.append(outcome)
        if isinstance(outcome, KafkaError):
            raise KafkaException(outcome)
        return outcome
    return call, calls


def test_a_settling_cluster_is_asked_again_and_any_other_error_is_raised_at_once(monkeypatch):
    monkeypatch.setattr(kafka_resource, "SETTLING_PAUSE_S", 0)
    # A topic just created: its leader answers "not leader" for a moment.
    call, calls = _answers(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION),
                           KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS), {0: 7})
    assert kafka_resource.until_settled(call, timeout_s=5) == {0: 7} and len(calls) == 3

    call, calls = _answers(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), {0: 7})
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        kafka_resource.until_settled(call, timeout_s=5)
    assert len(calls) == 1


def test_a_cluster_that_never_settles_fails_with_its_last_answer(monkeypatch):
    monkeypatch.setattr(kafka_resource, "SETTLING_PAUSE_S", 0.01)
    never = KafkaError(KafkaError.LEADER_NOT_AVAILABLE)
    call, calls = _answers(*[never] * 1_000)
    with pytest.raises(KafkaException, match="LEADER_NOT_AVAILABLE"):
        kafka_resource.until_settled(call, timeout_s=0.05)
    assert 2 <= len(calls) < 1_000
