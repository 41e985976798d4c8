"""The job database. Every SQL statement of the job layer is in this module.

SQLAlchemy Core over a database URL. The default is an embedded SQLite file,
``sqlite:///<workspace>/jobs.db``, in WAL mode (readers never wait for the writer), with a
busy timeout (concurrent writers queue instead of failing) and ``synchronous=FULL`` (a
committed transaction survives a power cut). Write transactions start with ``BEGIN
IMMEDIATE``, so a read-then-write (claim a job, count running ones) cannot interleave with
another process's. The statements are plain Core expressions (no SQLite-only SQL), so a server
database (``postgresql://...``, with its driver installed) takes the same tables by URL.

Tables:
  jobs        one row per job: request (action, spec as given, parent), status, timings,
              the processes running it, what the job layer filled in, metrics and outputs
  job_events  status changes and notes, oldest first (``jobs show`` prints them)
  settings    workspace settings (``max_concurrent``) and ``schema_version``
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import (Boolean, Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        create_engine, event, func, insert, select, update)
from sqlalchemy.engine import Connection, Engine

SCHEMA_VERSION = "1"
_JSON_COLUMNS = ("spec_data", "spec_overrides", "filled", "metrics", "outputs")

metadata = MetaData()

jobs = Table(
    "jobs", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200)),
    Column("action", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("parent_id", String(36), ForeignKey("jobs.id")),
    # The request, frozen at creation: the spec file's contents (later edits of the file do not
    # change the job), the dotted overrides, and the folder relative paths are read from.
    Column("spec_file", Text),
    Column("spec_data", Text, nullable=False),
    Column("spec_overrides", Text, nullable=False),
    Column("workdir", Text, nullable=False),
    Column("results_dir", Text, nullable=False),
    Column("automl_policy", String(8)),
    Column("automl_decision", String(16)),
    Column("automl_note", Text),
    # Written at each launch / end.
    Column("filled", Text),
    Column("metrics", Text),
    Column("outputs", Text),
    Column("reason", Text),
    Column("failed_parent", String(36)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("exit_code", Integer),
    # Unix seconds.
    Column("created_at", Float, nullable=False),
    Column("queued_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("run_seconds", Float, nullable=False, default=0.0),
    Column("heartbeat_at", Float),
    # Who runs it: the runner that claimed it, the supervisor process, the action's process
    # (the leader of the process group that cancel stops). ``*_start`` tells a live process from
    # a later one that reused its pid.
    Column("host", String(255)),
    Column("boot_id", String(64)),
    Column("claimer_pid", Integer),
    Column("claimer_start", String(32)),
    Column("supervisor_pid", Integer),
    Column("supervisor_start", String(32)),
    Column("process_pid", Integer),
    Column("process_start", String(32)),
)
Index("ix_jobs_status", jobs.c.status)
Index("ix_jobs_parent", jobs.c.parent_id)

job_events = Table(
    "job_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("jobs.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", Text, nullable=False),
)
Index("ix_job_events_job", job_events.c.job_id)

settings = Table(
    "settings", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # Let SQLAlchemy's begin/commit drive transactions (the driver's own implicit BEGIN
        # would start them as DEFERRED, too late to take the write lock).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def encode(values: dict[str, Any]) -> dict[str, Any]:
    """Python values -> column values (JSON columns as text)."""
    out = dict(values)
    for key in _JSON_COLUMNS:
        if key in out and out[key] is not None and not isinstance(out[key], str):
            out[key] = json.dumps(out[key], default=str)
    return out


def decode(row) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in _JSON_COLUMNS:
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    return out


class Store:
    """Connections and statements for one database URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _sqlite_engine(url) if url.startswith("sqlite") else create_engine(url, pool_pre_ping=True)
        with self.write() as conn:
            metadata.create_all(conn)
            if self.setting(conn, "schema_version") is None:
                self.set_setting(conn, "schema_version", SCHEMA_VERSION)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions --------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that may write: committed when the block ends, rolled back on error."""
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot (on SQLite a DEFERRED transaction: it takes no write lock)."""
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            with conn.begin():
                yield conn

    # -- jobs ----------------------------------------------------------------------------------
    @staticmethod
    def insert_job(conn: Connection, values: dict[str, Any]) -> None:
        conn.execute(insert(jobs).values(**encode(values)))

    @staticmethod
    def get(conn: Connection, job_id: str) -> dict | None:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return decode(row) if row is not None else None

    @staticmethod
    def lookup(conn: Connection, ref: str) -> list[dict]:
        """Jobs whose id is ``ref``, starts with ``ref``, or whose name is ``ref``."""
        exact = conn.execute(select(jobs).where(jobs.c.id == ref)).first()
        if exact is not None:
            return [decode(exact)]
        rows = conn.execute(select(jobs).where((jobs.c.id.startswith(ref, autoescape=True)) | (jobs.c.name == ref))
                            .order_by(jobs.c.created_at)).all()
        return [decode(r) for r in rows]

    @staticmethod
    def select_jobs(conn: Connection, *, statuses: tuple[str, ...] | None = None, action: str | None = None,
                    parent_id: str | None = None) -> list[dict]:
        query = select(jobs)
        if statuses:
            query = query.where(jobs.c.status.in_(statuses))
        if action:
            query = query.where(jobs.c.action == action)
        if parent_id:
            query = query.where(jobs.c.parent_id == parent_id)
        return [decode(r) for r in conn.execute(query.order_by(jobs.c.created_at, jobs.c.id)).all()]

    @staticmethod
    def count(conn: Connection, statuses: tuple[str, ...]) -> int:
        return int(conn.execute(select(func.count()).select_from(jobs).where(jobs.c.status.in_(statuses)))
                   .scalar_one())

    @staticmethod
    def update_job(conn: Connection, job_id: str, values: dict[str, Any], *, status: str | tuple | None = None,
                   attempt: int | None = None, **column_is: Any) -> bool:
        """Set ``values`` on the job if it is still in ``status`` (and at ``attempt``, and each
        ``column_is`` column holds the given value, ``None`` meaning NULL); True if it was.

        The conditions make each transition safe against a concurrent one: of two processes
        that saw the same state, only the first one's update applies.
        """
        query = update(jobs).where(jobs.c.id == job_id)
        if status is not None:
            query = query.where(jobs.c.status.in_((status,) if isinstance(status, str) else status))
        if attempt is not None:
            query = query.where(jobs.c.attempts == attempt)
        for column, value in column_is.items():
            query = query.where(jobs.c[column].is_(None) if value is None else jobs.c[column] == value)
        return conn.execute(query.values(**encode(values))).rowcount == 1

    # -- events --------------------------------------------------------------------------------
    @staticmethod
    def add_event(conn: Connection, job_id: str, status: str, message: str, at: float | None = None) -> None:
        conn.execute(insert(job_events).values(job_id=job_id, at=time.time() if at is None else at, status=status,
                                               message=message))

    @staticmethod
    def events(conn: Connection, job_id: str) -> list[dict]:
        rows = conn.execute(select(job_events).where(job_events.c.job_id == job_id)
                            .order_by(job_events.c.id)).all()
        return [dict(r._mapping) for r in rows]

    # -- settings ------------------------------------------------------------------------------
    @staticmethod
    def setting(conn: Connection, key: str) -> str | None:
        return conn.execute(select(settings.c.value).where(settings.c.key == key)).scalar_one_or_none()

    @staticmethod
    def set_setting(conn: Connection, key: str, value: str) -> None:
        if conn.execute(update(settings).where(settings.c.key == key).values(value=value)).rowcount == 0:
            conn.execute(insert(settings).values(key=key, value=value))

    # -- checks --------------------------------------------------------------------------------
    def integrity_problems(self) -> list[str]:
        """SQLite's own structural check (empty when the file is sound); nothing to check elsewhere."""
        if not self.url.startswith("sqlite"):
            return []
        with self.engine.connect() as conn:
            rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check").all()]
            rows += [f"foreign key: {tuple(r)}" for r in conn.exec_driver_sql("PRAGMA foreign_key_check").all()]
        return [r for r in rows if r != "ok"]
