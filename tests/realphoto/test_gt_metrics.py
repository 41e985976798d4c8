"""Ground truth scored as predictions gives AP = 1 on the real photos, through the evaluate path.

The photo goes through the ``evaluate`` action's data path: ``build_dataset(cfg, "test")``
reads the converted contiguous COCO json and the image folder (TAO's all-category prompt,
positive maps, decoded masks, the evaluation resize); each target becomes a
:class:`Detections` in original pixels and is scored by :class:`DatasetScoring` (evaluate's and
validation's scorer)
(``detections_to_coco`` -> RLE -> pycocotools). The resize is set to the photo's own short
side, so the targets are the stored annotations at their stored size and a perfect
detector must get exactly 1.0 for bbox and segm. Controls (a wrong class, shifted boxes)
show the 1.0 is earned, and the ODVG file scored against the contiguous COCO shows the
converter's two outputs agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mask_grounding_dino.config import load_spec
from mask_grounding_dino.data.loaders import build_dataset
from mask_grounding_dino.data.masks import decode_mask
from mask_grounding_dino.data.odvg import read_odvg
from mask_grounding_dino.metrics import DatasetScoring, evaluate_coco
from mask_grounding_dino.writers import detections_to_coco
from mask_grounding_dino.model.results import Detections


def _test_cfg(photo):
    return load_spec(base={
        "model": {"text_encoder_type": "minilm"},
        "dataset": {"test_data_sources": {"image_dir": str(photo.image_dir), "json_file": str(photo.contiguous_json),
                                          "data_type": "OD"},
                    "has_mask": True, "workers": 0,
                    "augmentation": {"test_random_resize": min(photo.height, photo.width),
                                     "random_resize_max_size": 1333, "fixed_padding": False}}})


def _target_as_detections(target) -> Detections:
    """A perfect detector's output for one evaluation target (needs size == orig_size)."""
    h, w = target.size
    cx, cy, bw, bh = (target.boxes * torch.tensor([w, h, w, h])).unbind(-1)
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1).double()
    n = len(target)
    return Detections(boxes=boxes, scores=torch.linspace(1.0, 0.5, n), labels=target.labels.clone(),
                      phrases=[target.phrases[int(i)] for i in target.labels], masks=target.masks.clone(),
                      image_size=tuple(target.orig_size))


@pytest.fixture(scope="module", params=["voc", "arc"])
def eval_sample(request):
    """(photo, dataset, target) of the photo's test dataset."""
    photo = request.getfixturevalue(request.param)
    dataset = build_dataset(_test_cfg(photo), "test")
    assert len(dataset) == 1
    _, target = dataset[0]
    # Precondition of an exact comparison: the evaluation resize left the photo as stored.
    assert tuple(target.size) == tuple(target.orig_size) == (photo.height, photo.width)
    return photo, dataset, target


def _score(photo, dataset, detections: Detections) -> dict[str, float]:
    scoring = DatasetScoring("OD", coco_gt=str(photo.contiguous_json), categories=dict(dataset.categories))
    _, target = dataset[0]
    scoring.add([target], [detections])
    keys, _ = scoring.compute("test")
    return keys


def test_targets_carry_the_photo_annotations(eval_sample):
    photo, dataset, target = eval_sample
    assert len(target) == len(photo.category_ids)
    assert target.phrases == list(dataset.categories.values())           # the all-category prompt, id order
    np.testing.assert_array_equal(target.class_ids.numpy(), photo.category_ids - 1)
    np.testing.assert_array_equal(target.masks.numpy(), photo.masks)
    np.testing.assert_allclose(_target_as_detections(target).boxes.numpy(), photo.boxes_xyxy, atol=1e-3)


def test_ground_truth_as_predictions_scores_one(eval_sample):
    photo, dataset, target = eval_sample
    keys = _score(photo, dataset, _target_as_detections(target))
    for iou in ("bbox", "segm"):
        for name in ("mAP@50-95", "mAP@50", "mAP@75", "AR@100"):
            assert keys[f"[{iou}] test_{name}"] == pytest.approx(1.0, abs=1e-9), (iou, name, keys)


def test_wrong_classes_or_shifted_boxes_score_less(eval_sample):
    photo, dataset, target = eval_sample
    perfect = _target_as_detections(target)
    absent = min(set(range(len(dataset.categories))) - set(perfect.labels.tolist()))
    wrong = Detections(boxes=perfect.boxes, scores=perfect.scores, labels=torch.full_like(perfect.labels, absent),
                       phrases=perfect.phrases, masks=perfect.masks, image_size=perfect.image_size)
    # Every box right, every class one the photo does not have: nothing is found.
    assert _score(photo, dataset, wrong)["[bbox] test_mAP@50"] == 0.0
    widths = perfect.boxes[:, 2] - perfect.boxes[:, 0]
    shifted = perfect.boxes + torch.stack([widths, torch.zeros_like(widths)] * 2, -1) * 0.3
    moved = Detections(boxes=shifted, scores=perfect.scores, labels=perfect.labels, phrases=perfect.phrases,
                       masks=perfect.masks, image_size=perfect.image_size)
    keys = _score(photo, dataset, moved)
    # A box moved by 30% of its width keeps IoU 0.7/1.3 = 0.54: found at 0.5, lost at 0.75 and up.
    assert keys["[bbox] test_mAP@50"] == pytest.approx(1.0) and keys["[bbox] test_mAP@75"] == 0.0
    assert keys["[segm] test_mAP@50-95"] == pytest.approx(1.0)           # masks were not moved


def test_converted_odvg_scores_one_against_the_contiguous_coco(voc):
    """The ODVG records (boxes, labels, masks) as predictions vs. the contiguous COCO file."""
    record = read_odvg(str(voc.odvg))[0]
    boxes = torch.tensor([inst.bbox for inst in record.instances], dtype=torch.float64)
    labels = torch.tensor([inst.label for inst in record.instances])
    masks = torch.from_numpy(np.stack([decode_mask(inst.mask, record.height, record.width)
                                       for inst in record.instances]))
    detections = Detections(boxes=boxes, scores=torch.ones(len(labels)), labels=labels,
                            phrases=[inst.category for inst in record.instances], masks=masks,
                            image_size=(record.height, record.width))
    entries = detections_to_coco(int(record.image_id), detections, list(range(20)))
    metrics = evaluate_coco(str(voc.contiguous_json), entries, ("bbox", "segm"))
    assert metrics.stats["bbox"][0] == pytest.approx(1.0) and metrics.stats["segm"][0] == pytest.approx(1.0)
