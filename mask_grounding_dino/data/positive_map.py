"""Positive token maps: which tokens of the caption name each instance (and each phrase).

A token is positive for a character span when their characters overlap; special tokens
([CLS], [SEP], padding) never are. Spans come from the annotation's ``tokens_positive``
when present, else from the caption builder (``CaptionSample.phrase_spans``), else by
locating each phrase in the caption (in order, lower-case, whole words). Rows are
normalised to sum to 1 (TAO's ``create_positive_map_from_span``).

A phrase cut off by ``max_text_len`` truncation has no token left: its row is all zeros and
its index is reported in ``TokenMaps.dropped`` (the dataset warns once); nothing crashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..text.spans import locate_phrases, spans_to_token_map
from .captions import CaptionSample


@dataclass
class TokenMaps:
    """positive_map [N, max_text_len] float (per instance), phrase_map [P, max_text_len]
    float (per phrase), both row-normalised; ``dropped``: phrase indices with no token."""

    positive_map: torch.Tensor
    phrase_map: torch.Tensor
    dropped: list[int]


def normalise_rows(table: np.ndarray) -> np.ndarray:
    """Rows divided by their sums; all-zero rows stay zero."""
    sums = table.sum(axis=1, keepdims=True)
    return np.divide(table, sums, out=np.zeros_like(table), where=sums > 0)


def build_token_maps(sample: CaptionSample, offsets: Sequence[tuple[int, int]], max_text_len: int) -> TokenMaps:
    """Positive maps of ``sample`` for a caption tokenised with ``offsets``
    (``TextProcessor.offsets(sample.caption)``, already truncated to ``max_text_len``)."""
    phrase_spans = list(sample.phrase_spans)
    if len(phrase_spans) != len(sample.phrases):
        phrase_spans = locate_phrases(sample.caption, sample.phrases)
    phrase_table = spans_to_token_map(phrase_spans, offsets, max_text_len)
    inst_spans = sample.instance_spans or [None] * len(sample.labels)
    rows = [given if given else phrase_spans[label] for label, given in zip(sample.labels, inst_spans)]
    inst_table = spans_to_token_map(rows, offsets, max_text_len)
    dropped = [i for i in range(len(sample.phrases)) if not phrase_table[i].any()]
    return TokenMaps(torch.from_numpy(normalise_rows(inst_table)),
                     torch.from_numpy(normalise_rows(phrase_table)), dropped)
