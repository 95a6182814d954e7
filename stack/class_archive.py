"""A class-data archive for the Spark Connect server's JVM.

A server that stops writes the classes it loaded to an archive on its way out; the next server
maps them at start instead of loading and verifying each one again, so it answers and runs its
first queries sooner. The archive belongs to one JDK and one set of jars: a new one of either
gives it a new key. The old archive is removed as soon as a start finds its jars gone or changed
(a reinstall), else once no start has used it for a week (two checkouts can share the cache
folder, each with its own key). A JVM that finds an archive it cannot use runs without it, so a
bad archive costs speed, never a start.

Each server writes its own file, named for it, and only once it has exited is that file taken
as the archive: two servers stopping at once never write the same file, and a start never maps a
file still being written.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

FOLDER = "spark-class-archive"
SUFFIX = ".jsa"
OWNER = ".pid"  # beside a file being written: the pid of the server that writes it at its exit
MADE_FROM = ".jars"  # beside a key's archive: its jars, as they were, a line each
UNUSED_DAYS = 7  # another key's archive that no start mapped for this long is removed


@dataclass(frozen=True)
class ClassArchive:
    folder: Path
    key: str
    made_from: str  # "path:size:mtime_ns" of each jar, a line each

    @classmethod
    def for_server(cls, cache_dir: Path, java_home: Path, classpath: list[Path]) -> ClassArchive:
        """The archive of a JVM from `java_home` with `classpath` (the jars it was made from, by
        name, size and time, so a reinstalled jar makes a new archive)."""
        digest = hashlib.sha256(str(java_home.resolve()).encode())
        release = java_home / "release"
        if release.exists():
            digest.update(release.read_bytes())
        made_from = "\n".join(_fingerprint(jar) for jar in sorted(classpath))
        digest.update(made_from.encode())
        return cls(cache_dir / FOLDER, digest.hexdigest()[:16], made_from)

    @property
    def path(self) -> Path:
        return self.folder / f"{self.key}{SUFFIX}"

    def java_option(self) -> tuple[str, Path | None]:
        """The JVM option that maps the archive, or, while there is none, the one that writes it
        at exit, with the file it writes (pass it to `owned_by` once the server has a pid)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tidy()
        record = self.path.with_suffix(MADE_FROM)
        if not record.exists():
            record.write_text(self.made_from)
        if self.path.exists():
            os.utime(self.path)  # in use: see tidy
            return f"-XX:SharedArchiveFile={self.path}", None
        written = self.folder / f"{self.key}.{uuid.uuid4().hex[:8]}{SUFFIX}"
        return f"-XX:ArchiveClassesAtExit={written}", written

    @staticmethod
    def owned_by(written: Path, pid: int) -> None:
        written.with_suffix(OWNER).write_text(str(pid))

    def tidy(self) -> None:
        """Take the largest file a stopped server wrote as the archive (the one that had run the
        most kinds of work), and remove what no server still writes and no start will map."""
        for owner in sorted(self.folder.glob(f"*{OWNER}")):
            written = owner.with_suffix(SUFFIX)
            if _alive(owner):
                continue
            if written.name.startswith(f"{self.key}.") and _size(written) > _size(self.path):
                os.replace(written, self.path)
            else:
                written.unlink(missing_ok=True)
            owner.unlink(missing_ok=True)
        for archive in self.folder.glob(f"*{SUFFIX}"):
            if archive == self.path or archive.with_suffix(OWNER).exists():
                continue
            # Another key's archive may be another checkout's, sharing this cache: it goes once
            # its jars are gone or changed, or no start has mapped it for a while.
            unowned_write = archive.name.count(".") > 1
            if (unowned_write or _jars_changed(archive.with_suffix(MADE_FROM))
                    or time.time() - _mtime(archive) > UNUSED_DAYS * 86_400):
                archive.unlink(missing_ok=True)
        # Another key's record whose archive is gone and that no server is writing: a start that
        # never wrote one, or an archive removed above.
        for record in self.folder.glob(f"*{MADE_FROM}"):
            key = record.name.removesuffix(MADE_FROM)
            if (key != self.key and not record.with_suffix(SUFFIX).exists()
                    and not any(self.folder.glob(f"{key}.*{OWNER}"))):
                record.unlink(missing_ok=True)


def _fingerprint(jar: Path) -> str:
    stat = jar.stat()
    return f"{jar}:{stat.st_size}:{stat.st_mtime_ns}"


def _jars_changed(record: Path) -> bool:
    """Whether any jar an archive was made from is gone or changed (False with no record: an
    archive from before records waits out its unused days)."""
    try:
        lines = record.read_text().splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        jar = Path(line.rsplit(":", 2)[0])
        if not jar.exists() or _fingerprint(jar) != line:
            return True
    return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _alive(owner: Path) -> bool:
    """Whether the server named in `owner` still runs (an exited one not yet reaped is not)."""
    try:
        pid = int(owner.read_text())
    except (ValueError, FileNotFoundError):
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.joinpath("self").exists():
        try:
            return stat.read_text().rpartition(")")[2].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
