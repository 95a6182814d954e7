"""docker-compose.yml cannot run here, so keep it honest against the local stack's defaults."""

import re
import tomllib
from pathlib import Path

import yaml

from config.settings import Settings
from stack.kafka import DLQ_PARTITIONS
from stack.versions import ELASTICSEARCH_VERSION, KAFKA_VERSION
from tests.helpers import environment_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DEFAULTS = Settings()


def test_services_are_the_documented_stack():
    assert set(SERVICES) == {
        "kafka", "kafka-topics", "elasticsearch", "kibana", "kibana-setup", "postgres", "spark-connect",
        "user-code", "dagster-webserver", "dagster-daemon",
    }


def test_images_match_the_local_stack_versions():
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert SERVICES["elasticsearch"]["image"].endswith(f":{ELASTICSEARCH_VERSION}")
    assert SERVICES["kibana"]["image"].endswith(f":{ELASTICSEARCH_VERSION}")
    assert SERVICES["kibana-setup"]["image"] == SERVICES["kibana"]["image"]


def test_ports_are_published_on_loopback_at_the_default_ports():
    published = {
        name: [p.split(":")[1] for p in svc.get("ports", [])] for name, svc in SERVICES.items()
    }
    for svc in SERVICES.values():
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", []))
    assert published["kafka"] == [str(DEFAULTS.kafka_port)]
    assert published["elasticsearch"] == [str(DEFAULTS.elasticsearch_port)]
    assert published["dagster-webserver"] == ["3000"]
    assert published["kibana"] == ["5601"]
    assert published["spark-connect"] == [str(DEFAULTS.spark_connect_port)]
    kafka_env = SERVICES["kafka"]["environment"]
    assert f"HOST://127.0.0.1:{DEFAULTS.kafka_port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]


def test_pipeline_environment_uses_the_documented_names_and_defaults():
    env = SERVICES["user-code"]["environment"]
    documented = environment_names() | {"TZ", "DAGSTER_HOME"}
    assert {k for k in env if not k.startswith("DAGSTER_POSTGRES")} <= documented
    assert env["TZ"] == "UTC"
    assert env["CLICKSTREAM_TOPIC"] == DEFAULTS.topic
    assert env["CLICKSTREAM_DLQ_TOPIC"] == DEFAULTS.dlq_topic
    assert int(env["CLICKSTREAM_TOPIC_PARTITIONS"]) == DEFAULTS.topic_partitions
    assert env["SPARK_MASTER"] == DEFAULTS.spark_master
    topics = SERVICES["kafka-topics"]["command"][0]
    assert f"--topic {DEFAULTS.topic} --partitions {DEFAULTS.topic_partitions}" in topics
    assert f"--topic {DEFAULTS.dlq_topic} --partitions {DLQ_PARTITIONS}" in topics
    # Every Dagster service runs the same image and configuration.
    # Runs are clients of the compose stack's own Connect server, on the default port.
    assert env["CLICKSTREAM_SPARK_REMOTE"] == f"sc://spark-connect:{DEFAULTS.spark_connect_port}"
    for name in ("dagster-webserver", "dagster-daemon", "spark-connect"):
        assert SERVICES[name]["environment"] == env
        assert SERVICES[name]["image"] == SERVICES["user-code"]["image"]


def test_long_running_services_have_healthchecks_and_wait_for_dependencies():
    for name, svc in SERVICES.items():
        if name not in ("kafka-topics", "kibana-setup", "dagster-daemon"):
            assert "healthcheck" in svc, name
    assert SERVICES["kafka-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert SERVICES["kibana-setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"
    daemon_deps = SERVICES["dagster-daemon"]["depends_on"]
    assert daemon_deps["postgres"]["condition"] == "service_healthy"
    assert daemon_deps["kafka-topics"]["condition"] == "service_completed_successfully"
    assert daemon_deps["user-code"]["condition"] == "service_healthy"
    assert daemon_deps["spark-connect"]["condition"] == "service_healthy"


def test_every_setting_is_in_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text()
    for name in environment_names() | {"DAGSTER_HOME", "TZ"}:
        assert re.search(rf"^\| `{name}` \|", readme, re.M), f"{name} missing from README table"


def test_the_image_copies_every_package_the_project_installs():
    """A package added to pyproject.toml but not to the image would only fail in Docker."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\S+) \./", (ROOT / "docker" / "Dockerfile").read_text(),
                            flags=re.MULTILINE))
    assert {name.rstrip("*") for name in packages} <= copied


def test_no_password_is_written_into_the_compose_file():
    """Every password comes from the environment or an .env file, and compose refuses to start
    without one."""
    required = re.compile(r"^\$\{[A-Z_]+:\?.+\}$")
    for name, svc in SERVICES.items():
        for key, value in (svc.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert required.match(str(value)), f"{name}: {key} is written into the file"


def test_every_long_running_service_is_restarted_when_it_dies():
    one_shot = {"kafka-topics", "kibana-setup"}
    for name, service in SERVICES.items():
        assert service.get("restart") == ("no" if name in one_shot else "unless-stopped"), name
