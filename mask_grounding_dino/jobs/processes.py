"""Processes of the job layer: who they are, whether they still live, starting and stopping them.

A process is identified by host, boot id, pid and its start time (``/proc/<pid>/stat``
field 22), so a pid reused after the process died (or after a reboot: the boot id changes)
is never mistaken for it. A job's action runs as the leader of its own process group (a new
session), and cancel signals that whole group: the action and its data-loading workers.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time


@dataclasses.dataclass(frozen=True)
class ProcessId:
    host: str
    boot_id: str
    pid: int
    start: str


def hostname() -> str:
    return socket.gethostname()


def boot_id() -> str:
    """Changes at every boot (Linux); empty where the system does not tell."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from ``/proc``, or None when there is none (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name may hold spaces and ')'
    return fields[0], fields[19]


def start_time(pid: int) -> str:
    stat = _stat(pid)
    return stat[1] if stat else ""


def identify(pid: int | None = None) -> ProcessId:
    pid = os.getpid() if pid is None else pid
    return ProcessId(hostname(), boot_id(), pid, start_time(pid))


def same_machine(host: str | None, boot: str | None) -> bool:
    """Whether a process recorded with ``host`` / ``boot`` ran on this machine since its last boot."""
    return host == hostname() and (not boot or not boot_id() or boot == boot_id())


def alive(host: str | None, boot: str | None, pid: int | None, start: str | None) -> bool | None:
    """Whether that process still runs: True / False, or None when this machine cannot tell
    (another host: the caller goes by the heartbeat)."""
    if not pid:
        return False
    if host and host != hostname():
        return None
    if boot and boot_id() and boot != boot_id():
        return False  # the machine restarted since
    stat = _stat(pid)
    if stat is None:
        if os.path.isdir("/proc"):
            return False
        try:  # no /proc (macOS): existence only
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state, started = stat
    if state in ("Z", "X"):  # exited, not yet reaped by its parent
        return False
    return not start or started == start


#: The folder this package was imported from: started processes import the same code, whatever
#: their working folder (a source checkout that is not installed, or another installed version).
_IMPORT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env(extra: dict | None = None) -> dict:
    """This process's environment for a started process, with this package importable first."""
    env = {**os.environ, **(extra or {})}
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if not paths or os.path.abspath(paths[0]) != _IMPORT_ROOT:
        env["PYTHONPATH"] = os.pathsep.join([_IMPORT_ROOT, *paths])
    return env


def spawn(argv: list[str], *, log_path: str, cwd: str) -> subprocess.Popen:
    """Start ``argv`` in a new session (its own process group, no terminal), output appended to
    ``log_path``; it outlives the caller."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, cwd=cwd, env=child_env(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)


def signal_group(pgid: int | None, sig: int, start: str | None = None) -> bool:
    """Send ``sig`` to process group ``pgid``; False when it no longer exists.

    When the leader still runs it must be the process recorded (``start``); once the leader is
    gone the group id cannot have been reused while members remain, so they are signalled.
    """
    if not pgid:
        return False
    stat = _stat(pgid)
    if stat is not None and start and stat[1] != start:
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_exists(pgid: int | None) -> bool:
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_group(pgid: int | None, start: str | None, grace: float) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds."""
    if not signal_group(pgid, signal.SIGTERM, start):
        return
    deadline = time.time() + grace
    while time.time() < deadline and group_exists(pgid):
        time.sleep(0.1)
    if group_exists(pgid):
        signal_group(pgid, signal.SIGKILL)


def describe_exit(code: int) -> str:
    """``"exit code 2"`` / ``"killed by SIGKILL"`` for a Popen return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
