"""Mask Grounding DINO: Grounding DINO + the dynamic-conv mask branch + the ReLA region head.

Parameter names follow the original Grounding DINO state dict (``backbone.0.*``,
``bert.*``, ``feat_map``, ``input_proj``, ``transformer.*``, ``bbox_embed``,
``class_embed``), TAO's for the heads (``mask_head.*``, ``rela.*``), so official
and TAO checkpoints load by name (see ``model/checkpoint``).

Entry points: ``forward`` (TAO's inputs) or, to reuse work, ``encode_image`` once
per image + ``encode_text`` once per caption + ``forward_features``.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import SpecError
from .backbones import Joiner, build_backbone
from .features import ImageFeatures, TextFeatures
from .heads import ContrastiveEmbed
from .layers import MLP, inverse_sigmoid
from .ms_deform_attn import MultiScaleDeformableAttention
from .outputs import GroundingOutputs, LayerPrediction
from .position_encoding import PositionEmbeddingSineHW
from .text_encoder import build_text_encoder, run_text_encoder, text_config_dict
from .transformer import Transformer, TransformerOutput

#: Constructor arguments that are run-time settings, not architecture: left out of
#: ``build_config`` (a deployed or reloaded model needs none of them; the text encoder's saved
#: config replaces loading its weights).
RUNTIME_ARGS = frozenset({"pretrained_backbone_path", "load_text_weights", "activation_checkpoint",
                          "precise_msda"})


def constructor_args() -> tuple[str, ...]:
    """Every keyword argument of :class:`MaskGroundingDINO`: the one list of the model's
    arguments (spec keys, extras, what ``build_config`` stores and ``from_config`` passes)."""
    return tuple(name for name in inspect.signature(MaskGroundingDINO.__init__).parameters if name != "self")


def _group_count(channels: int) -> int:
    """GroupNorm groups for the input projections: 32 as the original, fewer when the width
    would leave a group a single channel (a 1x1 map would then have nothing to normalise)."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and (channels // g >= 2 or g == 1))


