"""The Spark server's class-data archive: which file a start maps, which one it writes, and what a
start tidies away."""

import os
import subprocess
import time
from pathlib import Path

from stack.class_archive import MADE_FROM, UNUSED_DAYS, ClassArchive


def _dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def _archive(tmp_path: Path) -> ClassArchive:
    java_home, jar = tmp_path / "jdk", tmp_path / "spark-core.jar"
    java_home.mkdir(exist_ok=True)
    (java_home / "release").write_text('JAVA_VERSION="17.0.15"\n')
    if not jar.exists():
        jar.write_bytes(b"classes")
    return ClassArchive.for_server(tmp_path / "cache", java_home, [jar])


def _started(archive: ClassArchive, pid: int) -> Path:
    option, written = archive.java_option()
    assert option == f"-XX:ArchiveClassesAtExit={written}"
    ClassArchive.owned_by(written, pid)
    return written


def _written_by(archive: ClassArchive, pid: int, size: int) -> Path:
    written = _started(archive, pid)
    written.write_bytes(b"x" * size)  # what the server writes at its exit
    return written


def _kept(archive: ClassArchive) -> list[str]:
    """What a folder holding one finished archive lists: the archive and its jars' record."""
    return sorted([archive.path.name, archive.path.with_suffix(MADE_FROM).name])


def test_a_new_jar_or_jdk_makes_a_new_archive(tmp_path):
    first = _archive(tmp_path)
    assert _archive(tmp_path).key == first.key
    (tmp_path / "spark-core.jar").write_bytes(b"other classes")
    assert _archive(tmp_path).key != first.key
    (tmp_path / "jdk" / "release").write_text('JAVA_VERSION="17.0.16"\n')
    assert len({first.key, _archive(tmp_path).key}) == 2


def test_the_file_a_stopped_server_wrote_is_what_the_next_start_maps(tmp_path):
    archive = _archive(tmp_path)
    written = _written_by(archive, _dead_pid(), 10)
    assert archive.java_option() == (f"-XX:SharedArchiveFile={archive.path}", None)
    assert archive.path.read_bytes() == b"x" * 10 and not written.exists()
    assert sorted(p.name for p in archive.folder.iterdir()) == _kept(archive)


def test_a_file_still_being_written_is_never_mapped_nor_removed(tmp_path):
    archive = _archive(tmp_path)
    written = _written_by(archive, os.getpid(), 10)  # this process: a server still running
    option, other = archive.java_option()
    assert option.startswith("-XX:ArchiveClassesAtExit=") and other != written
    assert written.exists() and not archive.path.exists()


def test_two_servers_that_wrote_at_once_leave_the_larger_archive(tmp_path):
    archive = _archive(tmp_path)
    servers = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    both = [_started(archive, server.pid) for server in servers]  # neither has stopped yet
    for server, written, size in zip(servers, both, (30, 10), strict=True):
        written.write_bytes(b"x" * size)
        server.kill()
        server.wait()
    archive.tidy()
    assert archive.path.stat().st_size == 30
    assert sorted(p.name for p in archive.folder.iterdir()) == _kept(archive)


def test_another_keys_archive_goes_once_unused_for_a_week_and_unowned_leftovers_at_once(tmp_path):
    old = _archive(tmp_path)
    old.folder.mkdir(parents=True)
    old.path.write_bytes(b"old")
    leftover = old.folder / f"{old.key}.1234abcd.jsa"
    leftover.write_bytes(b"left by a start that failed")
    (tmp_path / "spark-core.jar").write_bytes(b"upgraded classes")
    new = _archive(tmp_path)
    new.tidy()  # the old archive may be another checkout's, in use
    assert [p.name for p in new.folder.iterdir()] == [old.path.name]
    unused = time.time() - (UNUSED_DAYS + 1) * 86_400
    os.utime(old.path, (unused, unused))
    new.tidy()
    assert list(new.folder.iterdir()) == []


def test_a_start_that_maps_the_archive_marks_it_used(tmp_path):
    archive = _archive(tmp_path)
    archive.folder.mkdir(parents=True)
    archive.path.write_bytes(b"classes")
    unused = time.time() - (UNUSED_DAYS + 1) * 86_400
    os.utime(archive.path, (unused, unused))
    archive.java_option()
    assert time.time() - archive.path.stat().st_mtime < 60


def test_an_archive_whose_jars_were_reinstalled_goes_at_the_next_start(tmp_path):
    old = _archive(tmp_path)
    _written_by(old, _dead_pid(), 10)
    old.tidy()
    assert old.path.exists() and old.path.with_suffix(MADE_FROM).exists()
    (tmp_path / "spark-core.jar").write_bytes(b"reinstalled classes")
    new = _archive(tmp_path)
    new.java_option()
    assert not old.path.exists() and not old.path.with_suffix(MADE_FROM).exists()
    assert all(p.name.startswith(f"{new.key}.") for p in new.folder.iterdir())


def test_another_keys_record_without_an_archive_goes(tmp_path):
    old = _archive(tmp_path)
    old.java_option()  # a start that never got to write its archive
    assert old.path.with_suffix(MADE_FROM).exists()
    (tmp_path / "spark-core.jar").write_bytes(b"reinstalled classes")
    new = _archive(tmp_path)
    new.tidy()
    assert not old.path.with_suffix(MADE_FROM).exists()
