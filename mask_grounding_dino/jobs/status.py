"""Job statuses: TAO's API names, and the names other TAO tools write.

A job is ``Pending`` (queued, or waiting for its parent), ``Running``, then ``Done``,
``Error`` or ``Canceled``. TAO's newer SDK calls success ``Complete``; :func:`normalise`
reads that (and any capitalisation) as ``Done``.
"""

from __future__ import annotations

PENDING = "Pending"
RUNNING = "Running"
DONE = "Done"
ERROR = "Error"
CANCELED = "Canceled"

STATUSES = (PENDING, RUNNING, DONE, ERROR, CANCELED)
TERMINAL = frozenset({DONE, ERROR, CANCELED})
#: A parent in one of these can never become Done without a retry: its waiting children fail.
FAILED = frozenset({ERROR, CANCELED})

_ALIASES = {"complete": DONE, "completed": DONE, "success": DONE, "cancelled": CANCELED, "failure": ERROR,
            "failed": ERROR}


def normalise(name: str) -> str:
    """``"Complete"`` / ``"done"`` / ``"Cancelled"`` -> ``Done`` / ``Done`` / ``Canceled``.

    Raises ``ValueError`` for a name that is no status (callers turn it into a user message).
    """
    text = str(name).strip()
    for status in STATUSES:
        if text.lower() == status.lower():
            return status
    if text.lower() in _ALIASES:
        return _ALIASES[text.lower()]
    raise ValueError(f"unknown job status {name!r}; statuses: {', '.join(STATUSES)}")
