"""The AutoML user error (one line, exit 2)."""

from __future__ import annotations

from ..errors import UserError


class AutoMLError(UserError):
    """A bad AutoML setting or a study that cannot go on (names the setting and what is allowed)."""
