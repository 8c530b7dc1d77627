"""A real PostgreSQL server for the tests: ``PENCHANT_TEST_DATABASE_URL`` if set, else a throwaway
cluster started here from the Debian ``postgresql`` package (``.ci/run`` installs it). A missing
server is a failure, never a skip: the suite promises the API runs on PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """Start with :meth:`start`, get per-test databases with :meth:`database`, :meth:`stop` at the end."""

    def __init__(self) -> None:
        self.url = os.environ.get("PENCHANT_TEST_DATABASE_URL")
        self.folder: Path | None = None

    def _run(self, args: list[str]) -> None:
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            args = ["runuser", "-u", "postgres", "--", *args]
        subprocess.run(args, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        if self.url:
            return self.url
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql), and "
                               "PENCHANT_TEST_DATABASE_URL is not set")
        self.folder = Path(tempfile.mkdtemp(prefix="penchant-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = self.folder / "data"
        port = _free_port()
        self._run([initdb, "-D", str(data), "-A", "trust", "-U", "penchant", "--no-sync"])
        self._run([pg_ctl, "-D", str(data), "-w", "-l", str(self.folder / "log"), "-o",
                   f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                   "start"])
        self.url = f"postgresql://penchant@127.0.0.1:{port}/postgres"
        return self.url

    def database(self) -> str:
        """A fresh, empty database on the server; its URL."""
        import sqlalchemy as sa

        base = self.start()
        name = "t_" + uuid.uuid4().hex[:12]
        engine = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return base.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        if self.folder is not None:
            self._run([_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"])
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