class MaskGroundingDINO(nn.Module):
    """Args are the spec's ``model`` keys (TAO names, TAO defaults) plus:

    activation_checkpoint: TAO's ``train.activation_checkpoint`` (recompute blocks in backward).
    backbone_overrides: architecture overrides for the backbone family (e.g. a Swin's
        ``embed_dim`` / ``depths``), used for imported checkpoints whose backbone is not a preset.
    text_encoder_config: a saved text-encoder config dict; builds that architecture
        (random weights) instead of resolving ``text_encoder_type``.
    load_text_weights: False skips loading pretrained text weights (a full checkpoint follows).
    ref_eps: inverse-sigmoid clamp of the box refinement (1e-5: TAO and transformers; the original release 1e-3).
    fusion_droppath: drop-path of the image-text fusion (TAO fixes 0.1).
    """

    def __init__(self, *, backbone: str = "swin_tiny_224_1k", hidden_dim: int = 256, nheads: int = 8,
                 enc_layers: int = 6, dec_layers: int = 6, dim_feedforward: int = 2048, dropout_ratio: float = 0.0,
                 enc_n_points: int = 4, dec_n_points: int = 4, num_feature_levels: int = 4,
                 return_interm_indices: list[int] | tuple[int, ...] = (1, 2, 3, 4), num_queries: int = 900,
                 two_stage_type: str = "standard", embed_init_tgt: bool = True, pre_norm: bool = False,
                 dilation: bool = False, train_backbone: bool = True, pretrained_backbone_path: str | None = None,
                 pe_temperatureH: float = 20, pe_temperatureW: float = 20,
                 text_encoder_type: str = "bert-base-uncased", max_text_len: int = 256,
                 class_embed_bias: bool = False, log_scale: Any = None, aux_loss: bool = True,
                 has_mask: bool = True, num_region_queries: int = 100, use_dn: bool = True, dn_number: int = 0,
                 dn_box_noise_scale: float = 1.0, dn_label_noise_ratio: float = 0.5, decoder_sa_type: str = "sa",
                 precise_msda: bool = False,
                 activation_checkpoint: bool = False, backbone_overrides: dict | None = None,
                 text_encoder_config: dict | None = None, load_text_weights: bool = True, ref_eps: float = 1e-5,
                 fusion_droppath: float = 0.1):
        arguments = {name: value for name, value in locals().items() if name not in ("self", "__class__")}
        super().__init__()
        indices = [int(i) for i in return_interm_indices]
        _check_architecture(hidden_dim, nheads, dim_feedforward, num_feature_levels, indices, two_stage_type,
                            pre_norm, decoder_sa_type, enc_layers, dec_layers)
        self.hidden_dim, self.num_queries, self.max_text_len = hidden_dim, num_queries, max_text_len
        self.num_feature_levels, self.aux_loss, self.ref_eps = num_feature_levels, aux_loss, ref_eps
        self.dn_number = int(dn_number) if use_dn else 0
        self.dn_box_noise_scale, self.dn_label_noise_ratio = dn_box_noise_scale, dn_label_noise_ratio

        # --- image side
        body = build_backbone(backbone, out_indices=[i for i in indices if i < 4], dilation=dilation,
                              activation_checkpoint=activation_checkpoint, **(backbone_overrides or {}))
        self.backbone = Joiner(body, PositionEmbeddingSineHW(hidden_dim // 2, pe_temperatureH, pe_temperatureW))
        self.input_proj = self._input_projections(body.num_channels, num_feature_levels, hidden_dim)
        self.level_strides = list(body.strides)
        while len(self.level_strides) < num_feature_levels:
            self.level_strides.append(self.level_strides[-1] * 2)

        # --- text side
        self.bert = build_text_encoder(text_encoder_type, config=text_encoder_config, load_weights=load_text_weights)
        self.text_cache = None  # a PhraseFeatureCache while the text encoder is frozen (see enable_text_cache)
        self.feat_map = nn.Linear(self.bert.config.hidden_size, hidden_dim)
        nn.init.xavier_uniform_(self.feat_map.weight)
        nn.init.zeros_(self.feat_map.bias)

        # --- transformer and heads (shared across decoder layers, as the original)
        self.transformer = Transformer(d_model=hidden_dim, nhead=nheads, num_queries=num_queries,
                                       num_encoder_layers=enc_layers, num_decoder_layers=dec_layers,
                                       dim_feedforward=dim_feedforward, dropout=dropout_ratio,
                                       num_feature_levels=num_feature_levels, enc_n_points=enc_n_points,
                                       dec_n_points=dec_n_points, two_stage_type=two_stage_type,
                                       embed_init_tgt=embed_init_tgt, fusion_droppath=fusion_droppath,
                                       activation_checkpoint=activation_checkpoint, ref_eps=ref_eps)
        bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        nn.init.zeros_(bbox_embed.layers[-1].weight)
        nn.init.zeros_(bbox_embed.layers[-1].bias)
        class_embed = ContrastiveEmbed(max_text_len=max_text_len, log_scale=log_scale, bias=class_embed_bias)
        self.bbox_embed = nn.ModuleList([bbox_embed] * dec_layers)
        self.class_embed = nn.ModuleList([class_embed] * dec_layers)
        self.transformer.decoder.bbox_embed = self.bbox_embed
        self.transformer.decoder.class_embed = self.class_embed
        if two_stage_type == "standard":
            self.transformer.enc_out_bbox_embed = copy.deepcopy(bbox_embed)
            self.transformer.enc_out_class_embed = copy.deepcopy(class_embed)
        if self.dn_number > 0:
            # Content embeddings of the denoising queries (one per token position, + 1 unknown).
            self.label_enc = nn.Embedding(max_text_len + 1, hidden_dim)

        # --- mask branch and region head (brief E's modules)
        self.mask_head = self.rela = None
        if has_mask:
            from .mask_head import MaskHead
            self.mask_head = MaskHead(hidden_dim=hidden_dim)
            if num_region_queries > 0:
                from .rela import RegionHead
                self.rela = RegionHead(hidden_dim=hidden_dim, num_region_queries=num_region_queries,
                                       num_layers=dec_layers, nheads=nheads, dim_feedforward=dim_feedforward,
                                       pre_norm=pre_norm)
            self._mask_levels = self._levels_at_strides((8, 16, 32))

        # TAO's precise_msda: deformable attention whose gradients are identical on every run. A
        # training setting, not architecture: not in build_config (deployed models run no backward).
        for module in self.modules():
            if isinstance(module, MultiScaleDeformableAttention):
                module.deterministic = bool(precise_msda)

        if not train_backbone:
            self.backbone[0].requires_grad_(False)
        self.backbone_load_summary = None
        if pretrained_backbone_path:
            from .checkpoint.backbone import load_backbone_weights
            self.backbone_load_summary = load_backbone_weights(self.backbone[0], pretrained_backbone_path)

        # Everything needed to rebuild this architecture (stored in our checkpoints): every
        # constructor argument but the run-time ones, so a new argument cannot be forgotten here.
        arguments.update(return_interm_indices=indices, text_encoder_config=text_config_dict(self.bert))
        self.build_config: dict[str, Any] = {k: v for k, v in arguments.items() if k not in RUNTIME_ARGS}

    def enable_text_cache(self, max_entries: int = 50_000) -> None:
        """Encode each phrase once while ``bert`` is frozen and in eval mode (exact; see text_cache.py)."""
        from .text_cache import PhraseFeatureCache
        self.text_cache = PhraseFeatureCache(max_entries)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, model_cfg, **overrides) -> "MaskGroundingDINO":
        """From the spec's ``model`` section (a ``ModelConfig``, or a dict with TAO keys and
        possibly our extra constructor arguments, e.g. a preset); other keys (loss weights...)
        are not the architecture's and are ignored.

        ``overrides`` adds non-spec arguments, e.g. ``activation_checkpoint=cfg.train.activation_checkpoint``.
        """
        get = model_cfg.get if isinstance(model_cfg, dict) else (lambda k, d=None: getattr(model_cfg, k, d))
        kwargs = {k: get(k) for k in constructor_args() if get(k) is not None}
        if kwargs.get("pretrained_backbone_path") in ("", "???"):
            kwargs.pop("pretrained_backbone_path")
        kwargs.update(overrides)
        return cls(**kwargs)

    @staticmethod
    def _input_projections(in_channels: list[int], num_levels: int, hidden_dim: int) -> nn.ModuleList:
        """1x1 conv + GroupNorm per backbone level, then 3x3 stride-2 convs for the extra levels."""
        groups = _group_count(hidden_dim)
        projs = [nn.Sequential(nn.Conv2d(c, hidden_dim, 1), nn.GroupNorm(groups, hidden_dim)) for c in in_channels]
        c = in_channels[-1]
        for _ in range(num_levels - len(in_channels)):
            projs.append(nn.Sequential(nn.Conv2d(c, hidden_dim, 3, stride=2, padding=1),
                                       nn.GroupNorm(groups, hidden_dim)))
            c = hidden_dim
        for proj in projs:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        # Channels-last like the backbones' maps (NHWC convolutions; the transformer then
        # flattens them to tokens without a copy).
        return nn.ModuleList(projs).to(memory_format=torch.channels_last)

    def _levels_at_strides(self, strides: tuple[int, ...]) -> list[int]:
        missing = [s for s in strides if s not in self.level_strides]
        if missing:
            raise SpecError(f"model.return_interm_indices: the mask branch needs feature levels at strides 8, 16 "
                            f"and 32; this configuration has strides {self.level_strides}")
        return [self.level_strides.index(s) for s in strides]

    # ------------------------------------------------------------------ entry points
    def encode_image(self, inputs: Tensor, pixel_mask: Tensor | None = None) -> ImageFeatures:
        """``inputs [B,3,H,W]`` (normalised, zero-padded right/bottom), ``pixel_mask [B,H,W]``
        bool (True = padding; None = no padding) -> :class:`ImageFeatures`."""
        b, _, h, w = inputs.shape
        if pixel_mask is None:
            pixel_mask = torch.zeros((b, h, w), dtype=torch.bool, device=inputs.device)
        features, masks, pos = self.backbone(inputs, pixel_mask)
        srcs = [proj(f) for proj, f in zip(self.input_proj, features)]
        for level in range(len(srcs), self.num_feature_levels):
            src = self.input_proj[level](features[-1] if level == len(features) else srcs[-1])
            mask = torch.nn.functional.interpolate(pixel_mask[None].float(), size=src.shape[-2:]).to(torch.bool)[0]
            srcs.append(src)
            masks.append(mask)
            pos.append(self.backbone[1](mask).to(src.dtype))
        image_sizes = torch.stack([(~pixel_mask[:, :, 0]).sum(1), (~pixel_mask[:, 0, :]).sum(1)], -1)
        return ImageFeatures(srcs=srcs, masks=masks, pos=pos, strides=list(self.level_strides),
                             image_sizes=image_sizes, input_size=(h, w))

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, token_type_ids: Tensor,
                    text_token_mask: Tensor) -> TextFeatures:
        """TAO's text inputs (``attention_mask [B,L]`` = real tokens, ``text_token_mask [B,L,L]`` =
        phrase mask) -> :class:`TextFeatures`, truncated to ``max_text_len`` tokens."""
        n = self.max_text_len
        input_ids, attention_mask, position_ids = input_ids[:, :n], attention_mask[:, :n], position_ids[:, :n]
        token_type_ids, text_token_mask = token_type_ids[:, :n], text_token_mask[:, :n, :n].bool()
        cache = self.text_cache
        if cache is not None and cache.usable(self.bert):
            hidden = cache.encode(self.bert, input_ids, text_token_mask, position_ids, token_type_ids)
        else:
            hidden = run_text_encoder(self.bert, input_ids, text_token_mask, position_ids, token_type_ids)
        return TextFeatures(encoded=self.feat_map(hidden), token_mask=attention_mask.bool(),
                            position_ids=position_ids, self_attention_masks=text_token_mask)

    def forward(self, inputs: Tensor, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
                token_type_ids: Tensor, text_token_mask: Tensor, pixel_mask: Tensor | None = None,
                targets: list | None = None) -> GroundingOutputs:
        """TAO's six inputs (+ ``pixel_mask [B,H,W]`` True = pad) -> :class:`GroundingOutputs`.

        ``targets`` (training only) feed the denoising queries when ``dn_number > 0``.
        """
        image = self.encode_image(inputs, pixel_mask)
        text = self.encode_text(input_ids, attention_mask, position_ids, token_type_ids, text_token_mask)
        return self.forward_features(image, text, targets=targets)

    def forward_features(self, image: ImageFeatures, text: TextFeatures, targets: list | None = None
                         ) -> GroundingOutputs:
        """Encoder, decoder and heads on precomputed image and text features."""
        text = text.expand(image.batch_size)
        prefix = dn_meta = None
        if self.training and self.dn_number > 0 and targets is not None:
            from .denoising import build_denoising_queries
            prefix, dn_meta = build_denoising_queries(
                targets, num_groups=self.dn_number, label_noise_ratio=self.dn_label_noise_ratio,
                box_noise_scale=self.dn_box_noise_scale, num_queries=self.num_queries,
                num_labels=self.max_text_len, label_enc=self.label_enc)
        out = self.transformer(image, text, prefix)
        result = self._outputs(out, image, text, dn_meta)
        if self.training and self.dn_number > 0 and dn_meta is None:
            # No box to denoise in this batch: keep ``label_enc`` in the graph for DDP.
            result.pred_boxes = result.pred_boxes + 0.0 * self.label_enc.weight[0, 0]
        return result

    # ------------------------------------------------------------------ heads
    def _layer_prediction(self, out: TransformerOutput, layer: int, text: TextFeatures) -> LayerPrediction:
        hidden = out.hidden[layer]
        boxes = (self.bbox_embed[layer](hidden) + inverse_sigmoid(out.references[layer], self.ref_eps)).sigmoid()
        logits = self.class_embed[layer](hidden, out.memory_text, text.token_mask)
        return LayerPrediction(pred_logits=logits, pred_boxes=boxes)

    def _outputs(self, out: TransformerOutput, image: ImageFeatures, text: TextFeatures, dn_meta) -> GroundingOutputs:
        num_layers = len(out.hidden)
        text_mask = torch.zeros((text.token_mask.shape[0], self.max_text_len), dtype=torch.bool,
                                device=text.token_mask.device)
        text_mask[:, :text.token_mask.shape[1]] = text.token_mask
        if self.training:
            layers = [self._layer_prediction(out, i, text) for i in range(num_layers)]
        else:  # only the last layer is needed
            layers = [self._layer_prediction(out, num_layers - 1, text)]
        nd = out.num_prefix
        split = [LayerPrediction(p.pred_logits[:, nd:], p.pred_boxes[:, nd:]) for p in layers]
        result = GroundingOutputs(pred_logits=split[-1].pred_logits, pred_boxes=split[-1].pred_boxes,
                                  text_mask=text_mask, input_size=image.input_size)
        if self.training:
            result.aux_outputs = split[:-1] if self.aux_loss else []
            if out.enc_queries is not None:
                enc_logits = self.transformer.enc_out_class_embed(out.enc_queries, out.memory_text, text.token_mask)
                result.enc_outputs = LayerPrediction(pred_logits=enc_logits, pred_boxes=out.enc_boxes)
            if dn_meta is not None:
                from .denoising import split_denoising_outputs
                split_denoising_outputs(result, layers, dn_meta)
        if self.mask_head is not None:
            self._mask_outputs(result, out, image, text)
        return result

    def _mask_outputs(self, result: GroundingOutputs, out: TransformerOutput, image: ImageFeatures,
                      text: TextFeatures) -> None:
        from .mask_head import memory_to_maps, reference_to_pixels
        maps = memory_to_maps(out.memory, out.spatial_shapes, self._mask_levels)   # strides 8, 16, 32
        mask_feats, fused = self.mask_head.features(maps)
        nd = out.num_prefix
        if self.training:
            hidden = [h[:, nd:] for h in out.hidden]
            refs = [reference_to_pixels(r[:, nd:], image.image_sizes) for r in out.references[:-1]]

            def mask_fn(layer: int, batch_idx: Tensor, query_idx: Tensor) -> Tensor:
                """Mask logits [K, H/4, W/4] of matched (image, query) pairs at decoder ``layer``."""
                return self.mask_head.predict_pairs(mask_feats, hidden[layer][batch_idx, query_idx],
                                                    refs[layer][batch_idx, query_idx], batch_idx)

            result.mask_fn = mask_fn
        else:
            # TAO: the last layer's queries with the reference that layer received.
            ref_xy = reference_to_pixels(out.references[-2][:, nd:], image.image_sizes)
            result.pred_masks = self.mask_head.predict(mask_feats, out.hidden[-1][:, nd:], ref_xy)
        if self.rela is not None:
            pos = [image.pos[i] for i in self._mask_levels]
            region = self.rela(maps[::-1], pos[::-1], fused, out.memory_text, text.token_mask)
            result.no_targets = region.no_targets
            result.union_mask_logits = region.union_mask_logits
            result.minimap = region.minimap


