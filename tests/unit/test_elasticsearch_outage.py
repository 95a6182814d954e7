"""Elasticsearch down delays a streaming run's live refresh; only a long outage fails the run."""

import dagster as dg
import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from clickstream_dagster.assets.ingest import ElasticsearchOutage


def _api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0,
                           node=NodeConfig("http", "127.0.0.1", 9200))
    return ApiError("refused", meta=meta, body={})


def test_an_outage_is_waited_out_until_its_allowance_is_spent():
    context = dg.build_asset_context()
    outage = ElasticsearchOutage(allowance_s=0)
    down = ConnectionError("Connection refused")
    outage.note(context, down)  # the first refusal: a warning, the run goes on
    with pytest.raises(ConnectionError):
        outage.note(context, down)  # still down past the allowance: the run fails and alerts
    outage.over()
    outage.note(context, _api_error(503))  # answered again, then down again: a new allowance


def test_a_refusal_is_not_an_outage():
    with pytest.raises(ApiError):
        ElasticsearchOutage().note(dg.build_asset_context(), _api_error(400))
