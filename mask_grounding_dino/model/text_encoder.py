"""The BERT-family text encoder (the model's ``bert`` module), offline first.

``model.text_encoder_type`` resolves as in ``text/tokenizer.py``: a local folder or
the bundled MiniLM load their weights; a hub id loads from the cache (or the hub
when online). ``bert-base-uncased`` requested offline and not cached is built
from ``BertConfig()`` (whose defaults *are* bert-base-uncased) with random
weights, and one notice says so: a full Grounding DINO checkpoint then provides
the weights. The pooler exists (official checkpoints carry it) but is frozen and unused.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..text.tokenizer import resolve_text_encoder

log = logging.getLogger(__name__)
_NOTICES: set[str] = set()

#: Architectures of the uncased BERT ids we can build offline without a download.
_OFFLINE_BERT = {
    "bert-base-uncased": {},
    "google-bert/bert-base-uncased": {},
    "bert-large-uncased": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "google-bert/bert-large-uncased": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                           intermediate_size=4096),
}


def _notice_once(message: str) -> None:
    if message not in _NOTICES:
        _NOTICES.add(message)
        log.warning(message)


@contextlib.contextmanager
def _quiet_progress():
    """transformers prints a per-tensor progress bar while loading; keep logs clean."""
    from transformers.utils import logging as hf_logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _from_config(config) -> nn.Module:
    from transformers import AutoModel
    try:
        return AutoModel.from_config(config, add_pooling_layer=True)
    except TypeError:  # text models without a pooler argument
        return AutoModel.from_config(config)


def build_text_encoder(text_encoder_type: str, *, config: dict | None = None, load_weights: bool = True) -> nn.Module:
    """The transformers model for ``text_encoder_type``.

    Args:
        text_encoder_type: hub id, local folder or ``minilm``.
        config: a saved ``config.to_dict()``: build that architecture with random
            weights (checkpoints store it so they reload offline); overrides the type.
        load_weights: False builds the architecture only (a full checkpoint follows).
    """
    from transformers import AutoConfig, AutoModel, BertConfig, BertModel

    if config is not None:
        cfg = dict(config)
        model = _from_config(AutoConfig.for_model(cfg.pop("model_type", "bert"), **cfg))
    elif not load_weights and text_encoder_type.lower() in _OFFLINE_BERT:
        # The architecture is known: no need to ask the hub for a config.
        model = BertModel(BertConfig(**_OFFLINE_BERT[text_encoder_type.lower()]), add_pooling_layer=True)
    else:
        source = resolve_text_encoder(text_encoder_type)
        try:
            if load_weights:
                with _quiet_progress():
                    try:
                        model = AutoModel.from_pretrained(source.path, add_pooling_layer=True)
                    except TypeError:
                        model = AutoModel.from_pretrained(source.path)
            else:
                model = _from_config(AutoConfig.from_pretrained(source.path))
        except (OSError, ValueError) as exc:
            if source.local or text_encoder_type.lower() not in _OFFLINE_BERT:
                raise UserError(f"model.text_encoder_type '{text_encoder_type}': cannot load the text encoder "
                                f"({exc.__class__.__name__}). Offline, use a local folder saved with "
                                "save_pretrained, 'minilm' (bundled) or bert-base-uncased.") from exc
            model = BertModel(BertConfig(**_OFFLINE_BERT[text_encoder_type.lower()]), add_pooling_layer=True)
            if load_weights:
                _notice_once(f"text encoder '{text_encoder_type}' is not available offline: built it with random "
                             "weights (a full model checkpoint provides them)")
    pooler = getattr(model, "pooler", None)
    if pooler is not None:
        pooler.requires_grad_(False)
    return model


def text_config_dict(text_encoder: nn.Module) -> dict:
    """The encoder's architecture as a plain dict (for checkpoints); see ``build_text_encoder(config=...)``."""
    cfg = text_encoder.config.to_dict()
    for key in ("_name_or_path", "transformers_version", "architectures", "torch_dtype", "dtype"):
        cfg.pop(key, None)
    return cfg


def run_text_encoder(text_encoder: nn.Module, input_ids: Tensor, self_attention_masks: Tensor,
                     position_ids: Tensor, token_type_ids: Tensor) -> Tensor:
    """Token features ``[B,L,H]``: each token attends only within its phrase.

    ``self_attention_masks [B,L,L]`` bool (True = may attend) becomes an additive
    4-D mask, which transformers uses as given (no padding logic of its own).
    """
    dtype = next(text_encoder.parameters()).dtype
    blocked = ~self_attention_masks[:, None]
    mask = torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill(blocked, torch.finfo(dtype).min)
    out = text_encoder(input_ids=input_ids, attention_mask=mask, token_type_ids=token_type_ids,
                       position_ids=position_ids, return_dict=True)
    return out.last_hidden_state
