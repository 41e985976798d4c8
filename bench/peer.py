"""The peer implementation for the benchmarks: transformers' ``GroundingDinoForObjectDetection``.

Shared by ``bench_train.py`` (training throughput) and ``learning_curve.py`` (mAP against
training minutes). Everything is built offline with random weights, except the text encoder,
which gets the bundled all-MiniLM-L6-v2 weights as ours does (``text_encoder_type: minilm``).

* :func:`small_peer_config`: the small configuration used for the peer's CPU figures (width 128, 2+2 layers,
  100 queries, MiniLM text) with a ResNet backbone shaped like our ``resnet_tiny`` (stem 16,
  one basic block per stage, widths 16-32-64-128, stages 2-4 + one extra level). transformers
  freezes the BatchNorm, the stem and the first stage of any ResNet backbone (a choice made for
  ImageNet weights); that is the peer as shipped, so it is kept and reported.
* :func:`build_peer`: the model, its text encoder loaded with MiniLM and frozen (eval mode,
  no gradients), optionally with an exact per-phrase cache of the text features (the same
  :class:`PhraseFeatureCache` our model uses, wrapped around the peer's text backbone).
* :func:`peer_inputs` / :func:`peer_labels`: our collated :class:`Batch` as the peer's inputs
  and ``labels`` (phrase index per box in caption order == the peer's delimiter groups).
* :func:`peer_detections`: the peer's outputs -> our :class:`Detections` (sigmoid token
  probabilities -> mean over each phrase's tokens -> top-k over queries x phrases -> boxes in
  original pixels), so our COCO evaluator scores both implementations the same way.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

#: The peer's text delimiters (transformers' SPECIAL_TOKENS): [CLS], [SEP], ".", "?".
PEER_DELIMITERS = (101, 102, 1012, 1029)


def minilm_folder() -> str:
    """The bundled all-MiniLM-L6-v2 folder (weights + bert-base-uncased vocabulary)."""
    from mask_grounding_dino.text.tokenizer import bundled_minilm_path
    return str(bundled_minilm_path())


def small_peer_config(*, hidden_dim: int = 128, layers: int = 2, queries: int = 100, ffn: int = 512,
                      heads: int = 8, max_text_len: int = 256):
    """``GroundingDinoConfig`` of the small CPU configuration (see the module docstring)."""
    from transformers import AutoConfig, GroundingDinoConfig, ResNetConfig

    backbone = ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                            layer_type="basic", out_features=["stage2", "stage3", "stage4"])
    text = AutoConfig.from_pretrained(minilm_folder())
    return GroundingDinoConfig(backbone_config=backbone, text_config=text.to_dict(), d_model=hidden_dim,
                               encoder_layers=layers, decoder_layers=layers, encoder_ffn_dim=ffn,
                               decoder_ffn_dim=ffn, encoder_attention_heads=heads, decoder_attention_heads=heads,
                               num_queries=queries, num_feature_levels=4, max_text_len=max_text_len)


class CachedTextBackbone(nn.Module):
    """The peer's frozen text backbone behind an exact per-phrase feature cache.

    The peer calls ``text_backbone(input_ids, mask [B,1,L,L] bool, token_type_ids, position_ids,
    return_dict=...)`` with phrase-block masks and positions restarting at 0 per phrase, the
    layout our :class:`PhraseFeatureCache` is exact for (it falls back to a full pass otherwise).
    """

    def __init__(self, encoder: nn.Module, max_entries: int = 50_000):
        super().__init__()
        from mask_grounding_dino.model.text_cache import PhraseFeatureCache
        self.encoder = encoder
        self.cache = PhraseFeatureCache(max_entries)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor, position_ids: Tensor,
                return_dict: bool = True):
        from transformers.modeling_outputs import BaseModelOutput
        mask = attention_mask[:, 0] if attention_mask.dim() == 4 else attention_mask
        if self.cache.usable(self.encoder):
            hidden = self.cache.encode(self.encoder, input_ids, mask.bool(), position_ids, token_type_ids)
        else:
            from mask_grounding_dino.model.text_encoder import run_text_encoder
            hidden = run_text_encoder(self.encoder, input_ids, mask.bool(), position_ids, token_type_ids)
        return BaseModelOutput(last_hidden_state=hidden) if return_dict else (hidden,)


def build_peer(config=None, *, text_cache: bool = False, seed: int = 0) -> nn.Module:
    """The peer with random weights, MiniLM text weights, text encoder frozen (and cached)."""
    from transformers import BertModel, GroundingDinoForObjectDetection
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()      # MiniLM's unused pooler would print a load report
    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    model = GroundingDinoForObjectDetection(config if config is not None else small_peer_config())
    minilm = BertModel.from_pretrained(minilm_folder(), add_pooling_layer=False)
    text = model.model.text_backbone
    missing, unexpected = text.load_state_dict(minilm.state_dict(), strict=False)
    if [k for k in missing if "position_ids" not in k] or unexpected:
        raise RuntimeError(f"MiniLM does not fit the peer's text backbone: missing {missing}, unexpected {unexpected}")
    text.requires_grad_(False)
    text.eval()
    if text_cache:
        model.model.text_backbone = CachedTextBackbone(text)
    return model


def set_train_mode(model: nn.Module) -> None:
    """Train mode, except the frozen text encoder (eval: no dropout, and the cache stays exact)."""
    model.train()
    text = model.model.text_backbone
    (text.encoder if isinstance(text, CachedTextBackbone) else text).eval()


def peer_inputs(batch) -> dict[str, Tensor]:
    """Our :class:`Batch` as the peer's keyword inputs (its pixel_mask is 1 on real pixels)."""
    text = batch.text
    return {"pixel_values": batch.images, "pixel_mask": (~batch.pixel_mask).long(), "input_ids": text.input_ids,
            "attention_mask": text.attention_mask.long(), "token_type_ids": text.token_type_ids}


