"""Starting, tracking and stopping the background service processes that `stack up` owns."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import StackError

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
PF_FORKNOEXEC = 0x40  # a task flag: forked, not exec'd since
# Free space a cold `stack up` needs: ~110 MB of downloads, extraction and first data files.
MIN_FREE_BYTES = 1024**3


@dataclass(frozen=True)
class ServiceProcess:
    """What a pid file records: enough to find, verify and stop the process later."""

    name: str
    pid: int
    marker: str  # a string in the command line, so a recycled pid is never mistaken for ours
    log: str
    started_at: float

    def is_alive(self) -> bool:
        return command_line(self.pid).find(self.marker) >= 0

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self.pid)

    def own_rss_bytes(self) -> int:
        """This process alone (the supervisor's services are its children, yet not its memory)."""
        stat = _stat(self.pid)
        return int(stat[21]) * PAGE_BYTES if stat else 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc (0 once it is gone).

    A child forked without an exec since shares its parent's pages: of it, only the pages it has
    made its own are counted. (A JVM spawning a Python worker passes through that state for a
    moment, sharing the JVM's whole address space; counted in full, that read as a 3 GiB spike.)"""
    total = 0
    for member in [pid, *descendants(pid)]:
        stat = _stat(member)
        if stat is None:
            continue
        if member != pid and int(stat[6]) & PF_FORKNOEXEC:
            total += _private_bytes(member, int(stat[1]))
        else:
            total += int(stat[21]) * PAGE_BYTES
    return total


def _private_bytes(pid: int, parent: int) -> int:
    """Pages that only this process maps. A vfork child shares its parent's address space itself,
    not a copy of it, so it reads the very same private pages: it owns none of them."""
    own, parents = _private_pages(pid), _private_pages(parent)
    return 0 if parents and own >= 0.95 * parents else own


def _private_pages(pid: int) -> int:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) * 1024 for line in rollup
               if line.startswith(("Private_Clean:", "Private_Dirty:")))


# The child's first program: a fresh interpreter that sets SIGTERM and SIGINT back to their default
# (a shell's background job, `nohup make run &`, ignores SIGINT, and Dagster maps SIGTERM to the
# SIGINT handler in its processes; a JVM that starts with SIGTERM ignored never stops on it), drops
# root when asked, and execs the command. So Popen needs no preexec_fn nor user, and can vfork: a
# forked child of a process with live gRPC channels (any Spark Connect client) runs gRPC's fork
# handlers, and some of those children died before they could exec.
_LAUNCH = """import os, signal, sys
for stop in (signal.SIGTERM, signal.SIGINT):
    signal.signal(stop, signal.SIG_DFL)
user, group, groups, *command = sys.argv[1:]
if group:
    os.setgroups([int(g) for g in groups.split(",") if g])
    os.setgid(int(group))
if user:
    os.setuid(int(user))
os.execvp(command[0], command)
"""
_LAUNCHED = "os.execvp(command[0], command)"  # in the launcher's command line, until it execs


def launched(cmd: list[str], run_as: dict | None = None) -> list[str]:
    """`cmd` behind the launcher above; `run_as` holds user, group and extra_groups ids."""
    run_as = run_as or {}
    ids = [str(run_as.get("user", "")), str(run_as.get("group", "")),
           ",".join(str(g) for g in run_as.get("extra_groups", []))]
    return [sys.executable, "-I", "-S", "-c", _LAUNCH, *ids, *cmd]


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def pid_file(state_dir: Path, name: str) -> Path:
    return state_dir / "run" / f"{name}.json"


