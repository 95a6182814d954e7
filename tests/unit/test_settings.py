from pathlib import Path

from clickstream_dagster.settings import Settings


def test_defaults_point_at_the_local_stack(monkeypatch):
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "ELASTICSEARCH_URL", "CLICKSTREAM_LAKE_DIR"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings.from_env()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka_is_local and settings.kafka_port == 9092
    assert settings.elasticsearch_url == "http://127.0.0.1:9200"
    assert settings.elasticsearch_is_local and settings.elasticsearch_port == 9200
    assert Path(settings.lake_dir).is_absolute()


def test_remote_services_are_never_local(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,broker-2.internal:9092")
    monkeypatch.setenv("ELASTICSEARCH_URL", "https://es.internal:9243/")
    settings = Settings.from_env()
    assert not settings.kafka_is_local
    assert not settings.elasticsearch_is_local
    assert settings.elasticsearch_url == "https://es.internal:9243"


def test_lake_uri_passes_through_and_paths_expand(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_LAKE_DIR", "s3a://bucket/lake")
    assert Settings.from_env().lake_dir == "s3a://bucket/lake"
    monkeypatch.setenv("CLICKSTREAM_LAKE_DIR", "~/lake")
    assert Settings.from_env().lake_dir == str(Path.home() / "lake")


def test_secrets_come_from_the_environment_and_stay_out_of_repr(monkeypatch):
    monkeypatch.setenv("ELASTICSEARCH_API_KEY", "c2VjcmV0")
    settings = Settings.from_env()
    assert settings.elasticsearch_api_key == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(settings)
