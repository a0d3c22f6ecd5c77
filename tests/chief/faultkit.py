"""What the fault tests and ``benchmarks/faults.py`` inject faults with: a chief process that
is restarted as a supervisor would (never with ``--takeover``), a PostgreSQL server of their
own (so a restart cuts no one else's connections), a small filesystem that fills up or turns
read-only, and the processes a process started.

Linux only, and the PostgreSQL server and the filesystem need root (CI runs as root); the
fixtures built on them skip with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
WAITING_LINE = "waiting for the chief lease"


class Chief:
    """``python -m hpsearch.chief`` restarted as a supervisor restarts it: the same command
    each time, no ``--takeover``; the chief itself waits for a dead chief's lease."""

    def __init__(self, storage: str, port: int, log: Path, *args: str) -> None:
        self.command = [
            sys.executable,
            "-m",
            "hpsearch.chief",
            "--storage",
            storage,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
        ]
        self.address = f"127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process and return at once (it may wait for the lease first)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        return self.proc

    def start(self, timeout: float = 60.0) -> float:
        """Spawn and wait until it serves; the seconds that took."""
        started = time.monotonic()
        self.wait_serving(timeout, self.spawn())
        return time.monotonic() - started

    def wait_serving(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        """Until gRPC health answers SERVING (RuntimeError if ``proc`` exits first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the chief exited with {proc.returncode}: {self.tail()}")
            if serving(self.address):
                return
            time.sleep(0.05)
        raise TimeoutError(f"chief at {self.address} not serving after {timeout}s")

    def kill(self) -> None:
        """SIGKILL, as a crash: no lease released, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def signal_thread(pid: int, tid: int, signum: int) -> None:
    """Send ``signum`` to thread ``tid`` of process ``pid`` (Linux ``tgkill``), as the
    kernel may deliver a process-directed signal to any thread that does not block it."""
    import ctypes
    import platform

    numbers = {"x86_64": 234, "aarch64": 131}  # SYS_tgkill
    machine = platform.machine()
    if machine not in numbers:
        raise RuntimeError(f"tgkill's syscall number on {machine} is not known here")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(numbers[machine], pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}, {signum}) failed")


def serving(address: str, timeout: float = 0.5) -> bool:
    """Whether the chief at ``address`` answers gRPC health SERVING now."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def descendants(pid: int) -> dict[int, str]:
    """The live processes below ``pid`` (children, theirs, ...), pid -> command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                parents[int(entry.name)] = stat[1]
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = _cmdline(child)
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from /proc/<pid>/stat, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command may hold spaces and ')'
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


class PrivatePostgres:
    """A PostgreSQL server of its own in ``directory``, on ``port`` (loopback only), run as
    the ``postgres`` user with Debian's binaries.  ``restart()`` is what ``pg_ctlcluster
    ... restart`` does (a fast shutdown: sessions are ended, transactions in flight rolled
    back) without touching the machine's shared server."""

    def __init__(self, port: int) -> None:
        self.bin = postgres_bin()
        # Its own directory, outside pytest's (whose parents only root may enter).
        self.directory = Path(tempfile.mkdtemp(prefix="hpsearch-postgres-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
            "-c fsync=off -c max_connections=300"
        )

    def start(self) -> None:
        self._ctl("start", "-w", "-o", self._options)

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast", "-w")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast", "-w", "-o", self._options)

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", "-m", "immediate", "-w", check=False)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _ctl(self, *args: str, check: bool = True) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), *args, check=check
        )

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / tool), *args],
            check=check,
            capture_output=True,
            timeout=60,
        )


def postgres_bin() -> Path:
    """Debian's PostgreSQL binaries (the newest installed); RuntimeError if there are none
    or this is not root (the server runs as the ``postgres`` user)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version)
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        raise RuntimeError("a private PostgreSQL server needs root (runuser -u postgres)")
    return versions[-1].parent


def _version(path: Path) -> int:
    name = path.parent.parent.name
    return int(name) if name.isdigit() else 0


class SmallDisk:
    """A tmpfs of ``size`` mounted at ``directory`` (root only): ``fill()`` takes every free
    byte, ``free()`` gives them back, ``read_only()`` / ``writable()`` remount it."""

    def __init__(self, directory: Path, size: str = "16m") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
            check=True,
            capture_output=True,
        )
        self._ballast = directory / "ballast"

    def fill(self) -> None:
        chunk = b"\0" * (1 << 16)
        with self._ballast.open("ab", buffering=0) as ballast:
            try:
                while True:
                    ballast.write(chunk)
            except OSError:  # ENOSPC: full
                pass

    def free(self) -> None:
        self._ballast.unlink(missing_ok=True)

    def read_only(self) -> None:
        self._remount("ro")

    def writable(self) -> None:
        self._remount("rw")

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.directory)], capture_output=True, check=False)

    def _remount(self, mode: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(self.directory)],
            check=True,
            capture_output=True,
        )


def freeze(pid: int) -> None:
    """SIGSTOP: the process and its threads stop where they are (no heartbeats)."""
    os.kill(pid, signal.SIGSTOP)


def thaw(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


class Workers:
    """Threads that each run a worker loop over the Python client (ask, heartbeat, tell)
    until the study is finished, recording what they told and what failed."""

    def __init__(self, address: str, study: str, count: int, *, work_seconds: float) -> None:
        from hpsearch.client import Client

        self.client = Client(address, timeout=5.0, wait_seconds=1.0, retry_seconds=120)
        self.study = study
        self.work_seconds = work_seconds
        #: (trial number, attempt, value) of every tell the chief acknowledged.
        self.told: list[tuple[int, int, float]] = []
        #: every error a call raised: (worker, call, error)
        self.errors: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._loop, args=(f"w{i}",), daemon=True) for i in range(count)
        ]

    def start(self) -> Workers:
        for thread in self.threads:
            thread.start()
        return self

    def wait_told(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.told) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.told)} results after {timeout}s: {self.errors}")
            time.sleep(0.05)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "workers did not finish"
        self.client.close()

    def _loop(self, worker: str) -> None:
        from hpsearch.errors import HpsearchError

        while True:
            try:
                trials = self.client.ask(self.study, worker, timeout=30)
            except HpsearchError as error:
                self._failed(worker, "ask", error)
                continue
            if not trials:
                return
            trial = trials[0]
            value = trial.number * 10.0 + float(trial.params["units"])
            try:
                time.sleep(self.work_seconds / 2)
                self.client.heartbeat(self.study, trial.number, trial.attempt, worker)
                time.sleep(self.work_seconds / 2)
                self.client.tell(self.study, trial.number, trial.attempt, value=value)
            except HpsearchError as error:
                self._failed(worker, "tell", error)
                continue
            with self._lock:
                self.told.append((trial.number, trial.attempt, value))

    def _failed(self, worker: str, call: str, error: Exception) -> None:
        with self._lock:
            self.errors.append((worker, call, f"{type(error).__name__}: {error}"))
        time.sleep(0.2)
