"""An exact cache of a frozen text encoder's output, one entry per phrase.

Inside BERT every token attends only to the tokens of its own phrase and
position ids restart at 0 in each phrase (``text/inputs.py``). A phrase's
output therefore depends on nothing but its own token ids: "red circle ." is
encoded identically wherever it sits in a caption and whatever surrounds it.
Training captions are shuffled class lists, so whole captions rarely repeat,
but phrases always do. With the encoder frozen and in eval mode (no dropout),
each phrase is encoded once and captions are assembled from cached pieces: the
result equals running the encoder on the caption (up to float rounding).

Phrases are the runs that start where ``position_ids == 0``; a batch whose
phrase mask or token types do not follow that layout is encoded normally.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from .text_encoder import run_text_encoder


def phrase_segments(position_ids: Tensor) -> list[list[tuple[int, int]]]:
    """Per row, ``(start, end)`` of every run beginning at a position id 0."""
    segments = []
    for row in position_ids.tolist():
        starts = [i for i, p in enumerate(row) if p == 0] + [len(row)]
        segments.append(list(zip(starts[:-1], starts[1:])))
    return segments


def _block_mask(segments: list[list[tuple[int, int]]], length: int, device) -> Tensor:
    mask = torch.zeros(len(segments), length, length, dtype=torch.bool, device=device)
    for b, row in enumerate(segments):
        for start, end in row:
            mask[b, start:end, start:end] = True
    return mask


class PhraseFeatureCache:
    """LRU cache ``phrase token ids -> [len, H]`` features of one text encoder.

    Args:
        max_entries: phrases kept (least recently used ones are dropped).
    """

    def __init__(self, max_entries: int = 50_000):
        self.max_entries = int(max_entries)
        self._store: OrderedDict[tuple[int, ...], Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    @staticmethod
    def usable(encoder: nn.Module) -> bool:
        """Only a frozen encoder in eval mode gives the same output every time."""
        return not encoder.training and not any(p.requires_grad for p in encoder.parameters())

    def encode(self, encoder: nn.Module, input_ids: Tensor, self_attention_masks: Tensor, position_ids: Tensor,
               token_type_ids: Tensor) -> Tensor:
        """Same contract as :func:`run_text_encoder`: ``[B, L, H]`` token features."""
        segments = phrase_segments(position_ids)
        length = input_ids.shape[1]
        if bool(token_type_ids.any()) or not torch.equal(
                _block_mask(segments, length, input_ids.device), self_attention_masks.bool()):
            return run_text_encoder(encoder, input_ids, self_attention_masks, position_ids, token_type_ids)
        ids = input_ids.tolist()
        keys = [[tuple(ids[b][s:e]) for s, e in row] for b, row in enumerate(segments)]
        missing = list(dict.fromkeys(k for row in keys for k in row if k not in self._store))
        self.misses += len(missing)
        if missing:
            self._encode_missing(encoder, missing, input_ids.device)
        rows = []
        for row in keys:
            parts = []
            for key in row:
                feature = self._store[key]
                self._store.move_to_end(key)
                parts.append(feature)
            rows.append(torch.cat(parts, 0))
        self.hits += sum(len(r) for r in keys)
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)
        return torch.stack(rows, 0)

    @torch.no_grad()
    def _encode_missing(self, encoder: nn.Module, phrases: list[tuple[int, ...]], device) -> None:
        longest = max(len(p) for p in phrases)
        ids = torch.zeros(len(phrases), longest, dtype=torch.long, device=device)
        real = torch.zeros(len(phrases), longest, dtype=torch.bool, device=device)
        for i, phrase in enumerate(phrases):
            ids[i, :len(phrase)] = torch.tensor(phrase, device=device)
            real[i, :len(phrase)] = True
        # Each phrase attends to itself only; padding rows attend to themselves (unused).
        attend = (real[:, :, None] & real[:, None, :]) | torch.eye(longest, dtype=torch.bool, device=device)
        positions = torch.arange(longest, device=device).expand(len(phrases), longest)
        out = run_text_encoder(encoder, ids, attend, positions, torch.zeros_like(ids))
        for i, phrase in enumerate(phrases):
            self._store[phrase] = out[i, :len(phrase)].detach().clone()
