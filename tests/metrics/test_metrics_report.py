"""Result files: names as TAO Deploy writes them, parseable content, no temporary leftovers."""

import csv
import json

import numpy as np

from mask_grounding_dino.metrics import ReferringEvaluator, write_evaluation_report
from mask_grounding_dino.metrics.report import safe_name


def test_report_files(tmp_path):
    ev = ReferringEvaluator()
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    ev.update_sample(gt[None], [0.9], gt, key=1)
    ev.update_sample(None, [], None, gt_empty=True, key=2)
    metrics = ev.compute()
    details = metrics.to_dict()
    details["note"] = float("nan")                    # not json: must become null
    paths = write_evaluation_report(tmp_path / "out", "refcoco val", metrics.key_metrics("test"),
                                    details, metrics.summary())
    assert paths.detailed.name == "detailed_results_refcoco_val.json"
    assert paths.key_metrics.name == "key_metrics_refcoco_val.csv"
    assert paths.summary.name == "evaluation_summary_refcoco_val.txt"
    detailed = json.loads(paths.detailed.read_text())
    assert detailed["key_metrics"]["test_mIoU"] == 100.0 and detailed["note"] is None
    rows = list(csv.reader(paths.key_metrics.open()))
    assert rows[0] == ["metric", "value"]
    assert dict(rows[1:])["test_N_acc"] == "100.0"
    assert "mIoU (gIoU)" in paths.summary.read_text()
    assert json.loads(paths.latest.read_text())["test_T_acc"] == 100.0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [paths.detailed.name, paths.key_metrics.name, paths.summary.name, "latest_results.json"])


def test_safe_name():
    assert safe_name("../a b/c.json") == "a_b_c.json"
    assert safe_name("///") == "results"
