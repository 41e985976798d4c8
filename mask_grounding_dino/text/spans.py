"""Phrases inside a caption, as character spans: the one place that knows how a class list
becomes a ``"a . b ."`` prompt and where each phrase sits in it, and how spans become rows of a
token map. Used by the data side (training captions, positive maps) and by the model's
post-processing and prompt chunking alike, so both sides agree on every character.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: ``(start, end)`` character offsets, end exclusive.
Span = tuple[int, int]

SEPARATOR = " . "
TERMINATOR = " ."


def join_phrases(phrases: Sequence[str]) -> tuple[str, list[list[Span]]]:
    """``"a . b . c ."`` and the span of each phrase in it."""
    pieces, spans, pos = [], [], 0
    for i, phrase in enumerate(phrases):
        if i:
            pieces.append(SEPARATOR)
            pos += len(SEPARATOR)
        pieces.append(phrase)
        spans.append([(pos, pos + len(phrase))])
        pos += len(phrase)
    caption = "".join(pieces) + (TERMINATOR if phrases else "")
    return caption, spans


def find_phrase(caption: str, phrase: str, start: int = 0) -> Span | None:
    """First whole-word, case-insensitive occurrence of ``phrase`` in ``caption`` at or after
    ``start``; None when absent."""
    phrase = phrase.strip()
    if not phrase:
        return None
    pattern = re.compile(r"(?<![0-9a-z])" + re.escape(phrase.lower()) + r"(?![0-9a-z])")
    m = pattern.search(caption.lower(), start)
    return (m.start(), m.end()) if m else None


def locate_phrases(caption: str, phrases: Sequence[str]) -> list[list[Span]]:
    """Character span of each phrase in ``caption``: searched in order (each after the
    previous match, falling back to the start), lower-case, whole words; ``[]`` if absent."""
    out: list[list[Span]] = []
    cursor = 0
    for phrase in phrases:
        found = find_phrase(caption, phrase, cursor)
        if found is None:
            found = find_phrase(caption, phrase, 0)
        if found is None:
            out.append([])
            continue
        out.append([found])
        cursor = found[1]
    return out


def spans_to_token_map(rows: Sequence[Sequence[Span]], offsets: Sequence[tuple[int, int]],
                       max_text_len: int) -> np.ndarray:
    """Binary ``[R, max_text_len]`` float32: token j is on in row r when its characters overlap
    one of the row's spans. ``offsets``: per token ``(start, end)``; ``(0, 0)`` = special."""
    table = np.zeros((len(rows), int(max_text_len)), np.float32)
    if not rows or not len(offsets):
        return table
    off = np.asarray(offsets[:max_text_len], dtype=np.int64).reshape(-1, 2)
    starts, ends = off[:, 0], off[:, 1]
    real = ends > starts
    for r, spans in enumerate(rows):
        for s, e in spans:
            if e > s:
                hit = real & (starts < e) & (ends > s)
                table[r, : len(hit)][hit] = 1.0
    return table
