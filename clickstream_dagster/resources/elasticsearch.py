import dagster as dg

from config.clients import elasticsearch_client
from config.settings import Settings


class ElasticsearchResource(dg.ConfigurableResource):
    """The Elasticsearch cluster that serves the indices; secrets come only from the environment."""

    url: str
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    request_timeout_s: float = 60
    number_of_replicas: int = 0  # CLICKSTREAM_ES_REPLICAS: 0 on one node, 1 or more on a cluster
    index_prefix: str  # index families are <prefix>-url-country etc.

    def client(self):
        settings = Settings(
            elasticsearch_url=self.url,
            elasticsearch_api_key=self.api_key,
            elasticsearch_username=self.username,
            elasticsearch_password=self.password,
            elasticsearch_ca_certs=self.ca_certs,
        )
        return elasticsearch_client(settings, timeout_s=self.request_timeout_s)
