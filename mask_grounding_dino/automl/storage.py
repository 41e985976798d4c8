"""The Optuna storage every worker of a study shares.

Default: SQLite, ``sqlite:///<automl folder>/automl.db``; any SQLAlchemy URL works
(``postgresql+psycopg2://user@host:5432/db`` for workers on several machines). Workers beat a
heartbeat; a trial whose worker stopped beating for ``GRACE_S`` is marked FAIL and queued
again with the same parameters (RetryHeartbeatStaleTrialCallback), so a killed controller or machine
costs only that trial's lost epochs: the retry resumes from its checkpoints.
"""

from __future__ import annotations

import os
import time

import optuna
import warnings

from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

#: Seconds between a running trial's heartbeats, and the silence after which it is dead.
HEARTBEAT_S = 5
GRACE_S = 20
DB_NAME = "automl.db"


def storage_url(folder: str, url: str | None) -> str:
    return url or f"sqlite:///{os.path.join(os.path.abspath(folder), DB_NAME)}"


#: Workers starting together on a new database race to create Optuna's tables; the loser retries.
OPEN_ATTEMPTS = 5


def open_storage(url: str) -> RDBStorage:
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats and their retry callback are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
        except Exception as exc:  # noqa: BLE001 - any driver error: a one-line message naming the URL
            from sqlalchemy.exc import IntegrityError, ProgrammingError

            if isinstance(exc, (IntegrityError, ProgrammingError)) and attempt + 1 < OPEN_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))  # another worker is creating the tables
                continue
            from .errors import AutoMLError

            raise AutoMLError(f"storage {redact(url)}: cannot open ({exc.__class__.__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    raise AssertionError("unreachable")


def redact(url: str) -> str:
    """The URL without a password (for messages and reports)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: show it as given
        return url
