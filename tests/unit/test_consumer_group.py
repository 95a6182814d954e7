"""The group commit retries what passes once a broker has started, and nothing else."""

from confluent_kafka import KafkaError, KafkaException

from spark.ingest.consumer_group import _retriable


def test_a_coordinator_still_loading_is_waited_for_and_a_refusal_is_not():
    for code in (KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_COORDINATOR,
                 KafkaError._TRANSPORT):
        assert _retriable(KafkaException(KafkaError(code)))
    for code in (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART):
        assert not _retriable(KafkaException(KafkaError(code)))
    assert not _retriable(KafkaException("no error object"))
