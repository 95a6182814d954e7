"""Client construction for Kafka and Elasticsearch, shared by the stack, the generator and resources."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from elasticsearch import Elasticsearch
from elasticsearch.serializer import OrjsonSerializer

from .settings import Settings

_quiet = logging.getLogger("clickstream.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def retention_ms(days: int) -> str:
    """A topic's `retention.ms` for a number of days; 0 keeps forever."""
    return str(days * 86_400_000) if days else "-1"


def kafka_admin(settings: Settings, *, timeout_s: float = 10) -> AdminClient:
    return AdminClient(settings.kafka_client_config(**{
        "socket.timeout.ms": int(timeout_s * 1000),
        # librdkafka retries a dead address forever and logs every attempt; callers report
        # failures themselves with a message that says what to do.
        "logger": _quiet,
    }))


def kafka_group_reader(settings: Settings, group: str) -> Consumer:
    """A consumer in `group` that never subscribes: it reads the group's committed offsets and
    never joins the group. Quiet like `kafka_admin`, since a kept one outlives its cluster."""
    return Consumer(settings.kafka_client_config(**{
        "group.id": group, "enable.auto.commit": "false", "logger": _quiet}))


def elasticsearch_client(settings: Settings, *, timeout_s: float = 30, retries: int = 3):
    kwargs: dict = {"request_timeout": timeout_s, "max_retries": retries, "retry_on_timeout": True,
                    # Overload and unavailability are transient: back off and retry them.
                    "retry_on_status": (429, 502, 503, 504)}
    if settings.elasticsearch_api_key:
        kwargs["api_key"] = settings.elasticsearch_api_key
    elif settings.elasticsearch_username:
        kwargs["basic_auth"] = (settings.elasticsearch_username, settings.elasticsearch_password or "")
    if settings.elasticsearch_ca_certs:
        kwargs["ca_certs"] = settings.elasticsearch_ca_certs
    # orjson serializes bulk bodies several times faster than the standard library's json.
    return Elasticsearch(settings.elasticsearch_urls, serializer=OrjsonSerializer(), **kwargs)
