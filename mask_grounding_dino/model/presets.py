"""Named small configurations of the model (constructor arguments), for tests, docs
and CPU runs. TAO's own default is ``MaskGroundingDINO()`` (Swin-T, BERT-base, 900 queries).
"""

from __future__ import annotations

#: A BERT small enough to build in milliseconds (random weights); tokenisation stays bert-base-uncased.
TINY_TEXT_CONFIG = dict(model_type="bert", vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)

PRESETS: dict[str, dict] = {
    # Unit tests: everything on, every size minimal (builds in ~0.1 s, runs in well under a second).
    "tiny": dict(backbone="resnet_tiny", hidden_dim=32, nheads=4, enc_layers=1, dec_layers=2, dim_feedforward=64,
                 num_queries=20, text_encoder_type="bert-base-uncased", text_encoder_config=TINY_TEXT_CONFIG,
                 has_mask=True, num_region_queries=8),
    # Learning on a CPU: a narrow ResNet, 2+2 layers, 100 queries, the bundled pretrained MiniLM text
    # encoder, and a scaled, biased class head (logits start near the 1% prior, not in the hundreds).
    "cpu_small": dict(backbone="resnet_tiny", hidden_dim=128, nheads=8, enc_layers=2, dec_layers=2,
                      dim_feedforward=512, num_queries=100, text_encoder_type="minilm", class_embed_bias=True,
                      log_scale="auto", has_mask=True, num_region_queries=20),
}


def preset_config(name: str, **overrides) -> dict:
    """The constructor arguments of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset '{name}'; known: {', '.join(PRESETS)}")
    return {**PRESETS[name], **overrides}


def build_preset(name: str, **overrides):
    """``MaskGroundingDINO(**preset_config(name, **overrides))``."""
    from .grounding_dino import MaskGroundingDINO
    return MaskGroundingDINO(**preset_config(name, **overrides))
