"""The Python API: load once, predict on paths / PIL images / arrays, batches of mixed sizes, long
class lists, referring expressions, drawing, and clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from mask_grounding_dino.api import Predictor
from mask_grounding_dino.errors import UserError

#: Small resizes keep the tiny model fast; conf 0 keeps its (random-weight) detections to compare.
SPEC = {"dataset": {"augmentation": {"test_random_resize": 96, "random_resize_max_size": 128}},
        "inference": {"conf_threshold": 0.0}}
CLASSES = ["red block", "blue block"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from mask_grounding_dino.model.checkpoint import save_checkpoint
    from mask_grounding_dino.model.presets import build_preset

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("api") / "tiny.pth"
    save_checkpoint(build_preset("tiny"), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two pictures of different sizes, as arrays and as PNG files."""
    rng = np.random.default_rng(1)
    folder = tmp_path_factory.mktemp("pictures")
    arrays, paths = [], []
    for i, (h, w) in enumerate(((64, 80), (72, 56))):
        img = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
        img[8:30, 10:40] = (220, 30, 30)
        img[36:60, 14:46] = (30, 30, 220)
        Image.fromarray(img).save(folder / f"img{i}.png")
        arrays.append(img)
        paths.append(folder / f"img{i}.png")
    return arrays, paths


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return Predictor.from_checkpoint(checkpoint, device="cpu", spec=SPEC, input_size=(96, 96))


def _equal(a, b) -> bool:
    return (len(a) == len(b) and a.phrases == b.phrases and torch.equal(a.labels, b.labels)
            and torch.allclose(a.boxes, b.boxes, atol=1e-4) and torch.allclose(a.scores, b.scores, atol=1e-5)
            and torch.equal(a.masks, b.masks))


def test_paths_pil_and_arrays_give_the_same_detections(predictor, images):
    arrays, paths = images
    from_paths = predictor.predict(paths, CLASSES)
    from_pil = predictor.predict([Image.open(p) for p in paths], "red block . blue block")
    from_arrays = predictor.predict(arrays, CLASSES)
    # A comma string is a class list when asked for OD (alone it reads as a referring expression).
    from_commas = predictor.predict(arrays, "red block, blue block", mode="OD")
    for a, b, c, d in zip(from_paths, from_pil, from_arrays, from_commas):
        assert len(a) > 0 and _equal(a, b) and _equal(a, c) and _equal(a, d)
        assert set(a.phrases) <= set(CLASSES) and all(CLASSES[i] == p for i, p in zip(a.labels.tolist(), a.phrases))


def test_a_batch_of_two_sizes_equals_one_by_one(predictor, images):
    arrays, _ = images
    together = predictor.predict(arrays, CLASSES, batch_size=2)
    alone = [predictor.predict(a, CLASSES, batch_size=1)[0] for a in arrays]
    for det, single, arr in zip(together, alone, arrays):
        # Both are resized to exactly 96 x 96 (no padding), so batching changes nothing; results
        # come back at each image's own size.
        assert det.image_size == arr.shape[:2] and tuple(det.masks.shape[1:]) == arr.shape[:2]
        assert _equal(det, single)


def test_aspect_preserving_resize_pads_a_mixed_batch(checkpoint, images):
    arrays, _ = images
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", spec=SPEC, input_size=None)
    batch = predictor.preprocessor(arrays)
    # Short side to 96 (long side capped at 128), then padded to a common multiple of 32.
    assert batch.input_sizes == [(96, 120), (123, 96)] and tuple(batch.images.shape[-2:]) == (128, 128)
    dets = predictor.predict(arrays, CLASSES, batch_size=2)
    for det, arr in zip(dets, arrays):
        h, w = arr.shape[:2]
        assert len(det) > 0 and tuple(det.masks.shape[1:]) == (h, w)
        assert bool((det.boxes[:, [0, 2]] <= w).all() and (det.boxes[:, [1, 3]] <= h).all())


def _counted(fn, calls: dict, name: str):
    def wrapper(*args):
        calls[name] += 1
        return fn(*args)
    return wrapper


def test_long_class_list_runs_in_chunks_with_one_backbone_pass(predictor, images, monkeypatch):
    arrays, _ = images
    classes = [f"object number {i}" for i in range(80)]            # about 320 tokens with delimiters
    chunks = predictor.detector.plan(classes)
    assert len(chunks) > 1 and sorted(i for c in chunks for i in c.indices) == list(range(80))
    calls = {"encode_image": 0, "run": 0}
    for name in calls:
        monkeypatch.setattr(predictor.backend, name, _counted(getattr(predictor.backend, name), calls, name))
    dets = predictor.predict(arrays, classes, batch_size=2)
    assert calls == {"encode_image": 1, "run": len(chunks)}          # one batch: backbone once, text per chunk
    labels = torch.cat([d.labels for d in dets])
    assert len(labels) > 0 and int(labels.max()) < 80
    assert all(classes[i] == p for d in dets for i, p in zip(d.labels.tolist(), d.phrases))
    assert bool((labels >= len(chunks[0].indices)).any())            # later chunks contribute too


