"""Private PostgreSQL and Redis servers for fault tests: ours to kill and restart, never the shared ones."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import START_TIMEOUT, LiveProcess, free_port


def _wait(check, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready in {timeout} s")
        time.sleep(0.05)


class PrivateRedis:
    """A redis-server on a free loopback port, without persistence (a kill loses its data, as an
    unpersisted production Redis would)."""

    def __init__(self, log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed.")
        self.binary = binary
        self.port = free_port()
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> PrivateRedis:
        self.starts += 1
        log = (self.log_dir / f"redis-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait(self.answers, timeout=10, what="redis-server")
        return self

    def answers(self) -> bool:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis(
            port=self.port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: clients see their connections reset, the queue and pub/sub are gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (initdb -A trust) on a free port, run as the postgres user
    when we are root (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed.")
        self.bin = Path(initdb).parent
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                pytest.skip("Running PostgreSQL as root needs runuser.")
            try:
                import pwd

                account = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("Running PostgreSQL as root needs a postgres OS user.")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        # Not under pytest's tmp dir: the postgres user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="glow-pg-"))
        if self.as_postgres:
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "server.log"

    def _ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_postgres, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            cwd=self.root,
        )

    def init(self) -> PrivatePostgres:
        self._ctl(
            str(self.bin / "initdb"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
            str(self.data),
        )
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._ctl(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """fast: clients are disconnected at once (what a restart does to them)."""
        self._ctl(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def psql(self, sql: str, *, db: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout.strip()

    def copy_database(self, *, source_url: str, name: str) -> str:
        """Create `name` here as a copy (schema and rows) of the database at `source_url`."""
        self.psql(f'CREATE DATABASE "{name}"')
        dump = subprocess.Popen(
            [str(self.bin / "pg_dump"), "--no-owner", "--no-privileges", "-d", source_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        load = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                name,
                "-v",
                "ON_ERROR_STOP=1",
            ],
            stdin=dump.stdout,
            capture_output=True,
            timeout=60,
        )
        dump.stdout.close()
        dump_err = dump.communicate(timeout=60)[1]
        if dump.returncode or load.returncode:
            pytest.fail(f"Copying the test database failed:\n{dump_err!r}\n{load.stderr!r}")
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def spawn_uvicorn(env: dict, log_dir: Path) -> tuple[LiveProcess, str]:
    """One uvicorn (glow.asgi) process with `env`, answering /healthz; its base URL."""
    port = free_port()
    server = LiveProcess(
        f"uvicorn-{port}",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "glow.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env,
        log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        server.check_alive()
        try:
            httpx.get(f"{url}/healthz", timeout=2)
            return server, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"uvicorn did not answer in {START_TIMEOUT} s:\n{server.log()}")
            time.sleep(0.1)


def spawn_worker(env: dict, log_dir: Path, *, pool: str = "solo") -> LiveProcess:
    """A Celery worker on env's queue, started and ready (pool "prefork" runs one child)."""
    name = f"worker-{pool}-{uuid.uuid4().hex[:6]}"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "glow",
        "worker",
        f"--pool={pool}",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-Q",
        env["CELERY_TASK_DEFAULT_QUEUE"],
        "-n",
        f"{name}@%h",
        "-l",
        "info",
    ]
    if pool == "prefork":
        args += ["--concurrency=1"]
    worker = LiveProcess(name, args, env, log_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while " ready." not in worker.log():
        worker.check_alive()
        if time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"The Celery worker was not ready in {START_TIMEOUT} s:\n{worker.log()}")
        time.sleep(0.1)
    return worker


def children_of(pid: int) -> list[int]:
    """Direct child process ids (a prefork worker's pool processes)."""
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in result.stdout.split()]
