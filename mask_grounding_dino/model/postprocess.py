"""Model outputs -> per-image :class:`Detections`, as TAO's post-processing does it.

Steps, batched over images where the tensors allow it:

1. token probabilities = sigmoid(pred_logits) (padded tokens: -inf -> 0);
2. OD: a phrase's score is the **mean** probability of its tokens (the phrase map
   rows are normalised). TAO PyTorch 7 sums 0/1 rows, TAO Deploy and TAO 6
   normalise; we normalise so scores stay in [0, 1] and a two-token class name
   ("traffic light") is not favoured over a one-token one, which keeps
   ``conf_threshold`` meaning the same for every class and matches deployed engines.
   VG: the token probabilities themselves; a token's label is the phrase that
   contains it (tokens outside every phrase: ``[CLS]``, ``.``, padding, never win);
3. top ``num_select`` over queries x labels (or tokens);
4. boxes (normalised to the unpadded input) -> xyxy pixels of the original image,
   clamped to it;
5. IoI filter (region head present, ``ioi_threshold`` > 0): keep an instance when
   |mask & union foreground| / |mask| > ``ioi_threshold``, on the H/4 grid;
6. no-target images return empty (VG; the flag is reported in both modes);
7. ``score >= conf_threshold``, then torchvision NMS at ``nms_threshold``,
   class-agnostic as TAO (``torchvision.ops.nms`` in TAO PyTorch,
   ``cv2.dnn.NMSBoxes`` in TAO Deploy); ``class_aware_nms=True`` is offered;
8. masks of the survivors only: x4 bilinear, crop the padding, bilinear to the
   original size, sigmoid > 0.5 (TAO upsamples all ``num_select`` masks first;
   same result, far less memory);
9. phrases: OD -> the class name; VG -> the words of the detection's phrase whose
   tokens pass ``text_threshold``, completed to whole words ("taxicab", never
   "##cab") and never mixed with another phrase ("car", not "car taxi").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms, nms as box_nms

from ..text.spans import join_phrases, locate_phrases, spans_to_token_map
from ..errors import SpecError
from .outputs import GroundingOutputs
from .results import Detections

MODES = ("OD", "VG")
Sizes = Tensor | Sequence[Sequence[int]]


@dataclass
class PromptLayout:
    """What post-processing needs to know about one image's prompt.

    phrases:     P phrase texts (the class names in OD).
    phrase_map:  [P, L] token weights of each phrase (0/1 or row-normalised; L <= max_text_len);
                 only which entries are non-zero matters (the scores re-weight them equally).
    caption:     the tokenised caption, and ``token_spans`` the character span of each of its
                 tokens ((0, 0) for special tokens). Both optional: without them a VG phrase
                 is reported as the whole phrase text.
    """

    phrases: list[str]
    phrase_map: Tensor
    caption: str | None = None
    token_spans: list[tuple[int, int]] | None = None
    _token_word: list[int] = field(init=False, repr=False)
    _word_spans: list[tuple[int, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.phrase_map.dim() != 2 or self.phrase_map.shape[0] != len(self.phrases):
            raise ValueError(f"PromptLayout: phrase_map {tuple(self.phrase_map.shape)} does not fit "
                             f"{len(self.phrases)} phrases")
        self._index_words()

    def _index_words(self) -> None:
        """Group each phrase's tokens into words: adjacent tokens with touching character spans."""
        self._token_word, self._word_spans = [], []
        if self.token_spans is None or self.caption is None:
            return
        member = self.phrase_map > 0
        owner = member.float().argmax(0).tolist() if member.numel() else []
        is_member = member.any(0).tolist() if member.numel() else []
        prev_owner, prev_end = None, None
        for t, (start, end) in enumerate(self.token_spans):
            if t >= len(is_member) or not is_member[t] or end <= start:
                self._token_word.append(-1)
                prev_owner = None
                continue
            if owner[t] == prev_owner and start == prev_end:
                word_start, _ = self._word_spans[-1]
                self._word_spans[-1] = (word_start, end)
            else:
                self._word_spans.append((start, end))
            self._token_word.append(len(self._word_spans) - 1)
            prev_owner, prev_end = owner[t], end

    def phrase_text(self, label: int, tokens: Sequence[int]) -> str:
        """Whole words of phrase ``label`` that contain any of ``tokens`` (in caption order),
        or the full phrase text when none is known."""
        words = sorted({self._token_word[t] for t in tokens
                        if t < len(self._token_word) and self._token_word[t] >= 0})
        if not words or self.caption is None:
            return self.phrases[label]
        return " ".join(self.caption[s:e] for s, e in (self._word_spans[w] for w in words))

    # ------------------------------------------------------------------ builders
    # Captions and spans follow the data pipeline's rules (``data/captions.py``,
    # ``data/positive_map.py``), so a prompt scores exactly the tokens training used.
    @classmethod
    def from_phrases(cls, phrases: Sequence[str], text_processor) -> "PromptLayout":
        """OD: the caption ``"a . b . c ."`` of a class list, tokenised by ``text_processor``."""
        caption, spans = join_phrases(phrases)
        return cls._from_spans(caption, list(phrases), spans, text_processor)

    @classmethod
    def from_caption(cls, caption: str, text_processor, phrases: Sequence[str] | None = None) -> "PromptLayout":
        """VG: a free caption. Phrases are given (located in order as whole words, case-insensitively;
        one not found gets an all-zero row) or, by default, the runs of tokens between delimiters
        (a referring expression without "." is one phrase)."""
        if phrases is not None:
            return cls._from_spans(caption, list(phrases), locate_phrases(caption, phrases), text_processor)
        enc = text_processor.tokenizer(caption, max_length=text_processor.max_text_len, truncation=True,
                                       return_offsets_mapping=True)
        delims = set(text_processor.delimiter_ids.tolist())
        runs: list[list[int]] = []
        open_run = False
        for tid, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]):
            if tid in delims or e <= s:
                open_run = False
            elif open_run:
                runs[-1][1] = e
            else:
                runs.append([s, e])
                open_run = True
        return cls._from_spans(caption, [caption[s:e] for s, e in runs], [[(s, e)] for s, e in runs],
                               text_processor)

    @classmethod
    def _from_spans(cls, caption: str, phrases: list[str], spans, text_processor) -> "PromptLayout":
        offsets = text_processor.offsets(caption)          # truncated to max_text_len
        pmap = torch.from_numpy(spans_to_token_map(spans, offsets, len(offsets)))
        return cls(phrases=phrases, phrase_map=pmap, caption=caption, token_spans=offsets)


