"""The BERT-family text encoder (the model's ``bert`` module), offline first.

``model.text_encoder_type`` resolves as in ``text/tokenizer.py``: a local folder or the
bundled MiniLM load their weights; a hub id loads from the Hugging Face cache (or the hub
when online). Pretrained weights that cannot be had are refused with one line saying how
to fix it (:data:`NO_WEIGHTS_FIX`): a randomly initialised text encoder trains to nothing
useful, and nobody should find that out after the run.

When the weights come from a checkpoint instead (evaluation, inference and export of a
trained model; training that resumes or starts from ``train.pretrained_model_path``) only
the architecture is built (``load_weights=False``), which needs no download for the uncased
BERT ids; :func:`complete_text_weights` then fetches pretrained weights for whatever text
tensors that checkpoint did not provide, or refuses. The pooler exists (official
checkpoints carry it) but is frozen and unused.
"""

from __future__ import annotations

import contextlib
import os
import pickle

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, UserError
from ..text.tokenizer import resolve_text_encoder
from .checkpoint.io import load_failure

#: Architectures of the uncased BERT ids we can build offline without a download.
_OFFLINE_BERT = {
    "bert-base-uncased": {},
    "google-bert/bert-base-uncased": {},
    "bert-large-uncased": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "google-bert/bert-large-uncased": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                           intermediate_size=4096),
}
#: The ways to get text-encoder weights without a download.
NO_WEIGHTS_FIX = ("use a local folder saved with save_pretrained, 'minilm' (the bundled all-MiniLM-L6-v2), or a "
                  "full checkpoint that carries the text encoder (train.pretrained_model_path)")


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0][:160]}" if text else exc.__class__.__name__


def build_text_encoder(text_encoder_type: str, *, config: dict | None = None, load_weights: bool = True) -> nn.Module:
    """The transformers model for ``text_encoder_type``.

    Args:
        text_encoder_type: hub id, local folder or ``minilm``.
        config: a saved ``config.to_dict()``: build that architecture with random
            weights (checkpoints store it so they reload offline); overrides the type.
        load_weights: False builds the architecture only (a checkpoint provides the weights).

    Raises:
        UserError: the pretrained weights (or, with ``load_weights=False``, the architecture)
            cannot be loaded, e.g. a hub id offline and not cached; one line with the fix.
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
        except (OSError, ValueError, pickle.UnpicklingError) as exc:
            name = f"model.text_encoder_type '{text_encoder_type}'"
            if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc):
                raise _unsafe_weights(name, source.path, exc) from exc
            if source.local:
                raise UserError(f"{name}: cannot load the text encoder from this folder ({_first_line(exc)}); "
                                "it must hold a model saved with save_pretrained") from exc
            if load_weights:
                raise UserError(f"{name}: its pretrained weights are not in the Hugging Face cache and cannot be "
                                "downloaded (offline, or no such model on the hub), and training from a randomly "
                                f"initialised text encoder learns nothing useful; {NO_WEIGHTS_FIX}") from exc
            raise UserError(f"{name}: cannot load its configuration offline ({_first_line(exc)}); use a local "
                            "folder saved with save_pretrained, 'minilm' (bundled) or an uncased BERT id "
                            f"({', '.join(sorted(_OFFLINE_BERT))})") from exc
    pooler = getattr(model, "pooler", None)
    if pooler is not None:
        pooler.requires_grad_(False)
    return model


def _unsafe_weights(name: str, folder: str, exc: BaseException) -> CheckpointError:
    """One line for a text encoder whose ``pytorch_model.bin`` the safe unpickler refused: what
    it holds and how to re-save it (never torch's advice to load it unsafely)."""
    weights = os.path.join(folder, "pytorch_model.bin")
    error = load_failure(weights if os.path.isfile(weights) else folder, exc, placeholders=False,
                         hint="re-save the text encoder with save_pretrained where it was made (it writes "
                              "model.safetensors) and use that folder")
    return CheckpointError(f"{name}: {error.problems[0]}")


def missing_text_weights(summary) -> list[str]:
    """Our ``bert.*`` keys a checkpoint load (a ``LoadSummary``) left at their initial values
    (absent from the checkpoint, or of another shape there)."""
    keys = list(summary.missing) + [key for key, _, _ in summary.mismatched]
    return [k for k in keys if k.startswith("bert.")]


def complete_text_weights(model: nn.Module, summary, text_encoder_type: str) -> int:
    """After loading a checkpoint into a model built with ``load_text_weights=False``: load
    pretrained weights for the text tensors the checkpoint did not provide (none when it
    carries the whole text encoder: nothing is downloaded). Returns how many were filled.

    Raises:
        UserError: some are missing and the pretrained weights cannot be loaded (one line naming
            the checkpoint and the fix).
    """
    missing = missing_text_weights(summary)
    if not missing:
        return 0
    try:
        pretrained = build_text_encoder(text_encoder_type, load_weights=True).state_dict()
    except UserError as exc:
        raise UserError(f"{summary.source} does not carry the text encoder ({len(missing)} bert.* tensors missing "
                        f"or of another shape) and {exc.problems[0]}") from exc
    ours = model.bert.state_dict()
    with torch.no_grad():
        for key in missing:
            name = key[len("bert."):]
            if name in pretrained and name in ours and pretrained[name].shape == ours[name].shape:
                ours[name].copy_(pretrained[name])
    return len(missing)


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
