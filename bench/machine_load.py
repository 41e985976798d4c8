"""How busy the machine is, for the header and footer of a benchmark's report."""

from __future__ import annotations

import os
import subprocess


def uptime() -> str:
    """The ``uptime`` line (time, up time, users, 1/5/15-minute load averages); just the load
    averages where the command is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
