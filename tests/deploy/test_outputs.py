"""Files written for deployment: the inference results writer and the DeepStream config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from pycocotools import mask as mask_utils

from mask_grounding_dino.deploy import InferenceWriter, nvdsinfer_config, write_nvdsinfer_config
from mask_grounding_dino.deploy.results_writer import normalise_color_map, safe_relative
from mask_grounding_dino.errors import SpecError
from mask_grounding_dino.model.results import Detections


def _detections(n: int, label: int = 0, phrase: str = "thing") -> Detections:
    masks = torch.zeros((n, 20, 30), dtype=torch.bool)
    masks[:, 5:10, 4:12] = True
    return Detections(boxes=torch.tensor([[4.0, 5.0, 12.0, 10.0]] * n), scores=torch.full((n,), 0.75),
                      labels=torch.full((n,), label, dtype=torch.long), phrases=[phrase] * n, masks=masks,
                      image_size=(20, 30))


def test_colour_map_accepts_names_hex_and_rgb_lists():
    assert normalise_color_map({"car": [255, 0, 16], "dog": "red", "cat": "#00ff00"}) == \
        {"car": "#ff0010", "dog": "red", "cat": "#00ff00"}
    with pytest.raises(SpecError) as info:
        normalise_color_map({"car": [300, 0, 0], "dog": "reddish"})
    assert info.value.problems == [
        "inference.color_map.car: [300, 0, 0] is not a colour; use [r, g, b] with values 0..255",
        "inference.color_map.dog: 'reddish' is not a colour; use a name (red), #rrggbb or [r, g, b]"]


def test_output_names_stay_inside_the_folder():
    assert safe_relative("../../etc/passwd") == "_/_/etc/passwd"
    assert safe_relative("/abs/x.jpg") == "abs/x.jpg" and safe_relative("a\\b.png") == "a/b.png"


def test_vg_writer_gives_each_expression_a_category(tmp_path):
    writer = InferenceWriter(tmp_path, categories=None)
    image = np.zeros((20, 30, 3), np.uint8)
    writer.add(image, "img.png", _detections(2, phrase="red car"), expression="the red car .")
    writer.add(image, "sub/other.webp", Detections.empty((20, 30), with_masks=True), expression="a dog .")
    writer.add(image, "again.png", _detections(1, phrase="red car"), expression="the red car .")
    paths = writer.close()
    index = json.load(open(paths["index"]))
    assert index["categories"] == [{"id": 0, "name": "the red car ."}, {"id": 1, "name": "a dog ."}]
    results = json.load(open(paths["results"]))
    assert [r["image_id"] for r in results] == [0, 0, 2] and {r["category_id"] for r in results} == {0}
    assert mask_utils.area(results[0]["segmentation"]) == 5 * 8                # RLE of the 5 x 8 mask
    assert (tmp_path / "labels" / "sub" / "other.txt").read_text() == "Empty\n"
    assert (tmp_path / "images_annotated" / "sub" / "other.webp").is_file()
    assert (tmp_path / "labels" / "img.txt").read_text().splitlines()[0].startswith("red_car 0.00 0 0.00 4.00 5.00")


def test_vg_writer_files_follow_the_image_ids_not_the_order_images_came_in(tmp_path):
    """A process of a multi-process run sees a later block of images first (or only); the files
    are the ones written when the same images come in data order."""
    image = np.zeros((20, 30, 3), np.uint8)
    items = [("a.png", _detections(1, phrase="dog"), "a dog ."), ("b.png", _detections(2, phrase="cat"), "a cat ."),
             ("c.png", _detections(1, phrase="dog"), "a dog .")]
    written = {}
    for name, order in (("in_order", [0, 1, 2]), ("shuffled", [2, 0, 1])):
        writer = InferenceWriter(tmp_path / name, categories=None)
        for i in order:
            writer.add(image, items[i][0], items[i][1], expression=items[i][2], image_id=i)
        paths = writer.close()
        written[name] = (paths["results"].read_bytes(), paths["index"].read_bytes())
    assert written["shuffled"] == written["in_order"]
    results = json.loads(written["in_order"][0])
    # Categories numbered by the images' ids: "a dog ." (image 0) is 0, "a cat ." (image 1) is 1.
    assert [(r["image_id"], r["category_id"]) for r in results] == [(0, 0), (1, 1), (1, 1), (2, 0)]


def test_nvdsinfer_config_for_a_fixed_batch(tmp_path):
    config = nvdsinfer_config(tmp_path / "m.onnx", input_size=(544, 960), output_names=["pred_logits", "pred_boxes"],
                              batch_size=4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), gpu_id=1)
    prop = config["property"]
    assert prop["infer-dims"] == "3;544;960" and prop["batch-size"] == 4
    assert prop["model-engine-file"] == "m.onnx_b4_gpu1_fp32.engine"
    assert prop["offsets"] == "127.500;127.500;127.500" and prop["net-scale-factor"] == pytest.approx(1 / 127.5)
    path = write_nvdsinfer_config(tmp_path / "m.onnx", input_size=(544, 960), output_names=["pred_logits"])
    assert path.name == "nvdsinfer_config.yaml" and yaml.safe_load(path.read_text())["property"]["batch-size"] == 1


def test_small_pictures_are_drawn_upscaled_while_labels_and_results_keep_original_pixels(tmp_path):
    from PIL import Image

    writer = InferenceWriter(tmp_path, categories=["thing"])
    writer.add(np.zeros((20, 30, 3), np.uint8), "img.png", _detections(1))
    paths = writer.close()
    assert Image.open(tmp_path / "images_annotated" / "img.png").size == (512, 341)   # 30 x 20 -> long side 512
    assert (tmp_path / "labels" / "img.txt").read_text().split()[4:8] == ["4.00", "5.00", "12.00", "10.00"]
    (result,) = json.load(open(paths["results"]))
    assert result["bbox"] == [4.0, 5.0, 8.0, 5.0] and mask_utils.area(result["segmentation"]) == 5 * 8
    assert json.load(open(paths["index"]))["images"][0] == {"id": 0, "file_name": "img.png", "height": 20, "width": 30}
