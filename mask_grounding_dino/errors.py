"""Errors that describe a user's mistake (spec, data, paths) rather than a bug.

The CLI catches :class:`UserError`, prints each line of its message prefixed with
``error:`` and exits with code 2. Library code raises these instead of letting a
bare ``KeyError``/``ValueError`` traceback reach the user. Messages name the
file, line or key and say what is wrong and what is allowed.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input. ``problems`` holds one line per problem."""

    exit_code = 2

    def __init__(self, message: str | list[str]):
        self.problems = [message] if isinstance(message, str) else list(message)
        super().__init__("\n".join(self.problems))


class SpecError(UserError):
    """An invalid experiment spec: unknown key, wrong type, value out of range..."""


class DataError(UserError):
    """An invalid or unreadable dataset file, image source or annotation."""


class CheckpointError(UserError):
    """A file that is not a usable checkpoint, or one that does not fit the model."""
