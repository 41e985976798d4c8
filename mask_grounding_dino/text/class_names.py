"""A class list (an OD prompt) from the forms people type, on the command line, in a spec
or in Python:

* a list: ``[red circle, blue square]`` (YAML) or ``["red circle", "blue square"]``;
* Grounding DINO's prompt string: ``"red circle . blue square"`` (a trailing ``.`` is fine);
* a comma string: ``"red circle, blue square"``.

A string is split at ``.`` when it holds one (the delimiter the model itself ends phrases
at), else at ``,``; commas at the ends of ``.`` pieces are separators too. List items are
names as given (numbers become their text; a trailing ``.`` is dropped), so a label map's
names are never split. Spaces are normalised, empty names dropped and duplicates removed
(first kept): the result is the prompt's phrases in order. A label map path stays one name
here (the data layer reads it: ``data/inference_inputs.py``).
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError

#: How the accepted forms are shown in messages.
ACCEPTED_FORMS = "[red circle, blue square], 'red circle . blue square' or 'red circle, blue square'"


def quote_hint(key: str | None = None) -> str:
    """The shell splits an unquoted value at its spaces before we see it: say how to quote."""
    return f"on the command line put quotes around a value with spaces: {key or 'key'}='red circle . blue square'"


class ClassListError(UserError):
    """A value that is not a class list. ``reason`` is the message without the key."""

    def __init__(self, reason: str, where: str | None = None):
        self.reason = reason
        super().__init__(f"{where}: {reason}" if where else reason)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pieces(text: str) -> list[str]:
    if "." not in text:
        return text.split(",")
    return [piece.strip(" ,") for piece in text.split(".")]     # "a, . b": a separator typed twice


def class_names(value: Any, where: str | None = None, *, shell_hint: bool = True) -> list[str]:
    """The class names of ``value`` (see the module docstring), in prompt order.

    Raises :class:`ClassListError` (one line: the accepted forms and, with ``shell_hint``,
    the shell's quoting rule) for anything else, or when no name is left. ``where`` names
    the key in it.
    """
    hint = f"; {quote_hint(where)}" if shell_hint else ""
    pieces: list[str] = []
    if isinstance(value, str):
        pieces = _pieces(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise ClassListError(f"expected a class list such as {ACCEPTED_FORMS}, got the item "
                                     f"{_shown(item)} in {_shown(value)}{hint}", where)
            pieces.append(str(item).rstrip(". "))
    else:
        raise ClassListError(f"expected a class list such as {ACCEPTED_FORMS}, got {_shown(value)}{hint}",
                             where)
    names: list[str] = []
    for name in (" ".join(piece.split()) for piece in pieces):
        if name and name not in names:
            names.append(name)
    if not names:
        raise ClassListError(f"no class name in {_shown(value)}; expected a class list such as {ACCEPTED_FORMS}"
                             f"{hint}", where)
    return names
