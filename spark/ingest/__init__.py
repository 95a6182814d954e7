"""Streaming ingest: Kafka -> contract enforcement -> dead letters + deduplicated landing lake."""
