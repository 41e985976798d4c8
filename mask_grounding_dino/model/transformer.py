"""Encoder (feature enhancer) + query selection + decoder: the model's ``transformer``.

Official names: ``transformer.{encoder, decoder, level_embed, tgt_embed, enc_output,
enc_output_norm, enc_out_bbox_embed, enc_out_class_embed, refpoint_embed}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .decoder import TransformerDecoder
from .encoder import TransformerEncoder
from .features import ImageFeatures, TextFeatures
from .ms_deform_attn import MultiScaleDeformableAttention
from .query_selection import encoder_proposals, select_topk


@dataclass
class QueryPrefix:
    """Extra decoder queries placed before the selected ones (denoising groups).

    tgt [B,Nd,C], refpoints_unsig [B,Nd,4] (logit space), attn_mask [Nd+Q, Nd+Q]
    bool (True = may not attend), for the decoder's self-attention.
    """

    tgt: Tensor
    refpoints_unsig: Tensor
    attn_mask: Tensor


@dataclass
class TransformerOutput:
    """hidden: per decoder layer ``[B, Nd+Q, C]``; references: L+1 sigmoid boxes
    ``[B, Nd+Q, 4]`` (see ``DecoderOutput``); enc_queries / enc_boxes ``[B,Q,C]`` /
    ``[B,Q,4]``: the selected encoder proposals (two-stage only, not detached);
    memory ``[B,N,C]`` and memory_text ``[B,L,C]``: the enhanced features;
    num_prefix: Nd."""

    hidden: list[Tensor]
    references: list[Tensor]
    enc_queries: Tensor | None
    enc_boxes: Tensor | None
    memory: Tensor
    memory_text: Tensor
    spatial_shapes: list[tuple[int, int]]
    level_start_index: Tensor
    pad_mask: Tensor
    num_prefix: int = 0


def _tokens(x: Tensor) -> Tensor:
    """``[B,C,h,w]`` -> ``[B,h*w,C]``."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1])


def valid_ratio(mask: Tensor) -> Tensor:
    """``[B,h,w]`` pad mask -> ``[B,2]`` (x, y) fraction of valid columns / rows."""
    _, h, w = mask.shape
    valid_h = (~mask[:, :, 0]).sum(1).float() / h
    valid_w = (~mask[:, 0, :]).sum(1).float() / w
    return torch.stack([valid_w, valid_h], -1)


