"""A throw-away PostgreSQL server on loopback for the shared-storage tests.

PostgreSQL refuses to run as root, so the server runs as the unprivileged ``nobody`` user
(through ``runuser``) from a folder that user owns; trust authentication on 127.0.0.1 only.
``start_server`` returns None with the reason when no server can be started here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

USER = "nobody"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_user(argv: list[str]) -> list[str]:
    return argv if os.geteuid() != 0 else ["runuser", "-u", USER, "--", *argv]


def unavailable() -> str | None:
    for tool in ("initdb", "pg_ctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: no unprivileged user can start PostgreSQL"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install mask-grounding-dino[postgres])"
    return None


@contextlib.contextmanager
def postgres_server():
    """Yields an SQLAlchemy URL of a fresh database; stops the server and removes its files."""
    root = tempfile.mkdtemp(prefix="mgd_pg_", dir="/tmp")
    os.chmod(root, 0o777)
    data, port = os.path.join(root, "data"), _free_port()
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    try:
        subprocess.run(_as_user(["initdb", "-D", data, "-U", "automl", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        subprocess.run(_as_user(["pg_ctl", "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w",
                                 "start"]), check=True, capture_output=True, timeout=120)
        url = f"postgresql+psycopg2://automl@127.0.0.1:{port}/postgres"
        _wait_ready(url)
        yield url
    finally:
        subprocess.run(_as_user(["pg_ctl", "-D", data, "-m", "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    import sqlalchemy

    deadline = time.time() + timeout
    while True:
        try:
            with sqlalchemy.create_engine(url).connect():
                return
        except sqlalchemy.exc.OperationalError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)
