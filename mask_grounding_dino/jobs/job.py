"""``Job``: a read-only snapshot of one job's database row."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from .status import TERMINAL


@dataclasses.dataclass(frozen=True)
class Job:
    """What the database knows about a job when it was read (``Workspace.get_job`` rereads).

    ``spec_data`` / ``spec_overrides``: the request as given (the spec file's contents and the
    dotted overrides); ``filled``: the spec keys the job layer set at the last launch, each
    ``{"key", "function", "value", "note"}``; ``metrics``: the job's key numbers; ``outputs``:
    name -> file or folder (``model`` is what a child job receives as ``parent_model``).
    """

    id: str
    action: str
    status: str
    name: str | None = None
    parent_id: str | None = None
    spec_file: str | None = None
    spec_data: dict = dataclasses.field(default_factory=dict)
    spec_overrides: dict = dataclasses.field(default_factory=dict)
    workdir: str = ""
    results_dir: str = ""
    automl_policy: str | None = None
    automl_decision: str | None = None
    automl_note: str | None = None
    filled: list | None = None
    metrics: dict | None = None
    outputs: dict | None = None
    reason: str | None = None
    failed_parent: str | None = None
    attempts: int = 0
    cancel_requested: bool = False
    exit_code: int | None = None
    created_at: float = 0.0
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    run_seconds: float = 0.0
    heartbeat_at: float | None = None
    host: str | None = None
    boot_id: str | None = None
    claimer_pid: int | None = None
    claimer_start: str | None = None
    supervisor_pid: int | None = None
    supervisor_start: str | None = None
    process_pid: int | None = None
    process_start: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def label(self) -> str:
        """``<short id> (<action>[, <name>])`` for messages."""
        return f"{self.short_id} ({self.action}{', ' + self.name if self.name else ''})"

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def spec_path(self) -> str:
        """The spec as run (written at each launch)."""
        return os.path.join(self.results_dir, "spec.yaml")

    @property
    def log_path(self) -> str:
        return os.path.join(self.results_dir, "log.txt")

    @property
    def status_path(self) -> str:
        return os.path.join(self.results_dir, "status.json")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
