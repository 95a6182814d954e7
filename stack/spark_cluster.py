"""A Spark standalone cluster on loopback: a master and its workers, started from the launch
classes pyspark ships, for a Connect server whose SPARK_MASTER is `spark://127.0.0.1:PORT`. The
server is the cluster's driver; its executors run in JVMs the workers start."""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pyspark

from config.settings import Settings, child_env

from .java import find_java_home
from .process import ServiceProcess, start_process, wait_for

MASTER = "spark-master"
WORKER_PREFIX = "spark-worker-"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
# Master and workers only schedule; the executors they start hold the data.
DAEMON_MEMORY = "512m"


def worker_name(number: int) -> str:
    return f"{WORKER_PREFIX}{number}"


def master_ui_port(settings: Settings) -> int:
    """The master's web UI, whose /json answers for the whole cluster."""
    return settings.spark_master_port + 1


def worker_port(settings: Settings, number: int) -> int:
    return settings.spark_master_port + 1 + number


@dataclass(frozen=True)
class ClusterHealth:
    """The master's own view: its status, and each registered worker's state by port."""

    status: str
    workers: dict[int, str]
    cores: int


def probe(settings: Settings, timeout_s: float = 3) -> ClusterHealth | None:
    """The master's state from its web UI's JSON, or None when no master answers there."""
    url = f"http://127.0.0.1:{master_ui_port(settings)}/json/"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            state = json.load(answer)
    except (OSError, ValueError):
        return None
    # A worker started again on its port registers anew; its dead self stays listed for a while.
    workers = {}
    for worker in state.get("workers", []):
        if workers.get(worker["port"]) != "ALIVE":
            workers[worker["port"]] = worker["state"]
    return ClusterHealth(state.get("status", "?"), workers, state.get("cores", 0))


def probe_master(settings: Settings, timeout_s: float = 3) -> ClusterHealth | None:
    health = probe(settings, timeout_s)
    return health if health and health.status == "ALIVE" else None


def probe_worker(settings: Settings, number: int, timeout_s: float = 3) -> ClusterHealth | None:
    """The cluster's health while the master lists this worker as alive, else None."""
    health = probe_master(settings, timeout_s)
    alive = health and health.workers.get(worker_port(settings, number)) == "ALIVE"
    return health if alive else None


def start_master(settings: Settings) -> ServiceProcess:
    port = settings.spark_master_port
    service = _start(settings, MASTER, MASTER_CLASS, "--host", "127.0.0.1", "--port", str(port),
                     "--webui-port", str(master_ui_port(settings)))
    wait_for("the Spark master", lambda: probe_master(settings, 2), service=service, timeout_s=60)
    return service


def start_worker(settings: Settings, number: int) -> ServiceProcess:
    home = _home(settings, worker_name(number))
    service = _start(settings, worker_name(number), WORKER_CLASS, settings.spark_master,
                     "--host", "127.0.0.1", "--port", str(worker_port(settings, number)),
                     "--webui-port", "0", "--cores", str(settings.spark_worker_cores),
                     "--memory", settings.spark_worker_memory, "--work-dir", str(home / "work"))
    wait_for(f"Spark worker {number}", lambda: probe_worker(settings, number, 2), service=service,
             timeout_s=60)
    return service


def _home(settings: Settings, name: str) -> Path:
    home = settings.state_dir / "spark-cluster" / name
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return home


def _start(settings: Settings, name: str, main_class: str, *args: str) -> ServiceProcess:
    java_home, _ = find_java_home(settings.java_home)
    spark_home = Path(pyspark.__file__).parent
    home = _home(settings, name)
    log4j = home / "log4j2.properties"
    log4j.write_text(resources.files(__package__).joinpath(
        "templates", "spark-cluster-log4j2.properties").read_text())
    env = child_env(
        JAVA_HOME=str(java_home), SPARK_HOME=str(spark_home),
        # No retry on the next port when ours is taken: the master and its probes expect each
        # daemon where the settings put it, so it fails at once, naming the port, instead.
        SPARK_DAEMON_JAVA_OPTS=(f"-Duser.timezone=UTC -Dlog4j2.configurationFile={log4j} "
                                "-Dspark.port.maxRetries=0"),
        SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
        # Executors inherit the worker's environment: their scratch space, and the interpreter
        # their Python workers run (the project's, with its packages installed).
        SPARK_LOCAL_DIRS=str(home / "tmp"), PYSPARK_PYTHON=sys.executable)
    for variable in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):
        env.pop(variable, None)
    return start_process(name, [str(spark_home / "bin" / "spark-class"), main_class, *args],
                         state_dir=settings.state_dir, log=settings.state_dir / "logs" / f"{name}.log",
                         marker=str(log4j), env=env, cwd=home)
