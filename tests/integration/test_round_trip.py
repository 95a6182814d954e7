"""Kafka -> Spark (through the fetched connector jars) -> Parquet -> Elasticsearch, exact counts."""

from __future__ import annotations

import orjson
from confluent_kafka import Producer
from elasticsearch import helpers

from config.clients import elasticsearch_client

MESSAGES = 10_000
SAMPLE = 1_000


def test_round_trip_counts_are_exact(stack, spark, fresh_topic, tmp_path):
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap_servers, "linger.ms": 20})
    for i in range(MESSAGES):
        producer.produce(fresh_topic, key=str(i % 97),
                         value=orjson.dumps({"id": i, "url": f"https://shop.example/p/{i % 50}"}))
    assert producer.flush(30) == 0

    raw = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", stack.kafka_bootstrap_servers)
        .option("subscribe", fresh_topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    parsed = raw.selectExpr(
        "cast(get_json_object(cast(value as string), '$.id') as long) as id",
        "get_json_object(cast(value as string), '$.url') as url",
    )
    out = str(tmp_path / "round_trip.parquet")
    parsed.write.mode("overwrite").parquet(out)
    lake = spark.read.parquet(out)
    assert lake.count() == MESSAGES
    assert lake.selectExpr("count(distinct id)").first()[0] == MESSAGES
    assert lake.selectExpr("sum(id)").first()[0] == MESSAGES * (MESSAGES - 1) // 2

    sample = lake.where(f"id < {SAMPLE}").collect()
    index = f"test-round-trip-{fresh_topic}"
    client = elasticsearch_client(stack)
    try:
        ok, errors = helpers.bulk(
            client,
            ({"_index": index, "_id": str(r.id), "_source": r.asDict()} for r in sample),
            refresh="wait_for",
        )
        assert (ok, errors) == (SAMPLE, [])
        assert client.count(index=index)["count"] == SAMPLE
        hit = client.search(index=index, query={"term": {"id": 42}})["hits"]["hits"]
        assert [h["_source"] for h in hit] == [{"id": 42, "url": "https://shop.example/p/42"}]
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
