"""Finding a Java runtime new enough for Kafka, Elasticsearch and Spark."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .errors import StackError
from .versions import MIN_JAVA

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major(java_bin: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(java_bin), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major  # "1.8" means Java 8


def find_java_home(java_home: str | None, min_major: int = MIN_JAVA) -> tuple[Path, int]:
    """`java_home` (JAVA_HOME) if set, else the `java` on PATH; its home folder and major version."""
    candidates: list[Path] = []
    if java_home:
        candidates.append(Path(java_home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve())
    if not candidates:
        raise StackError(
            f"Java is not installed. Kafka, Elasticsearch and Spark need Java {min_major} or newer: "
            f"install it (Debian: apt-get install openjdk-{min_major}-jdk-headless) or set JAVA_HOME."
        )
    for java in candidates:
        major = java_major(java)
        if major is not None and major >= min_major:
            return java.parent.parent, major
    found = ", ".join(f"{j} (Java {java_major(j)})" for j in candidates)
    raise StackError(
        f"Java {min_major} or newer is required, but found only {found}. Install a newer JDK "
        f"and point JAVA_HOME at it."
    )
