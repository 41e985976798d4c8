"""Prompts longer than ``max_text_len`` tokens: split at phrase boundaries, run, merge.

A class list such as LVIS's 1,203 names does not fit the text encoder's 256
tokens. :func:`plan_chunks` packs the phrases, in order, into as few captions
``"a . b . c ."`` as fit (greedy packing is optimal for an order-preserving
split); each phrase lands whole in exactly one chunk. The model encodes the
image once and runs the text side per chunk (:func:`detect_chunked` takes that
as a callable). Each chunk is post-processed up to its candidates, the
candidates are merged with labels mapped back to global phrase ids, and a final
top-``num_select`` + NMS runs over all chunks, so the result equals a single pass
in form (one ranked list per image); masks are brought to the image size once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..text.spans import join_phrases
from ..errors import UserError
from .outputs import GroundingOutputs
from .postprocess import Candidates, PostProcessor, PromptLayout, Sizes, nms_order
from .results import Detections

#: Tokens a caption spends besides its phrases: [CLS] and [SEP].
SPECIAL_TOKENS = 2
#: Tokens each phrase spends besides its own: the " ." that closes it.
DELIMITER_TOKENS = 1


def phrase_token_counts(phrases: Sequence[str], text_processor) -> list[int]:
    """Word-piece count of each phrase on its own (no special tokens)."""
    if not phrases:
        return []
    ids = text_processor.tokenizer(list(phrases), add_special_tokens=False)["input_ids"]
    return [len(i) for i in ids]


def plan_chunks(phrases: Sequence[str], text_processor, *, max_tokens: int | None = None,
                max_phrases: int | None = None) -> list[list[int]]:
    """Split ``phrases`` into chunks whose captions fit ``max_tokens`` (default: the
    processor's ``max_text_len``), in order, never splitting a phrase.

    Args:
        max_phrases: optional cap on phrases per chunk (like MMDetection's ``--chunked-size``).
    Returns:
        phrase indices of each chunk; a prompt that fits gives one chunk.
    Raises:
        UserError: a phrase has no tokens, or cannot fit a chunk even alone.
    """
    # Never above the processor's own limit: it truncates longer captions.
    limit = min(int(max_tokens or text_processor.max_text_len), int(text_processor.max_text_len))
    counts = phrase_token_counts(phrases, text_processor)
    problems = []
    for i, n in enumerate(counts):
        need = SPECIAL_TOKENS + n + DELIMITER_TOKENS
        if n == 0:
            problems.append(f"prompt phrase {i} ({phrases[i]!r}) has no tokens: a class name needs text")
        elif need > limit:
            problems.append(f"prompt phrase {i} ({phrases[i][:60]!r}) is {n} tokens; with [CLS], [SEP] and "
                            f"' .' it needs {need} > max_text_len {limit}: shorten it or raise "
                            "model.max_text_len")
    if problems:
        raise UserError(problems)
    chunks: list[list[int]] = []
    used = limit  # forces a new chunk for the first phrase
    for i, n in enumerate(counts):
        cost = n + DELIMITER_TOKENS
        full = max_phrases is not None and chunks and len(chunks[-1]) >= max_phrases
        if used + cost > limit or full:
            chunks.append([])
            used = SPECIAL_TOKENS
        chunks[-1].append(i)
        used += cost
    return _verify(chunks, phrases, text_processor, limit)


def _verify(chunks: list[list[int]], phrases: Sequence[str], text_processor, limit: int) -> list[list[int]]:
    """Tokenise each planned caption; if one is longer than counted (a tokenizer that merges
    across " . "), move its last phrase to the next chunk until it fits."""
    out, pending = [], [list(c) for c in chunks]
    while pending:
        chunk = pending.pop(0)
        while len(chunk) > 1 and text_processor.num_tokens(join_phrases([phrases[i] for i in chunk])[0]) > limit:
            if not pending:
                pending.append([])
            pending[0].insert(0, chunk.pop())
        if chunk:
            out.append(chunk)
    return out


@dataclass
class PromptChunk:
    """One chunk: its global phrase indices and the layout of its caption."""

    indices: list[int]
    layout: PromptLayout

    @property
    def caption(self) -> str:
        return self.layout.caption or ""


def build_chunks(phrases: Sequence[str], text_processor, *, max_tokens: int | None = None,
                 max_phrases: int | None = None) -> list[PromptChunk]:
    """:func:`plan_chunks` plus each chunk's caption and phrase map."""
    return [PromptChunk(idx, PromptLayout.from_phrases([phrases[i] for i in idx], text_processor))
            for idx in plan_chunks(phrases, text_processor, max_tokens=max_tokens, max_phrases=max_phrases)]


def _merge_order(parts: Sequence[Detections], chunk_phrase_indices: Sequence[Sequence[int]], *,
                 num_select: int | None, nms_threshold: float, class_aware_nms: bool
                 ) -> tuple[Detections, torch.Tensor]:
    """Concatenate with global labels; return it and the order to keep (score-ranked, top-k, NMS)."""
    if len(parts) != len(chunk_phrase_indices):
        raise ValueError(f"merge: {len(parts)} detection sets for {len(chunk_phrase_indices)} chunks")
    relabelled = []
    for det, indices in zip(parts, chunk_phrase_indices):
        mapping = torch.as_tensor(list(indices), dtype=torch.long, device=det.device)
        if len(det) and int(det.labels.max()) >= len(mapping):
            raise ValueError(f"merge: label {int(det.labels.max())} outside a chunk of {len(mapping)} phrases")
        labels = mapping[det.labels] if len(det) else det.labels
        relabelled.append(Detections(boxes=det.boxes, scores=det.scores, labels=labels, phrases=det.phrases,
                                     masks=det.masks, no_target=det.no_target, image_size=det.image_size))
    merged = Detections.cat(relabelled)
    order = merged.scores.argsort(descending=True, stable=True)
    if num_select is not None:
        order = order[:num_select]
    order = nms_order(merged.boxes[order], merged.scores[order], merged.labels[order], nms_threshold,
                      class_aware=class_aware_nms, index=order)
    return merged, order


def merge_chunk_detections(detections: Sequence[Detections], chunk_phrase_indices: Sequence[Sequence[int]], *,
                           num_select: int | None = None, nms_threshold: float = 0.0,
                           class_aware_nms: bool = False) -> Detections:
    """Merge one image's per-chunk detections.

    Labels (chunk-local phrase indices) become global ones through
    ``chunk_phrase_indices``; then all are ranked by score, the top ``num_select``
    kept and NMS (``nms_threshold`` > 0) applied. ``no_target`` holds when every chunk
    says so.
    """
    merged, order = _merge_order(detections, chunk_phrase_indices, num_select=num_select,
                                 nms_threshold=nms_threshold, class_aware_nms=class_aware_nms)
    return merged.select(order)


def merge_chunk_candidates(candidates: Sequence[Candidates], chunk_phrase_indices: Sequence[Sequence[int]], *,
                           num_select: int | None = None, nms_threshold: float = 0.0,
                           class_aware_nms: bool = False) -> Candidates:
    """:func:`merge_chunk_detections` at the candidate stage (low-resolution masks carried along)."""
    merged, order = _merge_order([c.detections for c in candidates], chunk_phrase_indices,
                                 num_select=num_select, nms_threshold=nms_threshold,
                                 class_aware_nms=class_aware_nms)
    logits = None
    if candidates[0].mask_logits is not None:
        logits = torch.cat([c.mask_logits for c in candidates])
    return Candidates(merged, logits, candidates[0].input_size).select(order)


def detect_chunked(run_chunk: Callable[[PromptChunk], GroundingOutputs], chunks: Sequence[PromptChunk],
                   postprocessor: PostProcessor, orig_sizes: Sizes, input_sizes: Sizes) -> list[Detections]:
    """Detect a long class list on a batch of images that share it.

    Args:
        run_chunk: runs the model's text side for one chunk on the already encoded images
            (e.g. ``lambda c: model.forward_features(image_feats, encode(c.caption))``) and
            returns its eval outputs for the whole batch.
        chunks: from :func:`build_chunks`.
    Returns:
        one :class:`Detections` per image, labels indexing the full phrase list.
    """
    per_image: list[list[Candidates]] | None = None
    for chunk in chunks:
        outputs = run_chunk(chunk)
        batch = outputs.pred_logits.shape[0]
        cands = postprocessor.candidates(outputs, [chunk.layout] * batch, orig_sizes, input_sizes)
        per_image = [[c] for c in cands] if per_image is None else [p + [c] for p, c in zip(per_image, cands)]
    if per_image is None:
        raise ValueError("detect_chunked: no chunks")
    indices = [c.indices for c in chunks]
    merged = [merge_chunk_candidates(parts, indices, num_select=postprocessor.num_select,
                                     nms_threshold=postprocessor.nms_threshold,
                                     class_aware_nms=postprocessor.class_aware_nms)
              for parts in per_image]
    return postprocessor.finish(merged)