def read_pid_file(state_dir: Path, name: str) -> ServiceProcess | None:
    path = pid_file(state_dir, name)
    try:
        return ServiceProcess(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


@contextmanager
def start_lock(state_dir: Path, name: str) -> Iterator[None]:
    """Held while a service is started, by `stack up` and the supervisor alike: whoever comes
    second finds the service started, not its port taken."""
    path = state_dir / "run" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def start_process(
    name: str,
    cmd: list[str],
    *,
    state_dir: Path,
    log: Path,
    marker: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    run_as: dict | None = None,
) -> ServiceProcess:
    """Start `cmd` detached in its own session, logging to `log`, and record its pid file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which(cmd[0]) is None:  # the launcher would fail only in the log
        raise FileNotFoundError(f"{name}: no program {cmd[0]!r} to start")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            launched(cmd, run_as),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,  # survives the CLI and can be stopped as one process group
        )
    service = ServiceProcess(name, proc.pid, marker, str(log), time.time())
    # Until the launcher has exec'd the command, /proc shows the forking Python's command line or
    # the launcher's, whose signals and user are not yet the service's.
    deadline = time.monotonic() + 10
    while ((not service.is_alive() or _LAUNCHED in command_line(proc.pid))
           and proc.poll() is None and time.monotonic() < deadline):
        time.sleep(0.05)
    path = pid_file(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(service)))
    return service


def stop_process(state_dir: Path, name: str, timeout_s: float = 60) -> bool:
    """Stop a process that `start_process` started: SIGTERM, then SIGKILL. False if none ran."""
    service = read_pid_file(state_dir, name)
    if service is None:
        return False
    stopped = False
    if service.is_alive():
        _signal_group(service.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while service.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if service.is_alive():
            _signal_group(service.pid, signal.SIGKILL)
            time.sleep(0.5)
        stopped = True
    pid_file(state_dir, name).unlink(missing_ok=True)
    return stopped


def port_is_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_owner(port: int) -> str:
    """Best-effort description of the process listening on a local TCP port, for error messages."""
    if shutil.which("ss"):
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out:
            return out.splitlines()[0].split()[-1]
    return "an unknown process"


def tail(path: str | Path, lines: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return "(no log written)"


def first_error(path: str | Path, lines: int = 200) -> str | None:
    """The first line among the log's last `lines` that names an exception: a JVM's cause (a port
    in use, say) sits above the stack trace that fills its very last lines. Only the end is read,
    since a service's log is appended to across its starts."""
    return next((line.strip() for line in tail(path, lines).splitlines() if "Exception:" in line),
                None)


def check_free_space(path: Path, needed: int = MIN_FREE_BYTES) -> None:
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if free < needed:
        raise StackError(
            f"Only {free / 1024**2:.0f} MiB free under {path}; the stack needs at least "
            f"{needed / 1024**2:.0f} MiB. Free some disk space, or point CLICKSTREAM_CACHE_DIR and "
            f"CLICKSTREAM_STATE_DIR at a larger disk."
        )


def wait_for(what: str, probe, *, service: ServiceProcess, timeout_s: float):
    """Poll `probe()` until it returns a truthy value; fail fast with the log if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _still_alive(service):
            cause = first_error(service.log)
            raise StackError(
                f"{what} exited during start-up{f': {cause}' if cause else ''}. Last lines of "
                f"{service.log}:\n{tail(service.log)}"
            )
        result = probe()
        if result:
            return result
        time.sleep(0.5)
    raise StackError(
        f"{what} did not become healthy within {timeout_s:.0f} s. "
        f"Last lines of {service.log}:\n{tail(service.log)}"
    )


def _still_alive(service: ServiceProcess, grace_s: float = 1.0) -> bool:
    """False only once the process has been gone for all of `grace_s`. While a launcher script execs the
    next program (spark-submit -> spark-class -> java), /proc can show an empty command line for a
    moment, and one such read once reported a healthy start-up as a crash."""
    deadline = time.monotonic() + grace_s
    while not service.is_alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    children: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            children.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:  # a thread that ended meanwhile; its siblings still count
            continue
    return children + [d for c in children for d in descendants(c)]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


@dataclass(frozen=True)
class Members:
    """The processes of one local cluster (Kafka's brokers, Elasticsearch's nodes), numbered from
    1: how to name, launch and ask each of them."""

    what: str  # "Kafka 4.1.1 broker"
    count: int
    name: Callable[[int], str]
    launch: Callable[[int], ServiceProcess]
    probe: Callable[[int], object]  # truthy once the member answers
    timeout_s: float

    def start_all(self, state_dir: Path) -> list[ServiceProcess]:
        """Launch every member that does not run, then wait for each: a cluster of several answers
        only once enough of its members have found each other."""
        launched = []
        for number in range(1, self.count + 1):
            running = read_pid_file(state_dir, self.name(number))
            if running is None or not running.is_alive():
                launched.append((number, self.launch(number)))
        for number, service in launched:
            self._wait(number, service)
        return [service for _, service in launched]

    def start_one(self, number: int) -> ServiceProcess:
        """One member alone, into the cluster the others keep."""
        service = self.launch(number)
        self._wait(number, service)
        return service

    def _wait(self, number: int, service: ServiceProcess) -> None:
        wait_for(f"{self.what} {number}", lambda: self.probe(number), service=service,
                 timeout_s=self.timeout_s)
