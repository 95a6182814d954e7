"""spark-submit entry point: `spark-submit --jars <Kafka connector and Delta jars> -m spark.ingest
--bootstrap-servers ... --lake ...`. Sizes (master, memory) come from spark-submit or
spark-defaults; the pipeline's base settings (UTC, Delta, RocksDB state, the JSON optimizer switch)
are applied here, the same ones the Dagster runs use."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from ..session import LOCAL_DISK_CONF, STREAMING_CONF, build_session
from .config import (
    AVAILABLE_NOW,
    CONTINUOUS,
    IP_MODES,
    KAFKA_PROTOCOLS,
    SASL_MECHANISMS,
    IngestConfig,
    KafkaSecurity,
)
from .stream import IngestJob

DEFAULTS = {f.name: f.default for f in fields(IngestConfig)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="spark.ingest", description=__doc__)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--lake", required=True, help="lake root: a path or an s3a:// URI")
    parser.add_argument("--topic", default=DEFAULTS["topic"])
    parser.add_argument("--dlq-topic", default=DEFAULTS["dlq_topic"])
    parser.add_argument("--mode", choices=[AVAILABLE_NOW, CONTINUOUS], default=DEFAULTS["mode"])
    parser.add_argument("--processing-time", default=DEFAULTS["processing_time"])
    parser.add_argument("--max-offsets-per-trigger", type=int,
                        default=DEFAULTS["max_offsets_per_trigger"])
    parser.add_argument("--ip-anonymization", choices=IP_MODES, default=DEFAULTS["ip_anonymization"],
                        help="truncate: IP addresses land as their /24 or /48 network; off: as sent")
    parser.add_argument("--first-day", help="events dated before this day (YYYY-MM-DD) are dead "
                                            "letters; match the Dagster partitions' first day")
    parser.add_argument("--security-protocol", choices=KAFKA_PROTOCOLS, default="PLAINTEXT")
    parser.add_argument("--sasl-mechanism", choices=SASL_MECHANISMS, default="SCRAM-SHA-512")
    parser.add_argument("--sasl-username")
    parser.add_argument("--sasl-password-file", type=Path,
                        help="a file holding the SASL password (never on the command line)")
    parser.add_argument("--ssl-ca-location", help="PEM bundle of the CA that signed the brokers")
    args = parser.parse_args(argv)
    security = KafkaSecurity(
        protocol=args.security_protocol, sasl_mechanism=args.sasl_mechanism,
        username=args.sasl_username, ca_location=args.ssl_ca_location,
        password=args.sasl_password_file.read_text().strip() if args.sasl_password_file else None)
    spark = build_session("clickstream-ingest", conf={**STREAMING_CONF, **LOCAL_DISK_CONF})
    config = IngestConfig(
        bootstrap_servers=args.bootstrap_servers, lake_root=args.lake, topic=args.topic,
        dlq_topic=args.dlq_topic, mode=args.mode, processing_time=args.processing_time,
        max_offsets_per_trigger=args.max_offsets_per_trigger, first_day=args.first_day,
        ip_anonymization=args.ip_anonymization, kafka_security=security,
    )
    for batch in IngestJob(spark, config).run():
        print(batch.to_json())


if __name__ == "__main__":
    main()
