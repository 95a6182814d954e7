"""docker-compose.yml cannot run here, so keep it honest against the local stack's defaults."""

import re
import subprocess
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from cli.main import build_parser
from config.settings import Settings
from dashboard import DEFAULT_PORT as DASHBOARD_PORT
from stack.kafka import DLQ_PARTITIONS
from stack.versions import ELASTICSEARCH_VERSION, KAFKA_VERSION, MIN_JAVA
from tests.helpers import environment_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
DEFAULTS = Settings()
# Where the image puts the project (WORKDIR), and where kibana-setup mounts docker/kibana.
IMAGE_ROOT = "/opt/dagster/app/"
# The JDK each Debian release packages; Debian 13 dropped 17.
DEBIAN_JDK = {"bookworm": 17, "trixie": 21}


def test_services_are_the_documented_stack():
    assert set(SERVICES) == {
        "kafka", "kafka-topics", "elasticsearch", "kibana", "kibana-setup", "postgres", "spark-connect",
        "user-code", "dagster-webserver", "dagster-daemon", "traffic", "dashboard",
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
    assert published["dashboard"] == [str(DASHBOARD_PORT)]
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
    for name in ("dagster-webserver", "dagster-daemon", "spark-connect", "traffic", "dashboard"):
        assert SERVICES[name]["environment"] == env
        assert SERVICES[name]["image"] == SERVICES["user-code"]["image"]


def test_long_running_services_have_healthchecks_and_wait_for_dependencies():
    # One-shot services, and the two that serve no port to ask.
    for name, svc in SERVICES.items():
        if name not in ("kafka-topics", "kibana-setup", "dagster-daemon", "traffic"):
            assert "healthcheck" in svc, name
    assert SERVICES["kafka-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert SERVICES["kibana-setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"
    daemon_deps = SERVICES["dagster-daemon"]["depends_on"]
    assert daemon_deps["postgres"]["condition"] == "service_healthy"
    assert daemon_deps["kafka-topics"]["condition"] == "service_completed_successfully"
    assert daemon_deps["user-code"]["condition"] == "service_healthy"
    assert daemon_deps["spark-connect"]["condition"] == "service_healthy"
    assert SERVICES["traffic"]["depends_on"]["kafka-topics"]["condition"] == (
        "service_completed_successfully")
    assert SERVICES["dashboard"]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"


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


def _image_path(path: str) -> Path:
    """The repository file behind a path inside the image or kibana-setup's mount."""
    for inside, outside in ((IMAGE_ROOT, ROOT), ("/kibana/", ROOT / "docker" / "kibana")):
        if path.startswith(inside):
            return outside / path.removeprefix(inside)
    raise AssertionError(f"{path} is neither in the image's project nor in a mount")


def test_every_build_context_file_and_mount_exists():
    for name, svc in SERVICES.items():
        if "build" in svc:
            context = ROOT / svc["build"]["context"]
            assert context.is_dir(), name
            assert (context / svc["build"]["dockerfile"]).is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not here"
            else:
                assert source in COMPOSE["volumes"], f"{name} mounts an undeclared volume {source}"
        for word in (svc.get("command") or []) + (svc.get("entrypoint") or []):
            if isinstance(word, str) and word.startswith(("/opt/dagster/app/", "/kibana/")):
                assert _image_path(word).is_file(), f"{name} runs {word}, which is not here"
    for source in re.findall(r"^COPY (\S+) \./", DOCKERFILE, flags=re.MULTILINE):
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not here"


def test_the_image_pins_a_debian_release_that_packages_its_jdk():
    base = re.search(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE).group(1)
    release = base.rsplit("-", 1)[-1]
    assert release in DEBIAN_JDK, f"{base} does not pin a Debian release"
    installed = int(re.search(r"openjdk-(\d+)-jre-headless", DOCKERFILE).group(1))
    assert installed == DEBIAN_JDK[release] >= MIN_JAVA
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert base.startswith(f"python:{python.removeprefix('>=').split(',')[0]}")


def test_every_port_the_image_serves_is_exposed():
    exposed = set(re.search(r"^EXPOSE (.+)$", DOCKERFILE, flags=re.MULTILINE).group(1).split())
    for name, svc in SERVICES.items():
        if svc.get("image") == SERVICES["user-code"]["image"]:
            for port in svc.get("ports", []):
                assert port.rsplit(":", 1)[1] in exposed, f"{name} publishes {port}"


def test_kafka_keeps_its_log_on_the_volume():
    """A topic lost with its container while the lake's checkpoint stays fails the next ingest."""
    kafka = SERVICES["kafka"]
    mounts = dict(volume.split(":")[:2] for volume in kafka["volumes"])
    assert kafka["environment"]["KAFKA_LOG_DIRS"] == mounts["kafka-data"]


def test_the_traffic_is_make_runs():
    traffic = SERVICES["traffic"]["command"]
    assert traffic[:2] == ["clickstream", "generate"]
    run = build_parser().parse_args(["run"])
    generated = build_parser().parse_args(traffic[1:])
    assert (generated.events, generated.rate) == (0, run.rate)
    assert generated.topic is None  # the pipeline's topic, CLICKSTREAM_TOPIC above


class _Kibana(BaseHTTPRequestHandler):
    answer = b""
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 (the handler's required name)
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("answer, exit_status", [
    (b'{"successCount":9,"success":true,"warnings":[]}', 0),
    (b'{"successCount":8,"success":false,"errors":[{"id":"sessions","type":"index-pattern",'
     b'"error":{"type":"conflict"}}]}', 1),
])
def test_kibana_setup_fails_on_an_object_that_does_not_import(answer, exit_status):
    _Kibana.answer, _Kibana.received = answer, []
    server = HTTPServer(("127.0.0.1", 0), _Kibana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "docker" / "kibana" / "import.sh")], capture_output=True, text=True,
            env={"PATH": "/usr/bin:/bin", "KIBANA_URL": f"http://127.0.0.1:{server.server_port}"})
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == exit_status, done.stderr
    assert (ROOT / "docker" / "kibana" / "clickstream.ndjson").read_bytes() in _Kibana.received[0]
    if exit_status:
        assert "did not import every object" in done.stderr and '"conflict"' in done.stderr
