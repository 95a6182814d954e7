"""Daily batch jobs over the lake: compaction with full-day dedup, and the analytics tables."""
