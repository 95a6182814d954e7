from clickstream_dagster.resources import KafkaResource


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