class Transformer(nn.Module):
    """Sizes as TAO's model spec; ``two_stage_type``: ``standard`` (language-guided
    query selection) or ``no`` (learned reference boxes)."""

    def __init__(self, *, d_model: int = 256, nhead: int = 8, num_queries: int = 900, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.0,
                 num_feature_levels: int = 4, enc_n_points: int = 4, dec_n_points: int = 4,
                 two_stage_type: str = "standard", embed_init_tgt: bool = True, text_dropout: float = 0.0,
                 fusion_dropout: float = 0.0, fusion_droppath: float = 0.1, activation_checkpoint: bool = False,
                 ref_eps: float = 1e-5):
        super().__init__()
        self.d_model, self.num_queries, self.two_stage_type = d_model, num_queries, two_stage_type
        self.embed_init_tgt = embed_init_tgt
        self.encoder = TransformerEncoder(num_encoder_layers, d_model, dim_feedforward, dropout, num_feature_levels,
                                          nhead, enc_n_points, text_dropout, fusion_dropout, fusion_droppath,
                                          activation_checkpoint)
        self.decoder = TransformerDecoder(num_decoder_layers, d_model, dim_feedforward, dropout, num_feature_levels,
                                          nhead, dec_n_points, activation_checkpoint, ref_eps)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model)) if num_feature_levels > 1 else None
        uses_tgt_embed = two_stage_type == "no" or embed_init_tgt
        self.tgt_embed = nn.Embedding(num_queries, d_model) if uses_tgt_embed else None
        if two_stage_type == "standard":
            self.enc_output = nn.Linear(d_model, d_model)
            self.enc_output_norm = nn.LayerNorm(d_model)
        else:
            self.refpoint_embed = nn.Embedding(num_queries, 4)
        # Set by the model (heads of the proposal stage).
        self.enc_out_bbox_embed: nn.Module | None = None
        self.enc_out_class_embed: nn.Module | None = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # As the original: Xavier for every matrix, except the deformable attention's own init.
        msda = {id(p) for m in self.modules() if isinstance(m, MultiScaleDeformableAttention) for p in m.parameters()}
        for p in self.parameters():
            if p.dim() > 1 and id(p) not in msda:
                nn.init.xavier_uniform_(p)
        if self.level_embed is not None:
            nn.init.normal_(self.level_embed)

    def forward(self, image: ImageFeatures, text: TextFeatures, prefix: QueryPrefix | None = None) -> TransformerOutput:
        srcs, masks, pos = image.srcs, image.masks, image.pos
        batch = srcs[0].shape[0]
        spatial_shapes_list = [(int(s.shape[-2]), int(s.shape[-1])) for s in srcs]
        # [B,C,h,w] -> [B,h*w,C]: a view for channels-last maps (the backbones' layout).
        src_flat = torch.cat([_tokens(s) for s in srcs], 1)                                   # [B,N,C]
        mask_flat = torch.cat([m.flatten(1) for m in masks], 1)                               # [B,N]
        pos_flat = []
        for level, p in enumerate(pos):
            p = _tokens(p)
            pos_flat.append(p if self.level_embed is None else p + self.level_embed[level].view(1, 1, -1))
        pos_flat = torch.cat(pos_flat, 1)
        spatial_shapes = torch.as_tensor(spatial_shapes_list, dtype=torch.long, device=src_flat.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([valid_ratio(m) for m in masks], 1).to(src_flat.dtype)      # [B,L,2]
        text_pad = ~text.token_mask

        memory, memory_text = self.encoder(
            src_flat, pos_flat, spatial_shapes=spatial_shapes, spatial_shapes_list=spatial_shapes_list,
            level_start_index=level_start_index, valid_ratios=valid_ratios, pad_mask=mask_flat, text=text.encoded,
            text_pad_mask=text_pad, text_self_attention_masks=text.self_attention_masks,
            position_ids=text.position_ids)

        enc_queries = enc_boxes = None
        if self.two_stage_type == "standard":
            out_memory, proposals = encoder_proposals(memory, mask_flat, spatial_shapes_list)
            out_memory = self.enc_output_norm(self.enc_output(out_memory))
            # Max over the real tokens: the -inf padding to max_text_len cannot change it.
            scores = self.enc_out_class_embed(out_memory, memory_text, text.token_mask, pad=False).max(-1)[0]
            boxes_unsig = self.enc_out_bbox_embed(out_memory) + proposals
            sel = select_topk(scores, boxes_unsig, proposals, out_memory, self.num_queries)
            refpoints = sel.boxes_unsig.detach()
            tgt = (self.tgt_embed.weight[None].expand(batch, -1, -1) if self.embed_init_tgt
                   else sel.queries.detach())
            enc_queries, enc_boxes = sel.queries, sel.boxes_unsig.sigmoid()
        else:
            tgt = self.tgt_embed.weight[None].expand(batch, -1, -1)
            refpoints = self.refpoint_embed.weight[None].expand(batch, -1, -1)

        attn_mask = None
        if prefix is not None:
            tgt = torch.cat([prefix.tgt, tgt], 1)
            refpoints = torch.cat([prefix.refpoints_unsig, refpoints], 1)
            attn_mask = prefix.attn_mask[None].expand(batch, -1, -1)
        dec = self.decoder(tgt, memory, memory_pad_mask=mask_flat, refpoints_unsigmoid=refpoints,
                           spatial_shapes=spatial_shapes, level_start_index=level_start_index,
                           valid_ratios=valid_ratios, memory_text=memory_text, text_pad_mask=text_pad,
                           self_attn_mask=attn_mask)
        return TransformerOutput(hidden=dec.hidden, references=dec.references, enc_queries=enc_queries,
                                 enc_boxes=enc_boxes, memory=memory, memory_text=memory_text,
                                 spatial_shapes=spatial_shapes_list, level_start_index=level_start_index,
                                 pad_mask=mask_flat, num_prefix=0 if prefix is None else int(prefix.tgt.shape[1]))
