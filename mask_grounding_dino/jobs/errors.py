"""The job layer's user errors (one line each, exit code 2 on the command line)."""

from __future__ import annotations

from ..errors import UserError


class JobError(UserError):
    """A request the job layer refuses: unknown job, wrong parent, impossible transition."""


class UnknownJobError(JobError):
    """No job has this id, id prefix or name."""


class JobStateError(JobError):
    """The job is not in a status that allows the request (retry a Done job, cancel an Error...)."""
