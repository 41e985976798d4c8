"""Referring (VG) metrics on hand-computed cases."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mask_grounding_dino.metrics.referring import (
    ReferringEvaluator,
    all_point_ap,
    compute_referring_metrics,
    sample_result,
)

H = W = 10


def _mask(n_pixels: int, offset: int = 0) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m.flat[offset:offset + n_pixels] = True
    return m


def _five_samples(ev: ReferringEvaluator) -> None:
    """A: IoU 0.8 (conf 0.9); B: IoU 0.3 (conf 0.8); C: no target, none predicted;
    D: target missed; E: no target but a prediction (conf 0.95)."""
    gt10 = _mask(10)
    ev.update_sample(_mask(8)[None], [0.9], gt10, key="A")
    ev.update_sample(_mask(3)[None], [0.8], gt10, key="B")
    ev.update_sample(None, [], None, gt_empty=True, key="C")
    ev.update_sample(np.zeros((0, H, W), bool), [], gt10, key="D")
    ev.update_sample(_mask(5, offset=50)[None], [0.95], None, gt_empty=True, key="E")


def test_hand_computed_metrics():
    ev = ReferringEvaluator()
    _five_samples(ev)
    m = ev.compute()
    # IoU: A .8, B .3, C 1 (empty vs empty), D 0, E 0.
    assert m.mIoU == pytest.approx(100 * 2.1 / 5)
    # Intersections 8 + 3, unions 10 + 10 + 0 + 10 + 5.
    assert m.overall_IoU == pytest.approx(100 * 11 / 35)
    # PR list by confidence: E (FP), A (TP for IoU thresholds <= 0.8), B (FP); 3 positives (A, B, D).
    # At 0.5: recall 0 -> 1/3 at precision 1/2, envelope 1/2 -> AP = 1/6. Same up to 0.8 (7 thresholds).
    assert m.mAP50 == pytest.approx(100 / 6)
    assert m.mAP == pytest.approx(100 * 7 / 60)
    assert m.T_acc == pytest.approx(100 * 2 / 3)          # A, B predicted; D missed
    assert m.N_acc == pytest.approx(50.0)                  # C right, E wrong
    assert m.pr == pytest.approx({0.5: 100 / 3, 0.7: 100 / 3, 0.9: 0.0})
    assert (m.num_samples, m.num_target, m.num_no_target) == (5, 3, 2)
    keys = m.key_metrics("val")
    assert keys["val_mIoU"] == m.mIoU and keys["val_N_acc"] == 50.0 and "val_Pr@0.7" in keys
    assert set(m.key_metrics("test")) == {f"test_{k}" for k in
                                          ("mIoU", "overall_IoU", "mAP50", "mAP", "T_acc", "N_acc",
                                           "Pr@0.5", "Pr@0.7", "Pr@0.9")}
    assert m.thresholds["score_threshold"] == 0.0
    assert "score >= 0" in m.summary()


def test_score_threshold_no_target_flag_and_accuracy_curve():
    ev = ReferringEvaluator(score_threshold=0.85)
    _five_samples(ev)
    m = ev.compute()
    # B (0.8) now counts as "no prediction": T_acc 1/3; E (0.95) still predicted.
    assert m.T_acc == pytest.approx(100 / 3)
    assert m.N_acc == pytest.approx(50.0)
    assert m.thresholds["score_threshold"] == 0.85
    # The curve only lists thresholds at or above the evaluation threshold.
    assert list(m.acc_by_threshold) == []
    curve = compute_referring_metrics([sample_result(_mask(8)[None], [0.9], _mask(10)),
                                       sample_result(_mask(5)[None], [0.55], None, gt_empty=True)]).acc_by_threshold
    assert curve[0.5] == {"T_acc": 100.0, "N_acc": 0.0}
    assert curve[0.6] == {"T_acc": 100.0, "N_acc": 100.0}
    assert curve[0.8] == {"T_acc": 100.0, "N_acc": 100.0}
    # The region head's flag wins over the detections (unless told to ignore it).
    flagged = sample_result(_mask(5)[None], [0.99], None, gt_empty=True, no_target=True)
    assert flagged.pred_empty and flagged.iou == 1.0
    assert not sample_result(_mask(5)[None], [0.99], None, gt_empty=True, no_target=True,
                             use_no_target=False).pred_empty


def test_union_of_several_masks_and_mean_confidence():
    gt = _mask(20)
    preds = np.stack([_mask(10), _mask(10, offset=10), _mask(5, offset=60)])
    r = sample_result(torch.from_numpy(preds), torch.tensor([0.9, 0.5, 0.1]), torch.from_numpy(gt),
                      score_threshold=0.2)
    # The 0.1 detection is dropped: union = first 20 pixels = gt.
    assert (r.intersection, r.union, r.iou) == (20, 20, 1.0)
    assert r.confidence == pytest.approx(0.7)
    with pytest.raises(ValueError, match="differ in size"):
        sample_result(np.ones((1, 4, 4), bool), [1.0], np.ones((5, 5), bool))


def test_duplicates_are_counted_once_and_batch_update():
    @dataclass
    class Det:
        scores: torch.Tensor
        masks: torch.Tensor
        no_target: bool = False

    @dataclass
    class Tgt:
        masks: torch.Tensor
        size: tuple
        orig_size: tuple
        empty: bool
        image_id: int
        caption: str

    # Transformed 6 x 6 image (padded to 8 x 8) of an original 12 x 12 one: GT is resized back (nearest).
    gt_small = torch.zeros(1, 8, 8, dtype=torch.bool)
    gt_small[0, :3, :3] = True
    gt_small[0, 6:, 6:] = True                   # in the padding: must be ignored
    pred = torch.zeros(1, 12, 12, dtype=torch.bool)
    pred[0, :6, :6] = True
    det = Det(scores=torch.tensor([0.7]), masks=pred)
    tgt = Tgt(masks=gt_small, size=(6, 6), orig_size=(12, 12), empty=False, image_id=3, caption="the cat")
    ev = ReferringEvaluator()
    ev.update([det, det], [tgt, tgt])                          # the same sample twice (sampler padding)
    empty_tgt = Tgt(masks=torch.zeros(0, 8, 8, dtype=torch.bool), size=(6, 6), orig_size=(12, 12), empty=True,
                    image_id=3, caption="the dog")
    ev.update([Det(scores=torch.zeros(0), masks=torch.zeros(0, 12, 12, dtype=torch.bool))], [empty_tgt])
    m = ev.compute()
    assert m.num_samples == 2
    assert m.mIoU == pytest.approx(100.0) and m.N_acc == 100.0 and m.T_acc == 100.0


def test_all_point_ap_hand_values():
    # Two positives; ranked TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # Envelope: 1 up to recall 1/2, then 2/3 -> AP = 0.5 * 1 + 0.5 * 2/3.
    ap = all_point_ap(np.array([0.9, 0.8, 0.7]), np.array([[True], [False], [True]]), 2)
    assert ap[0] == pytest.approx(0.5 + 1 / 3)
    assert all_point_ap(np.zeros(0), np.zeros((0, 3), bool), 2).tolist() == [0, 0, 0]
    assert all_point_ap(np.array([0.5]), np.array([[True]]), 0).tolist() == [0]


def test_float_prediction_masks_are_binarised_at_half():
    gt = _mask(10)
    probs = np.where(_mask(10), 0.6, 0.4)[None]           # all pixels "on" if merely cast to bool
    assert sample_result(probs, [0.9], gt).iou == 1.0
