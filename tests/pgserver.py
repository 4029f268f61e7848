"""A throwaway PostgreSQL server for the tests: Debian's postgresql package, a temporary cluster on 127.0.0.1.

`initdb` into a temporary folder, `pg_ctl start` on a free loopback port, one database per test
(`Server.database()`), `pg_ctl stop -m immediate` and the folder removed at the end, also when a test
fails. PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user (the
package creates it), its folder given to that user. The commands are the ones docs/tune.md shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from conftest import free_port

USER = "dlrun"
PASSWORD = "dlrun"


def binaries() -> Path | None:
    """Return the folder of PostgreSQL's server programs (the newest version installed), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass
class Server:
    """A running server: its folder, port and the URL of a database on it."""

    folder: Path
    port: int
    bin: Path

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create a new empty database; return its URL."""
        name = "t" + uuid.uuid4().hex[:12]
        self._psql(f"CREATE DATABASE {name} OWNER {USER}")
        return self.url(name)

    def _psql(self, command: str) -> None:
        import psycopg

        address = {"host": "127.0.0.1", "port": self.port, "user": USER, "password": PASSWORD, "dbname": "postgres"}
        with psycopg.connect(**address, autocommit=True) as connection:
            connection.execute(command)


def _as_owner(command: list[str]) -> list[str]:
    """Run a server command as the postgres user when we are root (PostgreSQL refuses root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def start() -> Server:
    """Initialise a cluster in a temporary folder and start it on 127.0.0.1 (stop it with `stop`)."""
    bin = binaries()
    folder = Path(tempfile.mkdtemp(prefix="dlrun-pg-"))
    data = folder / "data"
    password = folder / "password"
    password.write_text(PASSWORD + "\n", encoding="utf-8")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(password, "postgres", "postgres")
    port = free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True, "cwd": folder}
    init = [str(bin / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(password), "--auth", "md5"]
    done = subprocess.run(_as_owner([*init, "--no-sync", "-E", "UTF8", "--locale", "C"]), **quiet)
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stderr}")
    server = Server(folder, port, bin)
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=60"
    log = folder / "server.log"
    done = subprocess.run(
        _as_owner([str(bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]), **quiet
    )
    if done.returncode != 0:
        reason = log.read_text() if log.exists() else done.stderr
        stop(server)
        raise RuntimeError(f"pg_ctl start failed: {reason}")
    return server


def stop(server: Server) -> None:
    """Stop the server at once and remove its folder."""
    data = server.folder / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(
            _as_owner([str(server.bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=server.folder,
        )
    shutil.rmtree(server.folder, ignore_errors=True)