def _check_architecture(hidden_dim, nheads, dim_feedforward, num_feature_levels, indices, two_stage_type, pre_norm,
                        decoder_sa_type, enc_layers, dec_layers) -> None:
    """Reject spec values this architecture cannot be built with (one line per problem)."""
    problems = []
    if len(indices) != num_feature_levels:
        problems.append(f"model.num_feature_levels ({num_feature_levels}) must equal the number of "
                        f"model.return_interm_indices ({indices})")
    if any(i not in (0, 1, 2, 3, 4) for i in indices) or len(set(indices)) != len(indices):
        problems.append(f"model.return_interm_indices: distinct values in 0..4 expected, got {indices}")
    if nheads % 2 or hidden_dim % nheads or hidden_dim % (nheads // 2 or 1):
        problems.append(f"model.nheads ({nheads}) must be even and divide model.hidden_dim ({hidden_dim}) "
                        "(the text layers use nheads/2)")
    if dim_feedforward % 2 or (dim_feedforward // 2) % max(nheads // 2, 1):
        problems.append(f"model.dim_feedforward ({dim_feedforward}) must be even and divisible by nheads "
                        "(the fusion layers use dim_feedforward/2 split over nheads/2 heads)")
    if two_stage_type not in ("standard", "no"):
        problems.append(f"model.two_stage_type: '{two_stage_type}' is not allowed; use standard or no")
    if pre_norm:
        problems.append("model.pre_norm: true is not supported (TAO's transformer rejects it too); use false")
    if decoder_sa_type != "sa":
        problems.append(f"model.decoder_sa_type: '{decoder_sa_type}' is not allowed; use sa")
    if enc_layers < 1 or dec_layers < 1:
        problems.append("model.enc_layers and model.dec_layers must be at least 1")
    if problems:
        raise SpecError(problems)
