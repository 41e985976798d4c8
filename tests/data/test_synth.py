"""The synthetic dataset: determinism, TAO layout, internal consistency, occlusion, VG split, CLI."""

import argparse
import colorsys
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mask_grounding_dino.data.synth import (SceneParams, SynthConfig, build_categories,
                                            candidate_expressions, generate_synthetic_dataset,
                                            image_rng, render_scene)
from mask_grounding_dino.data.tools import synth as synth_tool
from mask_grounding_dino.errors import UserError

SMALL = SynthConfig(num_train=6, num_val=3, num_vg=4, seed=3, width=128, height=96)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate_synthetic_dataset(str(out), SMALL)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(rle).astype(bool)


def test_same_seed_gives_identical_files_and_other_seed_differs(dataset, tmp_path):
    again = tmp_path / "again"
    generate_synthetic_dataset(str(again), SMALL)
    assert _files(dataset) == _files(again)
    other = tmp_path / "other"
    generate_synthetic_dataset(str(other), SynthConfig(**{**SMALL.__dict__, "seed": 4}))
    first, second = _files(dataset), _files(other)
    assert first.keys() == second.keys()
    assert first["train/images.tar.gz"] != second["train/images.tar.gz"]
    assert first["train/annotations_odvg.jsonl"] != second["train/annotations_odvg.jsonl"]


def test_layout_matches_tao(dataset):
    common = {"images.tar.gz", "annotations_odvg.jsonl", "annotations.json"}
    assert common | {"annotations_odvg_labelmap.json"} <= {p.name for p in (dataset / "train").iterdir()}
    assert common | {"annotations_odvg_labelmap.json", "label_map.txt", "inference.jsonl"} <= {
        p.name for p in (dataset / "val").iterdir()}
    assert common | {"annotations_refcoco.jsonl", "inference.jsonl"} <= {p.name for p in (dataset / "vg").iterdir()}
    manifest = json.loads((dataset / "dataset.json").read_text())
    assert manifest["parameters"]["seed"] == 3 and manifest["splits"]["train"]["images"] == 6
    assert (dataset / "README.md").read_text().startswith("# Synthetic shapes dataset")
    for split in ("train", "val", "vg"):
        with tarfile.open(dataset / split / "images.tar.gz") as tar:
            names = tar.getnames()
            assert names[0] == "images" and all(n.startswith("images/") for n in names[1:])
            records = _jsonl(dataset / split / "annotations_odvg.jsonl")
            assert {f"images/{r['file_name']}" for r in records} <= set(names)
            image = Image.open(io.BytesIO(tar.extractfile(names[1]).read()))
            assert image.size == (128, 96)  # width x height as configured (non-square)


@pytest.mark.parametrize("split", ["train", "val"])
def test_odvg_coco_and_label_maps_agree(dataset, split):
    folder = dataset / split
    label_map = json.loads((folder / "annotations_odvg_labelmap.json").read_text())
    coco = json.loads((folder / "annotations.json").read_text())
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted(cats) == list(range(12))          # contiguous from 0
    assert {int(k): v for k, v in label_map.items()} == cats
    if split == "val":
        assert (folder / "label_map.txt").read_text().splitlines() == [cats[i] for i in range(12)]
        lines = _jsonl(folder / "inference.jsonl")
        assert len(lines) == 3 and all(set(x) == {"image_path", "expression"} for x in lines)
        assert all(x["expression"] in cats.values() for x in lines)
    records = _jsonl(folder / "annotations_odvg.jsonl")
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    assert [img["id"] for img in coco["images"]] == [r["image_id"] for r in records]
    for rec, img in zip(records, coco["images"]):
        assert img["file_name"] == rec["file_name"] and (img["height"], img["width"]) == (96, 128)
        anns = by_image.get(rec["image_id"], [])
        instances = rec["detection"]["instances"]
        assert len(anns) == len(instances)
        union = np.zeros((96, 128), bool)
        for inst, ann in zip(instances, anns):
            assert inst["label"] == ann["category_id"] and cats[inst["label"]] == inst["category"]
            x1, y1, x2, y2 = inst["bbox"]
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            mask = _decode(inst["mask"])
            assert np.array_equal(mask, _decode(ann["segmentation"]))
            assert ann["area"] == int(mask.sum()) > 0
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
            assert not (union & mask).any()            # visible parts never overlap
            union |= mask


def test_images_without_objects(tmp_path):
    cfg = SynthConfig(num_train=1, num_val=1, num_vg=1, width=64, height=64,
                      scene=SceneParams(empty_fraction=1.0))
    summary = generate_synthetic_dataset(str(tmp_path), cfg)
    assert summary.splits["train"].instances == 0 and summary.splits["train"].empty_images == 1
    record = _jsonl(tmp_path / "train" / "annotations_odvg.jsonl")[0]
    assert record["detection"]["instances"] == []
    assert json.loads((tmp_path / "train" / "annotations.json").read_text())["annotations"] == []
    vg = _jsonl(tmp_path / "vg" / "annotations_odvg.jsonl")
    # An image with nothing in it can only be asked about something absent.
    assert len(vg) == 1 and vg[0]["grounding"]["empty"] is True and vg[0]["grounding"]["regions"] == []


def _saturation(rgb: np.ndarray) -> np.ndarray:
    hsv = np.array([colorsys.rgb_to_hsv(*(px / 255.0)) for px in rgb.reshape(-1, 3)])
    return hsv[:, 1]