def ioi_keep(union_mask_logits: Tensor, mask_logits: Tensor, threshold: float) -> Tensor:
    """TAO's intersection-over-instance filter.

    Args:
        union_mask_logits: [B, 2, h8, w8] region head (bg, fg) logits.
        mask_logits: [B, K, h4, w4] instance mask logits.
    Returns:
        [B, K] bool: |inst & fg| / |inst| > threshold, with inst = sigmoid > 0.5 and
        fg = argmax == fg bilinearly upsampled to the mask grid and > 0. (TAO writes the
        last test as ``sigmoid(.) > 0.5`` on the 0/1 map, which is the same thing: the
        foreground grows by the interpolation's half cell.)
    """
    fg = (union_mask_logits.argmax(dim=1, keepdim=True) == 1).float()
    fg = F.interpolate(fg, size=mask_logits.shape[-2:], mode="bilinear", align_corners=False) > 0
    inst = mask_logits > 0
    inter = (inst & fg).flatten(2).sum(-1).float()
    area = inst.flatten(2).sum(-1).float()
    return inter / (area + 1e-6) > threshold


def masks_to_image(mask_logits: Tensor, input_size: tuple[int, int], orig_size: tuple[int, int],
                   threshold: float = 0.5, chunk: int = 16) -> Tensor:
    """[N, h4, w4] logits on the padded input -> [N, H, W] bool on the original image.

    x4 bilinear, crop the padding to ``input_size`` (h, w of the resized image), bilinear to
    ``orig_size`` (H, W), sigmoid > ``threshold``. Done ``chunk`` masks at a time.
    """
    n, h4, w4 = mask_logits.shape
    out = torch.zeros((n, *orig_size), dtype=torch.bool, device=mask_logits.device)
    logit_threshold = math.log(threshold / (1.0 - threshold))
    for start in range(0, n, chunk):
        x = mask_logits[start:start + chunk].unsqueeze(0).float()
        x = F.interpolate(x, size=(4 * h4, 4 * w4), mode="bilinear", align_corners=False)
        x = x[:, :, : input_size[0], : input_size[1]]
        x = F.interpolate(x, size=tuple(orig_size), mode="bilinear", align_corners=False)
        out[start:start + chunk] = x[0] > logit_threshold
    return out


