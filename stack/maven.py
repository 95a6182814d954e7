"""Fetching jars and the Elasticsearch distribution from Maven Central with `mvn`.

Spark's `spark.jars.packages` resolves through Ivy and ignores Maven settings, so the project
resolves Spark's Kafka connector and Delta Lake with mvn itself and passes plain jar paths (see
spark/jars.py).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from config.settings import Settings
from spark.jars import ARTIFACTS, COMPLETE_MARKER, installed_jars

from .errors import StackError

# Spark's parent POM names a Maven Central mirror of its own; route it to Maven Central itself so
# resolution works wherever only the central repository is reachable.
_SETTINGS = """<settings>
  <mirrors>
    <mirror>
      <id>clickstream-central</id>
      <mirrorOf>gcs-maven-central-mirror</mirrorOf>
      <url>https://repo.maven.apache.org/maven2</url>
    </mirror>
  </mirrors>
</settings>
"""

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>clickstream.local</groupId>
  <artifactId>{name}</artifactId>
  <version>1</version>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


def copy_dependencies(
    name: str, coordinates: list[str], dest: Path, *, settings: str | None = None
) -> list[Path]:
    """Resolve `group:artifact:version` coordinates with their runtime dependencies into `dest`.

    Idempotent: a completed fetch leaves a marker, and a second call downloads nothing.
    """
    done = dest / COMPLETE_MARKER
    if done.exists():
        return sorted(dest.glob("*.jar"))
    work = dest.with_name(dest.name + ".pom")
    work.mkdir(parents=True, exist_ok=True)
    deps = "\n".join(
        "    <dependency><groupId>{}</groupId><artifactId>{}</artifactId>"
        "<version>{}</version></dependency>".format(*c.split(":")) for c in coordinates
    )
    (work / "pom.xml").write_text(_POM.format(name=name, dependencies=deps))
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    _mvn(
        [
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ],
        cwd=work,
        what=f"{name} ({', '.join(coordinates)})",
        settings=settings,
    )
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    done.touch()
    return sorted(dest.glob("*.jar"))


def copy_artifact(coordinate: str, dest_dir: Path, *, settings: str | None = None) -> Path:
    """Fetch one artifact (`group:artifact:version:packaging`) into `dest_dir`; cached."""
    group, artifact, version, packaging = coordinate.split(":")
    target = dest_dir / f"{artifact}-{version}.{packaging}"
    if target.exists():
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    _mvn(
        ["dependency:copy", f"-Dartifact={coordinate}", f"-DoutputDirectory={dest_dir}"],
        cwd=dest_dir,
        what=coordinate,
        settings=settings,
    )
    if not target.exists():
        raise StackError(f"mvn reported success but {target} is missing.")
    return target


def _settings_file(cwd: Path, settings: str | None) -> str:
    if settings:
        return settings
    path = cwd / "clickstream-maven-settings.xml"
    path.write_text(_SETTINGS)
    return str(path)


def _mvn(args: list[str], *, cwd: Path, what: str, settings: str | None) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (`mvn`) is not installed; the stack fetches Kafka, Elasticsearch and Spark's "
            "Kafka connector with it. Install it (Debian: apt-get install maven) and retry."
        )
    cmd = [mvn, "-B", "-q", "-ntp", "-s", _settings_file(cwd, settings), *args]
    print(f"  fetching {what} from Maven Central ...", flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        print(f"  fetched in {time.monotonic() - started:.1f} s", flush=True)
        return
    output = proc.stdout + proc.stderr
    if "No space left on device" in output:
        raise StackError(
            f"The disk filled up while fetching {what}. Free space under ~/.m2 and "
            f"{cwd.parent}, then retry."
        )
    if any(s in output for s in ("Unknown host", "Could not transfer", "Connection refused",
                                 "Network is unreachable", "timed out")):
        raise StackError(
            f"mvn could not reach Maven Central to fetch {what}. Check network access to "
            f"repo.maven.apache.org (or set CLICKSTREAM_MAVEN_SETTINGS to a settings.xml with your "
            f"mirror or proxy), then retry.\n{_errors(output)}"
        )
    raise StackError(f"mvn failed to fetch {what}:\n{_errors(output)}")


def _errors(output: str) -> str:
    lines = [line for line in output.splitlines() if "ERROR" in line]
    return "\n".join(lines[:5]) or output[-2000:]


def fetch_spark_jars(settings: Settings) -> list[str]:
    """Every jar the pipeline's Spark needs beyond pyspark's own, fetched once, as absolute paths."""
    for folder, coordinates in ARTIFACTS.items():
        copy_dependencies(folder, coordinates, settings.cache_dir / folder,
                          settings=settings.maven_settings)
    return installed_jars(settings.cache_dir)
