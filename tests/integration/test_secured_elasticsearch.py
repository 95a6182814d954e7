"""Elasticsearch security by configuration, against a real local node that asks for it: https with
its own CA, and every request authenticated. The settings a production cluster needs (user,
password, CA bundle) reach the clients through the documented environment alone.

API keys are not tried here: they live in the security index, whose mapping needs the
analysis-common module, which the local integ-test distribution does not ship."""

import dataclasses
from datetime import date

import dagster as dg
import pyarrow as pa
import pytest
from elastic_transport import TlsError
from elasticsearch import AuthenticationException

from clickstream_dagster.definitions import build_resources
from clickstream_dagster.resources import ElasticsearchResource
from clickstream_dagster.serving.indices import URL_POPULARITY, load_day
from config.settings import Settings
from stack import elasticsearch
from stack.process import stop_process
from tests.helpers import free_port

DAY = "2026-06-01"
ROWS = pa.table({"event_date": [date(2026, 6, 1)] * 3,
                 "window_start": ["2026-06-01T10:00:00", "2026-06-01T10:00:00",
                                  "2026-06-01T10:05:00"],
                 "window_end": ["2026-06-01T10:05:00", "2026-06-01T10:05:00",
                                "2026-06-01T10:10:00"],
                 "url": ["/", "/cart", "/"], "events": [5, 2, 7]})


@pytest.fixture(scope="module")
def secured(stack):
    port = free_port(also=(100,))  # http, and transport 100 above it
    node = elasticsearch.start_secured(dataclasses.replace(stack, elasticsearch_heap="512m"), port,
                                       username="clickstream-admin", password="s3cret-Pa55word")
    yield node.settings
    stop_process(stack.state_dir, elasticsearch.SECURED_NAME)


def _resource(settings: Settings, **credentials) -> ElasticsearchResource:
    return ElasticsearchResource(url=settings.elasticsearch_url, index_prefix="test-secured",
                                 request_timeout_s=10, **credentials)


def test_a_client_without_credentials_or_without_the_ca_is_refused(secured):
    with pytest.raises(AuthenticationException):
        _resource(secured, ca_certs=secured.elasticsearch_ca_certs).client().info()
    with pytest.raises(TlsError, match="CERTIFICATE_VERIFY_FAILED"):
        _resource(secured, username=secured.elasticsearch_username,
                  password=secured.elasticsearch_password).client().info()


def test_the_documented_environment_reaches_a_secured_cluster_through_dagster(secured, monkeypatch):
    """Basic auth, password and CA bundle from the environment, resolved by Dagster at run time
    (the password is an EnvVar, never a value in the definitions)."""
    for name, value in (("ELASTICSEARCH_URL", secured.elasticsearch_url),
                        ("ELASTICSEARCH_USERNAME", secured.elasticsearch_username),
                        ("ELASTICSEARCH_PASSWORD", secured.elasticsearch_password),
                        ("ELASTICSEARCH_CA_CERTS", secured.elasticsearch_ca_certs),
                        ("CLICKSTREAM_ES_INDEX_PREFIX", "test-secured-env")):
        monkeypatch.setenv(name, value)
    configured = build_resources(Settings.from_env())["elasticsearch"]
    assert secured.elasticsearch_password not in repr(configured)

    @dg.asset
    def secured_day(context: dg.AssetExecutionContext, elasticsearch: ElasticsearchResource) -> None:
        """Loads a day into the secured cluster with the configured resource."""
        spec = URL_POPULARITY.with_prefix(elasticsearch.index_prefix)
        report = load_day(elasticsearch.client(), spec, DAY, ROWS, context.run.run_id)
        context.add_output_metadata({"documents": report.documents})

    result = dg.materialize([secured_day], resources={"elasticsearch": configured})
    assert result.success
    client = _resource(secured, username=secured.elasticsearch_username,
                       password=secured.elasticsearch_password,
                       ca_certs=secured.elasticsearch_ca_certs).client()
    served = URL_POPULARITY.with_prefix("test-secured-env").index_for(DAY)
    assert client.count(index=served)["count"] == ROWS.num_rows

