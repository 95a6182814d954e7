"""The local Elasticsearch nodes: Maven Central's integ-test zip, run unprivileged. One
single-node cluster by default; `CLICKSTREAM_ES_NODES` master-eligible data nodes on consecutive
ports."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from elastic_transport import TransportError
from elasticsearch import ApiError, UnsupportedProductError

from config.clients import elasticsearch_client
from config.settings import Settings, child_env

from . import maven
from .certificates import self_signed_certificates
from .errors import StackError
from .java import find_java_home
from .process import Members, ServiceProcess, start_process, wait_for
from .versions import ELASTICSEARCH_VERSION

NAME = "elasticsearch"
SECURED_NAME = "elasticsearch-secured"


@dataclass(frozen=True)
class ElasticsearchHealth:
    version: str
    cluster_name: str
    status: str


def probe(settings: Settings, timeout_s: float = 3) -> ElasticsearchHealth | None:
    """A real node answers cluster health with the X-Elastic-Product header, which the client
    checks on every response; anything else returns None."""
    client = elasticsearch_client(settings, timeout_s=timeout_s, retries=0)
    try:
        health = client.cluster.health()
        nodes = client.nodes.info(node_id="_local", filter_path="nodes.*.version")
    except (TransportError, ApiError, UnsupportedProductError):
        return None
    finally:
        client.close()
    if health["status"] not in ("yellow", "green"):
        return None
    versions = [n["version"] for n in nodes.get("nodes", {}).values()]
    return ElasticsearchHealth(versions[0] if versions else "?", health["cluster_name"],
                               health["status"])


def install(settings: Settings) -> Path:
    """Fetch the distribution into the cache and unpack it under the state folder."""
    archive = maven.copy_artifact(
        f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ELASTICSEARCH_VERSION}:zip",
        settings.cache_dir / "elasticsearch",
        settings=settings.maven_settings,
    )
    home = settings.state_dir / NAME / f"elasticsearch-{ELASTICSEARCH_VERSION}"
    if not (home / "bin" / "elasticsearch").exists():
        partial = home.with_name(home.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _unzip_keeping_modes(archive, partial)
        partial.joinpath(f"elasticsearch-{ELASTICSEARCH_VERSION}").rename(home)
        shutil.rmtree(partial, ignore_errors=True)
    return home


# Local development: no TLS or passwords on loopback. Production clusters set credentials (see
# start_secured for a local node that asks for them).
LOCAL_SECURITY = {"xpack.security.enabled": "false"}


def node_name(number: int) -> str:
    return NAME if number == 1 else f"{NAME}-{number}"


def node_port(settings: Settings, number: int) -> int:
    """Node `number`'s HTTP port; its transport port is 100 above."""
    return settings.elasticsearch_port + number - 1


def one_node(settings: Settings, number: int) -> Settings:
    """`settings` pointing at node `number` alone, to ask it whether it is up."""
    return replace(settings, elasticsearch_url=f"http://127.0.0.1:{node_port(settings, number)}")


def node_ports(settings: Settings, number: int) -> tuple[tuple[int, str], ...]:
    """Node `number`'s ports, each with what must listen there."""
    port = node_port(settings, number)
    return (port, "Elasticsearch"), (port + 100, "the Elasticsearch transport")


def nodes(settings: Settings) -> Members:
    # A new cluster of several forms only once its initial master nodes have found each other.
    return Members(f"Elasticsearch {ELASTICSEARCH_VERSION} node", settings.elasticsearch_nodes,
                   node_name, lambda number: _launch_local_node(settings, number),
                   lambda number: probe(one_node(settings, number), 2), timeout_s=180)


def start(settings: Settings) -> list[ServiceProcess]:
    """Start every local node that does not run, and wait until each reports yellow or green."""
    return nodes(settings).start_all(settings.state_dir)


def _launch_local_node(settings: Settings, number: int) -> ServiceProcess:
    count = settings.elasticsearch_nodes
    if count == 1:
        return _launch_node(settings, NAME, settings.elasticsearch_port, settings.state_dir / NAME,
                            LOCAL_SECURITY, cluster="clickstream")
    names = [f"clickstream-{n}" for n in range(1, count + 1)]
    discovery = {
        "discovery.seed_hosts": ",".join(f"127.0.0.1:{node_port(settings, n) + 100}"
                                         for n in range(1, count + 1)),
        # Read only when the cluster first forms; a restarted node rejoins the one that exists.
        "cluster.initial_master_nodes": ",".join(names),
    }
    base = settings.state_dir / node_name(number)
    # A config folder of its own: nodes started together would race to create one keystore.
    config = base / "config"
    if not config.exists():
        shutil.copytree(install(settings) / "config", config)
    return _launch_node(settings, node_name(number), node_port(settings, number), base,
                        {**LOCAL_SECURITY, **discovery}, cluster="clickstream",
                        node=names[number - 1], config=config)


