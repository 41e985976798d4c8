"""Hugging Face ``GroundingDinoForObjectDetection`` folders (``config.json`` + weights).

The name map is derived from the published official <-> HF correspondence
(transformers' ``convert_grounding_dino_to_hf.py``), applied in reverse: HF
splits every packed attention projection (official ``in_proj_weight`` / Swin
``qkv``) into query / key / value, which we concatenate back. Both the saved
layout (``...attention.self.query``) and transformers-5's in-memory names
(``...attention.q_proj``, ``...swin.encoder``) are accepted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import Tensor

from ...errors import CheckpointError
from .io import read_safetensors, torch_load

_SB = "model.backbone.conv_encoder.model."

# transformers-5 in-memory names -> the saved (legacy) names.
_V5_TO_SAVED = [
    (re.compile(r"\.swin\.(encoder|embeddings)\."), r".\1."),
    (re.compile(r"\.attention\.relative_position_bias\.relative_position_bias_table$"),
     ".attention.self.relative_position_bias_table"),
    (re.compile(r"\.attention\.q_proj\."), ".attention.self.query."),
    (re.compile(r"\.attention\.k_proj\."), ".attention.self.key."),
    (re.compile(r"\.attention\.v_proj\."), ".attention.self.value."),
    (re.compile(r"\.attention\.o_proj\."), ".attention.output.dense."),
    (re.compile(r"(\.blocks\.\d+)\.mlp\.fc1\."), r"\1.intermediate.dense."),
    (re.compile(r"(\.blocks\.\d+)\.mlp\.fc2\."), r"\1.output.dense."),
]

# (pattern on the HF key, our key template). ``{qkv:...}`` marks one third of a packed projection.
_RULES = [
    (rf"^{_SB}embeddings\.patch_embeddings\.projection\.(\w+)$", r"backbone.0.patch_embed.proj.\1"),
    (rf"^{_SB}embeddings\.norm\.(\w+)$", r"backbone.0.patch_embed.norm.\1"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.blocks\.(\d+)\.layernorm_before\.(\w+)$", r"backbone.0.layers.\1.blocks.\2.norm1.\3"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.blocks\.(\d+)\.layernorm_after\.(\w+)$", r"backbone.0.layers.\1.blocks.\2.norm2.\3"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.self\.relative_position_bias_table$",
     r"backbone.0.layers.\1.blocks.\2.attn.relative_position_bias_table"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.self\.relative_position_index$",
     r"backbone.0.layers.\1.blocks.\2.attn.relative_position_index"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.self\.(query|key|value)\.(\w+)$",
     r"backbone.0.layers.\1.blocks.\2.attn.qkv.\4{qkv:\3}"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.blocks\.(\d+)\.attention\.output\.dense\.(\w+)$",
     r"backbone.0.layers.\1.blocks.\2.attn.proj.\3"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.blocks\.(\d+)\.intermediate\.dense\.(\w+)$", r"backbone.0.layers.\1.blocks.\2.mlp.fc1.\3"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.blocks\.(\d+)\.output\.dense\.(\w+)$", r"backbone.0.layers.\1.blocks.\2.mlp.fc2.\3"),
    (rf"^{_SB}encoder\.layers\.(\d+)\.downsample\.(\w+)\.(\w+)$", r"backbone.0.layers.\1.downsample.\2.\3"),
    (rf"^{_SB}hidden_states_norms\.stage(\d)\.(\w+)$", "NORM"),
    (r"^model\.input_proj_vision\.(.*)$", r"input_proj.\1"),
    (r"^model\.text_backbone\.(.*)$", r"bert.\1"),
    (r"^model\.text_projection\.(\w+)$", r"feat_map.\1"),
    (r"^model\.level_embed$", "transformer.level_embed"),
    (r"^model\.query_position_embeddings\.weight$", "transformer.tgt_embed.weight"),
    (r"^model\.reference_points\.weight$", "transformer.refpoint_embed.weight"),
    (r"^model\.enc_output\.(\w+)$", r"transformer.enc_output.\1"),
    (r"^model\.enc_output_norm\.(\w+)$", r"transformer.enc_output_norm.\1"),
    (r"^model\.encoder_output_bbox_embed\.(.*)$", r"transformer.enc_out_bbox_embed.\1"),
    # encoder: deformable layer
    (r"^model\.encoder\.layers\.(\d+)\.deformable_layer\.self_attn\.(\w+)\.(\w+)$", r"transformer.encoder.layers.\1.self_attn.\2.\3"),
    (r"^model\.encoder\.layers\.(\d+)\.deformable_layer\.self_attn_layer_norm\.(\w+)$", r"transformer.encoder.layers.\1.norm1.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.deformable_layer\.fc1\.(\w+)$", r"transformer.encoder.layers.\1.linear1.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.deformable_layer\.fc2\.(\w+)$", r"transformer.encoder.layers.\1.linear2.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.deformable_layer\.final_layer_norm\.(\w+)$", r"transformer.encoder.layers.\1.norm2.\2"),
    # encoder: text enhancer
    (r"^model\.encoder\.layers\.(\d+)\.text_enhancer_layer\.self_attn\.(query|key|value)\.(\w+)$",
     r"transformer.encoder.text_layers.\1.self_attn.in_proj_\3{qkv:\2}"),
    (r"^model\.encoder\.layers\.(\d+)\.text_enhancer_layer\.self_attn\.out_proj\.(\w+)$",
     r"transformer.encoder.text_layers.\1.self_attn.out_proj.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.text_enhancer_layer\.fc1\.(\w+)$", r"transformer.encoder.text_layers.\1.linear1.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.text_enhancer_layer\.fc2\.(\w+)$", r"transformer.encoder.text_layers.\1.linear2.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.text_enhancer_layer\.layer_norm_before\.(\w+)$", r"transformer.encoder.text_layers.\1.norm1.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.text_enhancer_layer\.layer_norm_after\.(\w+)$", r"transformer.encoder.text_layers.\1.norm2.\2"),
    # encoder: fusion
    (r"^model\.encoder\.layers\.(\d+)\.fusion_layer\.vision_param$", r"transformer.encoder.fusion_layers.\1.gamma_v"),
    (r"^model\.encoder\.layers\.(\d+)\.fusion_layer\.text_param$", r"transformer.encoder.fusion_layers.\1.gamma_l"),
    (r"^model\.encoder\.layers\.(\d+)\.fusion_layer\.layer_norm_vision\.(\w+)$", r"transformer.encoder.fusion_layers.\1.layer_norm_v.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.fusion_layer\.layer_norm_text\.(\w+)$", r"transformer.encoder.fusion_layers.\1.layer_norm_l.\2"),
    (r"^model\.encoder\.layers\.(\d+)\.fusion_layer\.attn\.(vision_proj|text_proj|values_vision_proj|values_text_proj|"
     r"out_vision_proj|out_text_proj)\.(\w+)$", "FUSION"),
    # decoder
    (r"^model\.decoder\.layer_norm\.(\w+)$", r"transformer.decoder.norm.\1"),
    (r"^model\.decoder\.reference_points_head\.(.*)$", r"transformer.decoder.ref_point_head.\1"),
    (r"^model\.decoder\.bbox_embed\.(.*)$", r"transformer.decoder.bbox_embed.\1"),
    (r"^model\.decoder\.layers\.(\d+)\.self_attn\.(query|key|value)\.(\w+)$",
     r"transformer.decoder.layers.\1.self_attn.in_proj_\3{qkv:\2}"),
    (r"^model\.decoder\.layers\.(\d+)\.self_attn\.out_proj\.(\w+)$", r"transformer.decoder.layers.\1.self_attn.out_proj.\2"),
    (r"^model\.decoder\.layers\.(\d+)\.self_attn_layer_norm\.(\w+)$", r"transformer.decoder.layers.\1.norm2.\2"),
    (r"^model\.decoder\.layers\.(\d+)\.encoder_attn_text\.(query|key|value)\.(\w+)$",
     r"transformer.decoder.layers.\1.ca_text.in_proj_\3{qkv:\2}"),
    (r"^model\.decoder\.layers\.(\d+)\.encoder_attn_text\.out_proj\.(\w+)$", r"transformer.decoder.layers.\1.ca_text.out_proj.\2"),
    (r"^model\.decoder\.layers\.(\d+)\.encoder_attn_text_layer_norm\.(\w+)$", r"transformer.decoder.layers.\1.catext_norm.\2"),
    (r"^model\.decoder\.layers\.(\d+)\.encoder_attn\.(\w+)\.(\w+)$", r"transformer.decoder.layers.\1.cross_attn.\2.\3"),
    (r"^model\.decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.(\w+)$", r"transformer.decoder.layers.\1.norm1.\2"),
    (r"^model\.decoder\.layers\.(\d+)\.fc1\.(\w+)$", r"transformer.decoder.layers.\1.linear1.\2"),
    (r"^model\.decoder\.layers\.(\d+)\.fc2\.(\w+)$", r"transformer.decoder.layers.\1.linear2.\2"),
    (r"^model\.decoder\.layers\.(\d+)\.final_layer_norm\.(\w+)$", r"transformer.decoder.layers.\1.norm3.\2"),
    (r"^bbox_embed\.(.*)$", r"bbox_embed.\1"),
]
_RULES = [(re.compile(p), t) for p, t in _RULES]
_FUSION = {"vision_proj": "v_proj", "text_proj": "l_proj", "values_vision_proj": "values_v_proj",
           "values_text_proj": "values_l_proj", "out_vision_proj": "out_v_proj", "out_text_proj": "out_l_proj"}
#: HF keys with no counterpart that we drop on purpose.
_IGNORED = (re.compile(rf"^{re.escape(_SB)}(swin\.)?layernorm\."),   # Swin's classifier norm, unused by detection
            re.compile(r"\.position_ids$"))
_QKV = re.compile(r"^(.*)\{qkv:(query|key|value)\}$")


def read_hf_folder(path: str | Path) -> tuple[dict, dict[str, Tensor]]:
    """``(config.json as a dict, state dict)`` of a folder written by ``save_pretrained``."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{path}: a Hugging Face model folder needs config.json")
    config = json.loads(cfg_file.read_text())
    if config.get("model_type") not in ("grounding-dino", "grounding_dino"):
        raise CheckpointError(f"{cfg_file}: model_type is '{config.get('model_type')}', expected 'grounding-dino'")
    state: dict[str, Tensor] = {}
    index = path / "model.safetensors.index.json"
    if (path / "model.safetensors").is_file():
        state = read_safetensors(path / "model.safetensors")
    elif index.is_file():
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(read_safetensors(path / shard))
    elif (path / "pytorch_model.bin").is_file():
        state = torch_load(path / "pytorch_model.bin")
    else:
        raise CheckpointError(f"{path}: no model.safetensors, sharded safetensors or pytorch_model.bin found")
    return config, state


