"""Typed resources: how assets reach Kafka, Spark, Elasticsearch and the lake."""

from .elasticsearch import ElasticsearchResource
from .kafka import KafkaResource
from .lake import LakeResource
from .spark import SparkResource

__all__ = ["ElasticsearchResource", "KafkaResource", "LakeResource", "SparkResource"]
