"""The long-lived Spark Connect server every run is a client of: started once by `stack up`, so no
run pays for a JVM start. pyspark ships the server; it gets the Kafka connector and Delta Lake."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import grpc
import pyspark

from config.settings import Settings, child_env
from spark.jars import SPARK_VERSION
from spark.session import settings_conf

from .class_archive import ClassArchive
from .java import find_java_home
from .maven import fetch_spark_jars
from .process import ServiceProcess, start_process, wait_for

NAME = "spark-connect"
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# A session left idle this long is closed by the server (a run that dies never releases its own);
# streaming queries of a closed session stop with it, and its next call fails.
SESSION_TIMEOUT = "15m"


@dataclass(frozen=True)
class SparkConnectHealth:
    version: str
    time_zone: str


def probe(settings: Settings, timeout_s: float = 3) -> SparkConnectHealth | None:
    """A real Connect server answers a config request over gRPC; anything else returns None."""
    from pyspark.sql.connect.proto import base_pb2, base_pb2_grpc

    target = f"127.0.0.1:{settings.spark_connect_port}" if settings.spark_connect_is_local \
        else (settings.spark_remote or "").removeprefix("sc://").split("/")[0]
    request = base_pb2.ConfigRequest(
        session_id=str(uuid.uuid4()), user_context=base_pb2.UserContext(user_id="clickstream-probe"),
        operation=base_pb2.ConfigRequest.Operation(
            get=base_pb2.ConfigRequest.Get(keys=["spark.sql.session.timeZone"])))
    try:
        with grpc.insecure_channel(target) as channel:
            reply = base_pb2_grpc.SparkConnectServiceStub(channel).Config(request, timeout=timeout_s)
    except grpc.RpcError:
        return None
    return SparkConnectHealth(version=SPARK_VERSION,
                              time_zone=dict((p.key, p.value) for p in reply.pairs).get(
                                  "spark.sql.session.timeZone", "?"))


def server_command(settings: Settings, bind: str = "127.0.0.1", class_archive: bool = False
                   ) -> tuple[list[str], dict[str, str], Path, Path | None]:
    """The spark-submit command, environment and working folder of the server. With
    `class_archive`, its JVM maps the class-data archive of its JDK and jars, or writes one at its
    exit to the path returned last (see stack/class_archive.py)."""
    java_home, _ = find_java_home(settings.java_home)
    jars = fetch_spark_jars(settings)
    spark_home = Path(pyspark.__file__).parent
    java_option, written = "", None
    if class_archive:
        classpath = sorted((spark_home / "jars").glob("*.jar"))
        java_option, written = ClassArchive.for_server(
            settings.cache_dir, java_home, classpath + [Path(jar) for jar in jars]).java_option()
    home = settings.state_dir / NAME
    scratch = home / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    log4j = home / "log4j2.properties"
    log4j.write_text(resources.files(__package__).joinpath(
        "templates", "spark-connect-log4j2.properties").read_text())
    conf = {
        **settings_conf(settings),
        # A heap that ran out leaves a JVM no work can trust: it exits, and the supervisor
        # restarts it.
        "spark.driver.extraJavaOptions": f"-Duser.timezone=UTC -Dlog4j2.configurationFile={log4j} "
                                         f"-XX:+ExitOnOutOfMemoryError {java_option}".rstrip(),
        "spark.local.dir": str(scratch),
        "spark.sql.warehouse.dir": str(home / "warehouse"),
        "spark.connect.grpc.binding.address": bind,
        "spark.connect.grpc.binding.port": str(settings.spark_connect_port),
        "spark.connect.session.manager.defaultSessionTimeout": SESSION_TIMEOUT,
        "spark.ui.enabled": "false",
        # The status store keeps every finished job, stage and SQL execution, plans included, in
        # the server's heap even without a UI; a server that lives for days keeps only the newest.
        "spark.ui.retainedJobs": "100",
        "spark.ui.retainedStages": "100",
        "spark.ui.retainedTasks": "10000",
        "spark.sql.ui.retainedExecutions": "50",
        "spark.sql.streaming.ui.retainedQueries": "20",
        "spark.sql.streaming.ui.retainedProgressUpdates": "20",
    }
    cmd = [str(spark_home / "bin" / "spark-submit"), "--class", SERVER_CLASS,
           "--name", "clickstream-spark-connect", "--master", settings.spark_master,
           "--driver-memory", settings.spark_driver_memory, "--jars", ",".join(jars)]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    env = child_env(
        JAVA_HOME=str(java_home),
        SPARK_HOME=str(spark_home),
        # foreachBatch functions run in a Python worker of the server: the project's interpreter,
        # which has this package and its dependencies installed.
        PYSPARK_PYTHON=sys.executable,
    )
    # The server itself must not try to be a client (pyspark marks a process that opened a Connect
    # session with SPARK_CONNECT_MODE_ENABLED, and children inherit it).
    for variable in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):
        env.pop(variable, None)
    return cmd, env, home, written


def start(settings: Settings) -> ServiceProcess:
    """Launch the server on loopback with the pipeline's Spark settings and wait until it answers."""
    cmd, env, home, written = server_command(settings, class_archive=settings.spark_class_archive)
    service = start_process(NAME, cmd, state_dir=settings.state_dir,
                            log=settings.state_dir / "logs" / "spark-connect.log",
                            marker=str(home / "tmp"), env=env, cwd=home)
    if written is not None:
        ClassArchive.owned_by(written, service.pid)
    wait_for(f"Spark Connect {SPARK_VERSION}", lambda: probe(settings, 2), service=service,
             timeout_s=180)
    return service


def main(argv: list[str] | None = None) -> None:
    """`python -m stack.spark_connect [--bind ADDRESS]`: the server in the
    foreground, as a container runs it."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    args = parser.parse_args(argv)
    cmd, env, home, _ = server_command(Settings.from_env(), bind=args.bind)
    os.chdir(home)
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