def test_masks_are_visible_parts_and_nothing_coloured_is_unlabelled():
    cats = build_categories()
    params = SceneParams(min_objects=8, max_objects=8, empty_fraction=0.0, noise=0.0)
    occluded = 0
    for index in range(6):
        scene = render_scene(cats, 96, 96, params, image_rng(11, "train", index))
        union = np.zeros((96, 96), bool)
        for obj in scene.objects:
            # Rasterised area vs the ideal polygon area differs by about the perimeter
            # (~half a pixel along the outline): allow 0.6 px x perimeter (<= pi * size).
            slack = 0.6 * np.pi * obj.spec.size
            assert obj.area + slack >= params.min_visible * obj.spec.area()
            occluded += int(obj.area + slack < obj.spec.area())
            union |= obj.mask
        # Background and clutter are muted (saturation < 0.3); object colours are not.
        background = scene.image[~union][::7]
        assert _saturation(background).max() < 0.45
        inside = scene.image[union]
        if len(inside):
            assert np.median(_saturation(inside[::7])) > 0.6
    assert occluded > 0  # the scenes do exercise occlusion


@pytest.fixture(scope="module")
def vg(dataset):
    return (_jsonl(dataset / "vg" / "annotations_odvg.jsonl"),
            json.loads((dataset / "vg" / "annotations.json").read_text()),
            _jsonl(dataset / "vg" / "annotations_refcoco.jsonl"))


def test_vg_split_records_coco_and_refcoco_agree(vg):
    records, coco, refs = vg
    assert len(records) == len(refs) >= 4
    anns_by_sent: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        anns_by_sent.setdefault(ann["sent_id"], []).append(ann)
    for rec, ref in zip(records, refs):
        g = rec["grounding"]
        text = g["expression"]
        assert ref["sentence"] == {"raw": text, "ref_id": g["sent_id"], "sent_id": g["sent_id"]}
        anns = anns_by_sent[g["sent_id"]]
        assert all(a["referring_expression"] == text for a in anns)
        if g["empty"]:
            assert g["regions"] == [] and [a["empty"] for a in anns] == [True]
            continue
        assert len(anns) == len(g["regions"]) == len(ref["annotations"])
        for region, ann in zip(g["regions"], anns):
            assert region["phrase"] == text and region["tokens_positive"] == [[0, len(text)]]
            assert np.array_equal(_decode(region["mask"]), _decode(ann["segmentation"]))
            x1, y1, x2, y2 = region["bbox"]
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1] and not ann["empty"]


def test_vg_expressions_are_unambiguous_and_include_no_target(tmp_path):
    cats = build_categories()
    kinds = set()
    for index in range(12):
        scene = render_scene(cats, 128, 128, SceneParams(empty_fraction=0.0, min_objects=6),
                             image_rng(5, "vg", index))
        for expr in candidate_expressions(scene, cats):
            kinds.add(expr.kind)
            objs = scene.objects
            if expr.kind in ("largest", "smallest"):
                (t,) = expr.targets
                same = [o.area for o in objs if o.category == objs[t].category]
                assert objs[t].area == (max(same) if expr.kind == "largest" else min(same))
            if expr.kind in ("all", "category"):
                assert {objs[t].category.name for t in expr.targets} == {expr.text.split(" ", 1)[1].rstrip("s")}
    assert {"largest", "left", "right", "all", "color", "shape"} <= kinds
    cfg = SynthConfig(num_train=0, num_val=0, num_vg=12, width=96, height=96, empty_expression_prob=0.5)
    summary = generate_synthetic_dataset(str(tmp_path), cfg)
    assert 0 < summary.splits["vg"].empty_expressions < summary.splits["vg"].expressions


def test_cli_writes_dataset_and_rejects_bad_input(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    synth_tool.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "cli"), "--num-images", "2", "--num-val", "1",
                              "--num-vg", "0", "--image-size", "80x64", "--colors", "red,blue",
                              "--shapes", "star,hexagon"])
    assert synth_tool.run(args) == 0
    assert "train: 2 images" in capsys.readouterr().out
    label_map = json.loads((tmp_path / "cli" / "train" / "annotations_odvg_labelmap.json").read_text())
    assert list(label_map.values()) == ["red star", "red hexagon", "blue star", "blue hexagon"]
    assert not (tmp_path / "cli" / "vg").exists()
    assert synth_tool.parse_image_size("320x240") == (320, 240)
    with pytest.raises(UserError, match="--image-size"):
        synth_tool.parse_image_size("big")
    bad = parser.parse_args(["--out", str(tmp_path / "x"), "--colors", "red,mauve"])
    with pytest.raises(UserError, match="mauve"):
        synth_tool.run(bad)
    assert synth_tool.main(["--out", str(tmp_path / "y"), "--max-objects", "-1"]) == 2


def test_project_readers_accept_every_file(dataset):
    from mask_grounding_dino.data.coco import read_coco
    from mask_grounding_dino.data.inference_inputs import read_inference_jsonl
    from mask_grounding_dino.data.label_map import read_label_map
    from mask_grounding_dino.data.odvg import read_odvg
    from mask_grounding_dino.data.records import DetectionRecord, GroundingRecord

    assert read_label_map(str(dataset / "val" / "label_map.txt")) == read_label_map(
        str(dataset / "train" / "annotations_odvg_labelmap.json"))
    for split, kind in (("train", DetectionRecord), ("val", DetectionRecord), ("vg", GroundingRecord)):
        records = read_odvg(str(dataset / split / "annotations_odvg.jsonl"))
        assert records and all(isinstance(r, kind) for r in records)
        coco = read_coco(str(dataset / split / "annotations.json"))   # contiguous ids, references checked
        assert len(coco.images) == len({r.file_name for r in records})
    vg = read_odvg(str(dataset / "vg" / "annotations_odvg.jsonl"))
    assert all(r.expression and r.empty == (not r.regions) for r in vg)
    assert len(read_inference_jsonl(str(dataset / "vg" / "inference.jsonl"))) == len(vg)