def test_referring_expressions(predictor, images):
    arrays, _ = images
    shared = predictor.predict(arrays, "the red block on the left")
    assert len(shared) == 2
    per_image = predictor.predict(arrays, ["the red block on the left", "a blue block"], mode="VG")
    assert _equal(per_image[0], shared[0])                             # same image, same expression
    words = set("the red block on left a blue".split())
    assert all(set(p.split()) <= words for d in per_image for p in d.phrases)   # whole words of the prompt


def test_draw_returns_a_readable_picture_of_the_image(predictor, images):
    arrays, paths = images
    det = predictor.predict(paths[0], CLASSES)[0]
    picture = Predictor.draw(paths[0], det, color_map={"red block": [0, 255, 0]}, min_size=0)
    assert picture.size == (arrays[0].shape[1], arrays[0].shape[0])
    assert not np.array_equal(np.asarray(picture), arrays[0])         # something was drawn
    # By default a small picture is drawn as inference draws it: long side 512, same aspect (80 x 64).
    assert Predictor.draw(paths[0], det).size == (512, 410)


def test_mistakes_raise_user_errors(predictor, checkpoint, images):
    arrays, _ = images
    with pytest.raises(UserError, match=r"VG needs one non-empty expression per image \(2\)"):
        predictor.predict(arrays, ["only one"], mode="VG")
    with pytest.raises(UserError, match=r"^prompts: no class name in ' \. '; expected a class list such as "
                                        r"\[red circle, blue square\]"):
        predictor.predict(arrays, " . ", mode="OD")
    with pytest.raises(UserError, match="mode: 'XY' is not allowed"):
        predictor.predict(arrays, CLASSES, mode="XY")
    with pytest.raises(UserError, match="image arrays must be uint8"):
        predictor.predict(np.zeros((8, 8, 3), np.int32), CLASSES)
    with pytest.raises(UserError, match=r"unknown option\(s\) \['conf'\]"):
        Predictor.from_checkpoint(checkpoint, conf=0.1)
    with pytest.raises(UserError, match="is not an .onnx file"):
        Predictor.from_onnx(checkpoint)


def test_without_a_spec_the_checkpoint_s_own_training_spec_sets_the_resize(tmp_path):
    # A model trained at 96 px must not be run at TAO's default 960x544 exact resize.
    from mask_grounding_dino.model.checkpoint import save_checkpoint
    from mask_grounding_dino.model.presets import build_preset

    trained = {"dataset": {"augmentation": {"test_random_resize": 96, "random_resize_max_size": 128}},
               "inference": {"input_width": None, "input_height": None, "conf_threshold": 0.25}}
    path = tmp_path / "with_spec.pth"
    save_checkpoint(build_preset("tiny"), path, metadata={"spec": trained})
    predictor = Predictor.from_checkpoint(path, device="cpu")
    assert predictor.preprocessor.input_size is None
    assert predictor.preprocessor.resized_size(200, 250) == (96, 120)    # short side to 96, aspect kept
    assert predictor.detector.thresholds.conf_threshold == 0.25
    # A checkpoint without a recorded spec keeps TAO's inference defaults (exact 544x960).
    bare = tmp_path / "bare.pth"
    save_checkpoint(build_preset("tiny"), bare)
    assert Predictor.from_checkpoint(bare, device="cpu").preprocessor.input_size == (544, 960)


def test_loading_and_predicting_leave_the_process_settings_as_they_were(checkpoint, images):
    """Denormal flushing holds during our forward passes only, and no warning filter is added:
    both belong to the caller's code in the same process."""
    from mask_grounding_dino.utils.cpu import denormals_flushed

    torch.set_flush_denormal(False)
    filters = list(warnings.filters)
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", spec=SPEC, input_size=(96, 96))
    seen = []
    forward = predictor.backend.model.forward_features

    def recording(*args, **kwargs):
        seen.append(denormals_flushed())
        return forward(*args, **kwargs)

    predictor.backend.model.forward_features = recording
    predictor.predict(images[0], CLASSES)
    assert seen and all(seen)               # our own math ran with subnormals flushed (utils/cpu.py)
    assert not denormals_flushed()
    assert (torch.tensor([1e-39]) * 1.0).item() > 0.0       # the caller's subnormals are kept
    assert list(warnings.filters) == filters
