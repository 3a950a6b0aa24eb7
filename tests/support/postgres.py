"""A throwaway PostgreSQL cluster for the tests: initdb on a temporary directory, a unix socket
there and 127.0.0.1 on a free port, ``fsync=off``; stopped and deleted at the end.

    with PostgresCluster() as pg:
        url = pg.create_database("t1")       # postgresql://postgres@/t1?host=/tmp/brpg-.../sock
        PgJournal.open(url)

or, for a session, the ``postgres_cluster`` fixture (tests/conftest.py) and ``pg_url`` for a
fresh database per test. PostgreSQL refuses to run as root: as root, the server's commands run
as the ``postgres`` system user (``runuser``), which owns the temporary directory. The server
binaries are found under /usr/lib/postgresql/*/bin (the newest version), else on PATH; ``make
install`` installs Debian's ``postgresql`` package where they are missing.

In CI (``CI=true``) a cluster that cannot start fails the tests that need it; elsewhere they are
skipped with the reason.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

SERVER_USER = "postgres"
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "max_wal_size": "4GB",  # a million-row load without checkpoints in its way
    "checkpoint_timeout": "30min",
    "log_min_messages": "warning",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started here; the message says why."""


def server_bin() -> Path | None:
    """The directory of the newest installed server's binaries."""

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", p.parent.parent.name)) or (0,)

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One PostgreSQL server on a temporary directory, started on ``start()`` (or ``with``)."""

    def __init__(self, bin_dir: Path | None = None, startup_timeout: int = 60) -> None:
        self.bin_dir = bin_dir or server_bin()
        self.startup_timeout = startup_timeout
        self.root: Path | None = None
        self.port = 0
        self._running = False

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "the cluster is not started"
        return self.root / "sock"

    def url(self, dbname: str = "postgres") -> str:
        """A URL over the unix socket."""
        return f"postgresql://{SERVER_USER}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, dbname: str = "postgres") -> str:
        """A URL over 127.0.0.1, as another host would reach the server."""
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> PostgresCluster:
        if self.bin_dir is None:
            raise PostgresUnavailable(
                "no PostgreSQL server found (/usr/lib/postgresql/*/bin/initdb); run `make "
                "install` as root, or apt-get install postgresql"
            )
        as_root = os.geteuid() == 0
        if as_root:
            try:
                owner = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root and there is no '{SERVER_USER}' system user to run the "
                    "server as (PostgreSQL refuses root)"
                ) from None
        # Short: a unix socket's path is limited to about 100 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="brpg-", dir="/tmp"))
        atexit.register(self.stop)
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if as_root:
            for path in (self.root, sock):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb", "-D", str(data), "-U", SERVER_USER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        with open(data / "postgresql.conf", "a") as conf:
            for key, value in SETTINGS.items():
                conf.write(f"{key} = '{value}'\n")
        self.port = _free_port()
        options = f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1"
        try:
            self._run(
                "pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-o", options,
                "-w", "-t", str(self.startup_timeout), "start",
            )  # fmt: skip
        except PostgresUnavailable as exc:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise PostgresUnavailable(f"{exc}\n{tail}") from None
        self._running = True
        return self

    def _run(self, tool: str, *args: str) -> None:
        assert self.bin_dir is not None
        cmd = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        # The server's own environment: not ours (PGDATA, PGHOST... of the user's shell).
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        try:
            proc = subprocess.run(
                cmd, env=env, cwd="/", capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{tool}: {exc}") from None
        if proc.returncode != 0:
            raise PostgresUnavailable(
                f"{tool} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-1500:]}"
            )

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.root is None:
            return
        if self._running:
            with contextlib.suppress(PostgresUnavailable):
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
            self._running = False
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def cluster_fixture() -> Iterator[PostgresCluster]:
    """For a session-scoped fixture: a started cluster, or a skip (a failure in CI)."""
    import pytest

    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL must run in CI and could not start: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL is not available here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
