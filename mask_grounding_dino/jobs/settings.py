"""Where a workspace is and the job layer's defaults.

The workspace folder is the ``workspace`` argument (``--workspace``), else
``$MASK_GROUNDING_DINO_JOBS``, else ``./mgd_jobs``. It holds ``jobs.db`` (SQLite), one
``results/<job_id>/`` folder per job, ``runner.lock`` and ``runner.log``. The database may be
elsewhere (``database_url`` / ``--db`` / ``$MASK_GROUNDING_DINO_JOBS_DB``).
"""

from __future__ import annotations

import os

WORKSPACE_ENV = "MASK_GROUNDING_DINO_JOBS"
DATABASE_ENV = "MASK_GROUNDING_DINO_JOBS_DB"
DEFAULT_WORKSPACE = "mgd_jobs"

#: A supervisor writes a heartbeat this often (seconds) ...
HEARTBEAT_S = 2.0
#: ... and a running job on another host with no heartbeat for this long has died.
STALE_AFTER_S = 60.0
#: A claimed job whose supervisor has not registered after this long failed to start.
LAUNCH_TIMEOUT_S = 120.0
#: The runner looks for work this often (seconds).
POLL_S = 0.5
#: Cancel: SIGTERM, then SIGKILL after this many seconds.
CANCEL_GRACE_S = 10.0


def workspace_path(path: str | os.PathLike | None = None) -> str:
    return os.path.abspath(os.fspath(path) if path else os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE)


def resolve_database_url(workspace: str, url: str | None = None) -> str:
    return url or os.environ.get(DATABASE_ENV) or f"sqlite:///{os.path.join(workspace, 'jobs.db')}"


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use, counted without importing torch (it is slow to import):
    the driver's device list, narrowed by ``CUDA_VISIBLE_DEVICES``."""
    try:
        present = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return present
    wanted = [d for d in visible.split(",") if d.strip()]
    if any(d.strip().startswith("-") for d in wanted):  # "-1" hides every device
        return 0
    return min(present, len(wanted))


def default_max_concurrent() -> int:
    """One job at a time on a CPU machine; one per visible GPU otherwise."""
    return max(1, visible_gpus())