def _normalise(key: str) -> str:
    for pattern, repl in _V5_TO_SAVED:
        key = pattern.sub(repl, key)
    return key


def hf_to_ours(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Rename an HF state dict to ours. Returns (mapped, ignored keys, keys with no rule)."""
    mapped: dict[str, Tensor] = {}
    parts: dict[str, dict[str, Tensor]] = {}
    ignored, unknown = [], []
    for raw_key, value in state.items():
        key = _normalise(raw_key)
        if any(p.search(key) for p in _IGNORED):
            ignored.append(raw_key)
            continue
        for pattern, template in _RULES:
            m = pattern.match(key)
            if not m:
                continue
            if template == "NORM":  # HF stage k (1-based, stem = 0) is our stage k-1
                ours = f"backbone.0.norm{int(m.group(1)) - 1}.{m.group(2)}"
            elif template == "FUSION":
                ours = f"transformer.encoder.fusion_layers.{m.group(1)}.attn.{_FUSION[m.group(2)]}.{m.group(3)}"
            else:
                ours = m.expand(template)
            packed = _QKV.match(ours)
            if packed:
                parts.setdefault(packed.group(1), {})[packed.group(2)] = value
            else:
                mapped[ours] = value
            break
        else:
            unknown.append(raw_key)
    for key, pieces in parts.items():
        if set(pieces) != {"query", "key", "value"}:
            unknown += [f"{key} ({name} only)" for name in pieces]
            continue
        mapped[key] = torch.cat([pieces["query"], pieces["key"], pieces["value"]], 0)
    return mapped, ignored, unknown


def _swin_preset(bb: dict) -> tuple[str, dict]:
    from ..backbones.swin import SWIN_PRESETS
    arch = dict(embed_dim=bb.get("embed_dim", 96), depths=list(bb.get("depths", [2, 2, 6, 2])),
                num_heads=list(bb.get("num_heads", [3, 6, 12, 24])), window_size=bb.get("window_size", 7))
    for name, preset in SWIN_PRESETS.items():
        if all(preset[k] == arch[k] for k in arch):
            return name, {}
    return "swin_tiny_224_1k", arch


def hf_config_to_kwargs(config: dict) -> dict:
    """Our model's constructor arguments for an HF ``GroundingDinoConfig`` dict."""
    def need(cond: bool, what: str) -> None:
        if not cond:
            raise CheckpointError(f"Hugging Face config: {what} is not supported by this model")

    bb = config.get("backbone_config") or {}
    need(bb.get("model_type", "swin") == "swin", f"backbone model_type '{bb.get('model_type')}' (only Swin)")
    need(config.get("decoder_bbox_embed_share", True), "decoder_bbox_embed_share=false")
    need(not config.get("two_stage_bbox_embed_share", False), "two_stage_bbox_embed_share=true")
    need(config.get("position_embedding_type", "sine") == "sine", "a learned position embedding")
    need(config.get("activation_function", "relu") == "relu", "an activation other than relu")
    need(config.get("encoder_attention_heads", 8) == config.get("decoder_attention_heads", 8),
         "different encoder and decoder head counts")
    need(config.get("encoder_ffn_dim", 2048) == config.get("decoder_ffn_dim", 2048),
         "different encoder and decoder FFN widths")
    need(bb.get("patch_size", 4) == 4 and bb.get("qkv_bias", True), "a Swin with patch size != 4 or no qkv bias")
    backbone, overrides = _swin_preset(bb)
    if bb.get("mlp_ratio", 4.0) != 4.0:
        overrides["mlp_ratio"] = bb["mlp_ratio"]
    stages = [int(i) - 1 for i in bb.get("out_indices", [2, 3, 4])]
    levels = int(config.get("num_feature_levels", 4))
    indices = stages + [4] * max(0, levels - len(stages))
    need(len(indices) == levels and indices.count(4) <= 1, f"{levels} feature levels from stages {stages}")
    temp = config.get("positional_embedding_temperature", 20)
    text_config = dict(config.get("text_config") or {"model_type": "bert"})
    return dict(
        backbone=backbone, backbone_overrides=overrides or None, hidden_dim=config.get("d_model", 256),
        nheads=config.get("encoder_attention_heads", 8), enc_layers=config.get("encoder_layers", 6),
        dec_layers=config.get("decoder_layers", 6), dim_feedforward=config.get("encoder_ffn_dim", 2048),
        dropout_ratio=config.get("dropout", 0.1), enc_n_points=config.get("encoder_n_points", 4),
        dec_n_points=config.get("decoder_n_points", 4), num_feature_levels=levels, return_interm_indices=indices,
        num_queries=config.get("num_queries", 900),
        two_stage_type="standard" if config.get("two_stage", True) else "no",
        embed_init_tgt=config.get("embedding_init_target", True), pe_temperatureH=temp, pe_temperatureW=temp,
        max_text_len=config.get("max_text_len", 256), fusion_droppath=config.get("fusion_droppath", 0.1),
        text_encoder_type="bert-base-uncased", text_encoder_config=text_config, has_mask=False,
        num_region_queries=0, ref_eps=1e-5)
