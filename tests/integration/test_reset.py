"""`clickstream reset`: make run's data goes, and nothing else does."""

from __future__ import annotations

import subprocess
import sys
import uuid

from config.clients import elasticsearch_client
from config.settings import child_env
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from tests.helpers import consume_all, create_topics, delete_topics, isolated_topics


def test_reset_empties_the_topics_and_deletes_the_lake_indices_and_instance(stack, tmp_path):
    settings = isolated_topics(stack)
    prefix = f"test-reset-{uuid.uuid4().hex[:8]}"
    create_topics(stack, {settings.topic: 2, settings.dlq_topic: 1})
    produce(GeneratorConfig(events=50, seed=3), settings, progress=False)
    lake, home = tmp_path / "lake", tmp_path / "dagster"
    (lake / "landing").mkdir(parents=True)
    home.mkdir()
    client = elasticsearch_client(stack)
    served, other = f"{prefix}-sessions-2026.12.01_run1", f"{prefix}-demo-sessions-2026.12.01_run1"
    for index in (served, other):
        client.indices.create(index=index)
    env = child_env(CLICKSTREAM_TOPIC=settings.topic, CLICKSTREAM_DLQ_TOPIC=settings.dlq_topic,
                    CLICKSTREAM_LAKE_DIR=str(lake), CLICKSTREAM_ES_INDEX_PREFIX=prefix,
                    DAGSTER_HOME=str(home))
    try:
        refused = subprocess.run([sys.executable, "-m", "cli", "reset"], env=env, input="no\n",
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "nothing deleted" in refused.stdout
        assert lake.exists() and client.indices.exists(index=served)

        done = subprocess.run([sys.executable, "-m", "cli", "reset", "--yes"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert not lake.exists() and not home.exists()
        assert not client.indices.exists(index=served)
        assert client.indices.exists(index=other)  # another prefix's family is not ours
        assert consume_all(stack.kafka_bootstrap_servers, settings.topic, 1, timeout_s=5) == []
    finally:
        client.options(ignore_status=404).indices.delete(index=[served, other])
        delete_topics(stack, [settings.topic, settings.dlq_topic])
