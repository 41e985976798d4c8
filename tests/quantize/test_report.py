"""The quantize action's before/after report: both models scored with the evaluate action's metric
names, timed and sized, in ``<results_dir>/quantize`` when ``quantize.results_dir`` is unset."""

from __future__ import annotations

import json
import os

from mask_grounding_dino.actions import quantize as quantize_action


def test_report_scores_both_models_in_the_default_folder(quant_spec, tmp_path):
    spec = quant_spec({"quantize.results_dir": "", "results_dir": str(tmp_path / "run")})
    assert quantize_action.run(spec) == 0
    folder = tmp_path / "run" / "quantize"
    assert (folder / "quantized_model_torchao.pth").is_file()
    report = json.loads((folder / "quantize_report.json").read_text())
    before, after = report["models"]
    assert (before["label"], after["label"]) == ("float", "quantized")
    for row in (before, after):
        assert {"[bbox] val_mAP@50", "[segm] val_mAP@50"} <= set(row["metrics"])
        assert all(0.0 <= row["metrics"][key] <= 1.0 for key in ("[bbox] val_mAP@50", "[segm] val_mAP@50"))
        assert row["latency_ms"] > 0
    assert after["size_mb"] < before["size_mb"]
    assert "after / before" in (folder / "quantize_report.md").read_text()
    assert sorted(os.listdir(tmp_path / "run")) == ["quantize"]          # nothing written beside it