def peer_labels(batch) -> list[dict[str, Tensor]]:
    """Targets for the peer's loss: ``class_labels`` = phrase index (caption order), ``boxes``
    cxcywh normalised by the unpadded image, both as in our :class:`Target`."""
    return [{"class_labels": t.labels.long(), "boxes": t.boxes.float()} for t in batch.targets]


def check_phrase_groups(batch) -> None:
    """The peer's label maps split captions at its delimiters; they must match our phrases."""
    ids = batch.text.input_ids
    delim = torch.isin(ids, torch.tensor(PEER_DELIMITERS + (0,)))
    for row, target in zip(range(ids.shape[0]), batch.targets):
        groups = int((delim[row, 1:].int() - delim[row, :-1].int() == -1).sum())
        if groups != len(target.phrases):
            raise ValueError(f"caption {target.caption!r}: the peer sees {groups} phrases, ours {len(target.phrases)}")


@torch.no_grad()
def peer_detections(logits: Tensor, boxes: Tensor, phrase_maps: Sequence[Tensor],
                    orig_sizes: Sequence[tuple[int, int]], num_select: int = 100):
    """The peer's ``logits [B,Q,T]`` (-inf off the text) and ``pred_boxes [B,Q,4]`` (cxcywh, relative
    to the unpadded image) -> one :class:`Detections` per image.

    ``phrase_maps[b] [P, L]``: which tokens make up each phrase (our :class:`PromptLayout`); a
    phrase's score is the mean probability of its tokens, as our post-processing scores OD prompts.
    """
    from mask_grounding_dino.model.results import Detections

    prob = torch.nan_to_num(logits.float().sigmoid(), nan=0.0)    # sigmoid(-inf) = 0 already
    out = []
    for b, (pmap, (height, width)) in enumerate(zip(phrase_maps, orig_sizes)):
        weights = (pmap > 0).float()
        weights = weights / weights.sum(1, keepdim=True).clamp(min=1)
        length = min(weights.shape[1], prob.shape[2])
        scores = prob[b, :, :length] @ weights[:, :length].T                     # [Q, P]
        k = min(num_select, scores.numel())
        top, flat = scores.flatten().topk(k)
        query, label = flat // scores.shape[1], flat % scores.shape[1]
        cx, cy, w, h = boxes[b, query].float().unbind(-1)
        xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        xyxy = (xyxy * torch.tensor([width, height, width, height])).clamp(min=0)
        xyxy[:, 0::2] = xyxy[:, 0::2].clamp(max=width)
        xyxy[:, 1::2] = xyxy[:, 1::2].clamp(max=height)
        out.append(Detections(boxes=xyxy, scores=top, labels=label, phrases=[""] * k,
                              image_size=(int(height), int(width))))
    return out