def nms_order(boxes: Tensor, scores: Tensor, labels: Tensor, threshold: float, *, class_aware: bool = False,
              index: Tensor | None = None) -> Tensor:
    """Entries of ``index`` (default ``arange(N)``) that NMS keeps, by descending score.

    boxes [N, 4] xyxy, scores [N], labels [N]; ``threshold`` <= 0 keeps all (input order).
    """
    index = torch.arange(len(scores), device=scores.device) if index is None else index
    if threshold <= 0 or len(scores) < 2:
        return index
    if class_aware:
        return index[batched_nms(boxes, scores, labels, threshold)]
    return index[box_nms(boxes, scores, threshold)]


def _as_pairs(sizes: Sizes, batch: int, name: str) -> list[tuple[int, int]]:
    pairs = [(int(h), int(w)) for h, w in (sizes.tolist() if isinstance(sizes, Tensor) else sizes)]
    if len(pairs) != batch:
        raise ValueError(f"PostProcessor: {len(pairs)} {name} for a batch of {batch}")
    return pairs


@dataclass
class Candidates:
    """One image's detections before their masks are brought to the original size.

    ``detections.masks`` is None; ``mask_logits`` [N, h4, w4] are on the padded input's
    stride-4 grid (or None without a mask branch); ``input_size`` (h, w) is the resized
    image inside the padding. Long-prompt chunks are merged at this stage.
    """

    detections: Detections
    mask_logits: Tensor | None
    input_size: tuple[int, int]

    def select(self, index: Tensor) -> "Candidates":
        return Candidates(self.detections.select(index),
                          None if self.mask_logits is None else self.mask_logits[index], self.input_size)


