"""Checkpoints people have: ours, TAO's, the original release layout, Hugging Face names.

No real checkpoint can be downloaded here, so each layout is built from a model with
random weights saved under that layout's names; loading must be complete (no
missing or unexpected keys) and give identical outputs.
"""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from mask_grounding_dino.errors import CheckpointError
from mask_grounding_dino.model.checkpoint import (load_checkpoint, load_model, ours_to_tao, read_checkpoint,
                                                  save_checkpoint)
from mask_grounding_dino.model.checkpoint.hf import hf_to_ours
from mask_grounding_dino.model.presets import preset_config

CAPTION = ["red circle . blue square ."]


class HyperParameters:
    """Stands for a training framework's config object pickled beside the weights."""

    def __init__(self):
        self.lr = 2e-4


@pytest.fixture(scope="module")
def source(gd):
    model = gd.tiny_model(seed=1).eval()
    gd.perturb(model, 0.05)             # zero-initialised heads get non-trivial values
    return model


def _outputs(gd, model):
    x, mask = gd.images(1, 64, 96, pad_right=16)
    with torch.no_grad():
        return gd.run(model.eval(), x, mask, CAPTION)


def _assert_same_outputs(gd, a, b):
    oa, ob = _outputs(gd, a), _outputs(gd, b)
    for name in ("pred_logits", "pred_boxes", "pred_masks", "no_targets", "union_mask_logits"):
        assert torch.equal(getattr(oa, name), getattr(ob, name)), name


def test_native_round_trip(gd, source, tmp_path):
    path = tmp_path / "model.pth"
    save_checkpoint(source, path, metadata={"epoch": 3, "spec": {"model": {"backbone": "resnet_tiny"}}})
    raw = torch.load(path, weights_only=True)          # plain types only: loads without our help
    assert raw["metadata"]["epoch"] == 3 and raw["model_config"]["hidden_dim"] == 32
    model, summary = load_model(path)
    assert summary.format == "native" and summary.complete, str(summary)
    _assert_same_outputs(gd, source, model)
    assert read_checkpoint(path).metadata["spec"]["model"]["backbone"] == "resnet_tiny"


def test_save_is_atomic(source, tmp_path, monkeypatch):
    path = tmp_path / "model.pth"
    save_checkpoint(source, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(source, path, metadata={"epoch": 4})
    assert path.read_bytes() == before                 # the old checkpoint survives
    assert os.listdir(tmp_path) == ["model.pth"]      # no temporary file left behind


def test_official_release_layout(gd, source, tmp_path):
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state["module.bert.embeddings.position_ids"] = torch.arange(512)[None]
    state["module.label_enc.weight"] = torch.randn(2001, 32)       # denoising embeddings of the release
    path = tmp_path / "groundingdino_tiny.pth"
    torch.save({"model": state, "optimizer": {}, "epoch": 11}, path)
    target = gd.tiny_model(seed=2)
    summary = load_checkpoint(target, path)
    assert summary.format == "official" and summary.complete, str(summary)
    assert set(summary.ignored) == {"bert.embeddings.position_ids", "label_enc.weight"}
    _assert_same_outputs(gd, source, target)


def test_tao_layout_with_foreign_objects(gd, source, tmp_path):
    ckpt = ours_to_tao(source.state_dict())
    assert any(k.startswith("model.model.mask_head.") for k in ckpt["state_dict"])
    assert any(k.startswith("model.model.controller.") for k in ckpt["state_dict"])   # TAO keeps it beside
    ckpt["state_dict"]["ema_model.model.feat_map.weight"] = torch.zeros(1)
    ckpt.update(epoch=5, global_step=100, hyper_parameters=HyperParameters())
    path = tmp_path / "model_005_00100.pth"
    torch.save(ckpt, path)
    target = gd.tiny_model(seed=2)
    summary = load_checkpoint(target, path)
    assert summary.format == "tao" and summary.complete, str(summary)
    assert summary.ignored == ["ema_model.model.feat_map.weight"]
    _assert_same_outputs(gd, source, target)


def test_grounding_dino_checkpoint_initialises_the_mask_model(gd, source, tmp_path):
    detector_only = {k: v for k, v in source.state_dict().items() if not k.startswith(("mask_head.", "rela."))}
    path = tmp_path / "grounding_dino.pth"
    torch.save({"state_dict": ours_to_tao(detector_only, "grounding_dino")["state_dict"],
                "tao_model": "grounding_dino"}, path)
    target = gd.tiny_model(seed=2)
    fresh = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("mask_head.")}
    summary = load_checkpoint(target, path)
    assert not summary.missing and not summary.unexpected
    assert {k.split(".")[0] for k in summary.fresh} == {"mask_head", "rela"}
    assert "new heads" in str(summary)
    assert all(torch.equal(target.state_dict()[k], v) for k, v in fresh.items())
    out_src, out_tgt = _outputs(gd, source), _outputs(gd, target)
    assert torch.equal(out_src.pred_boxes, out_tgt.pred_boxes)       # the detector is the source's