@dataclass(frozen=True)
class SecuredNode:
    """A local node that asks for what a production cluster does: https and credentials."""

    settings: Settings  # its url, its CA bundle and a superuser's basic auth
    service: ServiceProcess


def start_secured(settings: Settings, port: int, username: str, password: str) -> SecuredNode:
    """A second local node, with its own config folder, data and CA: https only, every request
    authenticated (a file-realm superuser, API keys on). For testing the clients' credentials and
    CA bundle; stop it with `stop_process(settings.state_dir, SECURED_NAME)`."""
    base = settings.state_dir / SECURED_NAME
    shutil.rmtree(base, ignore_errors=True)
    home = install(settings)
    config = base / "config"
    shutil.copytree(home / "config", config)
    certs = config / "certs"
    self_signed_certificates(certs)
    java_home, _ = find_java_home(settings.java_home)
    tool_env = {**child_env(), "ES_PATH_CONF": str(config), "ES_JAVA_HOME": str(java_home)}
    subprocess.run([str(home / "bin" / "elasticsearch-users"), "useradd", username, "-p", password,
                    "-r", "superuser"], env=tool_env, check=True, capture_output=True)
    secured = replace(settings, elasticsearch_url=f"https://127.0.0.1:{port}",
                      elasticsearch_username=username, elasticsearch_password=password,
                      elasticsearch_ca_certs=str(certs / "ca.crt"))
    service = _launch_node(settings, SECURED_NAME, port, base, {
        "xpack.security.enabled": "true",
        "xpack.security.http.ssl.enabled": "true",
        "xpack.security.http.ssl.key": "certs/node.key",
        "xpack.security.http.ssl.certificate": "certs/node.crt",
        "xpack.security.http.ssl.certificate_authorities": "certs/ca.crt",
        "xpack.security.authc.api_key.enabled": "true",
    }, cluster="clickstream-secured", config=config)
    wait_for(f"Elasticsearch {ELASTICSEARCH_VERSION}", lambda: probe(secured, 2), service=service,
             timeout_s=180)
    return SecuredNode(secured, service)


def _launch_node(settings: Settings, name: str, port: int, base: Path, options: dict[str, str], *,
                 cluster: str, node: str | None = None, config: Path | None = None
                 ) -> ServiceProcess:
    """Launch one node in the background; `options` are its security and discovery settings (a
    node alone is a single-node cluster)."""
    java_home, _ = find_java_home(settings.java_home)
    home = install(settings)
    for folder in ("data", "logs"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    run_as = _service_user(settings, base)
    env = {
        "PATH": child_env().get("PATH", "/usr/bin:/bin"),
        "HOME": str(base),
        "ES_JAVA_HOME": str(java_home),
        "ES_JAVA_OPTS": f"-Xms{settings.elasticsearch_heap} -Xmx{settings.elasticsearch_heap}",
        "TZ": "UTC",
        **({"ES_PATH_CONF": str(config)} if config else {}),
    }
    settings_of_node = {
        "cluster.name": cluster,
        "node.name": node or f"{cluster}-local",
        **({} if "discovery.seed_hosts" in options else {"discovery.type": "single-node"}),
        "network.host": "127.0.0.1",
        "http.port": port,
        "transport.port": port + 100,
        "path.data": base / "data",
        "path.logs": base / "logs",
        **options,
        # A nearly full developer disk must not flip every index to read-only.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
    }
    cmd = [str(home / "bin" / "elasticsearch")]
    for key, value in settings_of_node.items():
        cmd += ["-E", f"{key}={value}"]
    return start_process(
        name,
        cmd,
        state_dir=settings.state_dir,
        log=settings.state_dir / "logs" / f"{name}.log",
        marker=str(base / "data"),
        env=env,
        cwd=base,
        run_as=run_as,
    )


def _service_user(settings: Settings, base: Path) -> dict:
    """Elasticsearch refuses to run as root: as root, run it as an unprivileged system user."""
    if os.geteuid() != 0:
        return {}
    name = settings.elasticsearch_user
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        proc = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
             "--user-group", name],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise StackError(
                f"Elasticsearch cannot run as root, and creating the system user {name!r} failed: "
                f"{proc.stderr.strip()}. Create it yourself or set CLICKSTREAM_ES_USER."
            ) from None
        entry = pwd.getpwnam(name)
    # The user needs to reach the state folder and own the node's files.
    for folder in [settings.state_dir, *settings.state_dir.parents]:
        if folder == Path("/"):
            break
        if not os.stat(folder).st_mode & 0o001:
            raise StackError(
                f"{folder} is not traversable by the Elasticsearch user {name!r}. Set "
                f"CLICKSTREAM_STATE_DIR to a folder outside private home directories."
            )
    subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(base)], check=True)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _unzip_keeping_modes(archive: Path, dest: Path) -> None:
    # zipfile drops the executable bits that bin/elasticsearch and the JDK launcher scripts need.
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, dest))
            mode = info.external_attr >> 16
            if mode:
                path.chmod(mode & 0o7777)

