"""Operations fixtures: a real PostgreSQL server, free loopback ports, bounded subprocesses."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mm_pipeline_tests.conftest import REPO

VENV_BIN = REPO / ".venv" / "bin"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, interval=0.5):
    """Poll ``predicate`` until it is truthy; fail with ``what`` on timeout or if ``proc`` died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited early with code {proc.returncode}")
        time.sleep(interval)
    raise AssertionError(f"{what}: not ready after {timeout:.0f} s")


# Dagster maps SIGTERM onto the SIGINT handler, and a shell that starts pytest in the background leaves SIGINT
# ignored in every child; this shim restores the default so that SIGINT/SIGTERM stop the server cleanly.
_EXEC_WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.Popen:
    """Start a long-running command in its own process group, stdout+stderr to ``log``."""
    handle = log.open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _EXEC_WITH_DEFAULT_SIGINT, *argv],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        handle.close()


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """Interrupt ``proc``'s process group (it and the children it started), kill what is left, reap ``proc``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Children (a webserver's code server, a run worker) share the group; leave none behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=grace)


def log_tail(path: Path, n: int = 4000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-n:]
    return ""


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    def env(self, dbname: str | None = None) -> dict[str, str]:
        """The ``DAGSTER_POSTGRES_*`` variables that ``deploy/dagster.yaml`` reads."""
        return {
            "DAGSTER_POSTGRES_HOST": self.host,
            "DAGSTER_POSTGRES_PORT": str(self.port),
            "DAGSTER_POSTGRES_USER": self.user,
            "DAGSTER_POSTGRES_PASSWORD": self.password,
            "DAGSTER_POSTGRES_DB": dbname or self.dbname,
        }

    def connect(self, dbname: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.dbname,
            connect_timeout=10,
        )

    def create_database(self, name: str) -> str:
        conn = self.connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name


def postgres_bin_dir() -> Path | None:
    """Debian's newest ``/usr/lib/postgresql/<v>/bin`` with initdb and pg_ctl, else one on PATH."""
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    found = shutil.which("initdb")
    if found:
        candidates.insert(0, Path(found).resolve().parent)
    for folder in reversed(candidates):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def as_server_user(argv: list[str], user: str | None) -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as ``user`` when we are root."""
    if user is None:
        return argv
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user, "--", *argv]
    return ["su", user, "-s", "/bin/sh", "-c", shlex.join(argv)]


def server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
            check=True,
        )
    return "postgres"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster from Debian's packages on 127.0.0.1:<free port>, stopped at the end."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql"
        )
    user = server_user()
    # Not under pytest's tmp dir: /tmp/pytest-of-root is 0700, so the postgres user could not enter it.
    root = Path(tempfile.mkdtemp(prefix="mm_pg_"))
    data, sockets, log, pwfile = root / "data", root / "sock", root / "server.log", root / "pwfile"
    password = "dagster-test"

    def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            as_server_user(list(argv), user), capture_output=True, text=True, timeout=timeout, cwd=root
        )

    started = False
    try:
        sockets.mkdir()
        pwfile.write_text(password + "\n")
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (root, sockets, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(root, 0o700)
        init = run(
            str(bin_dir / "initdb"),
            *("-D", str(data), "-U", "dagster", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"),
            *("--auth-host=scram-sha-256", "--auth-local=trust"),
        )
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
        port = free_port()
        options = (
            f"-c listen_addresses={LOOPBACK} -p {port} -c unix_socket_directories={sockets} -c fsync=off"
        )
        start = run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"
        )
        started = start.returncode == 0
        assert started, f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log_tail(log)}"
        server = Postgres(LOOPBACK, port, "dagster", password, "postgres")
        yield Postgres(LOOPBACK, port, "dagster", password, server.create_database("mm_pipeline"))
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(root, ignore_errors=True)
