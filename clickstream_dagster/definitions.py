"""The single Definitions object: every asset, check, sensor and resource is registered here."""

import dagster as dg

from config.settings import Settings

from .assets.analytics import ANALYTICS_ASSETS
from .assets.ingest import clickstream_landing, clickstream_topic
from .assets.lake import raw_clickstream
from .assets.live import live_indices
from .assets.serving import SERVING_ASSETS
from .checks.anomalies import ANOMALY_CHECKS
from .checks.quality import QUALITY_CHECKS
from .checks.serving import SERVING_CHECKS
from .jobs import JOBS
from .resources import ElasticsearchResource, KafkaResource, LakeResource, SparkResource
from .resources.spark import spark_config
from .retention import retention_job
from .schedules import SCHEDULES
from .sensors import SENSORS


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Resources from the documented environment variables; secrets stay EnvVar references."""
    secret = {
        field: dg.EnvVar(var)
        for field, var in (("api_key", "ELASTICSEARCH_API_KEY"),
                           ("password", "ELASTICSEARCH_PASSWORD"))
        if getattr(settings, f"elasticsearch_{field}")
    }
    kafka = settings.kafka_security
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.topic,
            dlq_topic=settings.dlq_topic,
            consumer_group=settings.consumer_group,
            security_protocol=kafka.protocol,
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_username=kafka.username,
            ssl_ca_location=kafka.ca_location,
            **({"sasl_password": dg.EnvVar("KAFKA_SASL_PASSWORD")} if kafka.password else {}),
        ),
        "elasticsearch": ElasticsearchResource(
            url=settings.elasticsearch_url,
            username=settings.elasticsearch_username,
            ca_certs=settings.elasticsearch_ca_certs,
            index_prefix=settings.elasticsearch_index_prefix,
            number_of_replicas=settings.index_replicas,
            **secret,
        ),
        "lake": LakeResource(root=settings.lake_dir, ip_anonymization=settings.ip_anonymization,
                             include_bots=settings.include_bots,
                             bot_events_per_second=settings.bot_events_per_second),
        "spark": SparkResource(spark_config=spark_config(settings),
                               connect_retry_s=settings.spark_retry_s),
    }


defs = dg.Definitions(
    assets=[clickstream_topic, clickstream_landing, live_indices, raw_clickstream, *ANALYTICS_ASSETS,
            *SERVING_ASSETS],
    asset_checks=[*QUALITY_CHECKS, *ANOMALY_CHECKS, *SERVING_CHECKS],
    jobs=[*JOBS, retention_job],
    sensors=SENSORS,
    schedules=SCHEDULES,
    resources=build_resources(Settings.from_env()),
    # Every step of a run shares one process and so one SparkSession, instead of one JVM per step.
    executor=dg.in_process_executor,
)
