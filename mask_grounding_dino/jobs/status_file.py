"""``<job folder>/status.json``: the job's own lines in TAO's status format.

JSON Lines, one object per line with ``date``, ``time``, ``status`` (``STARTED``,
``SUCCESS``, ``FAILURE``), ``verbosity`` and ``message``; the final line carries the job's
metrics under ``kpi``, as TAO's tools read them. Train also writes its per-epoch lines into
the status.json of its own results folder (engine/status.py); when that folder is the job's
folder both writers append to the same file, never at the same time (the job's lines come
before the action starts and after it ended). Each line is one ``write`` of a whole line.
The writer is its own (not engine/status.py's) so that the supervisor never imports Lightning.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any

STARTED, SUCCESS, FAILURE = "STARTED", "SUCCESS", "FAILURE"


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def append_status(path: str, status: str, message: str, *, verbosity: str = "INFO",
                  kpi: dict[str, Any] | None = None, **fields: Any) -> None:
    now = datetime.datetime.now()
    line = {"date": now.strftime("%Y-%m-%d"), "time": now.strftime("%H:%M:%S"), "status": status,
            "verbosity": verbosity, "message": message, **{k: _finite(v) for k, v in fields.items()}}
    if kpi:
        line["kpi"] = {k: _finite(v) for k, v in kpi.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
