"""A frozen text encoder stays in eval mode during training and its phrases are cached."""

from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.module import GroundingModule


def _module(freeze):
    cfg = load_spec(overrides={"model.backbone": "resnet_tiny", "model.text_encoder_type": "minilm",
                               "model.hidden_dim": 32, "model.nheads": 4, "model.dim_feedforward": 64,
                               "model.enc_layers": 1, "model.dec_layers": 1, "model.num_queries": 10,
                               "model.num_region_queries": 0, "train.freeze": freeze})
    return GroundingModule(spec_to_dict(cfg))


def test_frozen_bert_is_eval_and_cached():
    module = _module(["bert"]).train()
    assert not module.model.bert.training and module.model.transformer.training
    assert module.model.text_cache is not None and module.model.text_cache.usable(module.model.bert)


def test_trainable_bert_trains_without_cache():
    module = _module([]).train()
    assert module.model.bert.training and module.model.text_cache is None