def test_transformers_in_memory_names_map_completely(gd):
    """transformers 5 renames Swin attention in memory (q_proj, ..., swin.encoder); both name sets map."""
    from transformers import BertConfig, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig
    from mask_grounding_dino.model.checkpoint.hf import hf_config_to_kwargs
    from mask_grounding_dino.model.grounding_dino import MaskGroundingDINO

    cfg = GroundingDinoConfig(backbone_config=SwinConfig(embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                                                         out_indices=[2, 3, 4]),
                              text_config=BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                     intermediate_size=64),
                              d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                              encoder_attention_heads=4, decoder_attention_heads=4, num_queries=10)
    hf = GroundingDinoForObjectDetection(cfg)
    mapped, ignored, unknown = hf_to_ours(hf.state_dict())
    assert unknown == []
    ours = MaskGroundingDINO(**hf_config_to_kwargs(cfg.to_dict()))
    assert set(mapped) <= set(ours.state_dict())
    assert ours.build_config["backbone_overrides"]["depths"] == [1, 1, 1, 1]


def test_shape_mismatch_is_reported(gd, source, tmp_path):
    path = tmp_path / "m.pth"
    save_checkpoint(source, path)
    target = gd.tiny_model(num_queries=30)
    summary = load_checkpoint(target, path)
    assert [k for k, *_ in summary.mismatched] == ["transformer.tgt_embed.weight"]
    assert not summary.complete
    assert "transformer.tgt_embed.weight: checkpoint (20, 32) vs model (30, 32)" in str(summary)


def test_release_layout_needs_the_model_section(gd, source, tmp_path):
    path = tmp_path / "release.pth"
    torch.save({"model": source.state_dict()}, path)
    with pytest.raises(CheckpointError, match="does not record the model architecture"):
        load_model(path)
    model, summary = load_model(path, model_config=preset_config("tiny"))
    assert summary.complete, str(summary)
    _assert_same_outputs(gd, source, model)


def test_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    for path in (text, listing, tmp_path / "missing.pth"):
        with pytest.raises(CheckpointError):
            read_checkpoint(path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")   # torch notes our raw pickle's protocol
def test_a_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Exploit()}, f)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not marker.exists()


def test_pretrained_backbone_weights(gd, tmp_path):
    trunk = gd.tiny_model(seed=5).backbone[0].body
    weights = {k: v + 0.5 if v.is_floating_point() else v for k, v in trunk.state_dict().items()}          # torchvision layout: conv1, layer1...
    weights["fc.weight"] = torch.zeros(10, 128)
    path = tmp_path / "resnet_tiny_imagenet.pth"
    torch.save(weights, path)
    model = gd.tiny_model(pretrained_backbone_path=str(path))
    for key, value in weights.items():
        if not key.startswith("fc."):
            assert torch.equal(model.backbone[0].body.state_dict()[key], value), key
    assert model.backbone_load_summary.complete and model.backbone_load_summary.ignored == ["fc.weight"]
    with pytest.raises(CheckpointError, match="pretrained_backbone_path"):
        gd.tiny_model(pretrained_backbone_path=str(tmp_path / "nope.pth"))
