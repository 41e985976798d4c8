"""The text side: resolving and building the BERT-family encoder offline, the phrase mask."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from mask_grounding_dino.errors import UserError
from mask_grounding_dino.model import text_encoder as te
from mask_grounding_dino.model.presets import TINY_TEXT_CONFIG

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_minilm_loads_its_pretrained_weights():
    from transformers import AutoModel
    from mask_grounding_dino.text.tokenizer import bundled_minilm_path

    model = te.build_text_encoder("minilm")
    reference = AutoModel.from_pretrained(bundled_minilm_path())
    assert model.config.hidden_size == 384
    name = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.state_dict()[name], reference.state_dict()[name])
    assert not any(p.requires_grad for p in model.pooler.parameters())   # unused, frozen


#: The one line a user sees for a hub id whose weights are not available offline.
REFUSAL = ("model.text_encoder_type 'bert-base-uncased': its pretrained weights are not in the Hugging Face cache "
           "and cannot be downloaded (offline, or no such model on the hub), and training from a randomly "
           "initialised text encoder learns nothing useful; use a local folder saved with save_pretrained, "
           "'minilm' (the bundled all-MiniLM-L6-v2), or a full checkpoint that carries the text encoder "
           "(train.pretrained_model_path)")

#: Run in a fresh interpreter with no network and an empty Hugging Face cache (HF_HOME is read
#: when huggingface_hub is imported, hence the subprocess); one interpreter for every check.
OFFLINE_CHECKS = """
import sys
import numpy as np
from mask_grounding_dino.api import Predictor
from mask_grounding_dino.config import load_spec, spec_to_dict
from mask_grounding_dino.engine.module import GroundingModule
from mask_grounding_dino.errors import UserError
from mask_grounding_dino.model.checkpoint import load_checkpoint
from mask_grounding_dino.model.presets import build_preset
from mask_grounding_dino.model.text_encoder import build_text_encoder, complete_text_weights

full, textless = sys.argv[1:3]
spec = spec_to_dict(load_spec(overrides={"model.backbone": "resnet_tiny"}))   # text_encoder_type bert-base-uncased
for name, build in (("encoder", lambda: build_text_encoder("bert-base-uncased")),
                    ("training", lambda: GroundingModule(spec))):
    try:
        build()
        print(name, "BUILT")
    except UserError as exc:
        print(name, "REFUSED", exc.problems)
detections = Predictor.from_checkpoint(full, device="cpu").predict(np.zeros((48, 64, 3), np.uint8), ["red block"])
print("predict", type(detections[0]).__name__)
for path in (full, textless):
    fresh = build_preset("tiny", load_text_weights=False)
    try:
        print("warm start FILLED", complete_text_weights(fresh, load_checkpoint(fresh, path), "bert-base-uncased"))
    except UserError as exc:
        print("warm start REFUSED", exc.problems[0])
