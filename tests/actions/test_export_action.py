"""The export action: a valid ONNX file with TAO's names, onnxruntime within 1e-3 of PyTorch, the
DeepStream config when asked, and one-line errors for requests it cannot serve."""

from __future__ import annotations

import json

import onnx
import pytest
import yaml

from mask_grounding_dino import cli
from mask_grounding_dino.actions import export

TAO_INPUTS = ["inputs", "input_ids", "attention_mask", "position_ids", "token_type_ids", "text_token_mask"]
TAO_OUTPUTS = ["pred_logits", "pred_boxes", "pred_masks", "no_targets", "union_mask_logits"]


def test_export_writes_checked_onnx_and_deepstream_config(make_spec, tiny_checkpoint, capsys):
    cfg = make_spec({"export.checkpoint": str(tiny_checkpoint), "export.input_width": 128,
                     "export.input_height": 96, "export.serialize_nvdsinfer": True})
    assert export.run(cfg) == 0
    out = cfg.results_dir + "/export"
    model = onnx.load(f"{out}/model.onnx")                                # default onnx_file
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == TAO_INPUTS
    assert [o.name for o in model.graph.output] == TAO_OUTPUTS
    image = model.graph.input[0].type.tensor_type.shape.dim
    assert image[0].dim_param == "batch_size" and [d.dim_value for d in image[1:]] == [3, 96, 128]

    check = json.load(open(f"{out}/export_check.json"))
    # fp32 onnxruntime vs PyTorch on the same inputs, batches 1 and 2: 1e-3 bounds float32 rounding
    # through ~20 layers (observed ~1e-4); a wrong op or input order gives differences > 1e-1.
    assert check["ok"] and check["max_abs_diff"] <= 1e-3
    assert {(o["batch"], o["name"]) for o in check["outputs"]} == {(b, n) for b in (1, 2) for n in TAO_OUTPUTS}
    assert f"max abs difference onnxruntime vs PyTorch: {check['max_abs_diff']:.3g}" in capsys.readouterr().out

    nvds = yaml.safe_load(open(f"{out}/nvdsinfer_config.yaml"))
    prop = nvds["property"]
    assert prop["onnx-file"] == "model.onnx" and prop["infer-dims"] == "3;96;128"
    assert prop["output-blob-names"].split(";") == TAO_OUTPUTS
    assert prop["offsets"] == "123.675;116.280;103.530"                       # 255 x ImageNet mean
    assert prop["net-scale-factor"] == pytest.approx(1 / (255 * 0.226))       # 1 / (255 x mean std)
    assert nvds["class-attrs-all"]["topk"] == cfg.model.num_select


@pytest.mark.parametrize("override, message", [
    ("export.format=xdl", "export.format: 'xdl' is not supported by this version; use onnx"),
    ("export.checkpoint=model.onnx", "export.checkpoint: 'model.onnx' is already an exported model"),
    ("export.checkpoint=/no/such/model.pth", "export.checkpoint: checkpoint '/no/such/model.pth' does not exist"),
])
def test_requests_it_cannot_serve_exit_2(tmp_path, tiny_checkpoint, capsys, override, message):
    args = ["export", f"results_dir={tmp_path}", f"export.checkpoint={tiny_checkpoint}", override]
    assert cli.main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {message}")
