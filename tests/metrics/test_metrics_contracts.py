"""The metrics and the criterion accept the project's real containers (``Detections``, ``Target``)."""

import torch

from mask_grounding_dino.data.batch import Target
from mask_grounding_dino.data.records import CocoAnnotation, CocoDataset, CocoImage
from mask_grounding_dino.metrics import CocoEvaluator, ReferringEvaluator
from mask_grounding_dino.model.criterion import SetCriterion
from mask_grounding_dino.model.outputs import GroundingOutputs
from mask_grounding_dino.model.results import Detections


def _target(n: int, empty: bool = False) -> Target:
    masks = torch.zeros(n, 16, 24, dtype=torch.bool)
    masks[:, 4:12, 6:18] = True
    pmap = torch.zeros(n, 256)
    pmap[:, 1] = 1.0
    return Target(boxes=torch.tensor([[0.5, 0.5, 0.5, 0.5]]).repeat(n, 1),
                  labels=torch.zeros(n, dtype=torch.long),
                  positive_map=pmap, masks=masks, phrases=["cat"], phrase_map=pmap[:1].clone(), caption="cat .",
                  empty=empty, image_id=7, size=(16, 24), orig_size=(32, 48),
                  class_ids=torch.zeros(n, dtype=torch.long), expression_id="e1")


def test_criterion_takes_batch_targets():
    g = torch.Generator().manual_seed(0)
    outputs = GroundingOutputs(pred_logits=torch.randn(2, 5, 8, generator=g, requires_grad=True),
                               pred_boxes=torch.rand(2, 5, 4, generator=g),
                               text_mask=torch.ones(2, 8, dtype=torch.bool),
                               pred_masks=torch.randn(2, 5, 1, 4, 6, generator=g),
                               union_mask_logits=torch.randn(2, 2, 2, 3, generator=g),
                               no_targets=torch.randn(2, 2, generator=g))
    out = SetCriterion(loss_types=["labels", "boxes", "masks", "rela"])(outputs, [_target(1), _target(0, empty=True)])
    assert {"loss_ce", "loss_mask", "loss_rela_nt"} <= set(out.weighted)
    assert torch.isfinite(out.total)


def test_evaluators_take_detections():
    masks = torch.zeros(1, 32, 48, dtype=torch.bool)
    masks[0, 8:24, 12:36] = True
    det = Detections(boxes=torch.tensor([[12.0, 8, 36, 24]]), scores=torch.tensor([0.9]), labels=torch.tensor([0]),
                     phrases=["cat"], masks=masks, image_size=(32, 48))
    ref = ReferringEvaluator()
    ref.update([det], [_target(1)])
    # GT rows 4:12, cols 6:18 of the 16 x 24 transformed image, resized x2 -> rows 8:24, cols 12:36.
    assert ref.compute().mIoU == 100.0

    gt = CocoDataset(images=[CocoImage(id=7, file_name="a.jpg", height=32, width=48)],
                     annotations=[CocoAnnotation(id=1, image_id=7, category_id=3, bbox=(12.0, 8.0, 24.0, 16.0),
                                                 segmentation=[[12, 8, 36, 8, 36, 24, 12, 24]])],
                     categories={3: "cat"})
    coco = CocoEvaluator(gt, {0: 3})
    coco.update([7], [det])
    coco.update([7], [Detections.empty((32, 48), with_masks=True)])     # a repeat of image 7: ignored
    metrics = coco.compute()
    # pycocotools divides by tp + fp + eps(1): one perfect detection scores 1 - 2e-16.
    assert abs(metrics.stats["bbox"][1] - 1.0) < 1e-12 and abs(metrics.stats["segm"][1] - 1.0) < 1e-12