"""


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """(checkpoint with the text encoder, checkpoint without it, output lines of OFFLINE_CHECKS)."""
    from mask_grounding_dino.model.checkpoint import save_checkpoint
    from mask_grounding_dino.model.presets import build_preset

    tmp = tmp_path_factory.mktemp("offline")
    torch.manual_seed(0)
    model = build_preset("tiny")     # text_encoder_type bert-base-uncased, a tiny BERT architecture
    full, textless = tmp / "full.pth", tmp / "textless.pth"
    save_checkpoint(model, full)
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("bert.")}, textless)
    env = {**os.environ, "HF_HOME": str(tmp / "empty_hf_home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", OFFLINE_CHECKS, str(full), str(textless)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    n_text = sum(1 for k in model.state_dict() if k.startswith("bert.") and not k.startswith("bert.pooler."))
    return textless, n_text, done.stdout.splitlines()


@pytest.mark.slow   # a fresh interpreter importing torch, transformers and Lightning
def test_training_refuses_a_text_encoder_without_weights_offline(offline):
    """Offline with nothing cached, bert-base-uncased has no weights: building the encoder, and
    with it the training module, stops with one line saying how to fix it (no random encoder)."""
    lines = offline[2]
    assert lines[:2] == [f"encoder REFUSED {[REFUSAL]}", f"training REFUSED {[REFUSAL]}"]


@pytest.mark.slow
def test_a_checkpoint_provides_the_text_weights_offline(offline):
    """A checkpoint carrying the text encoder needs no download: it predicts offline (bert-base-uncased
    tokenises from the bundled vocabulary) and a warm start from it fetches nothing; from a
    checkpoint without the text encoder the warm start refuses, naming the file."""
    textless, n_text, lines = offline
    assert lines[2:4] == ["predict Detections", "warm start FILLED 0"]
    assert lines[4] == (f"warm start REFUSED {textless} does not carry the text encoder ({n_text} bert.* tensors "
                        f"missing or of another shape) and {REFUSAL}")


def test_missing_text_weights_are_filled_from_the_encoder_source():
    """A checkpoint without the text encoder, into a model whose encoder is a loadable source
    (the bundled MiniLM): exactly the missing tensors get its pretrained weights."""
    from transformers import AutoModel

    from mask_grounding_dino.model.checkpoint.summary import apply_state_dict
    from mask_grounding_dino.model.presets import build_preset
    from mask_grounding_dino.text.tokenizer import bundled_minilm_path

    minilm = dict(text_encoder_type="minilm", text_encoder_config=None, load_text_weights=False)
    donor = build_preset("tiny", **minilm)
    model = build_preset("tiny", **minilm)     # architecture only: random text weights
    state = {k: v for k, v in donor.state_dict().items() if not k.startswith("bert.")}
    summary = apply_state_dict(model, state, source="detector_only.pth", fmt="state_dict")
    filled = te.complete_text_weights(model, summary, "minilm")
    assert filled == len(te.missing_text_weights(summary)) > 0
    reference = AutoModel.from_pretrained(bundled_minilm_path()).state_dict()
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"):
        assert torch.equal(model.bert.state_dict()[name], reference[name])


def test_architecture_only_needs_no_lookup_and_no_notice(caplog):
    with caplog.at_level(logging.WARNING):
        model = te.build_text_encoder("bert-base-uncased", load_weights=False)
    assert model.config.hidden_size == 768 and not caplog.records


def test_saved_config_rebuilds_the_same_architecture():
    model = te.build_text_encoder("bert-base-uncased", config=TINY_TEXT_CONFIG)
    again = te.build_text_encoder("ignored", config=te.text_config_dict(model))
    assert again.config.hidden_size == 32 and again.config.num_hidden_layers == 1
    assert model.state_dict().keys() == again.state_dict().keys()


def test_unknown_hub_id_offline_is_a_user_error():
    with pytest.raises(UserError, match="text_encoder_type 'someone/no-such-model': its pretrained weights are not"):
        te.build_text_encoder("someone/no-such-model")


def test_missing_local_folder_is_a_user_error():
    with pytest.raises(UserError, match="does not exist"):
        te.build_text_encoder("./no/such/folder")


def test_tokens_attend_only_within_their_phrase(gd):
    """Changing a word of one phrase leaves the features of every other phrase unchanged."""
    torch.manual_seed(0)
    model = te.build_text_encoder("bert-base-uncased", config=TINY_TEXT_CONFIG).eval()
    a = gd.text_inputs(["red circle . blue square ."])
    b = gd.text_inputs(["red circle . green square ."])
    assert a.input_ids.shape == b.input_ids.shape
    with torch.no_grad():
        fa = te.run_text_encoder(model, a.input_ids, a.text_token_mask, a.position_ids, a.token_type_ids)
        fb = te.run_text_encoder(model, b.input_ids, b.text_token_mask, b.position_ids, b.token_type_ids)
    changed = (fa - fb).abs().amax(-1)[0] > 1e-6
    # [CLS] red circle . | blue/green square . | [SEP]: only the second phrase (positions 4-6) moves.
    assert changed.tolist() == [False, False, False, False, True, True, True, False]


def test_text_features_are_truncated_to_max_text_len(gd):
    model = gd.tiny_model(max_text_len=6).eval()
    ti = gd.text_inputs(["red circle . blue square ."])
    feats = model.encode_text(*ti.as_tuple())
    assert feats.encoded.shape[:2] == (1, 6) and feats.self_attention_masks.shape == (1, 6, 6)


class _RunsCommand:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_folder_with_unsafe_pickled_weights_is_refused_in_one_safe_line(tmp_path):
    """A save_pretrained folder whose pytorch_model.bin pickles a shell command: one line naming
    the object and how to re-save, never torch's advice to retry with weights_only=False."""
    from transformers import BertConfig, BertModel

    folder, marker = tmp_path / "encoder", tmp_path / "pwned"
    model = BertModel(BertConfig(**{k: TINY_TEXT_CONFIG[k] for k in ("hidden_size", "num_hidden_layers",
                                                                     "num_attention_heads", "intermediate_size")},
                                 vocab_size=100))
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()             # only the pickled weights are left
    torch.save({**model.state_dict(), "extra": _RunsCommand(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(UserError) as info:
        te.build_text_encoder(str(folder))
    message = str(info.value)
    assert message == (f"model.text_encoder_type '{folder}': {folder / 'pytorch_model.bin'}: the file holds pickled "
                       f"Python objects that are not safe to load ({os.system.__module__}.system); re-save the text "
                       "encoder with save_pretrained where it was made (it writes model.safetensors) and use that "
                       "folder")
    assert not marker.exists()