class PostProcessor:
    """TAO's post-processing into :class:`Detections` (see the module docstring).

    Args:
        num_select: candidates kept before filtering (TAO ``model.num_select``).
        text_threshold: token probability above which a token names the detection (VG).
        conf_threshold: minimum score (evaluate default 0.0, inference 0.5 in TAO).
        nms_threshold: IoU of torchvision NMS; 0 disables NMS.
        ioi_threshold: intersection-over-instance with the region head's union mask; 0 disables.
        mode: "OD" (class list, phrase scores) or "VG" (referring caption, token scores).
        class_aware_nms: suppress only boxes of the same label (TAO: False).
        suppress_no_target: return nothing for images the region head calls empty
            (None = only in VG, as TAO's inference).
        mask_threshold: probability above which a mask pixel is on.
    """

    def __init__(self, *, num_select: int = 300, text_threshold: float = 0.3, conf_threshold: float = 0.0,
                 nms_threshold: float = 0.2, ioi_threshold: float = 0.5, mode: str = "OD",
                 class_aware_nms: bool = False, suppress_no_target: bool | None = None,
                 mask_threshold: float = 0.5):
        problems = []
        if mode not in MODES:
            problems.append(f"data_type: '{mode}' is not a mode; allowed: OD, VG")
        if int(num_select) < 1:
            problems.append(f"model.num_select: {num_select} must be >= 1")
        for key, value in (("text_threshold", text_threshold), ("conf_threshold", conf_threshold),
                           ("nms_threshold", nms_threshold), ("ioi_threshold", ioi_threshold)):
            if not 0.0 <= float(value) <= 1.0:
                problems.append(f"{key}: {value} is out of range; allowed: 0.0 to 1.0")
        if not 0.0 < float(mask_threshold) < 1.0:
            problems.append(f"mask_threshold: {mask_threshold} must be strictly between 0 and 1")
        if problems:
            raise SpecError(problems)
        self.num_select = int(num_select)
        self.text_threshold = float(text_threshold)
        self.conf_threshold = float(conf_threshold)
        self.nms_threshold = float(nms_threshold)
        self.ioi_threshold = float(ioi_threshold)
        self.mode = mode
        self.class_aware_nms = class_aware_nms
        self.suppress_no_target = (mode == "VG") if suppress_no_target is None else suppress_no_target
        self.mask_threshold = float(mask_threshold)

    @classmethod
    def from_config(cls, model_cfg, section, data_type: str = "OD") -> "PostProcessor":
        """``model_cfg`` = spec ``model`` (num_select); ``section`` = ``evaluate`` or ``inference``
        (text/conf/nms/ioi thresholds); ``data_type`` = the data source's OD | VG."""
        return cls(num_select=model_cfg.num_select, text_threshold=section.text_threshold,
                   conf_threshold=section.conf_threshold, nms_threshold=section.nms_threshold,
                   ioi_threshold=section.ioi_threshold, mode=data_type)

    # ------------------------------------------------------------------ main entry
    def __call__(self, outputs: GroundingOutputs, prompts: Sequence[PromptLayout], orig_sizes: Sizes,
                 input_sizes: Sizes) -> list[Detections]:
        """
        Args:
            outputs: the model's eval outputs (pred_logits [B,Q,T], pred_boxes [B,Q,4], optional
                pred_masks [B,Q,1,h4,w4], no_targets [B,2], union_mask_logits [B,2,h8,w8]).
            prompts: one :class:`PromptLayout` per image (the same object may repeat).
            orig_sizes: [B, 2] (H, W) of the original images.
            input_sizes: [B, 2] (h, w) of the resized images inside the padded tensor.
        """
        return self.finish(self.candidates(outputs, prompts, orig_sizes, input_sizes))

    @torch.no_grad()
    def candidates(self, outputs: GroundingOutputs, prompts: Sequence[PromptLayout], orig_sizes: Sizes,
                   input_sizes: Sizes) -> list["Candidates"]:
        """Steps 1-7 and 9: everything but bringing masks to the original size."""
        logits = outputs.pred_logits.float()
        b, q, t = logits.shape
        if len(prompts) != b:
            raise ValueError(f"PostProcessor: {len(prompts)} prompts for a batch of {b}")
        orig = _as_pairs(orig_sizes, b, "orig_sizes")
        inp = _as_pairs(input_sizes, b, "input_sizes")
        device = logits.device
        prob = logits.sigmoid()                                                 # [B, Q, T]
        member = _stack_phrase_maps(prompts, t, device) > 0                     # [B, P, T]
        token_phrase = member.float().argmax(1)                                 # [B, T]
        if self.mode == "OD":
            weights = member.float()
            weights = weights / weights.sum(-1, keepdim=True).clamp_min(1.0)
            cand = prob @ weights.transpose(1, 2)                               # [B, Q, P]
            cand = torch.where(member.any(-1)[:, None, :], cand, torch.full_like(cand, -1.0))
        else:
            cand = torch.where(member.any(1)[:, None, :], prob, torch.full_like(prob, -1.0))
        width = cand.shape[-1]
        k = min(self.num_select, q * width)
        scores, flat = cand.flatten(1).topk(k, dim=1)                           # [B, k], sorted
        query = torch.div(flat, max(width, 1), rounding_mode="floor")
        col = flat - query * width
        labels = col if self.mode == "OD" else token_phrase.gather(1, col)

        boxes = _boxes_to_pixels(outputs.pred_boxes.float().gather(1, query[..., None].expand(-1, -1, 4)), orig)
        keep = (scores >= 0) & (scores >= self.conf_threshold)
        masks_lr = None
        if outputs.pred_masks is not None:
            pm = outputs.pred_masks[:, :, 0]
            masks_lr = pm.gather(1, query[..., None, None].expand(-1, -1, *pm.shape[-2:]))  # [B, k, h4, w4]
            if outputs.union_mask_logits is not None and self.ioi_threshold > 0:
                keep &= ioi_keep(outputs.union_mask_logits.float(), masks_lr.float(), self.ioi_threshold)
        if outputs.no_targets is not None:
            no_target = (outputs.no_targets.argmax(-1) == 1).tolist()
        else:
            no_target = [False] * b

        results = []
        for i in range(b):
            idx = keep[i].nonzero().flatten()
            if no_target[i] and self.suppress_no_target:
                idx = idx[:0]
            idx = nms_order(boxes[i, idx], scores[i, idx], labels[i, idx], self.nms_threshold,
                            class_aware=self.class_aware_nms, index=idx)
            phrases = self._phrases(prompts[i], labels[i, idx], prob[i, query[i, idx]], token_phrase[i])
            det = Detections(boxes=boxes[i, idx], scores=scores[i, idx], labels=labels[i, idx],
                             phrases=phrases, no_target=bool(no_target[i]), image_size=orig[i])
            results.append(Candidates(det, None if masks_lr is None else masks_lr[i, idx], inp[i]))
        return results

    @torch.no_grad()
    def finish(self, candidates: Sequence["Candidates"]) -> list[Detections]:
        """Step 8: the masks of the kept candidates at the original image size."""
        out = []
        for c in candidates:
            det = c.detections
            if c.mask_logits is not None:
                det = replace(det, masks=masks_to_image(c.mask_logits, c.input_size, det.image_size,
                                                        self.mask_threshold))
            out.append(det)
        return out

    def _phrases(self, prompt: PromptLayout, labels: Tensor, token_prob: Tensor, token_phrase: Tensor) -> list[str]:
        """labels [n], token_prob [n, T] of each detection's query, token_phrase [T]."""
        if self.mode == "OD":
            return [prompt.phrases[label] for label in labels.tolist()]
        fired = (token_prob > self.text_threshold) & (token_phrase[None, :] == labels[:, None])
        return [prompt.phrase_text(label, row.nonzero().flatten().tolist())
                for label, row in zip(labels.tolist(), fired)]


def _stack_phrase_maps(prompts: Sequence[PromptLayout], length: int, device) -> Tensor:
    """[B, P_max, length]: each prompt's phrase map cropped/zero-padded to the model's text length
    (at least one row, all zero when no prompt has a phrase: such rows never score)."""
    p_max = max([1] + [len(p.phrases) for p in prompts])
    out = torch.zeros((len(prompts), p_max, length), device=device)
    for i, prompt in enumerate(prompts):
        pmap = prompt.phrase_map[:, :length]
        out[i, : pmap.shape[0], : pmap.shape[1]] = pmap.to(device, torch.float32)
    return out


def _boxes_to_pixels(cxcywh: Tensor, orig: list[tuple[int, int]]) -> Tensor:
    """[B, k, 4] normalised cxcywh -> xyxy pixels of each original image, clamped to it."""
    cx, cy, w, h = cxcywh.unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    size = torch.tensor([[w_, h_, w_, h_] for h_, w_ in orig], dtype=xyxy.dtype, device=xyxy.device)
    xyxy = xyxy * size[:, None, :]
    return torch.minimum(xyxy.clamp_min(0), size[:, None, :])
