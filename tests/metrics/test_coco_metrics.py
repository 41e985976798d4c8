"""COCO metrics: identical to pycocotools' COCOeval run directly, TAO keys, per-class, empty and perfect cases."""

import json

import numpy as np
import pytest
import torch
from _coco_synthetic import LABEL_TO_CATEGORY, Dets, make_gt, make_predictions, to_dataset
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mask_grounding_dino.metrics import STAT_NAMES, CocoEvaluator, evaluate_coco
from mask_grounding_dino.writers import detections_to_coco, encode_masks, write_coco_results

# pycocotools' decode trips a numpy 2 DeprecationWarning (its own code, harmless).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    gt = make_gt()
    path = tmp_path_factory.mktemp("coco") / "instances.json"
    path.write_text(json.dumps(gt))
    return gt, path, make_predictions(gt)


def _reference_stats(gt_path, preds) -> dict[str, np.ndarray]:
    """pycocotools used directly, with its own single-mask encoder, as a user would."""
    bbox_res, segm_res = [], []
    for img_id, d in preds.items():
        for box, score, label, mask in zip(d.boxes.tolist(), d.scores.tolist(), d.labels.tolist(), d.masks.numpy()):
            cat = LABEL_TO_CATEGORY[label]
            bbox_res.append({"image_id": img_id, "category_id": cat, "score": score,
                             "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            segm_res.append({"image_id": img_id, "category_id": cat, "score": score, "segmentation": rle})
    gt = COCO(str(gt_path))
    out = {}
    for iou_type, res in (("bbox", bbox_res), ("segm", segm_res)):
        ev = COCOeval(gt, gt.loadRes(res), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        out[iou_type] = np.asarray(ev.stats)
    return out


def _stream(gt, preds, batch=3, **kwargs):
    ev = CocoEvaluator(gt, LABEL_TO_CATEGORY, **kwargs)
    ids = sorted(preds)
    for i in range(0, len(ids), batch):
        chunk = ids[i:i + batch]
        ev.update(chunk, [preds[k] for k in chunk])
    return ev.compute()


def test_identical_to_pycocotools(synthetic, capsys):
    gt, path, preds = synthetic
    reference = _reference_stats(path, preds)
    capsys.readouterr()
    for source in (path, to_dataset(gt)):              # json file and CocoDataset record
        metrics = _stream(source, preds)
        assert set(metrics.stats) == {"bbox", "segm"}
        diffs = [abs(a - b) for iou in ("bbox", "segm") for a, b in zip(metrics.stats[iou], reference[iou])]
        assert len(diffs) == 24
        print(f"largest difference vs pycocotools over 24 numbers ({type(source).__name__}): {max(diffs)}")
        assert max(diffs) == 0.0
    # The synthetic set is a real test: neither trivial nor degenerate.
    assert 0.2 < reference["bbox"][1] < 0.95 and 0.2 < reference["segm"][0] < 0.95
    assert (reference["bbox"] > 0).all()


def test_faster_coco_eval_engine_agrees(synthetic):
    gt, path, preds = synthetic
    reference = _reference_stats(path, preds)
    metrics = _stream(path, preds, engine="faster_coco_eval")
    diffs = [abs(a - b) for iou in ("bbox", "segm") for a, b in zip(metrics.stats[iou], reference[iou])]
    print(f"faster_coco_eval: largest difference vs pycocotools over 24 numbers: {max(diffs)}")
    # Different float summation order is the only allowed source of difference.
    assert max(diffs) < 1e-12


def test_tao_keys_and_per_class_table(synthetic):
    gt, path, preds = synthetic
    metrics = _stream(path, preds)
    keys = metrics.key_metrics("test")
    assert len(keys) == 24
    assert keys["[bbox] test_mAP@50"] == metrics.stats["bbox"][1]
    assert keys["[segm] test_mAP@50-95"] == metrics.stats["segm"][0]
    assert "[bbox] val_AR@100" in metrics.key_metrics("val")
    with pytest.raises(ValueError, match="prefix"):
        metrics.key_metrics("train")
    # Per-class AP equals COCOeval restricted to that category.
    rows = {r.category_id: r for r in metrics.per_class["segm"]}
    assert set(rows) == {1, 5, 7} and rows[5].name == "dog"
    coco = COCO(str(path))
    results = [r for img, d in preds.items() for r in detections_to_coco(img, d, LABEL_TO_CATEGORY)]
    ev = COCOeval(coco, coco.loadRes([{k: v for k, v in r.items() if k != "bbox"} for r in results]), "segm")
    ev.params.catIds = [5]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert rows[5].ap == pytest.approx(ev.stats[0], abs=1e-12)
    assert rows[5].ap50 == pytest.approx(ev.stats[1], abs=1e-12)
    text = metrics.summary()
    assert "mAP@50-95" in text and "dog" in text


def test_perfect_predictions_give_one(synthetic):
    gt, path, _ = synthetic
    metrics = _stream(path, make_predictions(gt, perfect=True))
    for iou in ("bbox", "segm"):
        # Every number is 1 except AR@1 (index 6): one detection per image cannot recall
        # images that hold several objects.
        stats = metrics.stats[iou]
        assert stats[:6] + stats[7:] == [1.0] * 11, iou
        assert 0.3 < stats[6] < 1.0


def test_empty_predictions_do_not_crash(synthetic):
    gt, path, preds = synthetic
    empty = {k: Dets(boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.long),
                     masks=torch.zeros(0, 4, 4, dtype=torch.bool), phrases=[]) for k in preds}
    metrics = _stream(path, empty, iou_types=("bbox", "segm"))
    for iou in ("bbox", "segm"):
        assert metrics.stats[iou] == [0.0] * 12
    # Nothing fed at all: no crash either (pycocotools' "undefined" is -1).
    nothing = CocoEvaluator(path, LABEL_TO_CATEGORY).compute()
    assert len(nothing.stats["bbox"]) == 12


def test_results_json_loads_in_pycocotools(synthetic, tmp_path):
    gt, path, preds = synthetic
    results = [r for img, d in preds.items() for r in detections_to_coco(img, d, LABEL_TO_CATEGORY)]
    out = write_coco_results(tmp_path / "results.json", results)
    loaded = COCO(str(path)).loadRes(str(out))
    assert len(loaded.anns) == len(results)
    first = json.loads(out.read_text())[0]
    assert set(first) == {"image_id", "category_id", "bbox", "score", "segmentation"}
    assert isinstance(first["segmentation"]["counts"], str)


def test_rle_round_trip_and_bad_inputs(synthetic):
    masks = np.zeros((2, 5, 7), dtype=bool)
    masks[0, 1:3, 2:6] = True
    masks[1, 4, 0] = True
    rles = encode_masks(torch.from_numpy(masks))
    np.testing.assert_array_equal(mask_utils.decode([{**r, "counts": r["counts"].encode()} for r in rles]),
                                  masks.transpose(1, 2, 0))
    assert encode_masks(np.zeros((0, 5, 7), dtype=bool)) == []
    d = Dets(boxes=torch.zeros(1, 4), scores=torch.ones(1), labels=torch.tensor([3]), masks=None, phrases=["x"])
    with pytest.raises(ValueError, match="label 3"):
        detections_to_coco(10, d, LABEL_TO_CATEGORY)
    gt, path, _ = synthetic
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_coco(path, [{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])


def test_stat_names_follow_cocoeval_order():
    assert STAT_NAMES[0] == "mAP@50-95" and STAT_NAMES[1] == "mAP@50" and STAT_NAMES[8] == "AR@100"
    assert len(STAT_NAMES) == 12


def test_bad_ground_truth_files_raise_data_errors(tmp_path):
    from mask_grounding_dino.errors import DataError
    from mask_grounding_dino.metrics import load_ground_truth

    with pytest.raises(DataError, match="not found"):
        load_ground_truth(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  1,,\n]}')
    with pytest.raises(DataError, match="bad.json line 2 column 5: invalid JSON"):
        load_ground_truth(bad)
    bad.write_text("[]")
    with pytest.raises(DataError, match="not a COCO annotation file"):
        load_ground_truth(bad)


def test_ground_truth_from_s3(s3_bucket, tmp_path):
    """Validation and evaluate read the COCO ground truth from the spec's json_file, which may be
    an s3:// URL (TAO's workflow keeps every data source in object storage)."""
    import s3fs

    from mask_grounding_dino.errors import DataError
    from mask_grounding_dino.metrics import load_ground_truth

    gt = {"images": [{"id": 1, "file_name": "a.png", "height": 16, "width": 24}],
          "annotations": [{"id": 7, "image_id": 1, "category_id": 0, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0,
                           "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]}],
          "categories": [{"id": 0, "name": "cat"}]}
    s3fs.S3FileSystem().pipe(f"{s3_bucket}/eval/annotations.json", json.dumps(gt).encode())
    coco = load_ground_truth(f"s3://{s3_bucket}/eval/annotations.json")
    assert coco.dataset == gt and coco.getAnnIds(imgIds=[1]) == [7]
    with pytest.raises(DataError, match=rf"^s3://{s3_bucket}/eval/missing.json: file not found$"):
        load_ground_truth(f"s3://{s3_bucket}/eval/missing.json")


def test_float_masks_are_binarised_at_half():
    probs = np.array([[[0.2, 0.7], [0.51, 0.5]]], dtype=np.float32)
    rle = encode_masks(torch.from_numpy(probs))[0]
    decoded = mask_utils.decode({**rle, "counts": rle["counts"].encode()})
    np.testing.assert_array_equal(decoded, [[0, 1], [1, 0]])
