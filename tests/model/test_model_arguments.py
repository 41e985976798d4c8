"""The model's arguments have one source: :class:`MaskGroundingDINO`'s signature.

They used to be listed four times (the signature, ``SPEC_KEYS``/``EXTRA_KEYS``, ``build_config``
and the Hugging Face importer), kept in step by hand: an argument left out of ``build_config``
silently went back to its default when a checkpoint was reloaded.
"""

from __future__ import annotations

import dataclasses
import inspect

from mask_grounding_dino.config.model import ModelConfig
from mask_grounding_dino.model.checkpoint.hf import hf_config_to_kwargs
from mask_grounding_dino.model.grounding_dino import RUNTIME_ARGS, MaskGroundingDINO, constructor_args
from mask_grounding_dino.model.presets import TINY_TEXT_CONFIG

#: A tiny architecture where every stored argument that a tiny model can take differs from its
#: default, so a reload that dropped one of them would show.
NON_DEFAULT = dict(backbone="resnet_tiny", hidden_dim=32, nheads=4, enc_layers=1, dec_layers=2, dim_feedforward=48,
                   dropout_ratio=0.05, enc_n_points=2, dec_n_points=3, num_feature_levels=3,
                   return_interm_indices=[1, 2, 3], num_queries=7, embed_init_tgt=False, pe_temperatureH=10,
                   pe_temperatureW=30, max_text_len=64, class_embed_bias=True, log_scale="auto", aux_loss=False,
                   num_region_queries=5, dn_number=4, dn_box_noise_scale=0.4, dn_label_noise_ratio=0.25,
                   train_backbone=False, ref_eps=1e-4, fusion_droppath=0.2, text_encoder_type="minilm")


def _defaults() -> dict:
    return {name: p.default for name, p in inspect.signature(MaskGroundingDINO.__init__).parameters.items()
            if name != "self"}


def test_build_config_stores_every_argument_but_the_run_time_ones():
    model = MaskGroundingDINO(**NON_DEFAULT, text_encoder_config=TINY_TEXT_CONFIG)
    assert set(model.build_config) == set(constructor_args()) - RUNTIME_ARGS
    assert RUNTIME_ARGS <= set(constructor_args())       # no stale name in the run-time list
    defaults = _defaults()
    changed = {k for k in NON_DEFAULT if NON_DEFAULT[k] != defaults[k]}
    assert changed == set(NON_DEFAULT)                    # the table really differs from the defaults
    for key, value in NON_DEFAULT.items():
        assert model.build_config[key] == value, key


def test_a_model_rebuilt_from_its_build_config_is_the_same_architecture():
    model = MaskGroundingDINO(**NON_DEFAULT, text_encoder_config=TINY_TEXT_CONFIG)
    again = MaskGroundingDINO.from_config(dict(model.build_config))
    assert again.build_config == model.build_config
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in again.state_dict().items()} == shapes


def test_every_spec_key_of_the_architecture_reaches_the_model():
    """``from_config`` passes each ``model`` spec key that is a constructor argument."""
    spec_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    wanted = {k: v for k, v in NON_DEFAULT.items() if k in spec_fields}
    assert set(wanted) == set(NON_DEFAULT) - {"ref_eps", "fusion_droppath"}  # the two extras are not TAO keys
    cfg = ModelConfig(**wanted, pretrained_backbone_path="")
    model = MaskGroundingDINO.from_config(cfg, text_encoder_config=TINY_TEXT_CONFIG)
    for key, value in wanted.items():
        assert model.build_config[key] == value, key


def test_the_hugging_face_importer_gives_only_constructor_arguments():
    kwargs = hf_config_to_kwargs({"d_model": 256, "num_queries": 900, "backbone_config": {"model_type": "swin"}})
    assert set(kwargs) <= set(constructor_args()), set(kwargs) - set(constructor_args())
