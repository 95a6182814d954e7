"""spark-submit entry point: `spark-submit --jars <kafka connector jars> -m spark.ingest ...`,
or `python -m spark.ingest` with the session settings coming from spark-defaults."""

from __future__ import annotations

import argparse

from pyspark.sql import SparkSession

from .stream import AVAILABLE_NOW, CONTINUOUS, IngestConfig, IngestJob


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="spark.ingest", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--lake", required=True, help="lake root: a path or an s3a:// URI")
    parser.add_argument("--topic", default="clickstream")
    parser.add_argument("--dlq-topic", default="clickstream.dlq")
    parser.add_argument("--mode", choices=[AVAILABLE_NOW, CONTINUOUS], default=AVAILABLE_NOW)
    parser.add_argument("--processing-time", default="10 seconds")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=1_000_000)
    parser.add_argument("--first-day", help="events dated before this day (YYYY-MM-DD) are dead "
                                            "letters; match the Dagster partitions' first day")
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName("clickstream-ingest").getOrCreate()
    config = IngestConfig(
        bootstrap_servers=args.bootstrap_servers, lake_root=args.lake, topic=args.topic,
        dlq_topic=args.dlq_topic, mode=args.mode, processing_time=args.processing_time,
        max_offsets_per_trigger=args.max_offsets_per_trigger, first_day=args.first_day,
    )
    for batch in IngestJob(spark, config).run():
        print(batch.to_json())


if __name__ == "__main__":
    main()
